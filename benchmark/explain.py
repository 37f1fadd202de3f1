"""The explain stage: saliency maps for one batch of a table, from the cache or computed now.

For each explainer of the table, every image gets a saliency cache key holding everything that
changes its map (explainer name, version and parameters; the model's identity; dataset, split, image
id, input shape and target). Maps found under their key are reused; the others are computed in one
batched ``explain`` call, timed, validated and stored. The order of what happens per explainer:

1. ``supports(model)``: a method that cannot apply to the model is marked not applicable (a line on
   the board) before anything else runs;
2. ``prepare(model, background)`` once per table, with a seeded sample of the dataset;
3. one untimed warm-up call on one image (lazy initialisation, caches, JIT);
4. the timed batch call, on a private copy of the inputs (an explainer that writes into its input
   cannot corrupt the others'); if it raises, each image alone, so one bad image fails alone.

A map of the wrong type, shape or with non-finite values is a per-image failure, never stored.
"""

from __future__ import annotations

import contextlib

import torch

from benchmark.models import FeatureLayerError
from benchmark.store import key_of
from benchmark.table import Table, describe_error
from benchmark.timing import deadline, timed
from explainers import Explainer

Maps = dict[str, tuple]  # saliency key -> (map [H,W] float32 numpy, explain seconds per image)


def saliency_keys(table: Table, name: str, ids, images: torch.Tensor, targets) -> list[str]:
    """The cache key of each image's map by explainer ``name`` of ``table``. An explainer that
    overrides ``prepare`` sees a sample of the dataset (e.g. SHAP's background), so its key also
    holds what that sample is drawn from: the dataset's image ids and the suite's seed (a run with
    ``--limit`` draws another background, hence other maps)."""
    explainer = table.explainers[name]
    entry = table.entry
    background = ()
    if type(explainer).prepare is not Explainer.prepare:
        background = (key_of("background", table.dataset.ids, table.suite.seed),)
    return [
        key_of(
            "saliency",
            name,
            explainer.version,
            explainer.params(),
            table.model_key,
            entry.dataset,
            entry.split,
            image,
            tuple(images.shape[1:]),
            int(t),
            *background,
        )
        for image, t in zip(ids, targets.tolist(), strict=True)
    ]


def explain_batch(
    table: Table, batch, images, targets, names=None
) -> dict[str, tuple[list[str], Maps]]:
    """Per explainer of the table (or of ``names``, a subset in the table's order: one unit of
    work of a distributed executor): the batch's saliency keys and the maps found or computed for
    them (a failed or not-applicable image has no map)."""
    out = {}
    for name in table.explainers if names is None else names:
        keys = saliency_keys(table, name, batch.ids, images, targets)
        out[name] = (keys, _maps(table, name, keys, batch.ids, images, targets))
    return out


def _maps(table: Table, name: str, keys, ids, images, targets) -> Maps:
    cached = table.store.get_maps(keys)
    table.store.claim(table.summary.run_id, cached)
    missing = [i for i, k in enumerate(keys) if k not in cached]
    if not missing or not _ready(table, name, images):
        return cached
    explainer = table.explainers[name]
    sub_images, sub_targets = images[missing], targets[missing]
    if name not in table.warm:  # warm-up on one image, untimed; a failure shows up just below
        table.warm.add(name)
        with contextlib.suppress(Exception), deadline(table.timeout):
            explainer.explain(table.model, sub_images[:1].clone(), sub_targets[:1].clone())
    try:
        maps, seconds = _call(table, explainer, sub_images, sub_targets)
        results = [(i, maps[j], seconds / len(missing)) for j, i in enumerate(missing)]
    except FeatureLayerError as e:  # a refusal supports() could not foresee
        _not_applicable(table, name, str(e))
        return cached
    except Exception:  # find the image(s) it fails on; the others still get their maps
        results = []
        for i in missing:
            try:
                single, seconds = _call(table, explainer, images[i : i + 1], targets[i : i + 1])
                results.append((i, single[0], seconds))
            except Exception as e:
                table.fail(keys[i], name, None, ids[i], "explain", describe_error(e))
    rows = []
    for i, saliency, seconds in results:
        problem = map_problem(saliency, images.shape[-2:])
        if problem:
            table.fail(keys[i], name, None, ids[i], "explain", f"{name} returned {problem}")
        else:
            rows.append((keys[i], saliency.detach().float().cpu().numpy(), seconds))
    table.store.put_maps(rows, table.summary.run_id)
    table.summary.explained += len(rows)
    cached.update({k: (m, s) for k, m, s in rows})
    return cached


def _ready(table: Table, name: str, images) -> bool:
    """Steps 1-2 of the module docstring, once per table; False if the method does not apply."""
    if name in table.not_applicable:
        return False
    if name not in table.prepared:
        table.prepared.add(name)
        explainer = table.explainers[name]
        reason = explainer.supports(table.model)
        if reason:
            _not_applicable(table, name, reason)
            return False
        sample = table.dataset.sample(64, table.suite.seed).to(images.device)
        explainer.prepare(model=table.model, background=table.model.normalize(sample))
    return True


def _not_applicable(table: Table, name: str, reason: str) -> None:
    table.not_applicable.add(name)
    table.summary.skip(f"{table.where}: {name} does not apply: {reason}")


def _call(table: Table, explainer, images, targets):
    """(maps, seconds) of one timed ``explain`` on private copies of the inputs, within the
    run's per-cell time limit."""
    images, targets = images.clone(), targets.clone()
    with deadline(table.timeout):
        maps, seconds = timed(explainer.explain, table.model, images, targets, device=images.device)
    if not isinstance(maps, torch.Tensor):
        raise TypeError(f"explain returned {type(maps).__name__}, not a torch.Tensor [B,H,W]")
    if maps.shape[:1] != images.shape[:1]:
        raise ValueError(f"explain returned {len(maps)} maps for {len(images)} images")
    return maps, seconds


def map_problem(saliency: torch.Tensor, size) -> str | None:
    """Why a map cannot be stored (wrong shape, non-finite values), or None."""
    if tuple(saliency.shape) != tuple(size):
        return f"a map of shape {tuple(saliency.shape)} for an image of size {tuple(size)}"
    if not torch.isfinite(saliency).all():
        return "a map with NaN or infinite values"
    return None
