"""Tables that show where metrics disagree, rendered from the results store beside each board.

LATEC (Klein et al., "Navigating the Maze of Explainable AI: A Systematic Approach to Evaluating
Methods and Metrics", NeurIPS 2024 Datasets and Benchmarks) finds that metrics rank explanation
methods differently; these tables show it for each dataset x model of a suite:

* **ranks**: each metric's ranking of the explainers by its headline score(s) (rank 1 = best in
  the score's direction, ties share their mean rank), on the images every ranked explainer was
  scored on, with a 95% percentile bootstrap interval on the rank (images resampled with
  replacement, ``BOOTSTRAP_RESAMPLES`` resamples, fixed seed: the same store gives the same bytes);
* **families**: the mean of those ranks over the headline scores of each metric family (a
  metric's first tag: faithfulness, localisation, complexity, randomisation, ...);
* **agreement**: Kendall's tau-b (``scipy.stats.kendalltau``) between every two rankings, over
  the explainers both ranked;
* **sanity**: per explainer, whether it passes each sanity metric (tagged ``sanity``): the metric's
  ``passes(mean)`` applied to the image mean of its first headline score;
* **map agreement** (the seed Fashion-MNIST question: do ``cnn_gap`` and ``cnn_svm`` look at the
  same places?): for two models of one dataset, per explainer and image, the Spearman rank
  correlation of the two models' maps (the second resized bilinearly to the first's size where
  they differ) and the overlap of their top ``TOP_FRACTION`` (10%) pixels, ``|A ∩ B| / k`` with
  ``k = floor(0.1 * H*W)`` and ties in a random order seeded by the image id; mean, 95% bootstrap
  CI and N over the images both models have a map for (each of its model's explained class).

Every table has a citable anchor and a one-line caption, and is left out when it has nothing to
show. :func:`model_tables` and :func:`map_agreement_tables` return :class:`AnalysisTable` records
(header and rows as text), so the markdown board and the static site render the same cells.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from dataclasses import dataclass

import numpy as np
import torch

from benchmark.leaderboard import (
    BOOTSTRAP_RESAMPLES,
    _md,
    _table,
    anchor_of,
    arrow,
    bootstrap_ci,
    direction,
    fmt,
    headline_scores,
    metric_class,
)
from benchmark.maps import resize_maps
from benchmark.registry import natural_key
from benchmark.store import RUNTIME, ResultsStore
from metrics._ranking import top_count

RANK_SEED = 0
TOP_FRACTION = 0.1  # pinned: the top 10% of pixels of each map


@dataclass(frozen=True)
class AnalysisTable:
    """One rendered table: where it is cited, its title, what it shows, and its text cells."""

    anchor: str
    title: str
    caption: str
    header: list[str]
    rows: list[list[str]]

    def markdown(self) -> list[str]:
        return [
            f'<a id="{self.anchor}"></a>',
            "",
            f"**{self.title}**",
            "",
            self.caption,
            "",
            *_table(self.header, self.rows),
            "",
        ]


@dataclass(frozen=True)
class Ranking:
    """One metric score's ranking of the explainers it scored on the common images."""

    metric: str
    score: str
    higher: bool
    ranks: dict[str, float]  # explainer -> rank (1 = best; ties share the mean rank)
    intervals: dict[str, tuple[float, float]]  # explainer -> 95% bootstrap interval of the rank

    @property
    def label(self) -> str:
        return f"{self.metric} {self.score}{arrow(self.higher)}"


def rank_of(means: np.ndarray, higher: bool) -> np.ndarray:
    """Ranks along the first axis, 1 = best in the score's direction, ties averaged."""
    from scipy.stats import rankdata

    return rankdata(-means if higher else means, axis=0)


def rankings(metrics_data) -> list[Ranking]:
    """Every headline score with a direction, ranked over explainers (two or more) on the images
    every one of them was scored on; metrics in name order."""
    out = []
    for metric in sorted(m for m in metrics_data if m != RUNTIME):
        for score in headline_scores(metric):
            higher = direction(metric, score)
            per = metrics_data[metric].get(score, {})
            values = {
                e: {i: v for i, v in images.items() if v is not None} for e, images in per.items()
            }
            explainers = sorted((e for e, v in values.items() if v), key=natural_key)
            if higher is None or len(explainers) < 2:
                continue
            common = sorted(set.intersection(*(set(values[e]) for e in explainers)))
            if not common:
                continue
            matrix = np.array([[values[e][i] for i in common] for e in explainers])  # [E, N]
            ranks = rank_of(matrix.mean(1), higher)
            rng = np.random.default_rng(RANK_SEED)
            draws = rng.integers(0, len(common), size=(BOOTSTRAP_RESAMPLES, len(common)))
            resampled = rank_of(matrix[:, draws].mean(2), higher)  # [E, resamples]
            low, high = np.percentile(resampled, [2.5, 97.5], axis=1)
            out.append(
                Ranking(
                    metric,
                    score,
                    higher,
                    dict(zip(explainers, ranks.tolist(), strict=True)),
                    {
                        e: (float(lo), float(hi))
                        for e, lo, hi in zip(explainers, low, high, strict=True)
                    },
                )
            )
    return out


