"""The library-wrapped plugins' seconds per image next to the bare model evaluations they need,
in one run: every ``captum_*`` and ``pgc_*`` (pytorch-grad-cam) plugin, and the project's own
re-implementations (``deeplift``, ``deeplift_shap``) beside captum's.

On two networks, each plugin at its defaults explains a batch of images: a small ReLU CNN
(3x64x64, two conv stages, GAP + linear; every captum method applies), where the libraries'
per-call overhead shows, and a ResNet-18 (timm, random weights, 3x112x112; LRP refuses its
residual additions and is skipped with that reason), where the model evaluations dominate as on
the networks people benchmark. Hooks count the rows it sends through the network: forwards (at
the first convolution's output), backwards to the input (gradients reaching the first
convolution's output) and backwards to the feature map only (gradients reaching the head's
pooling input and not the input: what a CAM needs). The floor is the time of those evaluations
alone, measured in the same run, batched by ``FLOOR_BATCH``: no-grad forwards for the rows
without a backward, forward + backward of the target logits to the input, and forward + backward
to the feature map (``Classifier.forward_with_features``). ``ratio`` = explain time / floor: what
the adapter and the library add (set-up, hooks, Python loops, smaller batches, the library's own
arithmetic).
Run::

    python -m pytest benchmarks/test_library_speed.py --benchmark-enable -s

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

The pytorch-grad-cam plugins on the ResNet-18 (2 images, 141 s, idle): 11 of 13 within 1.3x:
Grad-CAM++ 0.93, ShapleyCAM 0.94, HiResCAM 0.96, FinerCAM 0.98, GradCAMElementWise 0.99,
XGradCAM 1.00, SESS 1.00, Grad-CAM 1.05, ScoreCAM 1.06, AblationCAM 1.09, LayerCAM 1.12;
FullGrad 6.39 (the library's per-layer post-processing of ~20 bias-gradient maps in numpy) and
SegEigenCAM 5.27 (an SVD per image in numpy): the methods' arithmetic, not the adapter's. Before
the adapter froze the weights for the call, the library's ``loss.backward()`` back-propagated
into every weight: Grad-CAM took 0.058 s per image against 0.016 s now.

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
# name -> (network, images per explain call, the head's first module: its input is the feature map)
MODELS = {
    "relu_cnn": (lambda: relu_cnn((3, 64, 64), widths=(16, 32), classes=10), 4, "5"),
    "resnet18": (lambda: benchmark_model("resnet18", size=112), 2, "global_pool"),
}


def _on_backward(tensor, rows, slot):
    if tensor.requires_grad:
        tensor.register_hook(lambda grad: rows.__setitem__(slot, rows[slot] + grad.shape[0]))


def _count_rows(model, head):
    """[forward rows, backward rows to the input, backward rows to the feature map] while the
    handles are on: forwards and input gradients at the first convolution's output, feature-map
    gradients at the input of the head's first module."""
    rows = [0, 0, 0]

    def first_conv(_module, _inputs, output):
        rows[0] += output.shape[0]
        _on_backward(output, rows, 1)

    first = next(m for m in model.net.modules() if isinstance(m, nn.Conv2d))
    pool = model.net.get_submodule(head)
    return rows, [
        first.register_forward_hook(first_conv),
        pool.register_forward_hook(lambda _m, inputs, _out: _on_backward(inputs[0], rows, 2)),
    ]


def _counted_rows(model, head, explain):
    rows, handles = _count_rows(model, head)
    try:
        explain()
    finally:
        for handle in handles:
            handle.remove()
    forwards, to_input, to_features = rows
    return forwards, to_input, max(to_features - to_input, 0)


def _floor_seconds(model, forwards, to_input, to_features):
    """Bare time of the rows without a backward as no-grad forwards, ``to_input`` rows of forward
    + backward of the target logits to the input, and ``to_features`` rows of forward + backward
    to the feature map only, in batches of FLOOR_BATCH."""
    shape = model.input_size
    images = torch.randn(FLOOR_BATCH, *shape, generator=torch.Generator().manual_seed(1))
    targets = torch.arange(FLOOR_BATCH) % 10

    def batches(rows):
        for done in range(0, rows, FLOOR_BATCH):
            size = min(FLOOR_BATCH, rows - done)
            yield images[:size], targets[:size, None]

    def forward_only():
        with torch.no_grad():
            for x, _ in batches(forwards - to_input - to_features):
                model(x)

    def backward_to_input():
        for x, t in batches(to_input):
            x = x.clone().requires_grad_(True)
            torch.autograd.grad(model(x).gather(1, t).sum(), x)

    def backward_to_features():
        for x, t in batches(to_features):
            logits, features = model.forward_with_features(x)
            torch.autograd.grad(logits.gather(1, t).sum(), features)

    return sum(
        median_seconds(part) for part in (forward_only, backward_to_input, backward_to_features)
    )


LIBRARY_PLUGINS = [*explainers.list_explainers("captum_*"), *explainers.list_explainers("pgc_*")]


@pytest.mark.parametrize("model_name", MODELS)
@pytest.mark.parametrize("name", [*LIBRARY_PLUGINS, *OWN])
def test_library_speed(benchmark, name, model_name):
    build, batch, head = MODELS[model_name]
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

    def explain():
        explainer.explain(model, images, targets)

    if getattr(explainer, "needs_copy", False):  # hook methods run on a copy: count there
        clone = explainer._copy[1]
        forwards, to_input, to_features = _counted_rows(
            getattr(clone, "model", clone), head, explain
        )
    else:
        forwards, to_input, to_features = _counted_rows(model, head, explain)

    benchmark.pedantic(explainer.explain, args=(model, images, targets), rounds=3, iterations=1)
    seconds = benchmark.stats.stats.median if benchmark.stats else None
    seconds = seconds or median_seconds(lambda: explainer.explain(model, images, targets))
    floor = _floor_seconds(model, forwards, to_input, to_features)
    benchmark.extra_info.update(
        model=f"{model_name} {'x'.join(map(str, model.input_size))}",
        batch=batch,
        threads=torch.get_num_threads(),
        params=explainer.params(),
        seconds_per_image=seconds / batch,
        forwards_per_image=forwards / batch,
        backwards_to_input_per_image=to_input / batch,
        backwards_to_features_per_image=to_features / batch,
        floor_seconds_per_image=floor / batch,
        ratio=seconds / floor,
    )
    print(
        f"\n| {model_name} | {name} | {seconds / batch:.4f} | {forwards / batch:.0f} | {to_input / batch:.0f} "
        f"| {to_features / batch:.0f} "
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
