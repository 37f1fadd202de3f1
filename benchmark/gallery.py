"""Heatmap gallery: per dataset x model a PNG grid (image, mask, one overlay per explainer) + HTML.

Maps come from the results store's saliency cache (computed and cached on the way if missing), so the
gallery shows exactly what the leaderboard scored, with the image's headline score of each metric
under its map (from the suite's board, where a run computed them). Display only, as people read
heatmaps (captum's ``visualize_image_attr`` convention): a map with negative values is shown with a
diverging colour map centred on 0, a non-negative one with a sequential map from 0; both are
clipped at the 99th percentile of |S| (``CLIP_PERCENTILE``), so a few extreme pixels cannot wash
out the rest; each map has its colour bar. Targets are shown by class name.

A tabular suite's gallery (:func:`write_tabular_gallery`) holds the seed study's beeswarm and
summary (mean |attribution|) plots of every model and explainer, one section per (table, model)
at the anchor its board and site page cite.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import numpy as np

from benchmark.config import Suite
from benchmark.explain import explain_batch
from benchmark.leaderboard import anchor_of, headline_scores
from benchmark.runner import RunSummary, open_table, resolve_device
from benchmark.store import ResultsStore


def write_gallery(
    suite: Suite,
    store: ResultsStore,
    out_dir: str | Path = "gallery",
    *,
    images: int = 6,
    device: str = "auto",
) -> Path:
    """Write ``out_dir/<suite>/index.html`` and one PNG per (dataset, model); returns the index."""
    import matplotlib

    matplotlib.use("Agg")

    out = Path(out_dir) / suite.name
    out.mkdir(parents=True, exist_ok=True)
    dev = resolve_device(device)
    summary = RunSummary(run_id=store.start_run(f"{suite.name} (gallery)", {"gallery": True}))
    figures: list[tuple[str, str]] = []
    for entry in suite.grid:
        for spec in entry.models:
            # The whole dataset, as the run sees it (explainers that sample it, e.g. SHAP's
            # background, give the scored maps), then its first ``images`` images.
            table = open_table(suite, entry, spec, store, summary, dev)
            if table is None:  # the reason is in summary.skipped
                continue
            batch = next(iter(table.dataset.batches(images)))
            x = table.model.normalize(batch.pixels.to(dev))
            targets = table.targets(batch, x)
            columns = {
                name: [maps[k][0] if k in maps else None for k in keys]
                for name, (keys, maps) in explain_batch(table, batch, x, targets).items()
            }
            path = out / _file_name(f"{table.dataset.name}__{spec.name}.png")
            names = [class_name(table, t) for t in targets.tolist()]
            scores = _headline_scores(store, suite.name, table.dataset_label, spec.name)
            _plot(path, batch, columns, names, scores)
            figures.append((f"{table.dataset.name} / {spec.name}", path.name))
    index = out / "index.html"
    items = [
        f'<h2>{html.escape(t)}</h2>\n<img src="{html.escape(f)}" style="max-width:100%">'
        for t, f in figures
    ]
    items += [f"<p>skipped: {html.escape(line)}</p>" for line in summary.skipped]
    title = html.escape(suite.name)
    index.write_text(
        f"<!doctype html>\n<meta charset='utf-8'><title>Gallery: {title}</title>\n"
        f"<h1>Gallery: {title}</h1>\n<p>Rows: images; columns: image, mask, one heatmap per "
        "explainer (clipped at the 99th percentile of |S|; diverging colours for signed maps), with "
        "the image's headline scores under it.</p>\n" + "\n".join(items) + "\n"
    )
    return index


def write_tabular_gallery(
    suite_name: str,
    out_dir: str | Path = "gallery",
    *,
    class_name: str | None = None,
    data_dir: str | None = None,
) -> Path:
    """Write ``out_dir/<suite>/index.html`` with the beeswarm and summary PNGs of every (table,
    model, explainer) of tabular suite ``suite_name`` (:func:`benchmark.tabular.run.plot_suite`:
    the suite's rows, all explained for one class), and n/a lines; returns the index."""
    from benchmark.tabular.run import load_tabular_suite, plot_suite

    suite = load_tabular_suite(suite_name)
    out = Path(out_dir) / _file_name(suite.name)
    plots = plot_suite(suite_name, out, class_name=class_name, data_dir=data_dir)
    title = html.escape(suite.name)
    items = [
        f"<h1>Gallery: {title}</h1>",
        "<p>Per model and explainer, every row of the board explained for one class: the "
        "beeswarm (each row's attribution of each feature, coloured by the feature's value) and "
        "the summary (mean |attribution| per feature).</p>",
    ]
    section = None
    for plot in plots:
        if (plot.dataset, plot.model) != section:
            section = (plot.dataset, plot.model)
            anchor = anchor_of(suite.name, plot.dataset, plot.model)
            items.append(
                f'<h2 id="{anchor}">{html.escape(plot.dataset)} / {html.escape(plot.model)}: '
                f"class {html.escape(plot.class_name)}</h2>"
            )
        if plot.not_applicable:
            items.append(
                f"<p>{html.escape(plot.explainer)}: n/a: {html.escape(plot.not_applicable)}</p>"
            )
            continue
        images = "".join(
            f'<img src="{html.escape(path.name)}" alt="{html.escape(path.stem)}" '
            'style="max-width:49%">'
            for path in plot.paths
        )
        items.append(f"<h3>{html.escape(plot.explainer)}</h3>\n<p>{images}</p>")
    index = out / "index.html"
    index.write_text(
        f"<!doctype html>\n<meta charset='utf-8'><title>Gallery: {title}</title>\n"
        + "\n".join(items)
        + "\n",
        "utf-8",
    )
    return index


def _file_name(name: str) -> str:
    """A file name inside the gallery folder, whatever the dataset or model is called (a path
    given as the dataset never makes the gallery write outside ``out_dir``)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).lstrip(".") or "_"


CLIP_PERCENTILE = 99.0


def class_name(table, target: int) -> str:
    """The explained class's name: the dataset's where the model was trained on it, ImageNet's
    for a 1000-class model, else the index."""
    names = table.dataset.class_names
    if table.labels_fit_model and 0 <= target < len(names):
        return names[target]
    if table.model.num_classes == 1000:
        from timm.data import ImageNetInfo

        return ImageNetInfo().index_to_description(target).split(",")[0]
    return names[target] if 0 <= target < len(names) else str(target)


def _headline_scores(store: ResultsStore, suite: str, dataset: str, model: str) -> dict:
    """(explainer, image) -> "metric score" texts of each metric's headline score(s)."""
    out: dict[tuple[str, str], list[str]] = {}
    for d, m, explainer, metric, score, image, value in store.scores(suite):
        if d != dataset or m != model or value is None:
            continue
        if score in headline_scores(metric):
            label = score if len(metric) > 12 else f"{metric} {score}"  # energy_pointing_game
            out.setdefault((explainer, image), []).append(f"{label} {value:.3g}")
    return out


def display_range(saliency: np.ndarray) -> tuple[np.ndarray, str, float, float]:
    """(map clipped for display, colour map, vmin, vmax): signed maps diverge around 0."""
    s = np.asarray(saliency, dtype=np.float64)
    limit = float(np.percentile(np.abs(s), CLIP_PERCENTILE)) or float(np.abs(s).max()) or 1.0
    if (s < 0).any():
        return np.clip(s, -limit, limit), "bwr", -limit, limit
    return np.clip(s, 0, limit), "inferno", 0.0, limit


def _plot(path: Path, batch, columns: dict[str, list], targets: list[str], scores: dict) -> None:
    """One PNG: a row per image; columns: the image, its mask and target class, then each
    explainer's map over the image with its colour bar and the image's headline scores, or
    "failed" where there is no map."""
    import matplotlib.pyplot as plt

    n = len(batch.ids)
    names = ["image", "mask", *columns]
    fig, axes = plt.subplots(n, len(names), figsize=(2.0 * len(names), 2.0 * n), squeeze=False)
    for r in range(n):
        image = batch.pixels[r].permute(1, 2, 0).numpy()
        image = image[..., 0] if image.shape[-1] == 1 else image
        for c, name in enumerate(names):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(name, fontsize=7)
            ax.imshow(image, cmap="gray" if image.ndim == 2 else None)
            if name == "mask":
                if batch.masks is not None:
                    ax.imshow(batch.masks[r].numpy(), cmap="Greens", alpha=0.5)
                ax.set_xlabel(f"target: {targets[r]}"[:28], fontsize=6)
            elif name != "image":
                saliency = columns[name][r]
                if saliency is None:
                    ax.text(
                        0.5,
                        0.5,
                        "failed",
                        ha="center",
                        va="center",
                        color="red",
                        transform=ax.transAxes,
                    )
                    continue
                shown, cmap, vmin, vmax = display_range(saliency)
                im = ax.imshow(shown, cmap=cmap, vmin=vmin, vmax=vmax, alpha=0.6)
                bar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
                bar.ax.tick_params(labelsize=4)
                ax.set_xlabel("\n".join(scores.get((name, batch.ids[r]), [])), fontsize=4.5)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
