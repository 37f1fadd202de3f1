import pytest
import torch

from benchmark.models import FeatureLayerError
from explainers import create_explainer
from tests.models import gap_linear, linear_classifier, mlp_head_cnn


def test_cam_is_class_weighted_sum_of_feature_maps():
    model = gap_linear()
    images, targets = torch.randn(2, 2, 8, 8), torch.tensor([0, 2])
    cam = create_explainer("cam").explain(model, images, targets)
    features = model.net[0](images)
    w = model.net[3].weight
    expected = torch.einsum("bk,bkhw->bhw", w[targets], features)
    torch.testing.assert_close(cam, expected.detach())
    # GAP of the CAM plus the bias is the logit (the paper's identity)
    logits = model(images).detach()
    torch.testing.assert_close(
        cam.mean((1, 2)) + model.net[3].bias[targets].detach(),
        logits.gather(1, targets[:, None])[:, 0],
    )


def test_cam_refuses_a_head_that_is_not_gap_linear():
    model = mlp_head_cnn()
    with pytest.raises(FeatureLayerError, match="grad_cam"):
        create_explainer("cam").explain(model, torch.randn(2, 1, 8, 8), torch.tensor([0, 1]))


def test_cam_without_feature_layer_says_how_to_name_one():
    model = linear_classifier((1, 8, 8), 3, mean=0.0, std=1.0)
    with pytest.raises(FeatureLayerError, match="feature_layer="):
        create_explainer("cam").explain(model, torch.randn(1, 1, 8, 8), torch.tensor([0]))
