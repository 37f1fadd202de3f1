import pytest
import torch
from torch import nn

from benchmark.models import Classifier, FeatureLayerError
from explainers import create_explainer


def gap_linear_model(in_chans=2, k=4, classes=3):
    """conv (no downsampling) -> GAP -> linear: feature map = image size, so no upsampling."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(in_chans, k, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(k, classes))  # fmt: skip
    return Classifier.from_module(net, (0,) * in_chans, (1,) * in_chans, feature_layer="0",
                                  classifier_layer="3")  # fmt: skip


def test_cam_is_class_weighted_sum_of_feature_maps():
    model = gap_linear_model()
    images, targets = torch.randn(2, 2, 8, 8), torch.tensor([0, 2])
    cam = create_explainer("cam").explain(model, images, targets)
    features = model.net[0](images)
    w = model.net[3].weight
    expected = torch.einsum("bk,bkhw->bhw", w[targets], features)
    torch.testing.assert_close(cam, expected.detach())
    # GAP of the CAM plus the bias is the logit (the paper's identity)
    logits = model(images).detach()
    torch.testing.assert_close(cam.mean((1, 2)) + model.net[3].bias[targets].detach(),
                               logits.gather(1, targets[:, None])[:, 0])  # fmt: skip


def test_cam_refuses_a_head_that_is_not_gap_linear():
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 3))  # fmt: skip
    model = Classifier.from_module(net, (0,), (1,), feature_layer="0", classifier_layer="5")
    with pytest.raises(FeatureLayerError, match="grad_cam"):
        create_explainer("cam").explain(model, torch.randn(2, 1, 8, 8), torch.tensor([0, 1]))


def test_cam_without_feature_layer_says_how_to_name_one():
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 3))
    model = Classifier.from_module(net, (0,), (1,))
    with pytest.raises(FeatureLayerError, match="feature_layer="):
        create_explainer("cam").explain(model, torch.randn(1, 1, 8, 8), torch.tensor([0]))
