import numpy as np
import pytest
import torch

from explainers import create_explainer, image_seeds
from explainers._perturbation import numpy_seed, to_pixels
from explainers._segmentation import superpixels
from explainers.lime import _batched_lime_explainer
from tests.models import linear_classifier, pixel_weights


def test_batched_neighbourhood_equals_limes_own():
    from lime.lime_image import LimeImageExplainer

    rng = np.random.default_rng(0)
    image = rng.random((12, 10, 3))
    fudged = rng.random((12, 10, 3))
    segments = np.repeat(np.arange(6), 20).reshape(12, 10)
    seen = {"lime": [], "ours": []}

    def recorder(key):
        def classify(batch):
            seen[key].append(np.array(batch))
            return batch.reshape(len(batch), -1)[:, :4]

        return classify

    theirs = LimeImageExplainer(random_state=7).data_labels(
        image, fudged, segments, recorder("lime"), num_samples=23, batch_size=5
    )
    ours = _batched_lime_explainer(random_state=7).data_labels(
        image, fudged, segments, recorder("ours"), num_samples=23, batch_size=5
    )
    np.testing.assert_array_equal(theirs[0], ours[0])
    np.testing.assert_array_equal(theirs[1], ours[1])
    assert [len(b) for b in seen["lime"]] == [len(b) for b in seen["ours"]] == [5] * 4 + [3]


def test_linear_model_weights_are_each_superpixels_contribution():
    # A linear logit is exactly linear in the superpixels' on/off bits, so LIME's weighted ridge
    # recovers c_k = sum_{i in k} w_i (x_i - hidden_i) up to its small ridge shrinkage.
    model = linear_classifier((3, 24, 24), 2)
    pixels = torch.rand(1, 3, 24, 24)
    images = model.normalize(pixels)
    maps = create_explainer("lime", num_samples=2000, output="logit", hide_color=0.5).explain(
        model, images, torch.tensor([1])
    )
    contribution = (pixel_weights(model)[1] * images[0]).sum(0)  # hidden = 0
    seed = numpy_seed(image_seeds(images, 0)[0])  # the explainer's own segmentation
    segments = superpixels(to_pixels(model, images)[0], "quickshift", seed)
    assert segments.max() >= 3, "the test needs several superpixels"
    for k in range(segments.max() + 1):
        inside = torch.from_numpy(segments == k)
        c_k = contribution[inside].sum().item()
        assert maps[0][inside].unique().numel() == 1, "one weight per superpixel"
        assert maps[0][inside][0].item() == pytest.approx(c_k, rel=0.05, abs=0.02)


def test_slic_option_and_grey_images():
    model = linear_classifier((1, 28, 28), 2)
    images = model.normalize(torch.rand(1, 1, 28, 28))
    maps = create_explainer("lime", num_samples=50, segmentation="slic").explain(
        model, images, torch.tensor([0])
    )
    assert maps.shape == (1, 28, 28) and torch.isfinite(maps).all()


def test_refuses_four_channel_images_and_unknown_segmentations():
    model = linear_classifier((4, 8, 8), 2)
    with pytest.raises(ValueError, match="channels"):
        create_explainer("lime").explain(model, torch.zeros(1, 4, 8, 8), torch.tensor([0]))
    with pytest.raises(ValueError, match="quickshift"):
        superpixels(np.zeros((8, 8, 3)), "watershed", 0)
