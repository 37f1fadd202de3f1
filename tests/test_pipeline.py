"""The stages of a run on small in-process suites: what runs in which order, isolation of the
plugins, budgets, suite inheritance, and the generated definition pages."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

import explainers
from benchmark import leaderboard
from benchmark.cli import main
from benchmark.config import load_suite, parse_suite
from benchmark.runner import run_suite
from benchmark.store import ResultsStore

REPO = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def registered(name: str, cls):
    explainers.registry.register(name)(cls)
    try:
        yield
    finally:
        explainers.registry.unregister(name)


def _run(tmp_path, explainer_names, metrics=("pointing_game",), **suite_keys):
    suite = parse_suite(
        "pipe",
        {
            "batch_size": 4,
            "explainers": list(explainer_names),
            "metrics": list(metrics),
            "grid": [{"dataset": "synthetic", "limit": 4, "models": [{"name": "cnn_gap"}]}],
            **suite_keys,
        },
    )
    store = ResultsStore(tmp_path / f"{'-'.join(explainer_names)}.sqlite")
    summary = run_suite(suite, store, device="cpu", progress=False, log=lambda _: None)
    return store, summary


@dataclass
class _NeverApplies(explainers.Explainer):
    """Test plugin: refuses every model; must never be prepared or called."""

    def supports(self, model):
        return "needs something this model lacks"

    def prepare(self, model, background):
        raise AssertionError("prepare ran before the supports() check")

    def explain(self, model, images, targets):
        raise AssertionError("explain ran on a model the method said it does not support")


def test_supports_is_asked_before_prepare_and_any_call(tmp_path, data_dir):
    with registered("never_applies", _NeverApplies):
        store, summary = _run(tmp_path, ["never_applies", "center"])
    assert not summary.failures
    assert any("never_applies does not apply: needs something" in s for s in summary.skipped)
    board = leaderboard.render(store, "pipe")
    assert "never_applies does not apply" in board


@dataclass
class _ReturnsAList(explainers.Explainer):
    """Test plugin: returns the wrong type."""

    def explain(self, model, images, targets):
        return [0.0] * len(images)


@dataclass
class _WritesIntoItsInput(explainers.Explainer):
    """Test plugin: zeroes the images it is given, then returns a constant map."""

    def explain(self, model, images, targets):
        images.zero_()
        targets.zero_()
        return torch.ones(images.shape[0], *images.shape[-2:])


def test_a_wrong_return_type_is_a_failure_per_image_and_the_run_goes_on(tmp_path, data_dir):
    with registered("returns_a_list", _ReturnsAList):
        store, summary = _run(tmp_path, ["returns_a_list", "center"])
    assert len(summary.failures) == 4 and all("not a torch.Tensor" in f for f in summary.failures)
    explained = {e for _, _, e, m, *_ in store.scores("pipe") if m == "runtime"}
    assert explained == {"center"}


def test_an_explainer_writing_into_its_input_does_not_change_the_others_maps(tmp_path, data_dir):
    clean, _ = _run(tmp_path, ["gradient_pixel"], metrics=("occlusion",))
    with registered("writes_into_input", _WritesIntoItsInput):
        mixed, summary = _run(tmp_path, ["writes_into_input", "gradient_pixel"], ["occlusion"])
    assert not summary.failures

    def scores(store):
        return [r for r in store.scores("pipe") if r[2] == "gradient_pixel" and r[3] != "runtime"]

    assert scores(mixed) == scores(clean)


def test_metrics_that_cannot_run_and_plugins_over_budget_leave_a_line(tmp_path, data_dir):
    store, summary = _run(
        tmp_path, ["grad_cam", "center"], metrics=("road_accuracy", "pointing_game"), max_cost=1
    )
    lines = "\n".join(summary.skipped)
    assert "road_accuracy not run: needs ground-truth labels" in lines  # random-init cnn_gap
    assert "grad_cam not run: costs 2 evaluations per image, over max_cost = 1" in lines
    assert {e for _, _, e, *_ in store.scores("pipe")} == {"center"}
    assert "road_accuracy not run" in leaderboard.render(store, "pipe")


def test_an_explainer_aware_metric_over_budget_with_one_explainer_runs_with_the_others(
    tmp_path, data_dir
):
    # max_sensitivity re-explains `samples` times: 4 x 0 evaluations with center, 4 x 2 with
    # gradient_pixel; its own cost() (one evaluation per map) is 4, within the budget
    store, summary = _run(
        tmp_path,
        ["center", "gradient_pixel"],
        metrics=("max_sensitivity",),
        max_cost=5,
        metric_params={"max_sensitivity": {"samples": 4}},
    )
    lines = "\n".join(summary.skipped)
    assert "max_sensitivity not run on gradient_pixel: it re-explains at 8 evaluations" in lines
    assert "max_sensitivity not run on center" not in lines
    scored = {(e, m) for _, _, e, m, *_ in store.scores("pipe") if m != "runtime"}
    assert scored == {("center", "max_sensitivity")}


def test_full_extends_default_and_takes_every_plugin(tmp_path):
    default, full = load_suite("default"), load_suite("full")
    assert full.grid == default.grid and full.explainer_params == default.explainer_params
    assert full.explainer_names() == explainers.list_explainers()
    assert default.explainer_names() == sorted(default.explainers)  # curated: named one by one
    bad = tmp_path / "bad.toml"
    bad.write_text('extends = "nope"\n')
    with pytest.raises(ValueError, match="extends = 'nope': no such built-in suite"):
        load_suite(bad)


@pytest.mark.parametrize("kind, page", [("metrics", "METRICS.md"), ("explainers", "EXPLAINERS.md")])
def test_definition_pages_are_generated_from_the_docstrings(kind, page, capsys):
    assert main(["ls", kind, "--markdown"]) == 0
    assert (REPO / "docs" / page).read_text() == capsys.readouterr().out, (
        f"docs/{page} is stale: python -m benchmark ls {kind} --markdown > docs/{page}"
    )


@dataclass
class _Hangs(explainers.Explainer):
    """Test plugin: never returns on its own."""

    def explain(self, model, images, targets):
        import time

        time.sleep(3600)


def test_a_hanging_explainer_becomes_a_failure_under_the_run_timeout(tmp_path, data_dir):
    suite = parse_suite(
        "hang",
        {
            "batch_size": 2,
            "explainers": ["hangs_test", "center"],
            "metrics": ["pointing_game"],
            "grid": [{"dataset": "synthetic", "limit": 2, "models": [{"name": "cnn_gap"}]}],
        },
    )
    store = ResultsStore(tmp_path / "s.sqlite")
    with registered("hangs_test", _Hangs):
        summary = run_suite(
            suite, store, device="cpu", progress=False, log=lambda _: None, timeout=0.2
        )
    assert len(summary.failures) == 2 and all("--timeout of 0.2 s" in f for f in summary.failures)
    assert {e for _, _, e, *_ in store.scores("hang")} == {"center"}


def test_user_text_is_escaped_on_the_board_and_the_gallery_stays_in_its_folder(tmp_path):
    from benchmark.gallery import _file_name
    from benchmark.leaderboard import _md, anchor_of

    assert _md("<img src=x onerror=alert(1)>|a") == "&lt;img src=x onerror=alert(1)&gt;\\|a"
    assert _md("two\nlines") == "two lines"
    assert anchor_of("suite", "/abs/path/to/my photos", "m") == "suite-abs-path-to-my-photos-m"
    assert "/" not in _file_name("/abs/../x__m.png") and not _file_name("..__m").startswith(".")


def test_maps_of_explainers_that_sample_the_dataset_are_keyed_by_that_sample(tmp_path, data_dir):
    """shap_gradient's background is a seeded sample of the loaded dataset: a run on fewer images
    draws another one, so its maps must not be reused across limits; other maps are."""

    def keys(limit):
        suite = parse_suite(
            "keys",
            {
                "batch_size": 4,
                "explainers": ["shap_gradient", "random"],
                "metrics": [],
                "explainer_params": {"shap_gradient": {"nsamples": 2, "background_size": 2}},
                "grid": [{"dataset": "synthetic", "limit": limit, "models": [{"name": "cnn_gap"}]}],
            },
        )
        store = ResultsStore(tmp_path / f"{limit}.sqlite")
        run_suite(suite, store, device="cpu", progress=False, log=lambda _: None)
        rows = store.db.execute("SELECT key, map FROM saliency").fetchall()
        return {k: bytes(m) for k, m in rows}

    small, large = keys(4), keys(8)
    shared = set(small) & set(large)
    assert len(shared) == 4, "random's maps of the first four images are shared"
    assert all(small[k] == large[k] for k in shared)
