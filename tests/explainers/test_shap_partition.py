import cv2
import pytest
import torch

from explainers import create_explainer
from tests.models import linear_classifier, pixel_weights


def test_linear_model_owen_values_are_weight_times_difference_to_the_blur():
    # On a linear model every coalition game is additive, so the Owen values are exact once the
    # budget covers the whole partition tree: phi_i = w_i * (x_i - blur(x)_i) in model inputs.
    model = linear_classifier((1, 4, 4), 3, std=0.25)
    images = model.normalize(torch.rand(2, 1, 4, 4))
    targets = torch.tensor([2, 0])
    maps = create_explainer(
        "shap_partition", max_evals=1000, output="logit", blur_fraction=0.5
    ).explain(model, images, targets)
    w = pixel_weights(model)[:, 0]
    for x, t, m in zip(images, targets, maps, strict=True):
        pixels = model.denormalize(x[None])[0, 0].numpy() * 255
        blurred = cv2.blur(pixels[..., None], (2, 2)) / 255  # the masker's box blur, 2 = 0.5 x 4
        expected = w[t] * (x[0] - model.normalize(torch.from_numpy(blurred).view(1, 1, 4, 4))[0, 0])
        torch.testing.assert_close(m, expected.float(), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("masker", ["inpaint_telea", "inpaint_ns"])
def test_inpainting_maskers_run_on_grey_and_colour(masker):
    for channels in (1, 3):
        model = linear_classifier((channels, 16, 16), 2)
        images = model.normalize(torch.rand(1, channels, 16, 16))
        maps = create_explainer("shap_partition", max_evals=40, masker=masker).explain(
            model, images, torch.tensor([1])
        )
        assert maps.shape == (1, 16, 16) and torch.isfinite(maps).all() and maps.abs().sum() > 0


def test_unknown_masker_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="blur"):
        create_explainer("shap_partition", masker="zeros").explain(
            None, torch.zeros(1, 1, 4, 4), torch.tensor([0])
        )
