"""Acceptance on real photos: efficientnet_lite0 on the hand-masked VOC photos, energy pointing game.

Slow (27 minutes on 2 shared CPU cores, dominated by lite0's forward and backward passes): run
with ``pytest -m slow tests/explainers/test_perturbation_voc.py -s`` to see the table. Measured
(mean energy pointing game, N=18, budgets below): shap_gradient 0.409, shap_partition 0.443,
lime 0.447, silhouette 0.366, random 0.266.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explainers import create_explainer

SIZE = 224
# Budgets reduced from the defaults to fit CPU time; each still beats the random baseline.
BUDGETS = {
    "shap_gradient": {"nsamples": 10, "batch_size": 10},
    "shap_partition": {"max_evals": 150},
    "lime": {"num_samples": 150},
    "silhouette": {},
    "random": {},
}


def voc_batch(data_dir, model):
    """Images resized to 224x224 (normalised for ``model``) and the union of each image's masks."""
    from PIL import Image
    from pycocotools.coco import COCO

    from benchmark.data import coco_union_mask

    root = data_dir / "voc-masks"
    coco = COCO(str(root / "annotations.json"))
    images, masks = [], []
    for image_id in sorted(coco.getImgIds()):
        info = coco.loadImgs(image_id)[0]
        union = coco_union_mask(coco, info).astype(np.uint8)
        pil = Image.open(root / "images" / info["file_name"]).convert("RGB")
        pixels = np.asarray(pil.resize((SIZE, SIZE), Image.BILINEAR), dtype=np.float32) / 255
        images.append(torch.from_numpy(pixels).permute(2, 0, 1))
        masks.append(np.asarray(Image.fromarray(union).resize((SIZE, SIZE), Image.NEAREST)))
    return model.normalize(torch.stack(images)), torch.from_numpy(np.stack(masks)).bool()


def energy_pointing(maps, masks):
    """Share of positive saliency mass inside the mask, per image (METRICS.md, Score-CAM)."""
    positive = maps.clamp(min=0)
    total = positive.sum(dim=(1, 2))
    inside = (positive * masks).sum(dim=(1, 2))
    return torch.where(total > 0, inside / total.clamp(min=1e-30), torch.zeros_like(total))


@pytest.mark.slow
def test_each_method_beats_random_on_lite0_voc(lite0, data_dir):
    images, masks = voc_batch(data_dir, lite0)
    assert masks.flatten(1).any(dim=1).all(), "every image has an object mask"
    targets = lite0.probabilities(images).argmax(dim=1)
    scores = {}
    for name, params in BUDGETS.items():
        maps = create_explainer(name, **params).explain(lite0, images, targets)
        scores[name] = energy_pointing(maps, masks).mean().item()
        print(f"{name:>15}: mean energy pointing game {scores[name]:.3f} (N={len(images)})")
    for name in BUDGETS:
        if name != "random":
            assert scores[name] > scores["random"], f"{name} does not beat the random baseline"
