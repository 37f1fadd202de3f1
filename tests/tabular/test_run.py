"""The tabular runner: a tiny suite into a results store, rendered by the existing leaderboard."""

from __future__ import annotations

import pytest

from benchmark import leaderboard
from benchmark.store import ResultsStore
from benchmark.tabular.run import load_tabular_suite, run_tabular

SUITE = """
description = "tiny"
seed = 0
dataset = "fetal-health"
rows = 4
models = ["random_forest"]
explainers = ["random", "shap_tree_*", "lime"]
metrics = ["*"]
[explainer_params.lime]
num_samples = 100
[metric_params.agreement]
reference = "shap_tree_path"
"""


def test_the_built_in_suite_loads():
    suite = load_tabular_suite("seed-fetal-health")
    assert suite.models == ["random_forest", "gradient_boosting", "mlp"]
    assert suite.dataset == "fetal-health" and suite.rows >= 50


@pytest.mark.parametrize(
    "text, message",
    [
        ('dataset = "fetal-health"\nmodels = ["svm"]', "unknown model 'svm'"),
        ('dataset = "fetal-health"\nmodels = []\nexplainers = ["shap_kernal"]', "shap_kernel"),
        ('dataset = "fetal-health"\nmodels = []\nlimit = 3', "unknown key 'limit'"),
        ('dataset = "fetal-health"\nmodels = "mlp"', "models must be list"),
        ('dataset = "x"\nmodels = []\n[explainer_params.lime]\nsamples = 3', "no parameter"),
        ('dataset = "x"\nmodels = []\n[synthetic]\nfeature = 3', r"\[synthetic\] has no key"),
        ('dataset = "x"\nmodels = []\n[synthetic]\nclasses = 1', "integer >= 2"),
    ],
)
def test_bad_suites_are_errors_naming_the_file(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_tabular_suite(str(path))


def test_a_run_writes_per_row_scores_the_board_renders(tmp_path, data_dir):
    path = tmp_path / "tiny.toml"
    path.write_text(SUITE)
    store = ResultsStore(tmp_path / "store.sqlite")
    summary = run_tabular(str(path), store, log=lambda _: None)
    # 4 explainers x 4 rows x (4 metrics + runtime)
    assert summary.scores == 4 * 4 * 5
    assert summary.skipped == [
        "fetal-health/random_forest: ground_truth_recovery: the model's true attributions are "
        "unknown (only synthetic models have them)"
    ]
    rows = store.scores("tiny")
    explainers = {r[2] for r in rows}
    assert explainers == {"random", "shap_tree_interventional", "shap_tree_path", "lime"}
    assert {r[3] for r in rows} == {
        "agreement",
        "feature_deletion",
        "feature_insertion",
        "feature_faithfulness_correlation",
        "runtime",
    }
    assert len({r[5] for r in rows}) == 4  # per-row cells
    (model,) = store.models("tiny")
    assert model["name"] == "random_forest" and 0.9 < model["test_accuracy"] < 1
    assert set(model["test_f1"]) == {"normal", "suspect", "pathological"}
    board = leaderboard.render(store, "tiny")
    assert "### Table tiny/fetal-health/random_forest" in board
    assert "test accuracy 95.31%" in board and "| shap_tree_path |" in board
    # A rerun computes nothing: every cell key is in the store, claimed by the new run.
    again = run_tabular(str(path), store, log=lambda _: None)
    assert again.scores == 0 and again.cached == summary.scores
    assert store.scores("tiny") == rows and leaderboard.render(store, "tiny") == board
    # A changed parameter recomputes that explainer's cells only.
    path.write_text(SUITE.replace("num_samples = 100", "num_samples = 120"))
    third = run_tabular(str(path), store, log=lambda _: None)
    assert third.scores == 4 * 5 and third.cached == 3 * 4 * 5


def test_plot_suite_draws_each_applicable_pair_for_one_class(tmp_path, data_dir):
    from benchmark.tabular.run import plot_suite

    path = tmp_path / "tiny.toml"
    path.write_text(
        SUITE.replace('["random", "shap_tree_*", "lime"]', '["random", "shap_tree_path"]')
    )
    plots = plot_suite(str(path), tmp_path / "plots", rows=8)
    assert [(p.model, p.explainer, p.class_name) for p in plots] == [
        ("random_forest", e, "pathological") for e in ("random", "shap_tree_path")
    ]
    paths = [path for p in plots for path in p.paths]
    assert sorted(p.name for p in paths) == [
        f"random_forest--{e}--pathological--{k}.png"
        for e in ("random", "shap_tree_path")
        for k in ("beeswarm", "summary")
    ]
    with pytest.raises(ValueError, match="classes: normal, suspect, pathological"):
        plot_suite(str(path), tmp_path / "plots", class_name="sick")


def test_the_synthetic_table_scores_recovery_of_its_closed_form_attributions(tmp_path, data_dir):
    """[synthetic]: the linear model on its own table, where exact Shapley methods recover the
    true attributions (relative error ~0) and the random baseline does not."""
    path = tmp_path / "gt.toml"
    path.write_text(
        'dataset = "fetal-health"\nrows = 5\nmodels = []\nexplainers = ["random", "shap_kernel"]\n'
        'metrics = ["ground_truth_recovery"]\n[synthetic]\nfeatures = 4\nclasses = 2\n'
    )
    store = ResultsStore(tmp_path / "store.sqlite")
    summary = run_tabular(str(path), store, log=lambda _: None)
    assert summary.skipped == []
    error = {
        explainer: value
        for dataset, model, explainer, metric, score, _, value in store.scores("gt")
        if score == "relative_error"
    }
    assert {(r[0], r[1]) for r in store.scores("gt")} == {("synthetic-linear", "linear")}
    assert error["shap_kernel"] < 1e-8 < 0.5 < error["random"]
    (model,) = store.models("gt")
    assert model["spec"] == {"name": "linear", "weights": "the seeded generator"}
