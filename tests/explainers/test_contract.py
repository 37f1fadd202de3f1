"""Contract tests run for every registered explainer on every tiny model (no list to maintain)."""

from __future__ import annotations

import pytest
import torch

import explainers
from benchmark.models import FeatureLayerError


def _explain(name, tiny, images, targets):
    cls = explainers.registry.get(name)
    explainer = explainers.create_explainer(name, **cls.fast_params)
    try:
        return explainer.explain(tiny.model, images, targets)
    except FeatureLayerError as e:
        # Only CAM may refuse, only where the head is not GAP + linear, and it must say why.
        assert "cam" == name and not tiny.cam_able, f"{name} refused a model it should handle: {e}"
        assert "grad_cam" in str(e)
        pytest.skip(f"{name} refuses this head, as it should")


def _batch(tiny, n=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(n, *tiny.input_shape, generator=g)
    targets = torch.tensor([0, 3, 1, 4, 2][:n])
    return images, targets


@pytest.mark.parametrize("name", explainers.list_explainers())
def test_contract(name, tiny):
    images, targets = _batch(tiny)
    maps = _explain(name, tiny, images, targets)
    height, width = tiny.input_shape[1:]
    assert maps.shape == (3, height, width)
    assert maps.dtype == torch.float32
    assert not maps.requires_grad and maps.grad_fn is None
    assert torch.isfinite(maps).all()
    assert maps.device == images.device
    # deterministic: a second call (a fresh instance, same seed) gives the same maps
    again = _explain(name, tiny, images, targets)
    torch.testing.assert_close(maps, again)
    # batch-independent: each image alone gets the map it got inside the batch
    for i in range(len(images)):
        alone = _explain(name, tiny, images[i : i + 1], targets[i : i + 1])
        torch.testing.assert_close(alone[0], maps[i], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", explainers.list_explainers())
def test_plugin_metadata(name):
    cls = explainers.registry.get(name)
    assert cls.__module__ == f"explainers.{name}", "registry name = module name"
    assert cls.__doc__ and cls.__doc__.strip(), "the first docstring line is shown by `ls`"
    assert cls.version
    module_doc = __import__(cls.__module__, fromlist=["_"]).__doc__
    assert module_doc and "(" in module_doc, "a plugin module opens with its citation"
    explainers.create_explainer(name).params()  # hyperparameters are recordable
