"""Markdown leaderboards rendered deterministically from the results store (same store, same bytes).

Per dataset x model: explainers as rows (baselines included), one table per metric with its scores
as columns (arrow = direction), each cell the image mean with a 95% bootstrap CI, N per row, the
best in bold, and a dagger where the best is not significantly better than the runner-up (Wilcoxon
signed-rank test on the images both were scored on). The seed study's occlusion and ROAD tables are
also rendered in their published layout so results can be compared side by side.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

import metrics as metric_plugins
from benchmark.files import atomic_write
from benchmark.registry import natural_key
from benchmark.store import RUNTIME, ResultsStore

BOOTSTRAP_RESAMPLES = 1000
ALPHA = 0.05
# The seed study's published layouts: (column heading, metric, score); the headings are the
# study's, the direction arrows come from the metric.
SEED_OCCLUSION = [
    ("% ↑ in Confidence (Occlusion “b”)", "occlusion", "increase_b"),
    ("% ↓ in Confidence (Occlusion “b”)", "occlusion", "drop_b"),
    ("% ↑ in Confidence (Occlusion “s”)", "occlusion", "increase_s"),
    ("% ↓ in Confidence (Occlusion “s”)", "occlusion", "drop_s"),
]
SEED_ROAD = [
    ("% ↑ in Confidence (ROAD “b”)", "road", "lerf"),
    ("% ↑ in Confidence (ROAD “s”)", "road", "morf"),
    ("Mean ↑ in Confidence (Combined)", "road", "combined"),
]


def bootstrap_ci(
    values: np.ndarray, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0
) -> tuple[float, float]:
    """Percentile 95% CI of the mean (fixed seed: the same values always give the same interval)."""
    if len(values) < 2:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(resamples, len(values)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def paired_p_value(a: dict[str, float], b: dict[str, float]) -> float:
    """Wilcoxon signed-rank p-value on the images both explainers were scored on (1.0: no evidence)."""
    from scipy.stats import wilcoxon

    common = sorted(set(a) & set(b))
    diffs = np.array([a[i] - b[i] for i in common])
    if len(diffs) < 2 or not np.any(diffs):
        return 1.0
    return float(wilcoxon(diffs).pvalue)


def metric_class(metric: str):
    """The registered class of ``metric``: an image metric, else a tabular one, else None (a
    metric no longer installed: the board still renders its stored scores)."""
    if metric in metric_plugins.registry:
        return metric_plugins.registry.get(metric)
    from benchmark.tabular.metrics import registry as tabular

    return tabular.get(metric) if metric in tabular else None


def direction(metric: str, score: str) -> bool | None:
    """True if higher is better, False if lower is, None if unknown: from the metric's
    ``higher_is_better``; runtime is lower-is-better."""
    if metric == RUNTIME:
        return False
    cls = metric_class(metric)
    return None if cls is None else cls.higher_is_better.get(score)


def arrow(higher: bool | None) -> str:
    """The heading's direction mark."""
    return {True: " ↑", False: " ↓", None: ""}[higher]


def fmt(x: float) -> str:
    """Two decimals, three significant digits below 0.01 (runtimes), an en dash for NaN."""
    if math.isnan(x):
        return "–"
    return f"{x:.3g}" if abs(x) < 0.01 and x != 0 else f"{x:.2f}"


def anchor_of(*parts: str) -> str:
    """A citable HTML anchor: parts joined by '-', anything but letters, digits, '_' and '.'
    replaced by '-' (so text from a user's data never reaches the HTML)."""
    return "-".join(re.sub(r"[^A-Za-z0-9_.]+", "-", p).strip("-") for p in parts)


def _code(text: object) -> str:
    """Text shown inside a markdown code span (literal there, but for backticks and lines)."""
    return " ".join(str(text).replace("`", "'").split())


def _md(text: object) -> str:
    """Text from users' data (paths, image ids, messages) made inert in markdown: HTML
    characters as entities, table and emphasis characters escaped, one line."""
    text = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    for char in "\\|`*[]":
        text = text.replace(char, "\\" + char)
    return " ".join(text.split())


