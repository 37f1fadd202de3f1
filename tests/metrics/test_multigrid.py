"""The accelerator's ROAD imputation (multigrid conjugate gradients) against the CPU's direct
solver, run on the CPU;
and, where a GPU exists, the whole ``road`` metric there against the CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import metrics._road
from metrics import create_metric
from metrics._imputation import impute_many
from metrics._multigrid import impute_on_device, solve_imputation


def _direct(images, removed, noise=0.0, seeds=None):
    seeds = seeds or [None] * len(images)
    tasks = [
        (i.numpy(), r.numpy(), noise, s) for i, r, s in zip(images, removed, seeds, strict=True)
    ]
    return np.stack(impute_many(tasks, workers=0))


def _cam_masks(count, size, fractions, generator):
    """Removal masks of smooth CAM-like maps (large connected regions: the hard systems)."""
    maps = F.interpolate(
        torch.rand(count, 1, 5, 5, generator=generator), size=size, mode="bilinear"
    )
    flat = maps.flatten(1)
    ranks = flat.argsort(1, descending=True).argsort(1).view(count, *size)
    n = size[0] * size[1]
    return torch.stack([ranks[i] < int(f * n) for i in range(count) for f in fractions])


@pytest.mark.parametrize("size", [(28, 28), (37, 23), (64, 64)])
def test_matches_direct(size):
    g = torch.Generator().manual_seed(0)
    cam = _cam_masks(2, size, (0.1, 0.5, 0.95), g)
    scattered = torch.rand(3, *size, generator=g) < torch.tensor([0.05, 0.5, 0.95]).view(3, 1, 1)
    removed = torch.cat([cam, scattered])
    images = torch.randn(len(removed), 3, *size, generator=g, dtype=torch.float64)
    ours, iterations = solve_imputation(images, removed)
    np.testing.assert_allclose(ours.numpy(), _direct(images, removed), atol=1e-7)
    assert 0 < iterations <= 40


def test_ramp_all_removed_and_nothing_removed():
    ramp = torch.from_numpy(np.fromfunction(lambda c, i, j: 0.3 * i - 0.2 * j + c, (3, 30, 30)))
    holes = torch.zeros(30, 30, dtype=torch.bool)
    holes[5:25, 3:20] = True
    holes[10:28, 26:29] = True
    removed = torch.stack([holes, torch.ones_like(holes), torch.zeros_like(holes)])
    out, _ = solve_imputation(ramp.expand(3, -1, -1, -1), removed)
    # Interior holes: exact up to the solver tolerance (relative residual 1e-8).
    np.testing.assert_allclose(out[0].numpy(), ramp.numpy(), atol=1e-7)
    assert (out[1] == 0).all()  # every pixel removed: ROAD defines the imputation as 0
    assert torch.equal(out[2], ramp)


def test_same_noise_as_the_cpu_imputation():
    g = torch.Generator().manual_seed(1)
    removed = _cam_masks(2, (20, 20), (0.3, 0.7), g)
    images = torch.randn(len(removed), 3, 20, 20, generator=g, dtype=torch.float64)
    seeds = [[7, 0, k] for k in range(len(removed))]
    ours = impute_on_device(images, removed, 0.05, seeds)
    np.testing.assert_allclose(ours.numpy(), _direct(images, removed, 0.05, seeds), atol=1e-7)


def test_road_gives_the_same_scores_with_either_solver(small_cnn, monkeypatch):
    g = torch.Generator().manual_seed(2)
    images = torch.randn(3, 3, 20, 20, generator=g)
    saliency = torch.rand(3, 20, 20, generator=g)
    call = dict(model=small_cnn, images=images, targets=torch.tensor([0, 1, 4]), saliency=saliency)
    metric = create_metric("road", batch_size=40)  # two images' 36 systems per solve
    direct = metric(**call)
    monkeypatch.setattr(metrics._road, "solves_on_device", lambda device: True)
    multigrid = metric(**call)
    for name in direct:
        torch.testing.assert_close(multigrid[name], direct[name], atol=1e-4, rtol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_road_on_gpu_matches_cpu(small_cnn, monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    g = torch.Generator().manual_seed(3)
    images = torch.randn(4, 3, 64, 64, generator=g)
    saliency = F.interpolate(torch.rand(4, 1, 7, 7, generator=g), size=(64, 64), mode="bilinear")
    targets = torch.tensor([0, 1, 2, 3])
    metric = create_metric("road")
    cpu = metric(model=small_cnn, images=images, targets=targets, saliency=saliency[:, 0])
    try:
        gpu = metric(
            model=small_cnn.to("cuda"),
            images=images.cuda(),
            targets=targets.cuda(),
            saliency=saliency[:, 0].cuda(),
        )
    finally:
        small_cnn.to("cpu")
    for name in cpu:
        torch.testing.assert_close(gpu[name].cpu(), cpu[name], atol=1e-3, rtol=0)
