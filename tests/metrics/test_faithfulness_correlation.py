from __future__ import annotations

import numpy as np
import pytest
import torch

from metrics import create_metric
from metrics.faithfulness_correlation import correlation, pearson
from tests.models import linear_toy


def _toy():
    g = torch.Generator().manual_seed(0)
    weight = torch.randn(1, 6, 6, generator=g)
    images = torch.randn(2, 1, 6, 6, generator=g)
    return linear_toy(weight), weight, images


def test_exact_attribution_of_a_linear_logit_correlates_perfectly():
    # logit_0 = sum(w * x); removing T to the mean (0) drops it by sum_T w*x = sum_T S for
    # S = w * x (gradient x input): the pairs lie on the line y = x.
    model, weight, images = _toy()
    exact = (weight * images)[:, 0]
    metric = create_metric("faithfulness_correlation", runs=30, subset_size=5)
    call = dict(model=model, images=images, targets=torch.zeros(2, dtype=torch.long))
    torch.testing.assert_close(metric(**call, saliency=exact)["correlation"], torch.ones(2))
    torch.testing.assert_close(metric(**call, saliency=-exact)["correlation"], -torch.ones(2))
    # a constant map: every subset sums to the same value, no variance, scored 0
    flat = metric(**call, saliency=torch.ones(2, 6, 6))["correlation"]
    assert flat.tolist() == [0.0, 0.0]


def test_subsets_are_seeded_per_image_not_globally():
    _, _, images = _toy()
    metric = create_metric("faithfulness_correlation", runs=4, subset_size=3)
    torch.manual_seed(1)
    np.random.seed(1)
    first = metric.subsets(images)
    torch.manual_seed(2)
    np.random.seed(2)
    assert torch.equal(first, metric.subsets(images))  # global RNGs play no part
    assert torch.equal(first[1], metric.subsets(images[1:])[0])  # alone = in the batch
    other = create_metric("faithfulness_correlation", runs=4, subset_size=3, subset_seed=1)
    assert not torch.equal(first, other.subsets(images))


def test_pearson_closed_form():
    a = torch.tensor([[1.0, 2.0, 3.0, 4.0]], dtype=torch.float64)
    assert pearson(a, 2 * a + 1).item() == pytest.approx(1.0)
    assert pearson(a, torch.tensor([[1.0, 0.0, 0.0, 1.0]], dtype=torch.float64)).item() == 0.0


def test_agrees_with_quantus_on_the_same_subsets(small_cnn, monkeypatch):
    quantus = pytest.importorskip("quantus")
    g = torch.Generator().manual_seed(0)
    images = torch.randn(3, 3, 12, 12, generator=g)
    targets = torch.tensor([0, 3, 1])
    saliency = torch.randn(3, 12, 12, generator=g)
    runs, size = 10, 30
    drawn = []  # Quantus's subsets, recorded as it draws them from numpy's global RNG
    choice = np.random.choice
    monkeypatch.setattr(
        np.random, "choice", lambda *a, **k: drawn.append(choice(*a, **k)) or drawn[-1]
    )
    np.random.seed(123)
    theirs = quantus.FaithfulnessCorrelation(
        nr_runs=runs,
        subset_size=size,
        perturb_baseline="black",
        return_aggregate=False,
        disable_warnings=True,
    )(
        model=small_cnn.net,
        x_batch=images.numpy(),
        y_batch=targets.numpy(),
        a_batch=saliency[:, None].numpy().copy(),
        device="cpu",
    )
    monkeypatch.undo()
    subsets = torch.from_numpy(np.array(drawn)).view(runs, 3, size).permute(1, 0, 2)  # [B, runs, k]
    metric = create_metric(
        "faithfulness_correlation", runs=runs, subset_size=size, features="value", baseline="min"
    )
    ours = correlation(metric, small_cnn, images, targets, saliency, subsets)
    np.testing.assert_allclose(ours.numpy(), np.asarray(theirs), atol=1e-5)
    # the default (pixels, mean colour) is another number on the same images
    default = create_metric("faithfulness_correlation", runs=runs, subset_size=size)
    assert not np.allclose(
        default(model=small_cnn, images=images, targets=targets, saliency=saliency)[
            "correlation"
        ].numpy(),
        np.asarray(theirs),
        atol=1e-2,
    )
