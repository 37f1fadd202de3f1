"""Contract tests run for every registered metric (no list to maintain), and bad-input handling."""

from __future__ import annotations

import math

import pytest
import torch

import metrics
from metrics._checks import input_problems

FAST = {"road": {"fractions": (0.3, 0.7)}, "road_accuracy": {"fractions": (0.3, 0.7)}}


def _batch(n=3, size=(12, 12)):
    g = torch.Generator().manual_seed(0)
    images = torch.randn(n, 3, *size, generator=g)
    saliency = torch.rand(n, size[0] // 2, size[1] // 2, generator=g)  # resized by the metrics
    masks = torch.zeros(n, *size, dtype=torch.bool)
    masks[:, 3:9, 2:7] = True
    return images, torch.tensor([0, 3, 1, 4, 2][:n]), saliency, masks


def _run(name, model, images, targets, saliency, masks):
    metric = metrics.create_metric(name, **FAST.get(name, {}))
    return metric, metric(model=model, images=images, targets=targets, saliency=saliency,
                          masks=masks if metric.needs_masks else None)  # fmt: skip


@pytest.mark.parametrize("name", metrics.list_metrics())
def test_contract(name, small_cnn):
    images, targets, saliency, masks = _batch()
    metric, scores = _run(name, small_cnn, images, targets, saliency, masks)
    assert set(scores) == set(metric.higher_is_better), "higher_is_better lists every score"
    for values in scores.values():
        assert values.shape == (3,) and values.dtype == torch.float32
        assert torch.isfinite(values).all()
    _, again = _run(name, small_cnn, images, targets, saliency, masks)
    for key, values in scores.items():  # deterministic
        torch.testing.assert_close(again[key], values)
    for i in range(3):  # batch-independent
        _, alone = _run(name, small_cnn, images[i : i + 1], targets[i : i + 1],
                        saliency[i : i + 1], masks[i : i + 1])  # fmt: skip
        for key, values in scores.items():
            torch.testing.assert_close(alone[key][0], values[i], atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", metrics.list_metrics())
def test_metadata(name):
    cls = metrics.registry.get(name)
    assert cls.__module__ == f"metrics.{name}", "registry name = module name"
    assert cls.__doc__ and cls.version and isinstance(cls.needs_masks, bool)
    module_doc = __import__(cls.__module__, fromlist=["_"]).__doc__
    assert module_doc and "(" in module_doc and "Definition" in module_doc
    metrics.create_metric(name).params()


@pytest.mark.parametrize("name", metrics.list_metrics())
def test_bad_inputs_name_the_image(name, small_cnn):
    images, targets, saliency, masks = _batch()
    metric = metrics.create_metric(name, **FAST.get(name, {}))
    call = dict(model=small_cnn, images=images, targets=targets, masks=masks)
    nan = saliency.clone()
    nan[1, 2, 2] = float("nan")
    with pytest.raises(ValueError, match="image 1 of the batch: saliency contains NaN"):
        metric(**{**call, "saliency": nan})
    with pytest.raises(ValueError, match="image 0 of the batch: .*aspect ratio"):
        metric(**{**call, "saliency": saliency[:, :, :5]})
    with pytest.raises(ValueError, match="expected \\[B,h,w\\]"):
        metric(**{**call, "saliency": saliency[0]})
    if metric.needs_masks:
        with pytest.raises(ValueError, match="masks are 12x11 but images 12x12"):
            metric(**{**call, "saliency": saliency, "masks": masks[:, :, :11]})
        with pytest.raises(ValueError, match="needs ground-truth masks"):
            metric(**{**call, "saliency": saliency, "masks": None})


def test_input_problems_flag_only_the_bad_image():
    images, _, saliency, masks = _batch()
    saliency[2, 0, 0] = float("inf")
    problems = input_problems(images, saliency, masks)
    assert problems[:2] == [None, None] and "image 2" in problems[2] and "inf" in problems[2]
    wrong = input_problems(images, saliency, masks[:, :10])
    assert all(p and "masks are 10x12 but images 12x12" in p for p in wrong)
    assert all("holds 2 maps" in p for p in input_problems(images, saliency[:2]))


def test_runner_can_drop_bad_images_and_keep_the_rest(small_cnn):
    """What the runner does: evaluate the good images; their values equal a clean run's."""
    images, targets, saliency, masks = _batch()
    clean = metrics.create_metric("miou")(model=small_cnn, images=images, targets=targets,
                                          saliency=saliency, masks=masks)  # fmt: skip
    saliency[1] = float("nan")
    keep = torch.tensor([p is None for p in input_problems(images, saliency, masks)])
    kept = metrics.create_metric("miou")(model=small_cnn, images=images[keep], targets=targets[keep],
                                         saliency=saliency[keep], masks=masks[keep])  # fmt: skip
    torch.testing.assert_close(kept["top10"], clean["top10"][keep])
    assert not math.isnan(kept["oracle"].sum().item())