class Column:
    """One score of one metric for every explainer of a table: values per explainer per image."""

    def __init__(self, metric: str, score: str, values: dict[str, dict[str, float | None]]):
        self.metric, self.score, self.higher = metric, score, direction(metric, score)
        self.values = {
            e: {i: v for i, v in per.items() if v is not None} for e, per in values.items()
        }
        self.skipped = {e: sum(v is None for v in per.values()) for e, per in values.items()}
        self.means = {
            e: float(np.mean(list(v.values()))) if v else float("nan")
            for e, v in self.values.items()
        }
        # Ranks compare explainers on the images every ranked explainer was scored on.
        scored = [set(v) for v in self.values.values() if v]
        self.common = set.intersection(*scored) if scored else set()
        self.partial = any(len(s) != len(self.common) for s in scored)
        self.best, self.tied = self._best()

    def _best(self) -> tuple[str | None, bool]:
        """(best explainer by its mean over the common images in the score's direction, ties
        broken by name; whether its lead over the runner-up is not significant at ALPHA on the
        paired images)."""
        if self.higher is None or not self.common:
            return None, False
        means = {
            e: float(np.mean([v[i] for i in self.common])) for e, v in self.values.items() if v
        }
        ranked = sorted(means, key=lambda e: (-means[e] if self.higher else means[e], e))
        if not ranked:
            return None, False
        if len(ranked) == 1:
            return ranked[0], False
        best, runner_up = ranked[0], ranked[1]
        common = {i: v for i, v in self.values[best].items() if i in self.common}
        tied = paired_p_value(common, self.values[runner_up]) >= ALPHA
        return best, tied

    def cell(self, explainer: str, with_ci: bool = True) -> str:
        """``mean [low, high]``, bold (and a dagger if tied) for the best."""
        values = np.array(list(self.values.get(explainer, {}).values()), dtype=float)
        if len(values) == 0:
            return "–"
        text = fmt(float(values.mean()))
        if with_ci:
            low, high = bootstrap_ci(values)
            text += f" [{fmt(low)}, {fmt(high)}]"
        if explainer == self.best:
            text = f"**{text}**" + ("†" if self.tied else "")
        return text

    def n(self, explainer: str) -> str:
        """Images scored, and how many were not applicable (NaN, e.g. an empty mask)."""
        n, skipped = len(self.values.get(explainer, {})), self.skipped.get(explainer, 0)
        return f"{n}" + (f" ({skipped} skipped)" if skipped else "")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Markdown table lines."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


Values = dict[str, dict[str, float | None]]  # explainer -> image -> value (None: not applicable)


def collect(store: ResultsStore, suite: str) -> dict[tuple[str, str], dict[str, dict[str, Values]]]:
    """The scores the board of ``suite`` shows: (dataset, model) -> metric -> score -> values."""
    data: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(lambda: defaultdict(dict))))
    for dataset, model, explainer, metric, score, image, value in store.scores(suite):
        data[(dataset, model)][metric][score][explainer][image] = value
    return data


