"""A board shows exactly the cells its suite's current configuration produces, and store faults
end in a message that says what to do."""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass

import pytest

import explainers
from benchmark import leaderboard
from benchmark.cli import main
from benchmark.config import parse_suite
from benchmark.runner import run_suite
from benchmark.store import ResultsStore, StoreError


def _suite(seed=0, explainer_names=("random", "center"), **extra):
    return parse_suite(
        "truth",
        {
            "batch_size": 4,
            "explainers": list(explainer_names),
            "metrics": ["pointing_game", "energy_pointing_game"],
            "grid": [{"dataset": "synthetic", "limit": 8, "models": [{"name": "cnn_gap"}]}],
            "explainer_params": {"random": {"seed": seed}},
            **extra,
        },
    )


def _run(store, suite):
    return run_suite(suite, store, device="cpu", progress=False, log=lambda _: None)


def test_toggled_parameter_gives_the_board_of_a_fresh_store_byte_for_byte(tmp_path, data_dir):
    toggled = ResultsStore(tmp_path / "toggled.sqlite")
    for seed in (0, 1, 0):
        summary = _run(toggled, _suite(seed))
    assert summary.explained == 0 and summary.evaluated == 0, "the last run computes nothing"
    fresh = ResultsStore(tmp_path / "fresh.sqlite")
    _run(fresh, _suite(0))
    for store in (toggled, fresh):  # runtimes aside: they are measured, never equal
        store.db.execute("UPDATE scores SET value = 0.001 WHERE metric = 'runtime'")
    one = leaderboard.render(toggled, "truth", store_label="store")
    other = leaderboard.render(fresh, "truth", store_label="store")
    assert one == other
    seed_one = ResultsStore(tmp_path / "seed1.sqlite")
    _run(seed_one, _suite(1))
    seed_one.db.execute("UPDATE scores SET value = 0.001 WHERE metric = 'runtime'")
    assert leaderboard.render(seed_one, "truth", store_label="store") != one


@dataclass
class _Flaky(explainers.Explainer):
    """Test plugin: fails on every image while ``broken_now``."""

    broken_now = True

    def explain(self, model, images, targets):
        if type(self).broken_now:
            raise RuntimeError("broken on purpose")
        return images.abs().sum(1)


def test_a_failure_fixed_since_leaves_the_board(tmp_path, data_dir):
    explainers.registry.register("flaky_test")(_Flaky)
    try:
        store = ResultsStore(tmp_path / "s.sqlite")
        _Flaky.broken_now = True
        _run(store, _suite(explainer_names=("flaky_test", "center")))
        assert "broken on purpose" in leaderboard.render(store, "truth")
        _Flaky.broken_now = False  # the same configuration, fixed (e.g. a repaired image)
        _run(store, _suite(explainer_names=("flaky_test", "center")))
        board = leaderboard.render(store, "truth")
    finally:
        explainers.registry.unregister("flaky_test")
    assert "broken on purpose" not in board and "## Failures" not in board
    assert "| flaky_test |" in board


def test_a_removed_explainer_leaves_the_board_and_gc_deletes_its_rows(tmp_path, data_dir):
    store = ResultsStore(tmp_path / "s.sqlite")
    _run(store, _suite(explainer_names=("random", "center")))
    _run(store, _suite(explainer_names=("center",)))
    assert "| random |" not in leaderboard.render(store, "truth")
    before = leaderboard.render(store, "truth")
    counts = store.gc()
    assert counts["scores"] > 0 and counts["saliency"] == 8, counts
    assert leaderboard.render(store, "truth") == before
    assert _run(store, _suite(explainer_names=("center",))).evaluated == 0, "kept what is shown"


