"""The leaderboards as a static site: ``python -m benchmark site`` writes ``site/index.html`` and one
page per suite, rendered from the results store alone (same store, same bytes), viewable offline.

Per (dataset, model), as on the markdown board and with the same citable anchors: the summary
table of headline scores (click a column heading to sort by it; each cell's title gives the mean,
its 95% bootstrap CI and N), the per-metric tables with every score and its CI in a detail row, and
the curves people read as inline SVG plots: for each metric whose scores are a curve over removal
fractions (``morf@0.1``, ``lerf@0.1``, ... as ROAD accuracy records them; ``deletion@0.1``, ...
as the tabular removal curves do), one line per explainer and order. Each section links the
suite's gallery (``gallery/<suite>/index.html`` beside the site, once written by ``python -m
benchmark gallery --suite NAME``): heatmaps for an image suite, the beeswarm and summary plots of
each model and explainer, at the section's anchor, for a tabular one (its runs say ``kind =
"tabular"``). No script, style sheet or font comes from the network.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import numpy as np

from benchmark import analysis
from benchmark.files import atomic_write
from benchmark.leaderboard import (
    Column,
    anchor_of,
    arrow,
    bootstrap_ci,
    collect,
    fmt,
    headline_scores,
    median_seconds,
    score_order,
)
from benchmark.registry import natural_key
from benchmark.store import RUNTIME, ResultsStore

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em auto; max-width: 72em; color: #222; }
table { border-collapse: collapse; margin: .5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: .2em .5em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th.sortable { cursor: pointer; background: #f4f4f4; }
td.best { font-weight: bold; }
details { margin: .3em 0 1em; }
svg text { font: 10px sans-serif; }
"""

# Sorting without a library: a click on a heading sorts the table's rows by that column.
SCRIPT = """
document.querySelectorAll("th.sortable").forEach(function (th) {
  th.addEventListener("click", function () {
    var table = th.closest("table"), index = Array.from(th.parentNode.children).indexOf(th);
    var body = table.tBodies[0], rows = Array.from(body.rows);
    var down = th.dataset.order !== "desc";
    rows.sort(function (a, b) {
      var x = a.cells[index].dataset.value, y = b.cells[index].dataset.value;
      var nx = parseFloat(x), ny = parseFloat(y);
      var c = (isNaN(nx) || isNaN(ny)) ? String(x).localeCompare(String(y)) : nx - ny;
      return down ? -c : c;
    });
    th.dataset.order = down ? "desc" : "asc";
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
"""

COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


def write_site(store: ResultsStore, suites: list[str], out_dir: str | Path = "site") -> Path:
    """Write one page per suite and an index; returns the index path."""
    out = Path(out_dir)
    for suite in suites:
        text = render_page(store, suite)
        atomic_write(out / f"{_file(suite)}.html", lambda tmp, t=text: tmp.write_text(t, "utf-8"))
    links = "".join(
        f'<li><a href="{_file(s)}.html">{html.escape(s)}</a></li>' for s in sorted(suites)
    )
    index = _page("Leaderboards", f"<h1>Leaderboards</h1><ul>{links}</ul>")
    return atomic_write(out / "index.html", lambda tmp: tmp.write_text(index, "utf-8"))


