"""Cost of every registered explainer at its default budget on one fixed model and batch.

Records, per explainer, seconds per image and model evaluations per image (rows through the
network's forward, counted by a hook), next to the bare forward time of the same number of rows
(no gradients, batches of 50): ``overhead`` = explain time / bare forward time. Gradient methods
also pay backward passes, which the bare forward time leaves out. Run::

    python -m pytest benchmarks/test_explainer_speed.py --benchmark-enable

The figures are in the saved benchmark's ``extra_info`` (``--benchmark-json out.json``).
"""

from __future__ import annotations

import pytest
import torch

import explainers
from benchmark.models import load_model
from benchmark.timing import median_seconds, timed

BATCH = 4
BACKGROUND = 50


def _fixed():
    torch.manual_seed(0)
    model = load_model("cnn_gap")  # the seed Fashion-MNIST CNN, 1x28x28, 10 classes
    g = torch.Generator().manual_seed(0)
    images = torch.randn(BATCH, 1, 28, 28, generator=g).clamp(-1, 1)
    background = torch.randn(BACKGROUND, 1, 28, 28, generator=g).clamp(-1, 1)
    return model, images, torch.arange(BATCH) % 10, background


def _count_rows(model):
    seen = [0]

    def hook(_module, inputs):
        seen[0] += inputs[0].shape[0]

    # On the first stage, not the whole net: CAM methods call forward_features / forward_head.
    return seen, model.net.features.register_forward_pre_hook(hook)


@torch.no_grad()
def _bare_forward_seconds(model, rows, repeats=3):
    if rows == 0:
        return 0.0
    batch = torch.zeros(min(rows, 50), 1, 28, 28)

    def forwards():
        for done in range(0, rows, 50):
            model(batch[: min(50, rows - done)])

    return median_seconds(forwards, repeats)


@pytest.mark.parametrize("name", explainers.list_explainers())
def test_explainer_speed(benchmark, name):
    model, images, targets, background = _fixed()
    explainer = explainers.create_explainer(name)
    explainer.prepare(model=model, background=background)
    explainer.explain(model, images, targets)  # warm-up: imports, JIT, cached set-up

    rows, handle = _count_rows(model)
    _, once = timed(explainer.explain, model, images, targets)
    handle.remove()

    benchmark.pedantic(explainer.explain, args=(model, images, targets), rounds=3, iterations=1)
    seconds = benchmark.stats.stats.median if benchmark.stats else once
    bare = _bare_forward_seconds(model, rows[0])
    benchmark.extra_info.update(
        model="cnn_gap 1x28x28",
        batch=BATCH,
        threads=torch.get_num_threads(),
        params=explainer.params(),
        seconds_per_image=seconds / BATCH,
        evaluations_per_image=rows[0] / BATCH,
        bare_forward_seconds_per_image=bare / BATCH,
        overhead=seconds / bare if bare else None,
    )
    print(
        f"\n{name}: {seconds / BATCH:.4f} s/image, {rows[0] / BATCH:.0f} evaluations/image, "
        f"bare forward {bare / BATCH:.4f} s/image"
    )
