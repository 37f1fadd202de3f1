"""ROAD speed against pytorch-grad-cam's ROADCombined, on ResNet50 at 224x224 (random weights).

Targets (ratios measured in this one run, same images and maps; the median over
``ROAD_BENCH_ROUNDS`` rounds, default 3, each timing the reference and then ours):

* ``road`` (9 fractions x 2 orders) at least 5x faster than pytorch-grad-cam's ``ROADCombined``;
* imputation at most 25% of the model-forward time of the same evaluation.

Run: ``BENCHMARK_DATA_DIR=../shared/data python -m pytest benchmarks/test_road_speed.py
--benchmark-enable -s`` (about 12 s per image and round on 2 CPU cores; ``ROAD_BENCH_IMAGES``
sets the number of images, default 2; ``ROAD_BENCH_WORKERS`` the imputation threads, default one
per core; ``ROAD_BENCH_BATCH`` our forwards per chunk, default the metric's 64;
``ROAD_BENCH_DEVICE`` the model's device, default cuda where there is one).

The reference runs its forwards at batch = number of images, twice per fraction (it re-runs the
unperturbed forward), and imputes on the CPU whatever the device; ours run 19 forwards per image,
batched across fractions and images, channels_last, and impute on the model's device (a
multifrontal Cholesky on CPU threads, multigrid conjugate gradients on a GPU). On the CPU both share
the machine's cores: on a loaded machine both ratios move. On a GPU the share target is not met yet
(one H100: imputation ~200% of the forwards; the eager multigrid solve is bound by kernel launches),
so there this benchmark fails on purpose.
"""

from __future__ import annotations

import os
import statistics

import pytest
import torch
import torch.nn.functional as F

from benchmark.models import Classifier
from benchmark.timing import timed
from metrics import create_metric
from metrics._imputation import available_cores

# The model's device (ROAD_BENCH_DEVICE, default cuda where there is one): on an accelerator both
# run their forwards there; the reference imputes on the CPU, ours on the device.
DEVICE = os.environ.get("ROAD_BENCH_DEVICE", "cuda" if torch.cuda.is_available() else "cpu")
BATCH = int(os.environ.get("ROAD_BENCH_BATCH", "64"))  # our forwards per chunk (the default)
ROUNDS = int(os.environ.get("ROAD_BENCH_ROUNDS", "3"))  # the machine is shared: medians of rounds


@pytest.fixture(scope="module")
def setup():
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    net = timm.create_model("resnet50", pretrained=False)
    model = Classifier(
        net,
        (0.485, 0.456, 0.406),
        (0.229, 0.224, 0.225),
        (3, 224, 224),
        "resnet50",
        channels_last=True,
    )
    model.net.to(DEVICE)
    n = int(os.environ.get("ROAD_BENCH_IMAGES", "2"))
    g = torch.Generator().manual_seed(0)
    images = model.normalize(torch.rand(n, 3, 224, 224, generator=g)).to(DEVICE)
    # CAM-like maps: a 7x7 map upsampled bilinearly (smooth blobs, no ties).
    maps = F.interpolate(torch.rand(n, 1, 7, 7, generator=g), size=(224, 224), mode="bilinear")[
        :, 0
    ]
    with torch.no_grad():
        targets = model.probabilities(images).argmax(1)
    return model, images, targets, maps


def test_road_speed(benchmark, setup):
    from pytorch_grad_cam.metrics.road import ROADCombined
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    model, images, targets, maps = setup
    with torch.no_grad():
        model.net(images[:1])  # warm-up
    reference_targets = [ClassifierOutputSoftmaxTarget(int(t)) for t in targets]
    reference_seconds = []

    def reference():  # pytest-benchmark's untimed set-up of each round: the rounds alternate
        _, seconds = timed(
            ROADCombined(), images, maps.numpy(), reference_targets, model.net, device=DEVICE
        )
        reference_seconds.append(seconds)

    workers = int(os.environ.get("ROAD_BENCH_WORKERS", str(available_cores())))
    metric = create_metric("road", workers=workers, batch_size=BATCH)
    call = dict(model=model, images=images, targets=targets, saliency=maps.to(DEVICE))
    # Warm-up (discarded), on one image: what is paid once per process (the thread pools, the
    # cached grid tables, each thread's work buffer at its largest: a first call on 2 images took
    # ~0.1 s longer to impute than the next ones, first touches of fresh memory).
    create_metric("road", workers=workers, batch_size=BATCH)(
        model=model, images=images[:1], targets=targets[:1], saliency=maps[:1].to(DEVICE)
    )
    timings = []

    def run():
        metric.timings.clear()
        result, seconds = timed(metric, **call, device=DEVICE)
        timings.append(dict(metric.timings, total=seconds))
        return result

    benchmark.pedantic(run, setup=reference, rounds=ROUNDS, iterations=1, warmup_rounds=0)
    # Per round, the reference and ours ran back to back: the median of the rounds' ratios.
    speedups = [r / ours["total"] for r, ours in zip(reference_seconds, timings, strict=True)]
    shares = [ours["imputation"] / ours["forward"] for ours in timings]
    speedup, imputation_share = statistics.median(speedups), statistics.median(shares)
    benchmark.extra_info.update(
        images=len(images),
        device=DEVICE,
        batch=BATCH,
        workers=workers,
        rounds=ROUNDS,
        reference_s=reference_seconds,
        ours=timings,
        speedup=speedup,
        imputation_over_forward=imputation_share,
    )
    print(f"\nROAD on {len(images)} images, {ROUNDS} rounds:")
    for r, ours, share in zip(reference_seconds, timings, shares, strict=True):
        print(
            f"  pytorch-grad-cam ROADCombined {r:.2f} s, ours {ours['total']:.2f} s "
            f"({r / ours['total']:.1f}x); imputation {ours['imputation']:.2f} s = "
            f"{100 * share:.0f}% of forwards {ours['forward']:.2f} s"
        )
    print(f"  median: {speedup:.1f}x, imputation {100 * imputation_share:.0f}% of forwards")
    assert speedup >= 5.0
    assert imputation_share <= 0.25
