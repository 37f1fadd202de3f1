"""captum plugins' seconds per image next to the bare model evaluations they need, in one run;
and the project's own re-implementations (``deeplift``, ``deeplift_shap``) beside captum's.

On two networks, each ``captum_*`` plugin at its defaults explains a batch of images: a small
ReLU CNN (3x64x64, two conv stages, GAP + linear; every captum method applies), where captum's
per-call overhead shows, and a ResNet-18 (timm, random weights, 3x112x112; LRP refuses its
residual additions and is skipped with that reason), where the model evaluations dominate as on
the networks people benchmark. Hooks count the rows it sends through the network: forwards (at
the first convolution's output) and backwards (gradients reaching it). The floor is the time of
those evaluations alone, measured in the same run, batched by ``FLOOR_BATCH``: ``forwards -
backwards`` rows of a no-grad forward plus ``backwards`` rows of forward + backward of the target
logits to the input. ``ratio`` = explain time / floor: what the adapter and captum add (set-up,
hooks, Python loops, smaller batches).
Run::

    python -m pytest benchmarks/test_captum_speed.py --benchmark-enable -s

The figures are in the saved benchmark's ``extra_info`` (``--benchmark-json out.json``).

A re-implementation (``OWN``: plugin -> captum's) is measured the same way, against its own rows
(it back-propagates the image rows only, and runs the references once per call). Targets: faster
than captum's plugin timed in the same test, and on the ResNet-18 within 1.3x of its rows.

Measured on 2 idle CPU cores (ratio = explain / floor). ResNet-18, 2 images, 283 s: within 1.3x
for all but one of the 15 methods that apply: input x gradient 1.00, integrated gradients 1.00,
occlusion 0.97, gradient SHAP 1.02, feature ablation 1.03, KernelSHAP 1.07, deconvolution 1.09,
VarGrad 1.14, SmoothGrad 1.15, LIME 1.15, saliency 1.16, guided backprop 1.20, DeepLift 1.25,
Guided Grad-CAM 1.28; DeepLiftShap 1.72 (captum's rescale rule at every ReLU and max-pool:
``where`` / ``abs`` / ``clone`` / ``cat`` over the 100 input-and-baseline rows, 0.42 of its
1.45 s backward in a profile: the method's arithmetic, not the adapter's). On the small CNN
(4 images, 53 s) captum's fixed cost per call shows: 1.05-1.37 for most, DeepLift 2.72,
DeepLiftShap 2.52, KernelSHAP 2.06, LRP 1.81, LIME 1.74, Guided Grad-CAM 1.67.

The project's own DeepLift (same machine, idle): on the ResNet-18 ``deeplift`` 0.87-1.25x its
bare evaluations (2 forwards, 1 backward per image) and 1.31-1.53x faster than captum_deeplift;
``deeplift_shap`` 1.20-1.29x its evaluations (75 forwards, 50 backwards per image against
captum's 100 and 100) and 2.50-2.60x faster than captum_deeplift_shap. On the small CNN: 1.70x
and 2.06x their evaluations, 2.74x and 2.02x faster than captum's.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import explainers
from benchmark.timing import median_seconds
from tests.models import benchmark_model, relu_cnn

FLOOR_BATCH = 64
OWN = {"deeplift": "captum_deeplift", "deeplift_shap": "captum_deeplift_shap"}
# name -> (network, images per explain call)
MODELS = {
    "relu_cnn": (lambda: relu_cnn((3, 64, 64), widths=(16, 32), classes=10), 4),
    "resnet18": (lambda: benchmark_model("resnet18", size=112), 2),
}


def _count_rows(model):
    """[forward rows, backward rows] through the first convolution while the handle is on."""
    rows = [0, 0]

    def forward(_module, _inputs, output):
        rows[0] += output.shape[0]
        if output.requires_grad:
            output.register_hook(lambda grad: rows.__setitem__(1, rows[1] + grad.shape[0]))

    first = next(m for m in model.net.modules() if isinstance(m, nn.Conv2d))
    return rows, first.register_forward_hook(forward)


def _floor_seconds(model, forwards, backwards):
    """Bare time of ``forwards - backwards`` no-grad forward rows and ``backwards`` rows of
    forward + backward to the input, in batches of FLOOR_BATCH."""
    shape = model.input_size
    images = torch.randn(FLOOR_BATCH, *shape, generator=torch.Generator().manual_seed(1))
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

    return median_seconds(forward_only), median_seconds(forward_backward)


@pytest.mark.parametrize("model_name", MODELS)
@pytest.mark.parametrize("name", [*explainers.list_explainers("captum_*"), *OWN])
def test_captum_speed(benchmark, name, model_name):
    build, batch = MODELS[model_name]
    model = build()
    g = torch.Generator().manual_seed(0)
    images = torch.randn(batch, *model.input_size, generator=g)
    background = torch.randn(50, *model.input_size, generator=g)
    targets = torch.arange(batch) % 10
    explainer = explainers.create_explainer(name)
    reason = explainer.supports(model)
    if reason is not None:
        assert model_name != "relu_cnn", f"{name} must apply to the ReLU CNN: {reason}"
        pytest.skip(reason)
    explainer.prepare(model=model, background=background)
    explainer.explain(model, images, targets)  # warm-up: imports, the network copy

    rows, handle = _count_rows(model)
    explainer.explain(model, images, targets)
    handle.remove()
    if getattr(explainer, "needs_copy", False):  # hook methods run on a copy: count there
        clone = explainer._copy[1]
        rows, handle = _count_rows(getattr(clone, "model", clone))
        explainer.explain(model, images, targets)
        handle.remove()
    forwards, backwards = rows

    benchmark.pedantic(explainer.explain, args=(model, images, targets), rounds=3, iterations=1)
    seconds = benchmark.stats.stats.median if benchmark.stats else None
    seconds = seconds or median_seconds(lambda: explainer.explain(model, images, targets))
    forward_only, forward_backward = _floor_seconds(model, forwards, backwards)
    floor = forward_only + forward_backward
    benchmark.extra_info.update(
        model=f"{model_name} {'x'.join(map(str, model.input_size))}",
        batch=batch,
        threads=torch.get_num_threads(),
        params=explainer.params(),
        seconds_per_image=seconds / batch,
        forwards_per_image=forwards / batch,
        backwards_per_image=backwards / batch,
        floor_seconds_per_image=floor / batch,
        ratio=seconds / floor,
    )
    print(
        f"\n| {model_name} | {name} | {seconds / batch:.4f} | {forwards / batch:.0f} | {backwards / batch:.0f} "
        f"| {floor / batch:.4f} | {seconds / floor:.2f} |"
    )
    if name in OWN:
        library = explainers.create_explainer(OWN[name])
        library.prepare(model=model, background=background)
        library.explain(model, images, targets)
        theirs = median_seconds(lambda: library.explain(model, images, targets))
        benchmark.extra_info.update(library_seconds_per_image=theirs / batch)
        print(f"\n{OWN[name]}: {theirs / batch:.4f} s / image, {theirs / seconds:.2f}x {name}'s")
        if model_name == "resnet18":  # on the tiny CNN the fixed cost per call shows
            assert seconds / floor <= 1.3, f"{name}: {seconds / floor:.2f}x its evaluations"
        assert seconds < theirs, f"{name} is not faster than {OWN[name]}"
