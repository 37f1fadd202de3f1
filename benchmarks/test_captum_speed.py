"""captum plugins' seconds per image next to the bare model evaluations they need, in one run.

On a small ReLU CNN (3x64x64, two conv stages, GAP + linear; every captum method applies), each
``captum_*`` plugin at its defaults explains a batch of ``BATCH`` images. Hooks count the rows it
sends through the network: forwards (at the first layer's input) and backwards (gradients reaching
the first layer's output). The floor is the time of those evaluations alone, measured in the same
run, batched by ``FLOOR_BATCH``: ``forwards - backwards`` rows of a no-grad forward plus
``backwards`` rows of forward + backward of the target logits to the input. ``ratio`` = explain
time / floor: what the adapter and captum add (set-up, hooks, Python loops, smaller batches).
Run::

    python -m pytest benchmarks/test_captum_speed.py --benchmark-enable -s

The figures are in the saved benchmark's ``extra_info`` (``--benchmark-json out.json``).
"""

from __future__ import annotations

import statistics
import time

import pytest
import torch
from torch import nn

import explainers
from benchmark.models import Classifier

BATCH = 4
FLOOR_BATCH = 64
SHAPE = (3, 64, 64)


def _model() -> Classifier:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(32, 10),
    )
    return Classifier.from_module(
        net, (0.5,) * 3, (0.25,) * 3, SHAPE, feature_layer="4", classifier_layer="7"
    )


def _count_rows(model):
    """[forward rows, backward rows] through the first layer while the handles are on."""
    rows = [0, 0]

    def forward(_module, _inputs, output):
        rows[0] += output.shape[0]
        if output.requires_grad:
            output.register_hook(lambda grad: rows.__setitem__(1, rows[1] + grad.shape[0]))

    return rows, model.net[0].register_forward_hook(forward)


def _median_seconds(run, repeats=3):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _floor_seconds(model, forwards, backwards):
    """Bare time of ``forwards - backwards`` no-grad forward rows and ``backwards`` rows of
    forward + backward to the input, in batches of FLOOR_BATCH."""
    images = torch.randn(FLOOR_BATCH, *SHAPE, generator=torch.Generator().manual_seed(1))
    targets = torch.arange(FLOOR_BATCH) % 10

    def forward_only():
        with torch.no_grad():
            for done in range(0, forwards - backwards, FLOOR_BATCH):
                model(images[: min(FLOOR_BATCH, forwards - backwards - done)])

    def forward_backward():
        for done in range(0, backwards, FLOOR_BATCH):
            size = min(FLOOR_BATCH, backwards - done)
            x = images[:size].clone().requires_grad_(True)
            logits = model(x).gather(1, targets[:size, None]).sum()
            torch.autograd.grad(logits, x)

    return _median_seconds(forward_only), _median_seconds(forward_backward)


@pytest.mark.parametrize("name", explainers.list_explainers("captum_*"))
def test_captum_speed(benchmark, name):
    model = _model()
    g = torch.Generator().manual_seed(0)
    images = torch.randn(BATCH, *SHAPE, generator=g)
    background = torch.randn(50, *SHAPE, generator=g)
    targets = torch.arange(BATCH) % 10
    explainer = explainers.create_explainer(name)
    assert explainer.supports(model) is None, f"{name} must apply to the benchmark's CNN"
    explainer.prepare(model=model, background=background)
    explainer.explain(model, images, targets)  # warm-up: imports, the network copy

    rows, handle = _count_rows(model)
    explainer.explain(model, images, targets)
    handle.remove()
    if explainer.needs_copy:  # hook methods run on their copy of the network: count there
        rows, handle = _count_rows(explainer._copy[1].model)
        explainer.explain(model, images, targets)
        handle.remove()
    forwards, backwards = rows

    benchmark.pedantic(explainer.explain, args=(model, images, targets), rounds=3, iterations=1)
    seconds = benchmark.stats.stats.median if benchmark.stats else None
    seconds = seconds or _median_seconds(lambda: explainer.explain(model, images, targets))
    forward_only, forward_backward = _floor_seconds(model, forwards, backwards)
    floor = forward_only + forward_backward
    benchmark.extra_info.update(
        model="relu cnn 3x64x64",
        batch=BATCH,
        threads=torch.get_num_threads(),
        params=explainer.params(),
        seconds_per_image=seconds / BATCH,
        forwards_per_image=forwards / BATCH,
        backwards_per_image=backwards / BATCH,
        floor_seconds_per_image=floor / BATCH,
        ratio=seconds / floor,
    )
    print(
        f"\n| {name} | {seconds / BATCH:.4f} | {forwards / BATCH:.0f} | {backwards / BATCH:.0f} "
        f"| {floor / BATCH:.4f} | {seconds / floor:.2f} |"
    )
