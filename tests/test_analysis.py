"""The disagreement tables of the board (benchmark/analysis.py) on hand-built stores: known
rankings give known ranks and Kendall's tau, a model agrees with itself, sanity verdicts come
from the metric's own rule, empty tables are left out, and the bytes are deterministic."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest

import metrics
from benchmark import analysis, leaderboard
from benchmark.evaluate import runtime_key
from benchmark.store import RUNTIME, Cell, ResultsStore, key_of

IMAGES = [f"img{i}" for i in range(8)]
# per explainer, a level well apart from the others' (so every bootstrap resample keeps the order)
LEVEL = {"alpha": 0.0, "beta": 1.0, "gamma": 2.0}


def _scores(explainers=LEVEL, extra=()):
    """deletion (lower is better) and insertion rank alpha < beta < gamma the same way;
    pointing_game ranks them in reverse."""
    rng = np.random.default_rng(0)
    rows = {}
    for e, level in explainers.items():
        for i in IMAGES:
            noise = float(rng.uniform(0, 0.1))
            rows["synthetic", "cnn_gap", e, "deletion", i] = {"auc": level + noise}
            rows["synthetic", "cnn_gap", e, "insertion", i] = {"auc": -level + noise}
            rows["synthetic", "cnn_gap", e, "pointing_game", i] = {"hit": level + noise}
            for metric, values in extra:
                rows["synthetic", "cnn_gap", e, metric, i] = values(e)
    return rows


def _store(path, scores, maps=None):
    """A store whose one finished run of suite "s" claims ``scores`` and ``maps`` ((dataset,
    model, explainer, image) -> map), each map with its runtime cell as the runner writes it."""
    store = ResultsStore(path)
    run = store.start_run("s", {"config": {"source": "s"}})
    rows = [
        (key_of(*place), Cell("s", place[0], place[1], place[2], place[3], place[4]), values)
        for place, values in scores.items()
    ]
    for (dataset, model, explainer, image), saliency in (maps or {}).items():
        key = key_of("saliency", dataset, model, explainer, image)
        store.put_maps([(key, saliency.astype(np.float32), 0.01)], run)
        rows.append(
            (
                runtime_key(key),
                Cell("s", dataset, model, explainer, RUNTIME, image),
                {"seconds": 0.01},
            )
        )
    store.put_scores(rows, run)
    store.finish_run(run)
    return store


def _tables(store):
    data = leaderboard.collect(store, "s")
    explainers = sorted({e for _, _, e, *_ in store.scores("s")})
    return {
        t.anchor.rsplit("-", 1)[-1]: t
        for t in analysis.model_tables(
            "s", "synthetic", "cnn_gap", data["synthetic", "cnn_gap"], explainers
        )
    }


def test_known_rankings_give_known_ranks_intervals_and_tau(tmp_path):
    store = _store(tmp_path / "s.sqlite", _scores())
    ranked = {
        r.metric: r
        for r in analysis.rankings(leaderboard.collect(store, "s")["synthetic", "cnn_gap"])
    }
    assert ranked["deletion"].ranks == {"alpha": 1, "beta": 2, "gamma": 3}
    assert ranked["insertion"].ranks == {"alpha": 1, "beta": 2, "gamma": 3}
    assert ranked["pointing_game"].ranks == {"alpha": 3, "beta": 2, "gamma": 1}
    assert ranked["deletion"].intervals["beta"] == (2.0, 2.0)
    assert analysis.kendall_tau(ranked["deletion"], ranked["insertion"]) == pytest.approx(1.0)
    assert analysis.kendall_tau(ranked["deletion"], ranked["pointing_game"]) == pytest.approx(-1.0)
    tables = _tables(store)
    assert set(tables) == {"ranks", "families", "agreement"}  # no sanity metric: no sanity table
    assert tables["ranks"].rows[0] == ["alpha", "1 [1, 1]", "1 [1, 1]", "3 [3, 3]"]
    assert tables["families"].header == ["explainer", "faithfulness (2) ↓", "localisation (1) ↓"]
    assert tables["families"].rows[0] == ["alpha", "1.00", "3.00"]
    agreement = tables["agreement"].rows
    assert agreement[0] == ["deletion auc ↓", "1.00", "1.00", "-1.00"]


def test_bootstrap_interval_widens_where_explainers_overlap(tmp_path):
    close = {"alpha": 0.0, "beta": 0.02, "gamma": 2.0}  # alpha and beta within the noise
    store = _store(tmp_path / "s.sqlite", _scores(close))
    ranked = analysis.rankings(leaderboard.collect(store, "s")["synthetic", "cnn_gap"])[0]
    low, high = ranked.intervals["alpha"]
    assert low == 1 and high == 2 and ranked.intervals["gamma"] == (3.0, 3.0)


def test_one_explainer_leaves_out_every_table(tmp_path):
    store = _store(tmp_path / "s.sqlite", _scores({"alpha": 0.0}))
    assert _tables(store) == {}
    board = leaderboard.render(store, "s")
    assert "-ranks" not in board and "Metric agreement" not in board


@dataclass
class _Sanity(metrics.Metric):
    """Test plugin: passes where the mean similarity is below 0.5."""

    version: ClassVar[str] = "1"
    higher_is_better: ClassVar[dict[str, bool]] = {"similarity": False}

    @classmethod
    def passes(cls, mean: float) -> bool:
        return mean < 0.5


def test_sanity_table_applies_the_metric_rule_to_the_mean(tmp_path):
    metrics.registry.register("sanity_test", tags=("randomisation", "sanity"))(_Sanity)
    try:
        similarity = {"alpha": 0.1, "beta": 0.9, "gamma": 0.3}
        scores = _scores(extra=[("sanity_test", lambda e: {"similarity": similarity[e]})])
        store = _store(tmp_path / "s.sqlite", scores)
        table = _tables(store)["sanity"]
        board = leaderboard.render(store, "s")
    finally:
        metrics.registry.unregister("sanity_test")
    assert table.header == ["explainer", "sanity_test similarity ↓"]
    assert table.rows == [
        ["alpha", "pass (0.10)"],
        ["beta", "fail (0.90)"],
        ["gamma", "pass (0.30)"],
    ]
    assert '<a id="s-synthetic-cnn_gap-sanity"></a>' in board


def _maps(same: bool):
    rng = np.random.default_rng(1)
    maps = {}
    for e in ("alpha", "beta"):
        for i in IMAGES[:5]:
            first = rng.random((6, 6))
            second = first if same else -first
            maps["fashion-mnist", "cnn_gap", e, i] = first
            maps["fashion-mnist", "cnn_svm", e, i] = second
    return maps


def test_a_model_agrees_with_itself_and_disagrees_with_its_negation(tmp_path):
    store = _store(tmp_path / "same.sqlite", {}, _maps(same=True))
    (table,) = analysis.map_agreement_tables(store, "s", "fashion-mnist", ["cnn_svm", "cnn_gap"])
    assert table.anchor == "s-fashion-mnist-maps-cnn_gap-vs-cnn_svm"
    assert table.rows[0] == ["alpha", "1.00 [1.00, 1.00]", "1.00 [1.00, 1.00]", "5"]
    store = _store(tmp_path / "negated.sqlite", {}, _maps(same=False))
    (table,) = analysis.map_agreement_tables(store, "s", "fashion-mnist", ["cnn_gap", "cnn_svm"])
    assert table.rows[0][1] == "-1.00 [-1.00, -1.00]"
    assert table.rows[0][2] == "0.00 [0.00, 0.00]"  # 36 pixels: top 3 against bottom 3
    assert analysis.map_agreement_tables(store, "s", "fashion-mnist", ["cnn_gap"]) == []


def test_map_agreement_by_hand():
    a = np.arange(100.0).reshape(10, 10)
    b = a.copy()
    b.flat[[99, 0]] = b.flat[[0, 99]]  # the best pixel swapped with the worst
    rho, overlap = analysis.map_agreement(a, b, "x")
    n = 100
    d2 = 2 * 99**2  # Spearman's 1 - 6 sum d^2 / (n (n^2 - 1)) without ties
    assert rho == pytest.approx(1 - 6 * d2 / (n * (n**2 - 1)))
    assert overlap == pytest.approx(9 / 10)
    constant = np.ones((10, 10))
    rho, overlap = analysis.map_agreement(constant, constant, "x")
    assert np.isnan(rho) and overlap == 1.0  # ties: the same seeded order for both maps
    small = analysis.map_agreement(a, np.kron(a, np.ones((2, 2))), "x")  # resized to 10x10
    assert np.isfinite(small[0])


def test_board_bytes_are_deterministic_and_cite_every_table(tmp_path):
    scores = _scores()
    scores.update({(d, m, e, "deletion", i): {"auc": 0.5} for d, m, e, i in _maps(True)})
    boards = [
        leaderboard.render(_store(tmp_path / f"{n}.sqlite", scores, _maps(True)), "s", "store")
        for n in ("one", "two")
    ]
    assert boards[0] == boards[1]
    assert boards[0] == leaderboard.render(ResultsStore(tmp_path / "one.sqlite"), "s", "store")
    for anchor in ("ranks", "families", "agreement"):
        assert f'<a id="s-synthetic-cnn_gap-{anchor}"></a>' in boards[0]
    assert '<a id="s-fashion-mnist-maps-cnn_gap-vs-cnn_svm"></a>' in boards[0]