def family_of(metric: str) -> str | None:
    """A metric's family: its first tag (None for a metric no longer installed or untagged)."""
    cls = metric_class(metric)
    tags = getattr(cls, "tags", ()) if cls is not None else ()
    return tags[0] if tags else None


def kendall_tau(a: Ranking, b: Ranking) -> float:
    """Kendall's tau-b between two rankings over the explainers both ranked (NaN: fewer than two
    in common, or one ranking all ties there)."""
    from scipy.stats import kendalltau

    common = sorted(set(a.ranks) & set(b.ranks))
    x, y = [a.ranks[e] for e in common], [b.ranks[e] for e in common]
    if len(common) < 2 or len(set(x)) < 2 or len(set(y)) < 2:
        return float("nan")
    return float(kendalltau(x, y).statistic)


def _rank_text(x: float) -> str:
    return f"{round(x, 2):g}"


def model_tables(
    suite: str, dataset: str, model: str, metrics_data, explainers: list[str], unit: str = "images"
) -> list[AnalysisTable]:
    """The ranks, families, agreement and sanity tables of one dataset x model (those with
    something to show); ``unit`` names what was scored (images, or a table's rows)."""
    base = anchor_of(suite, dataset, model)
    where = f"{_md(suite)}/{_md(dataset)}/{_md(model)}"
    ranked = rankings(metrics_data)
    tables = []
    if ranked:
        rows = [
            [_md(e)]
            + [
                f"{_rank_text(r.ranks[e])} [{_rank_text(r.intervals[e][0])}, "
                f"{_rank_text(r.intervals[e][1])}]"
                if e in r.ranks
                else "–"
                for r in ranked
            ]
            for e in explainers
        ]
        tables.append(
            AnalysisTable(
                f"{base}-ranks",
                f"Ranks, {where}",
                "Each metric's ranking of the explainers by its headline score (1 = best, ties "
                f"share their mean rank) on the {unit} every ranked explainer was scored on "
                f"[95% bootstrap interval of the rank, {BOOTSTRAP_RESAMPLES} resamples of the "
                f"{unit}, fixed seed].",
                ["explainer"] + [r.label for r in ranked],
                rows,
            )
        )
    families: dict[str, list[Ranking]] = {}
    for r in ranked:
        family = family_of(r.metric)
        if family is not None:
            families.setdefault(family, []).append(r)
    if len(ranked) >= 2:  # with one ranking, its family's mean rank is that ranking
        names = sorted(families)
        rows = []
        for e in explainers:
            row = [_md(e)]
            for family in names:
                ranks = [r.ranks[e] for r in families[family] if e in r.ranks]
                row.append(fmt(float(np.mean(ranks))) if ranks else "–")
            rows.append(row)
        tables.append(
            AnalysisTable(
                f"{base}-families",
                f"Rank per metric family, {where}",
                "Mean rank of each explainer over the headline scores of each metric family (a "
                "metric's first tag; number of scores in brackets), from the ranks above.",
                ["explainer"] + [f"{f} ({len(families[f])}) ↓" for f in names],
                rows,
            )
        )
    if len(ranked) >= 2:
        rows = [
            [a.label]
            + ["–" if math.isnan(tau := kendall_tau(a, b)) else f"{tau:.2f}" for b in ranked]
            for a in ranked
        ]
        tables.append(
            AnalysisTable(
                f"{base}-agreement",
                f"Metric agreement, {where}",
                "Kendall's tau-b between two metrics' rankings of the explainers they both ranked "
                "(1 = the same order, -1 = reversed; – = fewer than two explainers in common or "
                "all ties).",
                ["metric"] + [r.label for r in ranked],
                rows,
            )
        )
    sanity = [
        (metric, headline_scores(metric)[0])
        for metric in sorted(m for m in metrics_data if m != RUNTIME)
        if "sanity" in getattr(metric_class(metric), "tags", ())
        and hasattr(metric_class(metric), "passes")
        and headline_scores(metric)
        and headline_scores(metric)[0] in metrics_data[metric]
    ]
    if sanity:
        rows = []
        for e in explainers:
            row = [_md(e)]
            for metric, score in sanity:
                values = [
                    v for v in metrics_data[metric][score].get(e, {}).values() if v is not None
                ]
                if not values:
                    row.append("–")
                    continue
                mean = float(np.mean(values))
                verdict = "pass" if metric_class(metric).passes(mean) else "fail"
                row.append(f"{verdict} ({fmt(mean)})")
            rows.append(row)
        tables.append(
            AnalysisTable(
                f"{base}-sanity",
                f"Sanity checks, {where}",
                "Whether each explainer passes each sanity check: the metric's pass rule applied "
                "to the image mean of its headline score (in brackets).",
                ["explainer"] + [f"{m} {s}{arrow(direction(m, s))}" for m, s in sanity],
                rows,
            )
        )
    return tables


