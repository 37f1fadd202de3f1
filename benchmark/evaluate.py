"""The evaluate stage: every metric of a table on the batch's maps, per image, into the store.

Each (map, metric) pair is a score cell keyed by the map's saliency key and the metric's name,
version and parameters, so a new metric, or a metric with new parameters, computes only its own
cells. The runtime of ``explain`` is stored beside the scores as the pseudo-metric ``runtime``.
A metric runs once on all the batch's images that lack its cell, on private copies of the inputs;
if it raises, it runs on each image alone, so one bad image fails alone (its message is stored).
An explainer-aware metric (``needs_explainer``, e.g. MPRT) also gets the table's instance of the
explainer that made the maps; its cells are keyed like any other, the saliency key naming the
explainer.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from benchmark.explain import Maps
from benchmark.store import RUNTIME, key_of
from benchmark.table import Table, describe_error
from benchmark.timing import deadline


def runtime_key(saliency_key: str) -> str:
    """The cell key of the runtime of the map under ``saliency_key``."""
    return key_of(RUNTIME, saliency_key)


def score_key(saliency_key: str, metric_name: str, metric) -> str:
    """The cell key of ``metric``'s scores of the map under ``saliency_key``."""
    return key_of("score", saliency_key, metric_name, metric.version, metric.params())


def evaluate_batch(table: Table, name: str, keys: list[str], maps: Maps, batch, images, targets):
    """Store the runtime and every metric's scores of explainer ``name``'s maps of ``batch``."""
    available = [i for i, k in enumerate(keys) if k in maps]
    runtime_cells = {i: runtime_key(keys[i]) for i in available}
    done = table.store.done_cells(table.suite.name, runtime_cells.values())
    table.store.claim(table.summary.run_id, done)
    rows = [
        (runtime_cells[i], table.cell(name, RUNTIME, batch.ids[i]), {"seconds": maps[keys[i]][1]})
        for i in available
        if runtime_cells[i] not in done
    ]
    table.store.put_scores(rows, table.summary.run_id)
    for metric_name, metric in table.metrics.items():
        if metric.needs_explainer and table.over_budget(metric_name, metric, name):
            continue
        cells = {i: score_key(keys[i], metric_name, metric) for i in available}
        done = table.store.done_cells(table.suite.name, cells.values())
        table.store.claim(table.summary.run_id, done)
        todo = [i for i in available if cells[i] not in done]
        table.summary.cached += len(available) - len(todo)
        if not todo:
            continue
        scored = targets[todo]
        if metric.needs_labels:  # e.g. ROAD accuracy: scored against the ground truth
            scored = batch.labels[todo].to(images.device)
            if (scored < 0).any():
                table.summary.skip(f"{table.where}: {metric_name} not run: images without labels")
                continue
        saliency = torch.from_numpy(np.stack([maps[keys[i]][0] for i in todo])).to(images.device)
        masks = batch.masks[todo].to(images.device) if batch.masks is not None else None
        out = []
        explainer = table.explainers[name] if metric.needs_explainer else None
        results = score_images(
            metric, table.model, images[todo], scored, saliency, masks, table.timeout, explainer
        )
        for i, values in zip(todo, results, strict=True):
            if isinstance(values, str):
                table.fail(cells[i], name, metric_name, batch.ids[i], "evaluate", values)
            else:
                out.append((cells[i], table.cell(name, metric_name, batch.ids[i]), values))
        table.store.put_scores(out, table.summary.run_id)
        table.summary.evaluated += len(out)


def score_images(
    metric, model, images, targets, saliency, masks, timeout: float | None = None, explainer=None
) -> list[dict[str, float | None] | str]:
    """Per image: {score: value (None for NaN: not applicable)} or the error message; the batch at
    once, and image by image where that fails, so a failing image spares the others. ``explainer``
    goes to explainer-aware metrics only."""
    extra = {"explainer": explainer} if metric.needs_explainer else {}

    def call(sl: slice) -> list[dict[str, float | None]]:
        with deadline(timeout):
            values = metric(
                model=model,
                images=images[sl].clone(),
                targets=targets[sl].clone(),
                saliency=saliency[sl].clone(),
                masks=None if masks is None else masks[sl].clone(),
                **extra,
            )
        if not isinstance(values, dict):
            raise TypeError(f"metric returned {type(values).__name__}, not a dict of tensors")
        return [{s: _number(v[j]) for s, v in values.items()} for j in range(len(images[sl]))]

    try:
        return call(slice(None))
    except Exception:
        out: list[dict[str, float | None] | str] = []
        for i in range(len(images)):
            try:
                out += call(slice(i, i + 1))
            except Exception as e:
                out.append(describe_error(e))
        return out


def _number(value: torch.Tensor) -> float | None:
    x = float(value)
    return None if math.isnan(x) else x
