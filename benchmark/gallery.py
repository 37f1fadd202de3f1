"""Heatmap gallery: per dataset x model a PNG grid (image, mask, one overlay per explainer) + HTML.

Maps come from the results store's saliency cache (computed and cached on the way if missing), so the
gallery shows exactly what the leaderboard scored. Each map is min-max scaled for display only.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import numpy as np

from benchmark.config import Suite
from benchmark.explain import explain_batch
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
            table = open_table(suite, entry, spec, store, summary, dev, limit=images)
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
            _plot(path, batch, columns, targets.tolist(), table.dataset.class_names)
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
        "explainer (scaled per map for display).</p>\n" + "\n".join(items) + "\n"
    )
    return index


def _file_name(name: str) -> str:
    """A file name inside the gallery folder, whatever the dataset or model is called (a path
    given as the dataset never makes the gallery write outside ``out_dir``)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).lstrip(".") or "_"


def _plot(
    path: Path, batch, columns: dict[str, list], targets: list[int], class_names: list[str]
) -> None:
    """One PNG: a row per image; columns: the image, its mask and target class, then each
    explainer's map as a jet overlay (min-max scaled per map), or "failed" where there is none."""
    import matplotlib.pyplot as plt

    n = len(batch.ids)
    names = ["image", "mask", *columns]
    fig, axes = plt.subplots(n, len(names), figsize=(1.6 * len(names), 1.6 * n), squeeze=False)
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
                label = (
                    class_names[targets[r]]
                    if 0 <= targets[r] < len(class_names)
                    else str(targets[r])
                )
                ax.set_xlabel(f"target: {label}"[:24], fontsize=6)
            elif name != "image":
                saliency = columns[name][r]
                if saliency is None:
                    ax.text(
                        0.5,
                        0.5,
                        "failed",
                        ha="center",
                        va="center",
                        transform=ax.transAxes,
                        color="red",
                    )
                    continue
                s = np.asarray(saliency, dtype=np.float32)
                s = (s - s.min()) / (s.max() - s.min() + 1e-12)
                ax.imshow(s, cmap="jet", alpha=0.5)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
