"""Contract tests run for every registered explainer on every tiny model (no list to maintain),
and for the plugin template as a new user would copy it."""

from __future__ import annotations

import pytest
import torch

import explainers
from benchmark.config import load_suite
from explainers import FeatureLayerError
from tests.plugins import assert_named_after_module, load_template


def _explain(name, tiny, images, targets):
    cls = explainers.registry.get(name)
    explainer = explainers.create_explainer(name, **cls.fast_params)
    reason = explainer.supports(tiny.model)
    if name == "cam":
        # CAM refuses exactly the heads that are not GAP + linear, pointing to grad_cam
        assert (reason is None) == tiny.cam_able, f"cam on this head: {reason}"
    if reason is not None:
        # Any plugin may refuse a model, declared through supports() with a reason (the board's
        # "n/a"); explain then raises FeatureLayerError or ValueError rather than a wrong map.
        assert isinstance(reason, str) and reason.strip(), f"{name}: an empty refusal"
        if name == "cam":
            assert "grad_cam" in reason
        with pytest.raises((FeatureLayerError, ValueError)):
            explainer.explain(tiny.model, images, targets)
        pytest.skip(f"{name} refuses this model, as declared: {reason}")
    # No undeclared refusal: a crash here fails the test.
    return explainer.explain(tiny.model, images, targets)


def _batch(tiny, n=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(n, *tiny.input_shape, generator=g)
    targets = torch.tensor([0, 3, 1, 4, 2][:n])
    return images, targets


def check_contract(name, tiny):
    images, targets = _batch(tiny)
    originals = images.clone()
    maps = _explain(name, tiny, images, targets)
    height, width = tiny.input_shape[1:]
    assert maps.shape == (3, height, width)
    assert maps.dtype == torch.float32
    assert not maps.requires_grad and maps.grad_fn is None
    assert torch.isfinite(maps).all()
    assert maps.device == images.device
    assert torch.equal(images, originals), "explain must not modify its inputs"
    # deterministic: a second call (a fresh instance, same seed) gives the same maps
    again = _explain(name, tiny, images, targets)
    torch.testing.assert_close(maps, again)
    # batch-independent: each image alone gets the map it got inside the batch
    for i in range(len(images)):
        alone = _explain(name, tiny, images[i : i + 1], targets[i : i + 1])
        torch.testing.assert_close(alone[0], maps[i], rtol=1e-4, atol=1e-5)


def check_metadata(name):
    cls = explainers.registry.get(name)
    module = assert_named_after_module(explainers, name)
    assert cls.__doc__ and cls.__doc__.strip(), "the first docstring line is shown by `ls`"
    assert cls.version
    module_doc = module.__doc__
    assert module_doc and "(" in module_doc, "a plugin module opens with its citation"
    explainer = explainers.create_explainer(name)
    explainer.params()  # hyperparameters are recordable
    cost = explainer.cost()
    assert isinstance(cost, int) and cost >= 0, "cost(): model evaluations per image"


@pytest.mark.parametrize("name", explainers.list_explainers())
def test_contract(name, tiny):
    check_contract(name, tiny)


@pytest.mark.parametrize("name", explainers.list_explainers())
def test_plugin_metadata(name):
    check_metadata(name)


def test_template_is_a_working_plugin_that_joins_full_not_default(tiny, capsys):
    from benchmark.cli import main

    with load_template(explainers, "my_method"):
        check_metadata("my_method")
        check_contract("my_method", tiny)
        assert "my_method" in load_suite("full").explainer_names()
        assert "my_method" not in load_suite("default").explainer_names()
        assert main(["ls", "explainers"]) == 0
        assert "my_method" in capsys.readouterr().out
    assert "my_method" not in explainers.list_explainers()
