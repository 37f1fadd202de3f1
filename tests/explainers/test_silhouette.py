import pytest
import torch

from explainers import create_explainer
from tests.models import identity_classifier


def _xray(bright=None, size=128, seed=0):
    """Dim noise on [0, 0.4], plus one bright block at (rows, cols) slices if given."""
    g = torch.Generator().manual_seed(seed)
    image = 0.4 * torch.rand(1, 1, size, size, generator=g)
    if bright is not None:
        image[0, 0][bright] = 0.9
    return image


@pytest.mark.parametrize("row", [0, 1])
@pytest.mark.parametrize("col", [0, 1])
def test_one_bright_quadrant_is_picked(row, col):
    band = slice(20 + 45 * row, 65 + 45 * row)  # the quadrants of the 20-110 band are 45 rows high
    image = _xray((band, slice(64 * col, 64 * (col + 1))))
    maps = create_explainer("silhouette").explain(None, image, torch.tensor([0]))[0]
    assert maps.max() == 4
    picked = maps == 4
    assert picked[band, 64 * col : 64 * (col + 1)].all()
    assert picked.sum() == 45 * 64, "exactly the quadrant"
    assert sorted(maps[20:110].unique().tolist()) == [1, 2, 3, 4], "every quadrant graded"
    assert (maps[:20] == 0).all() and (maps[110:] == 0).all(), "outside the band scores 0"


def test_the_brighter_half_is_chosen_before_the_brightest_quadrant():
    # The seed's rule: left half brighter overall, although the single brightest quadrant is right.
    image = _xray()
    image[0, 0, 20:110, :64] = 0.7
    image[0, 0, 20:65, 64:] = 0.9
    image[0, 0, 65:110, 64:] = 0.1
    maps = create_explainer("silhouette").explain(None, image, torch.tensor([0]))[0]
    assert maps[20:110, :64].min() > maps[20:110, 64:].max()


def test_four_by_four_grid_and_denormalisation():
    model = identity_classifier(std=0.25)
    image = _xray((slice(42, 65), slice(96, 128)))  # band rows 20|42|65|88|110: row 1, col 3
    maps = create_explainer("silhouette", grid=4).explain(
        model, model.normalize(image), torch.tensor([0])
    )[0]
    assert maps[42:65, 96:].eq(16).all() and (maps == 16).sum() == 23 * 32
    assert maps.unique().numel() == 17, "16 graded regions and the zero outside the band"


def test_a_grid_too_fine_for_the_image_is_refused():
    with pytest.raises(ValueError, match="lower grid"):
        create_explainer("silhouette", grid=8).explain(
            None, torch.rand(1, 1, 6, 6), torch.tensor([0])
        )
