"""The Ray executor on a local Ray (two CPUs): its store equals the local executor's cell for cell
(also with ROAD, whose imputations run as Ray CPU tasks), a rerun sends out no work, a worker
process dying mid-run loses and duplicates nothing, a driver killed with kill -9 resumes from the
store, an explainer that fails on an image is the same
recorded failure as locally, and ``--workers`` sets the actors."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

ray = pytest.importorskip(
    "ray",
    reason="ray is not installed: pip install 'explainer-benchmark[ray]' to test --executor ray",
)

from benchmark import leaderboard  # noqa: E402
from benchmark.cli import main  # noqa: E402
from benchmark.config import parse_suite  # noqa: E402
from benchmark.executors.ray import RayExecutor  # noqa: E402
from benchmark.runner import run_suite  # noqa: E402
from benchmark.store import ResultsStore  # noqa: E402
from tests.plugins import FAILING, failing_plugin  # noqa: E402

REPO = Path(__file__).resolve().parent.parent

SMALL = {
    "seed": 0,
    "batch_size": 4,
    "explainers": ["grad_cam", "gradient_pixel", "random", "center"],
    "metrics": ["pointing_game", "energy_pointing_game", "sparseness", "deletion"],
    "grid": [{"dataset": "synthetic", "limit": 8, "models": [{"name": "cnn_gap"}]}],
}
SMALL_TOML = """
seed = 0
batch_size = 4
explainers = ["grad_cam", "gradient_pixel", "random", "center"]
metrics = ["pointing_game", "energy_pointing_game", "sparseness", "deletion"]
[[grid]]
dataset = "synthetic"
limit = 8
models = [{ name = "cnn_gap" }]
"""


def _suite(name="small"):
    return parse_suite(name, SMALL)


def _quiet(_line: str) -> None:
    pass


@pytest.fixture(scope="module")
def local_ray():
    if ray.is_initialized():
        ray.shutdown()
    env = {
        "PYTHONPATH": os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])
    }
    runtime_env = {"env_vars": env, "worker_process_setup_hook": "tests.plugins.register_failing"}
    ray.init(num_cpus=2, include_dashboard=False, runtime_env=runtime_env)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def local_store(tmp_path_factory, data_dir) -> Path:
    """The small suite run by the local executor: the reference."""
    path = tmp_path_factory.mktemp("local") / "local.sqlite"
    run_suite(_suite(), ResultsStore(path), device="cpu", progress=False, log=_quiet)
    return path


def _cells(path: Path) -> dict[str, list[tuple]]:
    """Everything a store holds per cell, runtimes' values and run ids aside."""
    with sqlite3.connect(path) as db:
        latest = db.execute("SELECT max(run_id) FROM claims").fetchone()[0]
        return {
            "scores": db.execute(
                "SELECT cell, score, value, suite, dataset, model, explainer, metric, image "
                "FROM scores WHERE metric != 'runtime' ORDER BY cell, score"
            ).fetchall(),
            "runtimes": db.execute(
                "SELECT cell, score, suite, dataset, model, explainer, image FROM scores "
                "WHERE metric = 'runtime' ORDER BY cell"
            ).fetchall(),
            "maps": db.execute(
                "SELECT key, map, height, width FROM saliency ORDER BY key"
            ).fetchall(),
            "failures": db.execute(
                "SELECT cell, stage, message, explainer, metric, image FROM failures ORDER BY cell"
            ).fetchall(),
            "claims": db.execute(
                "SELECT cell FROM claims WHERE run_id = ? ORDER BY cell", (latest,)
            ).fetchall(),
            "models": db.execute("SELECT * FROM models ORDER BY model_key").fetchall(),
        }


def _same_cells(reference: Path, ours: Path) -> tuple[dict, dict]:
    """Both stores' cells, asserted equal table by table."""
    expected, got = _cells(reference), _cells(ours)
    for what in expected:
        assert got[what] == expected[what], what
    return expected, got


