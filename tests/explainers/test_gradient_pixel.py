import torch
from torch import nn

from benchmark.models import Classifier
from explainers import create_explainer


def linear_model():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 5 * 5, 4))
    return Classifier.from_module(net, (0,) * 3, (1,) * 3)


def test_signed_gradient_times_input_is_the_exact_contribution_of_a_linear_model():
    model = linear_model()
    images, targets = torch.randn(2, 3, 5, 5), torch.tensor([1, 3])
    maps = create_explainer("gradient_pixel", signed=True).explain(model, images, targets)
    w = model.net[1].weight.detach()[targets].view(2, 3, 5, 5)
    torch.testing.assert_close(maps, (w * images).sum(1))
    # contributions add up to the logit minus the bias
    logits = model(images).detach().gather(1, targets[:, None])[:, 0]
    torch.testing.assert_close(maps.sum((1, 2)) + model.net[1].bias.detach()[targets], logits)


def test_default_map_is_the_magnitude_summed_over_channels():
    model = linear_model()
    images, targets = torch.randn(2, 3, 5, 5), torch.tensor([0, 2])
    maps = create_explainer("gradient_pixel").explain(model, images, targets)
    w = model.net[1].weight.detach()[targets].view(2, 3, 5, 5)
    torch.testing.assert_close(maps, (w * images).abs().sum(1))
