import torch

from explainers import create_explainer
from tests.models import linear_classifier, pixel_weights


def linear_model():
    return linear_classifier((3, 5, 5), 4, mean=0.0, std=1.0)


def test_signed_gradient_times_input_is_the_exact_contribution_of_a_linear_model():
    model = linear_model()
    images, targets = torch.randn(2, 3, 5, 5), torch.tensor([1, 3])
    maps = create_explainer("gradient_pixel", signed=True).explain(model, images, targets)
    w = pixel_weights(model)[targets]
    torch.testing.assert_close(maps, (w * images).sum(1))
    # contributions add up to the logit minus the bias
    logits = model(images).detach().gather(1, targets[:, None])[:, 0]
    torch.testing.assert_close(maps.sum((1, 2)) + model.net[1].bias.detach()[targets], logits)


def test_default_map_is_the_magnitude_summed_over_channels():
    model = linear_model()
    images, targets = torch.randn(2, 3, 5, 5), torch.tensor([0, 2])
    maps = create_explainer("gradient_pixel").explain(model, images, targets)
    w = pixel_weights(model)[targets]
    torch.testing.assert_close(maps, (w * images).abs().sum(1))