def render_page(store: ResultsStore, suite: str) -> str:
    """The page of one suite (deterministic: it depends on the store's rows only)."""
    data = collect(store, suite)
    tabular = any(r.get("config", {}).get("kind") == "tabular" for r in store.runs(suite))
    unit = "rows" if tabular else "images"
    definitions = (
        "each module's docstring in benchmark/tabular/metrics/" if tabular else "docs/METRICS.md"
    )
    body = [f"<h1>Leaderboard: {html.escape(suite)}</h1>"]
    body.append(
        f"<p>Mean over {unit}; hover a cell for its 95% bootstrap CI and N; click a heading to "
        f"sort. ↑/↓ = higher/lower is better; bold = best (ranked on the {unit} every explainer "
        f"has). Definitions: {definitions}.</p>"
    )
    gallery = f"../gallery/{_file(suite)}/index.html"
    gallery_text = "beeswarm and summary plots" if tabular else "heatmap gallery"
    for dataset in sorted({d for d, _ in data}, key=natural_key):
        models = sorted({m for d, m in data if d == dataset}, key=natural_key)
        for model in models:
            metrics_data = data[(dataset, model)]
            anchor = anchor_of(suite, dataset, model)
            body.append(
                f'<h2 id="{anchor}">Table {html.escape(suite)}/{html.escape(dataset)}/'
                f'{html.escape(model)}</h2><p><a href="{gallery}{"#" + anchor if tabular else ""}">'
                f"{gallery_text}</a></p>"
            )
            body += _summary(metrics_data)
            for metric in sorted(m for m in metrics_data if m != RUNTIME):
                body += _metric(anchor, metric, metrics_data[metric])
            tables = analysis.model_tables(
                suite, dataset, model, metrics_data, _explainers(metrics_data), unit
            )
            body += [line for table in tables for line in _analysis(table)]
        for table in analysis.map_agreement_tables(store, suite, dataset, models):
            body += _analysis(table)
    return _page(f"Leaderboard: {suite}", "\n".join(body))


def _from_markdown(text: str) -> str:
    """A board cell's text as plain text (undoing the board's markdown escapes and entities)."""
    return html.unescape(re.sub(r"\\([\\|`*\[\]])", r"\1", text))


def _analysis(table: analysis.AnalysisTable) -> list[str]:
    """An analysis table (ranks, agreement, sanity) under its board anchor, sortable."""
    head = "".join(
        f'<th class="sortable">{html.escape(_from_markdown(h))}</th>' for h in table.header
    )
    rows = []
    for row in table.rows:
        cells = []
        for cell in row:
            text = _from_markdown(cell)
            number = re.match(r"\s*(-?\d+(\.\d+)?(e-?\d+)?)", text)
            value = number.group(1) if number else text
            cells.append(f'<td data-value="{html.escape(value)}">{html.escape(text)}</td>')
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return [
        f'<h3 id="{table.anchor}">{html.escape(_from_markdown(table.title))}</h3>',
        f"<p>{html.escape(_from_markdown(table.caption))}</p>",
        f"<table><thead><tr>{head}</tr></thead><tbody>",
        *rows,
        "</tbody></table>",
    ]


def _explainers(metrics_data) -> list[str]:
    names = {e for scores in metrics_data.values() for per in scores.values() for e in per}
    return sorted(names, key=natural_key)


def _cell(column: Column, explainer: str) -> str:
    """A sortable cell: the mean shown, the mean as sort value, the CI and N as its title."""
    values = np.array(list(column.values.get(explainer, {}).values()), dtype=float)
    if len(values) == 0:
        return '<td data-value="">–</td>'
    mean = float(values.mean())
    low, high = bootstrap_ci(values)
    title = f"mean {fmt(mean)} [95% CI {fmt(low)}, {fmt(high)}], N = {column.n(explainer)}"
    best = ' class="best"' if explainer == column.best else ""
    mark = "†" if explainer == column.best and column.tied else ""
    return f'<td{best} data-value="{mean!r}" title="{html.escape(title)}">{fmt(mean)}{mark}</td>'


def _table(columns: list[Column], explainers: list[str], headings: list[str]) -> list[str]:
    head = "".join(f'<th class="sortable">{html.escape(h)}</th>' for h in ["explainer", *headings])
    rows = [
        f'<tr><td data-value="{html.escape(e)}">{html.escape(e)}</td>'
        + "".join(_cell(c, e) for c in columns)
        + "</tr>"
        for e in explainers
    ]
    return [f"<table><thead><tr>{head}</tr></thead><tbody>", *rows, "</tbody></table>"]


