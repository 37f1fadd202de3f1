import numpy as np
import torch

from explainers import create_explainer
from tests.models import linear_classifier, pixel_weights


def _linear():
    model = linear_classifier((2, 8, 8), 3)
    return model, pixel_weights(model)


def test_linear_model_without_background_gives_weight_times_input():
    # Expected gradients on a linear model from the all-zero baseline is exactly w * x, whatever
    # the interpolation points drawn: the closed form of integrated gradients.
    model, w = _linear()
    images, targets = torch.randn(2, 2, 8, 8), torch.tensor([2, 1])
    maps = create_explainer("shap_gradient", nsamples=7).explain(model, images, targets)
    expected = torch.stack([(w[t] * x).sum(0) for x, t in zip(images, targets, strict=True)])
    torch.testing.assert_close(maps, expected, atol=1e-5, rtol=1e-5)


def test_prepared_background_is_the_reference():
    model, w = _linear()
    reference = torch.randn(1, 2, 8, 8)
    explainer = create_explainer("shap_gradient", nsamples=5, background_size=3)
    explainer.prepare(model=model, background=reference.repeat(10, 1, 1, 1))
    images = torch.randn(2, 2, 8, 8)
    maps = explainer.explain(model, images, torch.tensor([0, 0]))
    expected = (w[0] * (images - reference)).sum(1)
    torch.testing.assert_close(maps, expected, atol=1e-5, rtol=1e-5)


def test_numpy_global_state_is_left_alone():
    model, _ = _linear()
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    create_explainer("shap_gradient", nsamples=3).explain(
        model, torch.randn(1, 2, 8, 8), torch.tensor([0])
    )
    assert (np.random.get_state()[1] == before).all()
