"""Contract tests run for every registered metric (no list to maintain), on random, tied and
constant maps, bad-input handling, and the plugin template as a new user would copy it.
Explainer-aware metrics (``needs_explainer``) re-explain with a cheap explainer, gradient x input."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

import explainers
import metrics
from benchmark.config import load_suite
from metrics._checks import input_problems
from tests.plugins import assert_named_after_module, load_template


def _batch(n=3, size=(12, 12), maps="random"):
    g = torch.Generator().manual_seed(0)
    images = torch.randn(n, 3, *size, generator=g)
    saliency = torch.rand(n, size[0] // 2, size[1] // 2, generator=g)  # resized by the metrics
    if maps == "tied":  # a ReLU'd CAM: mostly zeros, a few distinct levels
        saliency = (saliency * 4).floor().clamp(min=2) - 2
    elif maps == "constant":
        saliency = torch.ones_like(saliency)
    masks = torch.zeros(n, *size, dtype=torch.bool)
    masks[:, 3:9, 2:7] = True
    return images, torch.tensor([0, 3, 1, 4, 2][:n]), saliency, masks


def _create(name, **params):
    return metrics.create_metric(name, **{**metrics.registry.get(name).fast_params, **params})


def _explainer(metric):
    """What an explainer-aware metric is called with: a cheap explainer (gradient x input)."""
    return (
        {"explainer": explainers.create_explainer("gradient_pixel")}
        if metric.needs_explainer
        else {}
    )


def _run(name, model, images, targets, saliency, masks, **params):
    metric = _create(name, **params)
    masks = masks if metric.needs_masks else None
    scores = metric(
        model=model,
        images=images,
        targets=targets,
        saliency=saliency,
        masks=masks,
        **_explainer(metric),
    )
    return metric, scores


def declared(metric, score: str) -> bool:
    """``score`` has a direction in ``higher_is_better`` (exactly or under a wildcard key)."""
    return metric.higher_is_better.get(score) is not None


def assert_batch_independent(metric, model, images, targets, saliency, atol=1e-6):
    """Each image scored alone gets the scores it got in the batch."""
    batch = metric(model=model, images=images, targets=targets, saliency=saliency)
    for i in range(len(images)):
        one = slice(i, i + 1)
        alone = metric(
            model=model, images=images[one], targets=targets[one], saliency=saliency[one]
        )
        for key, values in batch.items():
            torch.testing.assert_close(alone[key][0], values[i], atol=atol, rtol=0)
    return batch


def check_contract(name, model, maps):
    images, targets, saliency, masks = _batch(maps=maps)
    inputs = (images.clone(), saliency.clone(), masks.clone())
    metric, scores = _run(name, model, images, targets, saliency, masks)
    assert all(declared(metric, s) for s in scores), "higher_is_better gives every direction"
    exact = {s for s in metric.higher_is_better if not any(c in s for c in "*?[")}
    assert exact <= set(scores), "every score named in higher_is_better is returned"
    for values in scores.values():
        assert values.shape == (3,) and values.dtype == torch.float32
        assert torch.isfinite(values).all()
    for before, after in zip(inputs, (images, saliency, masks), strict=True):
        assert torch.equal(before, after), "a metric must not modify its inputs"
    _, again = _run(name, model, images, targets, saliency, masks)
    for key, values in scores.items():  # deterministic
        torch.testing.assert_close(again[key], values)
    for i in range(3):  # batch-independent
        one = slice(i, i + 1)
        _, alone = _run(name, model, images[one], targets[one], saliency[one], masks[one])
        for key, values in scores.items():
            torch.testing.assert_close(alone[key][0], values[i], atol=1e-4, rtol=0)


def check_seed_breaks_ties(name, model):
    """A metric with a ``seed`` must use it: on a constant map (all ties) the seeded tie-break
    (:func:`metrics.rank_pixels`) picks other pixels under another seed, which an unseeded
    ``argsort`` (raster order) never does."""
    if "seed" not in {f.name for f in dataclasses.fields(metrics.registry.get(name))}:
        return
    images, targets, saliency, masks = _batch(maps="constant")
    _, first = _run(name, model, images, targets, saliency, masks, seed=0)
    _, second = _run(name, model, images, targets, saliency, masks, seed=1)
    assert any(not torch.equal(first[k], second[k]) for k in first), f"{name} ignores its seed"


def check_metadata(name):
    cls = metrics.registry.get(name)
    assert_named_after_module(metrics, name)
    assert cls.__doc__ and cls.version and isinstance(cls.needs_masks, bool)
    module_doc = __import__(cls.__module__, fromlist=["_"]).__doc__
    assert module_doc and "(" in module_doc, "a metric module opens with its citation"
    assert "Definition" in module_doc, "and holds its exact definition after 'Definition'"
    metric = metrics.create_metric(name)
    metric.params()
    cost = metric.cost()
    assert isinstance(cost, int) and cost >= 0, "cost(): forward passes per image"
    assert set(cls.headline_scores()) <= set(metric.higher_is_better)
    if "sanity" in cls.tags:  # the board's sanity table applies passes() to the first headline
        assert isinstance(cls.passes(0.0), bool) and cls.passes(0.0) != cls.passes(1.0)


@pytest.mark.parametrize("maps", ["random", "tied", "constant"])
@pytest.mark.parametrize("name", metrics.list_metrics())
def test_contract(name, maps, small_cnn):
    check_contract(name, small_cnn, maps)


@pytest.mark.parametrize("name", metrics.list_metrics())
def test_seed_breaks_ties(name, small_cnn):
    check_seed_breaks_ties(name, small_cnn)


@pytest.mark.parametrize("name", metrics.list_metrics())
def test_metadata(name):
    check_metadata(name)


def check_bad_inputs_name_the_image(name, model):
    images, targets, saliency, masks = _batch()
    metric = _create(name)
    call = dict(model=model, images=images, targets=targets, masks=masks, **_explainer(metric))
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


@pytest.mark.parametrize("name", metrics.list_metrics())
def test_bad_inputs_name_the_image(name, small_cnn):
    check_bad_inputs_name_the_image(name, small_cnn)


def test_template_is_a_working_plugin_that_joins_full_not_default(small_cnn, capsys):
    from benchmark.cli import main

    with load_template(metrics, "my_metric"):
        check_metadata("my_metric")
        for maps in ("random", "tied", "constant"):
            check_contract("my_metric", small_cnn, maps)
        check_seed_breaks_ties("my_metric", small_cnn)
        check_bad_inputs_name_the_image("my_metric", small_cnn)
        assert "my_metric" in load_suite("full").metric_names()
        assert "my_metric" not in load_suite("default").metric_names()
        assert main(["ls", "metrics"]) == 0
        assert "my_metric" in capsys.readouterr().out
    assert "my_metric" not in metrics.list_metrics()


def test_empty_masks_give_nan_for_every_mask_metric(small_cnn):
    images, targets, saliency, masks = _batch()
    masks[1] = False
    for name in metrics.list_metrics():
        metric = _create(name)
        if not metric.needs_masks:
            continue
        scores = metric(
            model=small_cnn, images=images, targets=targets, saliency=saliency, masks=masks
        )
        for key, values in scores.items():
            assert math.isnan(values[1]) and torch.isfinite(values[[0, 2]]).all(), (name, key)


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
    miou = metrics.create_metric("miou")
    clean = miou(model=small_cnn, images=images, targets=targets, saliency=saliency, masks=masks)
    saliency[1] = float("nan")
    keep = torch.tensor([p is None for p in input_problems(images, saliency, masks)])
    kept = miou(
        model=small_cnn,
        images=images[keep],
        targets=targets[keep],
        saliency=saliency[keep],
        masks=masks[keep],
    )
    torch.testing.assert_close(kept["top10"], clean["top10"][keep])
    assert not math.isnan(kept["oracle"].sum().item())


@pytest.mark.parametrize(
    "name", [n for n in metrics.list_metrics() if metrics.registry.get(n).needs_explainer]
)
def test_explainer_aware_metrics_say_they_need_the_explainer(name, small_cnn):
    images, targets, saliency, _ = _batch()
    with pytest.raises(ValueError, match="pass explainer="):
        _create(name)(model=small_cnn, images=images, targets=targets, saliency=saliency)


@pytest.mark.parametrize(
    "name", [n for n in metrics.list_metrics() if metrics.registry.get(n).needs_explainer]
)
def test_explainer_aware_metrics_leave_the_shared_model_and_global_rng_alone(name, small_cnn):
    images, targets, saliency, masks = _batch()
    weights = {k: v.clone() for k, v in small_cnn.net.state_dict().items()}
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    _run(name, small_cnn, images, targets, saliency, masks)
    torch.testing.assert_close(torch.rand(3), expected, rtol=0, atol=0)
    for key, value in small_cnn.net.state_dict().items():
        assert torch.equal(value, weights[key]), f"{name} changed the shared model's {key}"
