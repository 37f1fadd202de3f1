"""Seconds per image of every registered metric next to the bare forwards it declares, in one run.

For each metric (parametrised over the registry; the explainer-aware ones re-explain with
``gradient_pixel``), on the same images and maps: the metric's seconds per image, the rows its
model really saw per image (counted by a forward hook), and the bare time of pushing that many
already-built rows through the model in batches of 64. The forwards counted must not exceed the
metric's ``cost()`` (the budget suites rely on: it may be less, as costs are stated at 224 px and
count backward passes too), and the ratio metric / bare forwards is reported: what a metric adds
on top of its forwards (ranking, imputation, re-explaining with backward passes, Quantus's numpy).
A metric whose defaults do not fit the benchmark's images (Quantus's top-k of 1000 pixels on a
28x28 image) is skipped with its message.
Metrics whose default cost is above ``METRIC_BENCH_MAX_COST`` (Quantus's one-forward-per-pixel
metrics) are skipped with their cost.

Run: ``python -m pytest benchmarks/test_metric_speed.py --benchmark-enable -s``.
``METRIC_BENCH_MODEL`` (default ``cnn_gap``: 1x28x28, random weights) or ``resnet50``;
``METRIC_BENCH_IMAGES`` (default 4); ``METRIC_BENCH_MAX_COST`` (default 1000).
"""

from __future__ import annotations

import os
import time

import pytest
import torch
import torch.nn.functional as F

import metrics
from explainers import create_explainer
from tests.models import benchmark_model

MODEL = os.environ.get("METRIC_BENCH_MODEL", "cnn_gap")
IMAGES = int(os.environ.get("METRIC_BENCH_IMAGES", "4"))
MAX_COST = int(os.environ.get("METRIC_BENCH_MAX_COST", "1000"))


@pytest.fixture(scope="module")
def setup():
    model = benchmark_model(MODEL)
    channels, height, width = model.input_size
    g = torch.Generator().manual_seed(0)
    images = model.normalize(torch.rand(IMAGES, channels, height, width, generator=g))
    maps = F.interpolate(torch.rand(IMAGES, 1, 7, 7, generator=g), size=(height, width))[:, 0]
    masks = torch.zeros(IMAGES, height, width, dtype=torch.bool)
    masks[:, height // 4 : height // 2, width // 4 : width // 2] = True
    with torch.no_grad():
        targets = model(images).argmax(1)
    return model, images, targets, maps, masks


def _rows_seen(model, call) -> int:
    rows = []
    handle = model.net.register_forward_pre_hook(lambda m, args: rows.append(len(args[0])))
    try:
        call()
    finally:
        handle.remove()
    return sum(rows)


@pytest.mark.parametrize("name", metrics.list_metrics())
def test_metric_seconds_per_image_next_to_its_bare_forwards(benchmark, setup, name):
    model, images, targets, maps, masks = setup
    metric = metrics.create_metric(name)
    cls = metrics.registry.get(name)
    explainer = create_explainer("gradient_pixel") if cls.needs_explainer else None
    cost = metric.cost(explainer, model) if cls.needs_explainer else metric.cost()
    if cost > MAX_COST:
        pytest.skip(f"{name} costs {cost} forwards per image at its defaults (> {MAX_COST})")
    kwargs = {"explainer": explainer} if explainer is not None else {}

    def score():
        metric(
            model=model,
            images=images,
            targets=targets,
            saliency=maps,
            masks=masks if cls.needs_masks else None,
            **kwargs,
        )

    try:
        score()  # warm-up (numba compiles, captum / Quantus imports)
    except ValueError as e:
        pytest.skip(f"{name} does not apply to {MODEL}'s inputs at its defaults: {e}")
    start = time.perf_counter()
    rows = _rows_seen(model, score)
    seconds = (time.perf_counter() - start) / IMAGES
    assert rows <= cost * IMAGES, f"{name}: cost() says {cost} per image, ran {rows / IMAGES}"
    batch = images.repeat_interleave(max(1, -(-rows // IMAGES)), 0)[:rows]
    start = time.perf_counter()
    with torch.no_grad():
        for s in range(0, len(batch), 64):
            model(batch[s : s + 64])
    bare = (time.perf_counter() - start) / IMAGES
    benchmark.pedantic(score, rounds=1, iterations=1)
    ratio = seconds / bare if bare > 0 else float("inf")
    benchmark.extra_info.update(
        model=MODEL,
        images=IMAGES,
        forwards_per_image=cost,
        seconds_per_image=seconds,
        bare_forward_seconds_per_image=bare,
        ratio=ratio,
    )
    print(
        f"\n{name}: {seconds:.4f} s / image, {rows / IMAGES:g} forwards per image (cost {cost}), "
        f"bare {bare:.4f} s / image" + (f", ratio {ratio:.2f}" if rows else "")
    )