def _board(path: Path, suite: str = "small") -> str:
    """The board of a copy of the store, runtimes aside (they are measured, never equal)."""
    copy = path.with_name(f"{path.stem}-board.sqlite")
    with sqlite3.connect(path) as source, sqlite3.connect(copy) as target:
        source.backup(target)
    store = ResultsStore(copy)
    store.db.execute("UPDATE scores SET value = 0.001 WHERE metric = 'runtime'")
    return leaderboard.render(store, suite, store_label="store")


def test_ray_store_equals_the_local_one_cell_for_cell_and_a_rerun_sends_nothing(
    local_ray, local_store, tmp_path
):
    path = tmp_path / "ray.sqlite"
    executor = RayExecutor(device="cpu", log=_quiet)
    summary = run_suite(
        _suite(), ResultsStore(path), device="cpu", progress=False, log=_quiet, executor=executor
    )
    assert executor.workers == 2 and executor.sent == executor.units == 2 * 4, "2 batches x 4"
    assert summary.explained == 2 * 4 * 4 and summary.evaluated == 2 * 4 * 4 * 4
    assert not summary.failures and not summary.skipped
    reference, ours = _same_cells(local_store, path)
    assert len(ours["scores"]) > 0 and len(ours["maps"]) == 32
    assert _board(path) == _board(local_store)

    rerun = RayExecutor(device="cpu", log=_quiet)
    again = run_suite(
        _suite(), ResultsStore(path), device="cpu", progress=False, log=_quiet, executor=rerun
    )
    assert rerun.sent == 0 and rerun.units == 8, "everything was in the store: nothing sent out"
    assert again.explained == again.evaluated == 0 and again.cached == summary.evaluated
    assert _cells(path)["claims"] == reference["claims"], "the rerun claims the same cells"


def _local_then_ray(name: str, params: dict, folder: Path):
    """The suite run by the local executor, then by the Ray one, into fresh stores: both stores'
    paths, both summaries and the Ray executor."""
    local, distributed = folder / "local.sqlite", folder / "ray.sqlite"
    expected = run_suite(
        parse_suite(name, params), ResultsStore(local), device="cpu", progress=False, log=_quiet
    )
    executor = RayExecutor(device="cpu", log=_quiet)
    summary = run_suite(
        parse_suite(name, params),
        ResultsStore(distributed),
        device="cpu",
        progress=False,
        log=_quiet,
        executor=executor,
    )
    return local, distributed, expected, summary, executor


ROAD = {
    **SMALL,
    "explainers": ["grad_cam", "random"],
    "metrics": ["road"],
    "metric_params": {"road": {"fractions": [0.3, 0.7]}},
}


def test_road_imputes_on_ray_cpu_tasks_with_the_local_numbers(local_ray, tmp_path, data_dir):
    local, distributed, _, summary, executor = _local_then_ray("road", ROAD, tmp_path)
    assert not summary.failures and summary.evaluated == 8 * 2
    # 2 batches x 2 explainers; each unit's 4 images x 2 orders x 2 fractions in 2 (CPUs) tasks
    assert executor.sent == 4 and executor.imputation_tasks == 4 * 2
    _, ours = _same_cells(local, distributed)
    assert {score for _, score, *_ in ours["scores"]} == {"morf", "lerf", "combined"}


def test_a_worker_dying_mid_run_is_retried_and_loses_or_duplicates_nothing(
    local_ray, local_store, tmp_path
):
    died = tmp_path / "died"
    path = tmp_path / "ray.sqlite"
    executor = RayExecutor(device="cpu", log=_quiet, die_once=str(died))
    summary = run_suite(
        _suite(), ResultsStore(path), device="cpu", progress=False, log=_quiet, executor=executor
    )
    assert died.exists(), "a worker process exited (os._exit) on its first task"
    assert not summary.failures and summary.explained == 32
    _same_cells(local_store, path)


