"""The runner end to end on the offline synthetic data: CLI, resume after kill -9, failures, boards."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from benchmark import leaderboard
from benchmark.config import load_suite, parse_suite
from benchmark.runner import run_suite
from benchmark.store import ResultsStore, score_values
from tests.plugins import FAILING, failing_plugin

REPO = Path(__file__).resolve().parent.parent

TINY_SUITE = """
description = "test suite: random-weight cnn_gap on synthetic shapes"
seed = 0
batch_size = 4
explainers = ["grad_cam", "gradient_pixel", "random", "center", "cam"]
metrics = ["*"]
max_cost = 300  # every metric the registry has, but not the per-pixel Quantus ones (up to 15 million forwards per image)

[[grid]]
dataset = "synthetic"
limit = 8
models = [{ name = "cnn_gap" }]
"""


@pytest.fixture
def tiny_suite(tmp_path, data_dir) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_SUITE)
    return path


def _cli(*args: str, cwd: Path, env: dict | None = None, **kw) -> subprocess.CompletedProcess:
    env = {**(os.environ if env is None else env), "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "benchmark", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        **kw,
    )


def _run_cli(suite: Path, store: Path, boards: Path, cwd: Path) -> subprocess.CompletedProcess:
    return _cli(
        "run",
        "--suite",
        str(suite),
        "--store",
        str(store),
        "--leaderboard-dir",
        str(boards),
        "--quiet",
        "--device",
        "cpu",
        cwd=cwd,
    )


def test_cli_run_then_leaderboard_is_complete_and_deterministic(tiny_suite, tmp_path):
    store = tmp_path / "store.sqlite"
    boards = tmp_path / "boards"
    result = _run_cli(tiny_suite, store, boards, tmp_path)
    assert result.returncode == 0, result.stderr
    board = (boards / "tiny.md").read_text()
    for name in ["grad_cam", "gradient_pixel", "random", "center", "cam"]:
        assert f"| {name} |" in board
    assert "### Table tiny/synthetic/cnn_gap" in board and 'id="tiny-synthetic-cnn_gap"' in board
    assert "## Provenance" in board and "torch" in board
    assert f"results store (`{store.as_posix()}`)" in board, "names the store it was built from"
    assert "Summary (headline score" in board and "road combined ↑" in board
    assert " [" in board and "**" in board, "means with bootstrap CIs, best in bold"
    assert "Occlusion, seed-study layout" in board and "ROAD, seed-study layout" in board
    first = board
    assert (
        _cli(
            "leaderboard",
            "--suite",
            "tiny",
            "--store",
            str(store),
            "--leaderboard-dir",
            str(boards),
            cwd=tmp_path,
        ).returncode
        == 0
    )
    assert (boards / "tiny.md").read_text() == first, "same store, same bytes"
    # a second run computes nothing new
    again = _run_cli(tiny_suite, store, boards, tmp_path)
    assert "0 maps and 0 scores computed" in again.stdout, again.stdout


def test_data_dir_flag_names_the_folder_holding_every_dataset(tmp_path, data_dir):
    suite = tmp_path / "two.toml"
    suite.write_text(
        'seed = 0\nbatch_size = 2\nexplainers = ["center"]\nmetrics = ["pointing_game"]\n'
        '[[grid]]\ndataset = "fashion-mnist"\nlimit = 2\nmodels = [{ name = "cnn_gap" }]\n'
        '[[grid]]\ndataset = "synthetic"\nlimit = 2\nmodels = [{ name = "cnn_gap" }]\n'
    )
    env = {k: v for k, v in os.environ.items() if k != "BENCHMARK_DATA_DIR"}
    result = _cli(
        "run",
        "--suite",
        str(suite),
        "--data-dir",
        str(data_dir.resolve()),
        "--store",
        str(tmp_path / "s.sqlite"),
        "--leaderboard-dir",
        str(tmp_path),
        "--quiet",
        "--device",
        "cpu",
        cwd=tmp_path,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert "4 maps" in result.stdout and "skipped" not in result.stdout, result.stdout


def test_resume_after_kill_stores_each_cell_once_with_the_same_values(tmp_path, data_dir):
    suite_file = tmp_path / "resume.toml"
    suite_file.write_text(
        TINY_SUITE.replace("limit = 8", "limit = 48")
        .replace("batch_size = 4", "batch_size = 2")
        .replace(
            "max_cost = 300", "max_cost = 20"
        )  # 48 images: the cheap metrics (ROAD, occlusion, masks)
    )
    args = [
        "run",
        "--suite",
        str(suite_file),
        "--quiet",
        "--device",
        "cpu",
        "--leaderboard-dir",
        str(tmp_path),
    ]

    reference = tmp_path / "reference.sqlite"
    assert _cli(*args, "--store", str(reference), cwd=tmp_path).returncode == 0

    interrupted = tmp_path / "interrupted.sqlite"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmark", *args, "--store", str(interrupted)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
        if len(score_values(interrupted)) > 50:
            break
    assert proc.poll() is None, "the run finished before it could be interrupted: give it more work"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = len(score_values(interrupted))
    assert 0 < partial < len(score_values(reference))

    assert _cli(*args, "--store", str(interrupted), cwd=tmp_path).returncode == 0
    resumed = score_values(interrupted)
    assert resumed == score_values(reference)
    assert len({(c, s) for c, s, _ in resumed}) == len(resumed), "each cell exactly once"


def test_a_failing_explainer_does_not_stop_the_run_and_shows_in_the_board(tmp_path, data_dir):
    with failing_plugin() as params:
        suite = parse_suite(
            "failing",
            {
                "batch_size": 4,
                "explainers": [FAILING, "center"],
                "metrics": ["*"],
                "max_cost": 300,
                "grid": [{"dataset": "synthetic", "limit": 8, "models": [{"name": "cnn_gap"}]}],
                "explainer_params": {FAILING: params},
            },
        )
        store = ResultsStore(tmp_path / "s.sqlite")
        summary = run_suite(suite, store, device="cpu", progress=False, log=lambda _: None)
        board = leaderboard.render(store, "failing")
    messages = [f[-1] for f in store.failures("failing")]
    assert any("boom on purpose" in m for m in messages)
    assert any("NaN" in m for m in messages)
    assert len(summary.failures) == 2, "\n".join(summary.failures)
    assert "## Failures" in board and "boom on purpose" in board
    explained = {
        img for _, _, e, m, _, img, _ in store.scores("failing") if e == FAILING and m == "runtime"
    }
    assert len(explained) == 6, "the six other images were explained and scored"


def test_grad_cam_localises_on_synthetic_better_than_the_baselines(tmp_path, data_dir):
    suite = parse_suite(
        "loc",
        {
            "batch_size": 32,
            "explainers": ["grad_cam", "random", "center"],
            "metrics": ["pointing_game", "miou"],
            "grid": [
                {
                    "dataset": "synthetic",
                    "limit": 96,
                    "models": [{"name": "cnn_gap", "train": True}],
                    "metric_params": {"pointing_game": {"tolerance": 2.14}},
                }
            ],  # 15 px at 224 -> 32 px
        },
    )
    store = ResultsStore(tmp_path / "loc.sqlite")
    run_suite(suite, store, device="cpu", progress=False, log=lambda _: None)
    means: dict[tuple[str, str], list[float]] = {}
    for _, _, explainer, metric, score, _, value in store.scores("loc"):
        if value is not None:
            means.setdefault((explainer, f"{metric}/{score}"), []).append(value)
    for column in ["pointing_game/hit", "miou/oracle"]:
        mean = {
            e: sum(means[(e, column)]) / len(means[(e, column)])
            for e in ["grad_cam", "random", "center"]
        }
        assert mean["grad_cam"] > mean["random"] and mean["grad_cam"] > mean["center"], (
            column,
            mean,
        )


def test_suites_reject_unknown_keys_and_narrow_with_wildcards(tmp_path):
    with pytest.raises(ValueError, match="unknown key"):
        parse_suite("x", {"grid": [], "explainer": ["typo"]})
    with pytest.raises(ValueError, match="unknown key"):
        parse_suite(
            "x",
            {
                "grid": [
                    {"dataset": "synthetic", "models": [{"name": "cnn_gap", "pretraind": True}]}
                ]
            },
        )
    with pytest.raises(ValueError, match="grad_cam"):
        parse_suite("x", {"grid": [], "explainer_params": {"grad_cam": {"nsamples": 3}}})
    from benchmark.config import list_suites, narrow

    assert {"default", "seed-imagenet50", "seed-cxr"} <= set(list_suites())
    default = load_suite("default")
    small = narrow(default, datasets="synth*", models="cnn_gap", explainers="grad*,random", limit=5)
    assert [e.dataset for e in small.grid] == ["synthetic"]
    assert [m.name for m in small.grid[0].models] == ["cnn_gap"] and small.grid[0].limit == 5
    assert small.explainers == ["grad_cam", "gradient_pixel", "random"]
    with pytest.raises(ValueError, match="matches no dataset"):
        narrow(default, datasets="nope")
    with pytest.raises(ValueError, match="nothing to run"):
        narrow(default, datasets="voc-masks", models="cnn_gap")


def test_concurrent_writers_do_not_corrupt_the_store(tmp_path):
    path = tmp_path / "shared.sqlite"
    ResultsStore(path).close()
    code = (
        "import sys; from benchmark.store import ResultsStore, Cell\n"
        "s = ResultsStore(sys.argv[1]); w = sys.argv[2]\n"
        "for i in range(200):\n"
        "    c = Cell('t', 'd', 'm', 'e', 'x', f'{w}-{i}')\n"
        "    s.put_scores([(f'{w}-{i}', c, {'v': float(i)})], run_id=0)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(path), str(w)], env=env) for w in range(3)
    ]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    rows = ResultsStore(path).scores("t")
    assert len(rows) == 600 and torch.tensor([r[-1] for r in rows]).sum() == 3 * sum(range(200))


def test_gallery_writes_a_png_grid_per_model_and_an_html_index(tiny_suite, tmp_path):
    from PIL import Image

    result = _cli(
        "gallery",
        "--suite",
        str(tiny_suite),
        "--store",
        str(tmp_path / "g.sqlite"),
        "--out",
        str(tmp_path / "gallery"),
        "--images",
        "3",
        "--device",
        "cpu",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    folder = tmp_path / "gallery" / "tiny"
    png = folder / "synthetic__cnn_gap.png"
    width, height = Image.open(png).size
    assert width > height > 100, "one row per image, one column per explainer plus image and mask"
    index = (folder / "index.html").read_text()
    assert 'src="synthetic__cnn_gap.png"' in index


def test_gallery_display_clips_outliers_and_diverges_for_signed_maps():
    import numpy as np

    from benchmark.gallery import display_range

    positive = np.linspace(0, 1, 1600).reshape(40, 40)
    positive[0, 0] = 1000.0  # one outlier pixel would otherwise take the whole colour range
    shown, cmap, low, high = display_range(positive)
    assert cmap == "inferno" and low == 0 and high < 2 and shown.max() == high
    signed, cmap, low, high = display_range(positive - 0.5)
    assert cmap == "bwr" and low == -high


def test_score_values_is_empty_until_a_run_has_created_the_store_and_its_tables(tmp_path):
    store = tmp_path / "store.sqlite"
    assert score_values(store) == [] and not store.exists(), "reading must not create the file"
    sqlite3.connect(store).close()  # the file exists before the run creates its tables
    assert score_values(store) == []
