from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from metrics import create_metric
from metrics.miou import otsu_threshold


def _call(name, saliency, masks, **params):
    images = torch.zeros(len(saliency), 3, *masks.shape[-2:])
    return create_metric(name, **params)(
        model=None,
        images=images,
        targets=torch.zeros(len(saliency), dtype=torch.long),
        saliency=saliency,
        masks=masks,
    )


def test_miou_hand_made():
    mask = torch.zeros(1, 10, 10, dtype=torch.bool)
    mask[0, :2, :] = True  # 20 pixels: the first two rows
    saliency = torch.arange(100.0, 0, -1).view(1, 10, 10)  # decreasing row-major: row 0 first
    scores = _call("miou", saliency, mask)
    assert scores["top5"].item() == pytest.approx(100 * 5 / 20)
    assert scores["top10"].item() == pytest.approx(100 * 10 / 20)
    assert scores["top20"].item() == pytest.approx(100.0)
    assert scores["top30"].item() == pytest.approx(100 * 20 / 30)
    assert scores["top50"].item() == pytest.approx(100 * 20 / 50)
    expected = [25, 50, 100, 200 / 3, 40]
    assert scores["top_mean"].item() == pytest.approx(sum(expected) / 5, rel=1e-6)
    assert scores["oracle"].item() == pytest.approx(100.0)  # k = |M| = 20


def test_oracle_and_otsu_on_two_level_map():
    mask = torch.zeros(1, 8, 8, dtype=torch.bool)
    mask[0, 2:5, 2:5] = True  # 9 pixels
    saliency = torch.zeros(1, 8, 8)
    saliency[0, 2:6, 2:6] = 1.0  # 16 pixels, a superset
    scores = _call("miou", saliency, mask)
    assert scores["otsu"].item() == pytest.approx(100 * 9 / 16)
    # oracle takes |M| = 9 of the 16 tied pixels, chosen by the seeded tie-break
    overlap = scores["oracle"].item() / 100 * 18 / (1 + scores["oracle"].item() / 100)
    assert overlap == pytest.approx(round(overlap), abs=1e-4) and 0 <= round(overlap) <= 9
    saliency[0, 2:5, 2:5] = 2.0  # the mask's pixels now rank first: oracle is perfect
    assert _call("miou", saliency, mask)["oracle"].item() == pytest.approx(100.0)
    assert _call("miou", saliency, mask)["top10"].item() == pytest.approx(100 * 6 / 9)


def test_otsu_matches_opencv():
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(0)
    for _ in range(5):
        values = np.concatenate([rng.normal(60, 20, 500), rng.normal(180, 30, 300)])
        values = np.uint8(np.clip(values, 0, 255)).reshape(20, 40)
        t, _ = cv2.threshold(values, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        assert otsu_threshold(values) == int(t)


def test_empty_masks_are_nan_never_hits():
    masks = torch.zeros(2, 10, 10, dtype=torch.bool)
    masks[1, 4, 4] = True
    saliency = torch.rand(2, 10, 10, generator=torch.Generator().manual_seed(0))
    for name in ("miou", "pointing_game", "energy_pointing_game"):
        scores = _call(name, saliency, masks)
        for values in scores.values():
            assert math.isnan(values[0].item()) and not math.isnan(values[1].item())


@pytest.mark.parametrize("offset,hit", [(14, True), (15, False), ((9, 12), False), ((9, 11), True)])
def test_pointing_game_strict_15px(offset, hit):
    dr, dc = offset if isinstance(offset, tuple) else (0, offset)
    mask = torch.zeros(1, 40, 40, dtype=torch.bool)
    mask[0, 5 + dr, 5 + dc] = True
    saliency = torch.zeros(1, 40, 40)
    saliency[0, 5, 5] = 1.0
    assert _call("pointing_game", saliency, mask)["hit"].item() == (100.0 if hit else 0.0)


def test_pointing_game_first_index_on_ties():
    mask = torch.zeros(1, 40, 40, dtype=torch.bool)
    mask[0, 0, 0] = True
    saliency = torch.zeros(1, 40, 40)
    saliency[0, 39, 39] = saliency[0, 1, 1] = 1.0  # tie: (1,1) comes first in row-major order
    assert _call("pointing_game", saliency, mask)["hit"].item() == 100.0
    saliency[0, 1, 1] = 0.5
    assert _call("pointing_game", saliency, mask)["hit"].item() == 0.0


def test_energy_pointing_game():
    mask = torch.zeros(1, 4, 4, dtype=torch.bool)
    mask[0, :2] = True
    saliency = torch.zeros(1, 4, 4)
    saliency[0, 0, 0], saliency[0, 3, 3], saliency[0, 2, 2] = 3.0, 1.0, -5.0  # negatives clipped
    assert _call("energy_pointing_game", saliency, mask)["energy"].item() == pytest.approx(75.0)
    assert _call("energy_pointing_game", -saliency.abs(), mask)["energy"].item() == 0.0


def test_maps_are_resized_to_the_mask_before_ranking():
    mask = torch.zeros(1, 8, 8, dtype=torch.bool)
    mask[0, :4, :4] = True
    small = torch.tensor([[[1.0, 0.0], [0.0, 0.0]]])
    assert _call("pointing_game", small, mask)["hit"].item() == 100.0
    assert _call("energy_pointing_game", small, mask)["energy"].item() > 50.0


def test_real_coco_masks(data_dir):
    """VOC masks through pycocotools: a map equal to the mask is perfect on every score."""
    coco_module = pytest.importorskip("pycocotools.coco")
    from benchmark.data import coco_union_mask

    coco = coco_module.COCO(str(data_dir / "voc-masks" / "annotations.json"))
    image_ids = sorted(coco.getImgIds())[:2]
    masks = [torch.from_numpy(coco_union_mask(coco, coco.imgs[i])) for i in image_ids]
    size = min(m.shape for m in masks)
    masks = torch.stack([m[: size[0], : size[1]] for m in masks])
    assert masks.flatten(1).any(1).all()
    perfect = masks.float()
    scores = _call("miou", perfect, masks)
    torch.testing.assert_close(scores["oracle"], torch.full((2,), 100.0))
    torch.testing.assert_close(scores["otsu"], torch.full((2,), 100.0))
    assert (_call("pointing_game", perfect, masks)["hit"] == 100.0).all()
    torch.testing.assert_close(
        _call("energy_pointing_game", perfect, masks)["energy"], torch.full((2,), 100.0)
    )
    inverted = _call("energy_pointing_game", 1.0 - perfect, masks)["energy"]
    assert (inverted == 0.0).all()