def render(store: ResultsStore, suite: str, store_label: str = "results/benchmark.sqlite") -> str:
    """The whole board of ``suite`` as markdown: per dataset, one section per model (ending with
    the analysis tables of :mod:`benchmark.analysis`), the explanation agreement between its
    models, the seed layouts, the failures, the provenance. Depends only on the store's rows
    (sorted), so the same store always gives the same bytes."""
    from benchmark import analysis  # it builds on this module's helpers

    data = collect(store, suite)
    failures = store.failures(suite)
    failed = defaultdict(int)
    for dataset, model, explainer, *_ in failures:
        failed[(dataset, model, explainer)] += 1

    config = _shown_run(store, suite).get("config", {})
    source = _code(config.get("source") or suite)
    tabular = config.get("kind") == "tabular"
    unit = "rows" if tabular else "images"
    out = [
        f"# Leaderboard: `{_code(suite)}`",
        "",
        f"<!-- Generated by `python -m benchmark leaderboard --suite {source}` from the results store; do not edit. -->",
        "",
        f"Generated from the results store (`{_code(store_label)}`); do not edit by hand. Reproduce with "
        f"`python -m benchmark run --suite {source}` then `python -m benchmark leaderboard --suite {source}`.",
        "",
        _legend(tabular),
        "",
    ]
    datasets = sorted({d for d, _ in data}, key=natural_key)
    for dataset in datasets:
        out += [f"## {_md(dataset)}", ""]
        models = sorted({m for d, m in data if d == dataset}, key=natural_key)
        for model in models:
            out += _model_section(
                store, suite, dataset, model, data[(dataset, model)], failed, unit
            )
        for table in analysis.map_agreement_tables(store, suite, dataset, models):
            out += table.markdown()
        out += _seed_layouts(suite, dataset, {m: data[(dataset, m)] for m in models})
    if failures:
        out += [
            "## Failures",
            "",
            "Cells that could not be computed; the run went on without them.",
            "",
        ]
        out += _table(
            ["dataset", "model", "explainer", "metric", "image", "stage", "message"],
            [
                [_md(d), _md(m), _md(e), _md(mt or "–"), _md(i), s, _md(msg[:300])]
                for d, m, e, mt, i, s, msg in failures
            ],
        )
        out.append("")
    out += _provenance(store, suite)
    return "\n".join(out).rstrip() + "\n"


def _model_section(store, suite, dataset, model, metrics_data, failed, unit) -> list[str]:
    """One citable table group: the model's provenance line, the summary, the runtimes, one
    table per metric with every score, its CI and N, then the ranks, family ranks, metric
    agreement and sanity tables (:func:`benchmark.analysis.model_tables`)."""
    from benchmark import analysis

    anchor = anchor_of(suite, dataset, model)
    explainers = sorted(
        {e for scores in metrics_data.values() for per in scores.values() for e in per},
        key=natural_key,
    )
    out = [f'<a id="{anchor}"></a>', "", f"### Table {_md(suite)}/{_md(dataset)}/{_md(model)}", ""]
    info = _model_info(store, suite, dataset, model)
    if info:
        out += [info, ""]
    runtime = Column(RUNTIME, "seconds", metrics_data.get(RUNTIME, {}).get("seconds", {}))
    out += _summary(metrics_data, explainers, runtime)
    rows = []
    for e in explainers:
        seconds = list(runtime.values.get(e, {}).values())
        iqr = (
            f" [{fmt(float(np.percentile(seconds, 25)))}, {fmt(float(np.percentile(seconds, 75)))}]"
            if len(seconds) > 1
            else ""
        )
        rows.append(
            [
                e,
                median_seconds(seconds) + iqr,
                runtime.n(e),
                str(failed.get((dataset, model, e), 0)),
            ]
        )
    out += [
        "Runtime of `explain()` (median [IQR] seconds per image, batched; one warm-up call per run not timed):",
        "",
    ]
    out += _table(["explainer", "s / image ↓", "N", "failures"], rows) + [""]
    for metric in sorted(m for m in metrics_data if m != RUNTIME):
        scores = sorted(metrics_data[metric], key=lambda s: score_order(metric, s))
        columns = [Column(metric, s, metrics_data[metric][s]) for s in scores]
        version = _version(metric)
        out += [f'<a id="{anchor}-{metric}"></a>', "", f"**{metric}**{version}", ""]
        header = ["explainer"] + [f"{c.score}{arrow(c.higher)}" for c in columns] + ["N"]
        rows = [[_md(e)] + [c.cell(e) for c in columns] + [columns[0].n(e)] for e in explainers]
        out += _table(header, rows) + [""]
        if any(c.partial for c in columns):
            common = min(len(c.common) for c in columns)
            out += [
                f"Ranked (bold, †) on the {common} images every explainer was scored on; some "
                "explainers have fewer (see N and the Failures section).",
                "",
            ]
    for table in analysis.model_tables(suite, dataset, model, metrics_data, explainers, unit):
        out += table.markdown()
    return out