# -- explanation agreement between models -------------------------------------------------------


def _tie_order(image: str, n: int) -> np.ndarray:
    """A random permutation of ``n`` pixels seeded by the image id (the same for both models)."""
    seed = int.from_bytes(hashlib.sha256(image.encode()).digest()[:8], "little")
    return np.random.default_rng(seed).permutation(n)


def top_pixels(saliency: np.ndarray, image: str, fraction: float = TOP_FRACTION) -> set[int]:
    """The ``floor(fraction * H*W)`` most salient pixels, ties in the image's seeded order."""
    flat = saliency.ravel()
    perm = _tie_order(image, flat.size)
    order = perm[np.argsort(-flat[perm], kind="stable")]
    return set(order[: top_count(fraction, flat.size)].tolist())


def map_agreement(a: np.ndarray, b: np.ndarray, image: str) -> tuple[float, float]:
    """(Spearman correlation, top-10% overlap) of two maps of one image; NaN where undefined (a
    constant map has no ranking; a map under 10 pixels has no top 10%)."""
    from scipy.stats import spearmanr

    if a.shape != b.shape:
        b = resize_maps(torch.from_numpy(np.ascontiguousarray(b))[None], a.shape)[0].numpy()
    constant = np.ptp(a) == 0 or np.ptp(b) == 0
    rho = float("nan") if constant else float(spearmanr(a.ravel(), b.ravel()).statistic)
    k = top_count(TOP_FRACTION, a.size)
    overlap = len(top_pixels(a, image) & top_pixels(b, image)) / k if k else float("nan")
    return rho, overlap


def _mean_ci(values: list[float]) -> str:
    values = np.array([v for v in values if not math.isnan(v)])
    if len(values) == 0:
        return "–"
    low, high = bootstrap_ci(values)
    return f"{fmt(float(values.mean()))} [{fmt(low)}, {fmt(high)}]"


def map_agreement_tables(
    store: ResultsStore, suite: str, dataset: str, models: list[str]
) -> list[AnalysisTable]:
    """One table per pair of the dataset's models (two or more): per explainer both ran, the mean
    [95% bootstrap CI] Spearman correlation and top-10% overlap of their maps of the same images."""
    if len(models) < 2:
        return []
    maps = store.board_maps(suite, dataset)
    tables = []
    for first, second in itertools.combinations(sorted(models, key=natural_key), 2):
        rows = []
        explainers = sorted({e for m, e, _ in maps if m == first}, key=natural_key)
        for e in explainers:
            images = sorted(
                i for m, x, i in maps if m == first and x == e and (second, e, i) in maps
            )
            if not images:
                continue
            pairs = [map_agreement(maps[first, e, i], maps[second, e, i], i) for i in images]
            rows.append(
                [
                    _md(e),
                    _mean_ci([rho for rho, _ in pairs]),
                    _mean_ci([top for _, top in pairs]),
                    str(len(images)),
                ]
            )
        if rows:
            tables.append(
                AnalysisTable(
                    anchor_of(suite, dataset, "maps", first, "vs", second),
                    f"Explanation agreement, {_md(suite)}/{_md(dataset)}: {_md(first)} vs "
                    f"{_md(second)}",
                    "Do the two models look at the same places? Per explainer, over the images "
                    "both models' maps were scored on (each of its model's explained class): "
                    "Spearman correlation of the maps' pixels and overlap of their top 10% "
                    "pixels, mean [95% bootstrap CI]; 1 = the same map.",
                    ["explainer", "Spearman ↑", "top-10% overlap ↑", "N"],
                    rows,
                )
            )
    return tables
