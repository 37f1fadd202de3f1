"""Faults a long run meets: kill -9 at seeded random moments (the board write included) and
Ctrl-C. Each resumed run ends with the store and board of an uninterrupted run."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmark.store import score_values

REPO = Path(__file__).resolve().parent.parent

SUITE = """
seed = 0
batch_size = 2
explainers = ["grad_cam", "random", "center"]
metrics = ["occlusion", "pointing_game", "road"]
[metric_params.road]
fractions = [0.3, 0.7]
[[grid]]
dataset = "synthetic"
limit = 24
models = [{ name = "cnn_gap" }]
"""


def _start(tmp_path: Path, store: Path, boards: Path) -> subprocess.Popen:
    args = ["run", "--suite", str(tmp_path / "faults.toml"), "--store", str(store)]
    args += ["--leaderboard-dir", str(boards), "--quiet", "--device", "cpu"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-m", "benchmark", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _results(store: Path) -> list[tuple]:
    """Scores and maps in the store; none while a starting run has not yet created them."""
    try:
        with sqlite3.connect(f"{store.resolve().as_uri()}?mode=ro", uri=True) as db:
            maps = db.execute("SELECT key, map FROM saliency ORDER BY key").fetchall()
    except sqlite3.OperationalError:  # no file or no tables yet
        return []
    return score_values(store) + maps


def _board(path: Path, store: Path) -> list[str]:
    """The board without what differs between any two runs: runtimes, run ids and dates, and
    the store's path."""
    keep = []
    for line in path.read_text().replace(str(store), "STORE").splitlines():
        if "s / image" in line or line.startswith("| ") and ("0." in line or "e-0" in line):
            continue  # runtime figures
        if line.startswith("| ") and line.count("|") == 8 and "cpu" in line:
            continue  # provenance row of a run
        keep.append(line.split("runtime")[0])
    return keep


def test_kill_9_at_five_seeded_moments_then_resume_equals_an_uninterrupted_run(tmp_path, data_dir):
    (tmp_path / "faults.toml").write_text(SUITE)
    reference, reference_boards = tmp_path / "reference.sqlite", tmp_path / "reference"
    start = time.perf_counter()
    done = _start(tmp_path, reference, reference_boards)
    assert done.wait(timeout=600) == 0, done.stderr.read()
    duration = time.perf_counter() - start

    store, boards = tmp_path / "killed.sqlite", tmp_path / "killed"
    rng = random.Random(0)
    moments = sorted(rng.uniform(0.3, 1.1) * duration for _ in range(5))
    for moment in moments:  # each a fresh process killed after `moment` seconds
        proc = _start(tmp_path, store, boards)
        try:
            proc.wait(timeout=moment)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    final = _start(tmp_path, store, boards)
    assert final.wait(timeout=600) == 0, final.stderr.read()
    assert _results(store) == _results(reference)
    board = _board(boards / "faults.md", store)
    assert board == _board(reference_boards / "faults.md", reference)
    assert "did not finish" not in "\n".join(board)


def test_ctrl_c_stops_cleanly_with_the_resume_hint(tmp_path, data_dir):
    (tmp_path / "faults.toml").write_text(SUITE)
    store, boards = tmp_path / "s.sqlite", tmp_path / "boards"
    proc = _start(tmp_path, store, boards)
    deadline = time.time() + 120
    while time.time() < deadline and not _results(store):
        time.sleep(0.2)
    if proc.poll() is not None:
        pytest.skip("the run finished before it could be interrupted")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert "rerun the same command to resume" in err and "Traceback" not in err
    from benchmark import leaderboard
    from benchmark.store import ResultsStore

    assert "did not finish" in leaderboard.render(ResultsStore(store, readonly=True), "faults")