def _summary(metrics_data, explainers: list[str], runtime: Column) -> list[str]:
    """One row per explainer: each metric's headline score (mean; CIs in the tables below) and the
    median runtime, with the same bold / dagger marks."""
    columns = [
        Column(metric, score, metrics_data[metric][score])
        for metric in sorted(m for m in metrics_data if m != RUNTIME)
        for score in headline_scores(metric)
        if score in metrics_data[metric]
    ]
    if not columns:
        return []
    header = ["explainer"] + [f"{c.metric} {c.score}{arrow(c.higher)}" for c in columns]
    rows = [[e] + [c.cell(e, with_ci=False) for c in columns] for e in explainers]
    header.append("s / image ↓")
    for row, e in zip(rows, explainers, strict=True):
        row.append(median_seconds(list(runtime.values.get(e, {}).values())))
    return (
        ["Summary (headline score of each metric, mean over images; per-metric tables below):", ""]
        + _table(header, rows)
        + [""]
    )


def median_seconds(seconds: list[float]) -> str:
    """Median seconds per image, formatted (– when none)."""
    return fmt(float(np.median(seconds))) if seconds else "–"


def headline_scores(metric: str) -> tuple[str, ...]:
    """The metric's summary-table score(s) (default: its first); none for an unknown metric."""
    cls = metric_class(metric)
    if cls is None:
        return ()
    if hasattr(cls, "headline_scores"):
        return cls.headline_scores()
    return tuple(cls.higher_is_better)[:1]


def score_order(metric: str, score: str) -> tuple[int, Any]:
    """Columns in the order the metric declares its scores; unknown ones last, naturally sorted."""
    cls = metric_class(metric)
    order = list(cls.higher_is_better) if cls is not None else []
    return (order.index(score), "") if score in order else (len(order), natural_key(score))


def _version(metric: str) -> str:
    """`` (vN)`` after a metric's name, so a citation names the definition's version."""
    cls = metric_class(metric)
    return "" if cls is None else f" (v{cls.version})"


def _model_info(store: ResultsStore, suite: str, dataset: str, model: str) -> str:
    """How the model was obtained (trained here, pretrained, given, random), its test accuracy and
    the start of its weights' sha256, from the store's model records."""
    infos = [
        i for i in store.models(suite) if i.get("name") == model and i.get("dataset") == dataset
    ]
    parts = []
    for info in infos:
        spec = info.get("spec", {})
        how = (
            "trained by the harness on " + dataset
            if spec.get("train")
            else "pretrained"
            if spec.get("pretrained")
            else f"given weights ({Path(str(spec['weights'])).name})"
            if spec.get("weights")
            else "random weights"
        )
        text = f"model {_md(model)}: {_md(how)}"
        for key, label in (("test_accuracy", "test accuracy"), ("test_roc_auc", "ROC AUC")):
            if isinstance(info.get(key), (int, float)):
                value = info[key] * 100 if info[key] <= 1 else info[key]
                text += (
                    f", {label} {value:.2f}%"
                    if key == "test_accuracy"
                    else f", {label} {info[key]:.3f}"
                )
        seed = info.get("seed_study_scores")
        if isinstance(seed, dict) and seed:  # the figures the seed study reports, beside ours
            text += (
                " (seed study: "
                + ", ".join(
                    f"{_md(name)} {100 * s['test_accuracy']:.2f}% / ROC AUC {s['test_roc_auc']:.3f}"
                    for name, s in sorted(seed.items())
                )
                + ")"
            )
        if info.get("weights_sha256"):
            text += f", weights sha256 `{info['weights_sha256'][:12]}…`"
        parts.append(text)
    return "; ".join(parts)