def _summary(metrics_data) -> list[str]:
    explainers = _explainers(metrics_data)
    columns = [
        Column(metric, score, metrics_data[metric][score])
        for metric in sorted(m for m in metrics_data if m != RUNTIME)
        for score in headline_scores(metric)
        if score in metrics_data[metric]
    ]
    runtime = Column(RUNTIME, "seconds", metrics_data.get(RUNTIME, {}).get("seconds", {}))
    headings = [f"{c.metric} {c.score}{arrow(c.higher)}" for c in columns]
    table = _table([*columns, runtime], explainers, [*headings, "s / image (mean) ↓"])
    medians = {e: median_seconds(list(runtime.values.get(e, {}).values())) for e in explainers}
    note = ", ".join(f"{html.escape(e)} {m}" for e, m in medians.items())
    return ["<h3>Summary</h3>", *table, f"<p>Median seconds per image: {note}.</p>"]


def _metric(anchor: str, metric: str, scores: dict) -> list[str]:
    names = sorted(scores, key=lambda s: score_order(metric, s))
    columns = [Column(metric, s, scores[s]) for s in names]
    explainers = sorted({e for per in scores.values() for e in per}, key=natural_key)
    out = [f'<details id="{anchor}-{metric}"><summary><b>{html.escape(metric)}</b></summary>']
    out += _table(columns, explainers, [f"{c.score}{arrow(c.higher)}" for c in columns])
    out += _curves(metric, scores, explainers)
    return [*out, "</details>"]


def _curves(metric: str, scores: dict, explainers: list[str]) -> list[str]:
    """An SVG plot of the curve scores ``order@fraction`` (mean over images), if the metric has
    them: x = fraction removed, y = mean score, one polyline per explainer and order."""
    points: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for score, per in scores.items():
        match = re.fullmatch(r"(\w+)@([0-9.]+)", score)
        if not match:
            continue
        order, fraction = match.group(1), float(match.group(2))
        for explainer, values in per.items():
            finite = [v for v in values.values() if v is not None]
            if finite:
                points.setdefault((explainer, order), []).append((fraction, float(np.mean(finite))))
    if not points:
        return []
    width, height, pad = 420, 220, 30
    ys = [y for line in points.values() for _, y in line]
    low, high = min(ys), max(ys)
    span = high - low or 1.0

    def xy(x: float, y: float) -> str:
        return f"{pad + x * (width - 2 * pad):.1f},{height - pad - (y - low) / span * (height - 2 * pad):.1f}"

    lines, legend = [], []
    for k, ((explainer, order), line) in enumerate(sorted(points.items())):
        colour = COLOURS[explainers.index(explainer) % len(COLOURS)]
        dash = ' stroke-dasharray="4 2"' if order == "lerf" else ""
        path = " ".join(xy(x, y) for x, y in sorted(line))
        lines.append(f'<polyline fill="none" stroke="{colour}"{dash} points="{path}"/>')
        legend.append(
            f'<text x="{width + 5}" y="{12 + 12 * k}" fill="{colour}">'
            f"{html.escape(explainer)} {html.escape(order)}</text>"
        )
    moved = "inserted" if {order for _, order in points} == {"insertion"} else "removed"
    axes = (
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="#888"/>'
        f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{height - pad}" stroke="#888"/>'
        f'<text x="{width / 2}" y="{height - 5}">fraction {moved}</text>'
        f'<text x="2" y="{pad - 8}">{fmt(high)}</text><text x="2" y="{height - pad}">{fmt(low)}</text>'
    )
    total = width + 220
    return [
        f'<svg width="{total}" height="{max(height, 24 + 12 * len(legend))}" '
        f'role="img" aria-label="{html.escape(metric)} curves">{axes}{"".join(lines)}'
        f"{''.join(legend)}</svg>"
    ]


def _page(title: str, body: str) -> str:
    return (
        f'<!doctype html>\n<html lang="en"><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style>\n<body>\n{body}\n<script>{SCRIPT}</script>\n</body></html>\n"
    )


def _file(suite: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", suite).lstrip(".") or "_"
