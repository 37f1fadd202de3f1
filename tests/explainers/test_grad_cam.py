import numpy as np
import pytest
import torch
import torch.nn.functional as F

from explainers import create_explainer
from tests.models import TINY_MODELS, gap_linear


def test_grad_cam_equals_relu_cam_up_to_a_positive_factor_on_gap_linear():
    model = gap_linear()
    images, targets = torch.randn(3, 2, 8, 8), torch.tensor([0, 1, 2])
    cam = create_explainer("cam").explain(model, images, targets)
    grad_cam = create_explainer("grad_cam").explain(model, images, targets)
    # dy/dA_k(x,y) = w_k / (h*w), so Grad-CAM = ReLU(CAM) / (h*w)
    torch.testing.assert_close(grad_cam, F.relu(cam) / 64)


# The layer whose output each tiny model's Classifier explains, as pytorch-grad-cam wants it named.
REFERENCE_LAYERS = {
    "hooked_sequential": lambda net: net[4],
    "cnn_gap": lambda net: net.features,
    "timm_resnet": lambda net: net.layer4,
    "timm_densenet": lambda net: net.features,
}


@pytest.mark.parametrize("model_name", sorted(REFERENCE_LAYERS))
def test_grad_cam_agrees_with_pytorch_grad_cam(model_name):
    """Same maps as the reference library, up to the per-image min-max scaling it applies."""
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    tiny = TINY_MODELS[model_name]()
    torch.manual_seed(1)
    images = torch.randn(2, *tiny.input_shape)
    targets = torch.tensor([1, 3])
    ours = create_explainer("grad_cam").explain(tiny.model, images, targets).numpy()
    layer = REFERENCE_LAYERS[model_name](tiny.model.net)
    with GradCAM(model=tiny.model.net, target_layers=[layer]) as reference:
        theirs = reference(
            input_tensor=images, targets=[ClassifierOutputTarget(int(t)) for t in targets]
        )
    for a, b in zip(ours, theirs, strict=True):
        a = (a - a.min()) / (a.max() - a.min() + 1e-7)
        np.testing.assert_allclose(a, b, atol=2e-2)