def _seed_layouts(suite: str, dataset: str, per_model: dict[str, dict]) -> list[str]:
    """The seed study's tables: per explainer, models as rows, occlusion / ROAD columns as published."""
    out: list[str] = []
    for title, layout in (("Occlusion", SEED_OCCLUSION), ("ROAD", SEED_ROAD)):
        metric = layout[0][1]
        explainers = sorted(
            {e for m in per_model.values() for per in m.get(metric, {}).values() for e in per},
            key=natural_key,
        )
        for explainer in explainers:
            anchor = anchor_of(suite, dataset, "seed", metric, explainer)
            header = ["Model \\ Metric"] + [f"{h}{arrow(direction(m, s))}" for h, m, s in layout]
            rows = []
            for model, metrics_data in sorted(per_model.items(), key=lambda kv: natural_key(kv[0])):
                row = [model]
                for _, m, score in layout:
                    values = [
                        v
                        for v in metrics_data.get(m, {}).get(score, {}).get(explainer, {}).values()
                        if v is not None
                    ]
                    row.append(fmt(float(np.mean(values))) if values else "–")
                rows.append(row)
            out += [
                f'<a id="{anchor}"></a>',
                "",
                f"**{title}, seed-study layout: {_md(explainer)}** ({_md(dataset)})",
                "",
            ]
            out += _table(header, rows) + [""]
    return out


def _legend(tabular: bool) -> str:
    """How to read the board's cells (rows of a table or images)."""
    unit = "rows" if tabular else "images"
    text = (
        f"Each cell: mean over {unit} [95% bootstrap CI, {BOOTSTRAP_RESAMPLES} resamples, fixed "
        "seed]; ↑/↓ = higher/lower is better; **bold** = best; † = best but not significantly "
        f"better than the runner-up (Wilcoxon signed-rank on paired {unit}, p ≥ {ALPHA}). N = "
        f"{unit} scored; skipped = not applicable (e.g. empty mask). "
    )
    if tabular:
        return text + "Metric definitions: each module's docstring in `benchmark/tabular/metrics/`."
    return text + (
        "Metric definitions: docs/METRICS.md (`python -m benchmark ls metrics --markdown`). ROAD "
        "imputes in the model's normalised input space (the pytorch-grad-cam convention)."
    )


def _shown_run(store: ResultsStore, suite: str) -> dict[str, Any]:
    """The run whose cells the board shows (its latest claiming run, else its latest run)."""
    runs = {r["run_id"]: r for r in store.runs(suite)}
    if not runs:
        return {}
    return runs.get(store.board_run(suite), runs[max(runs)])


def _provenance(store: ResultsStore, suite: str) -> list[str]:
    """The runs that computed the cells shown (commit, dirty flag, device, threads, seed), what
    the run this board shows could not run, its package versions, and a run that did not finish."""
    runs = store.runs(suite)
    if not runs:
        return []
    by_id = {r["run_id"]: r for r in runs}
    shown = _shown_run(store, suite)
    out = ["## Provenance", "", "Runs that computed the cells shown:", ""]
    rows = []
    for run_id in store.computing_runs(suite):
        r = by_id.get(run_id, {"run_id": run_id})
        git = r.get("git", {})
        commit = str(git.get("commit", "?"))[:12] + (" (dirty)" if git.get("dirty") else "")
        rows.append(
            [
                str(run_id),
                r.get("date", "?"),
                commit,
                r.get("device", "?"),
                str(r.get("threads", "?")),
                str(r.get("seed", "?")),
                r.get("harness", "?"),
            ]
        )
    header = ["run", "date", "git commit", "device", "threads", "seed", "harness"]
    out += _table(header, rows) + [""]
    if not runs[-1].get("finished"):
        out += [
            f"**Run {runs[-1]['run_id']} did not finish** (interrupted, or still running): the "
            "board shows what it had reached. Rerun the same command to resume.",
            "",
        ]
    if shown.get("skipped"):
        out += ["Not run (data, weights or applicability; from the run this board shows):", ""]
        out += [f"- {_md(line)}" for line in shown["skipped"]] + [""]
    packages = ", ".join(f"{k} {v}" for k, v in sorted(shown.get("packages", {}).items()))
    out += [f"Packages: {packages}; Python {shown.get('python', '?')}.", ""]
    return out


def write(
    store: ResultsStore, suite: str, out_dir: str | Path = "leaderboards", store_label: str = ""
) -> Path:
    """Render ``suite``'s board to ``out_dir/<suite>.md``; ``store_label`` names the store in it
    (default: the store's path as opened)."""
    text = render(store, suite, store_label or store.path.as_posix())
    return atomic_write(Path(out_dir) / f"{suite}.md", lambda tmp: tmp.write_text(text, "utf-8"))
