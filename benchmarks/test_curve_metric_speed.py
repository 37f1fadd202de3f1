"""Seconds per image of every curve metric next to the bare forwards it needs, in the same run.

A curve metric is a registered metric with a ``curves`` method (the insertion / deletion games,
pixel flipping, region perturbation: :mod:`metrics._curves`). Its reference is pushing the same
``B * cost()`` rows, already built, through :func:`metrics._forward.target_probabilities` in the
chunks the games use; the target is a ratio within 1.1x (ranking, region sums, substrates and
building the perturbed rows cost at most 10% on top).

Run: ``python -m pytest benchmarks/test_curve_metric_speed.py --benchmark-enable -s``.
``CURVE_BENCH_MODEL`` ``resnet50`` (default: random weights, 224x224, channels_last) or a harness
model name such as ``cnn_gap`` (28x28); ``CURVE_BENCH_IMAGES`` (default 2), ``CURVE_BENCH_STEPS``
(default 24: points per curve minus one, regions for region perturbation), ``CURVE_BENCH_ROUNDS``
(default 3, medians; the machine is shared), ``CURVE_BENCH_DEVICE`` (default cuda where there is
one).

Measured on 2 idle CPU cores (load average 0.25), ResNet50, 2 images, 24 steps, 3 rounds, 121 s
in all: deletion 1.016x (1.428 vs 1.405 s / image), insertion 1.025x (1.631 vs 1.562),
pixel_flipping 1.037x (1.589 vs 1.515), region_perturbation 1.031x (1.638 vs 1.594). Under load
(average 6-13) insertion reached 1.22x. On ``cnn_gap`` (28x28) the forwards are so cheap that
building the rows shows: 1.47x, 1.75x, 1.25x, 1.23x.
"""

from __future__ import annotations

import os
import statistics

import pytest
import torch
import torch.nn.functional as F

from benchmark.timing import timed
from metrics import create_metric, list_metrics, registry, target_probabilities
from tests.models import benchmark_model

DEVICE = os.environ.get("CURVE_BENCH_DEVICE", "cuda" if torch.cuda.is_available() else "cpu")
MODEL = os.environ.get("CURVE_BENCH_MODEL", "resnet50")
IMAGES = int(os.environ.get("CURVE_BENCH_IMAGES", "2"))
STEPS = int(os.environ.get("CURVE_BENCH_STEPS", "24"))
ROUNDS = int(os.environ.get("CURVE_BENCH_ROUNDS", "3"))
TARGET = 1.1
CHUNK_ROWS = 256  # what game_curves builds at a time, each chunk forwarded at batch_size

CURVE_METRICS = [name for name in list_metrics() if hasattr(registry.get(name), "curves")]


@pytest.fixture(scope="module")
def setup():
    model = benchmark_model(MODEL)
    model.net.to(DEVICE)
    channels, height, width = model.input_size
    g = torch.Generator().manual_seed(0)
    images = model.normalize(torch.rand(IMAGES, channels, height, width, generator=g)).to(DEVICE)
    maps = F.interpolate(torch.rand(IMAGES, 1, 7, 7, generator=g), size=(height, width))[:, 0]
    with torch.no_grad():
        targets = model.probabilities(images).argmax(1)
    return model, images, targets, maps.to(DEVICE)


@pytest.mark.parametrize("name", CURVE_METRICS)
def test_curve_metric_within_1_1x_of_its_bare_forwards(benchmark, setup, name):
    model, images, targets, maps = setup
    metric = create_metric(name, steps=STEPS)
    rows_per_image = metric.cost()
    rows = images.repeat_interleave(rows_per_image, 0)  # the same rows, already built
    row_targets = targets.repeat_interleave(rows_per_image)

    def bare():
        for s in range(0, len(rows), CHUNK_ROWS):
            target_probabilities(
                model, rows[s : s + CHUNK_ROWS], row_targets[s : s + CHUNK_ROWS], metric.batch_size
            )

    def score():
        metric(model=model, images=images, targets=targets, saliency=maps)

    score()  # warm-up
    bare()
    scores, bares = [], []
    for _ in range(ROUNDS):
        bares.append(timed(bare, device=DEVICE)[1])
        scores.append(timed(score, device=DEVICE)[1])
    benchmark.pedantic(score, rounds=1, iterations=1)
    ratio = statistics.median(m / b for m, b in zip(scores, bares, strict=True))
    per_image, bare_per_image = (
        statistics.median(scores) / IMAGES,
        statistics.median(bares) / IMAGES,
    )
    benchmark.extra_info.update(
        model=MODEL,
        device=DEVICE,
        images=IMAGES,
        steps=STEPS,
        forwards_per_image=rows_per_image,
        threads=torch.get_num_threads(),
        seconds_per_image=per_image,
        bare_forward_seconds_per_image=bare_per_image,
        ratio=ratio,
    )
    print(
        f"\n{name}: {per_image:.3f} s / image, bare forwards {bare_per_image:.3f} s / image "
        f"({rows_per_image} rows), ratio {ratio:.3f} ({MODEL}, {DEVICE}, {IMAGES} images)"
    )
    assert ratio <= TARGET