def test_the_driver_killed_mid_run_resumes_from_the_store_as_a_local_run_does(tmp_path, data_dir):
    """``run --executor ray`` in its own process (its own local Ray), killed with kill -9 once
    the store holds some scores, then run again: the store equals the local executor's."""
    reference = tmp_path / "local.sqlite"
    grid = {"dataset": "synthetic", "limit": 64, "models": [{"name": "cnn_gap"}]}
    run_suite(
        parse_suite("killed", {**SMALL, "grid": [grid]}),
        ResultsStore(reference),
        device="cpu",
        progress=False,
        log=_quiet,
    )
    suite, store = tmp_path / "killed.toml", tmp_path / "ray.sqlite"
    suite.write_text(SMALL_TOML.replace("limit = 8", "limit = 64"))
    args = [sys.executable, "-m", "benchmark", "run", "--suite", str(suite), "--store", str(store)]
    args += ["--device", "cpu", "--quiet", "--executor", "ray", "--leaderboard-dir", str(tmp_path)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    total = len(_cells(reference)["scores"])

    def scored() -> int:
        try:
            return len(_cells(store)["scores"])
        except sqlite3.Error:  # not created yet, or no claims table yet
            return 0

    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while proc.poll() is None and scored() < total // 8 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None, "the run finished before it could be killed: give it more work"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 0 < scored() < total

    resumed = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    _, ours = _same_cells(reference, store)
    assert len(set(ours["scores"])) == len(ours["scores"]), "each cell exactly once"


def test_an_explainer_failing_on_an_image_is_the_local_failure_and_the_run_goes_on(
    local_ray, tmp_path, data_dir
):
    with failing_plugin() as params:
        failing = {
            **SMALL,
            "explainers": [FAILING, "center"],
            "explainer_params": {FAILING: params},
        }
        local, distributed, expected, summary, _ = _local_then_ray("failing", failing, tmp_path)
    assert len(summary.failures) == len(expected.failures) == 2, "the crash and the NaN map"
    _, ours = _same_cells(local, distributed)
    assert any("boom on purpose" in message for _, _, message, *_ in ours["failures"])
    assert _board(distributed, "failing") == _board(local, "failing")


def test_cli_runs_a_suite_on_ray_and_writes_the_board(local_ray, local_store, tmp_path, capsys):
    suite = tmp_path / "small.toml"
    suite.write_text(SMALL_TOML)
    store = tmp_path / "cli.sqlite"
    args = ["run", "--suite", str(suite), "--store", str(store), "--device", "cpu", "--quiet"]
    assert main([*args, "--leaderboard-dir", str(tmp_path), "--executor", "ray"]) == 0
    assert "32 maps and 128 scores computed" in capsys.readouterr().out
    assert _cells(store)["scores"] == _cells(local_store)["scores"]
    assert (tmp_path / "small.md").is_file()
    assert main([*args, "--address", "auto"]) == 2, "--address without --executor ray"
    assert "give it with --executor ray" in capsys.readouterr().err
    assert main([*args, "--workers", "2"]) == 2, "--workers without --executor ray"
    assert "--workers N sets the Ray actors" in capsys.readouterr().err
    assert main([*args, "--executor", "ray", "--workers", "0"]) == 2
    assert "--workers must be at least 1" in capsys.readouterr().err


def test_workers_sets_the_actors_and_splits_the_cpus(local_ray):
    one = RayExecutor(device="cpu", workers=1, log=_quiet)
    assert (one.workers, one.threads) == (1, 2), "one actor gets both CPUs as torch threads"
    default = RayExecutor(device="cpu", log=_quiet)
    assert (default.workers, default.threads) == (2, 1)
    assert default.describe()["threads_per_worker"] == 1
    with pytest.raises(ValueError, match="at least 1"):
        RayExecutor(device="cpu", workers=0, log=_quiet)


def test_the_local_executor_never_imports_ray():
    code = (
        "import sys, benchmark.cli, benchmark.runner, benchmark.executors\n"
        "assert 'ray' not in sys.modules, 'ray imported without --executor ray'\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