def test_a_read_only_store_renders(tmp_path, data_dir):
    path = tmp_path / "ro" / "s.sqlite"
    store = ResultsStore(path)
    _run(store, _suite())
    expected = leaderboard.render(store, "truth", store_label="s")
    store.close()
    os.chmod(path, 0o444)
    os.chmod(path.parent, 0o555)
    try:
        readonly = ResultsStore(path, readonly=True)
        assert leaderboard.render(readonly, "truth", store_label="s") == expected
        boards = tmp_path / "boards"
        assert (
            main(
                [
                    "leaderboard",
                    "--suite",
                    "truth",
                    "--store",
                    str(path),
                    "--leaderboard-dir",
                    str(boards),
                ]
            )
            == 0
        )
        assert (boards / "truth.md").read_text().count("| center |") >= 1
    finally:
        os.chmod(path.parent, 0o755)
        os.chmod(path, 0o644)


def test_a_corrupt_store_says_which_file_and_what_to_do(tmp_path, capsys):
    path = tmp_path / "corrupt.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match=f"results store {path}.*corrupt.*move it aside"):
        ResultsStore(path)
    assert main(["leaderboard", "--store", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "Traceback" not in err
    assert main(["leaderboard", "--store", str(tmp_path / "none.sqlite")]) == 2
    assert "run `python -m benchmark run` first" in capsys.readouterr().err


def test_an_unfinished_run_is_marked_on_the_board(tmp_path, data_dir):
    store = ResultsStore(tmp_path / "s.sqlite")
    _run(store, _suite())
    store.start_run("truth", {"config": {}})  # a run killed before it finished
    board = leaderboard.render(store, "truth")
    assert "did not finish" in board and "Rerun the same command to resume" in board
    assert "| center |" in board


def test_a_store_written_before_claims_still_renders_everything(tmp_path, data_dir):
    store = ResultsStore(tmp_path / "s.sqlite")
    _run(store, _suite())
    expected_rows = store.scores("truth")
    store.close()
    with sqlite3.connect(tmp_path / "s.sqlite") as db:
        db.execute("DROP TABLE claims")
    old = ResultsStore(tmp_path / "s.sqlite", readonly=True)
    assert not old.has_claims and old.scores("truth") == expected_rows


def test_boards_and_checkpoints_are_written_atomically_with_ordinary_permissions(tmp_path):
    from benchmark.files import atomic_write

    old = os.umask(0o022)
    try:
        path = atomic_write(tmp_path / "board.md", lambda tmp: tmp.write_text("x"))
    finally:
        os.umask(old)
    assert path.read_text() == "x" and (path.stat().st_mode & 0o777) == 0o644

    def crash(tmp):
        tmp.write_text("half")
        raise KeyboardInterrupt  # a run killed while the board is being written

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, crash)
    assert path.read_text() == "x" and [p.name for p in tmp_path.iterdir()] == ["board.md"]


@pytest.mark.parametrize(
    "error, advice",
    [
        ("database or disk is full", "free space and rerun the same command"),
        ("attempt to write a readonly database", "it is read-only"),
        ("file is not a database", "move it aside"),
        ("unable to open database file", "check that its folder exists"),
    ],
)
def test_store_faults_name_the_file_and_what_to_do(tmp_path, error, advice):
    from benchmark.store import _advice

    message = _advice(tmp_path / "s.sqlite", sqlite3.OperationalError(error))
    assert str(tmp_path / "s.sqlite") in message and advice in message and error in message


def test_model_info_shows_a_transfer_models_scores_beside_the_seed_studys(tmp_path):
    from benchmark.leaderboard import _model_info

    store = ResultsStore(tmp_path / "s.sqlite")
    seed = {
        "resnet50": {"test_accuracy": 0.8304, "test_roc_auc": 0.9064},
        "vgg16": {"test_accuracy": 0.75, "test_roc_auc": 0.9334},
    }
    info = {"name": "lite_transfer", "dataset": "pneumonia", "spec": {"train": True}}
    store.put_model(
        "m1", info | {"test_accuracy": 0.7788, "test_roc_auc": 0.949, "seed_study_scores": seed}
    )
    line = _model_info(store, "any", "pneumonia", "lite_transfer")
    assert line == (
        "model lite_transfer: trained by the harness on pneumonia, test accuracy 77.88%, "
        "ROC AUC 0.949 (seed study: resnet50 83.04% / ROC AUC 0.906, vgg16 75.00% / ROC AUC 0.933)"
    )
