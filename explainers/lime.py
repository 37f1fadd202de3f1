"""LIME (Ribeiro et al., KDD 2016, https://arxiv.org/abs/1602.04938), through lime.lime_image."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from explainers import Explainer, image_seeds, register_explainer
from explainers._perturbation import numpy_seed, scorer, to_pixels
from explainers._segmentation import superpixels


def _batched_lime_explainer(**kwargs):
    """``LimeImageExplainer`` whose neighbourhood images are built with array operations.

    lime's ``data_labels`` builds each perturbed image in a Python loop over superpixels (and
    prints a progress bar); this override draws the same random bits from the same generator and
    builds the same images, a batch at a time (tests/explainers/test_lime.py checks equality).
    """
    from lime.lime_image import LimeImageExplainer

    class BatchedLimeImageExplainer(LimeImageExplainer):
        def data_labels(
            self, image, fudged_image, segments, classifier_fn, num_samples, batch_size=10
        ):
            n_features = np.unique(segments).shape[0]
            data = self.random_state.randint(0, 2, num_samples * n_features).reshape(
                (num_samples, n_features)
            )
            data[0, :] = 1  # the first sample is the unperturbed image
            labels = []
            for start in range(0, num_samples, batch_size):
                keep = data[start : start + batch_size][:, segments].astype(bool)  # [b,H,W]
                labels.extend(classifier_fn(np.where(keep[..., None], image, fudged_image)))
            return data, np.array(labels)

    return BatchedLimeImageExplainer(**kwargs)


@register_explainer(
    "lime", tags=("perturbation", "superpixel", "model-agnostic"), requires=("lime", "skimage")
)
@dataclass
class Lime(Explainer):
    """LIME on superpixels: each superpixel's weight for the target class, painted over its pixels.

    ``LimeImageExplainer.explain_instance`` with LIME's defaults (hidden superpixels take their
    mean colour, cosine distance, exponential kernel of width ``kernel_width``, ridge regression on
    all superpixels), our seeded ``segmentation`` (:func:`explainers._segmentation.superpixels`)
    and a per-image ``random_state`` from ``seed`` and the image's content. The regressed score
    is the target's ``output`` (softmax probability, LIME's convention, or logit). Grey images are
    explained as three equal channels. Budget: ``num_samples`` model evaluations per image
    (default 1000, in batches of ``batch_size``); segmentation and the regression cost far less.
    """

    version = "1"
    fast_params = {"num_samples": 24, "batch_size": 24}

    num_samples: int = 1000
    segmentation: str = "quickshift"  # "quickshift" (LIME's default) or "slic"
    n_segments: int = 50  # slic only
    kernel_width: float = 0.25
    hide_color: float | None = None  # None: superpixel mean; else a pixel value in [0,1]
    batch_size: int = 50
    output: str = "probability"  # "probability" (softmax) or "logit"
    seed: int = 0

    def cost(self) -> int:
        return self.num_samples

    def explain(self, model, images, targets):
        channels = images.shape[1]
        if channels not in (1, 3):
            raise ValueError(f"lime explains 1- or 3-channel images, got {channels} channels")
        pixels = to_pixels(model, images)
        if channels == 1:
            pixels = np.repeat(pixels, 3, axis=-1)
        predict = scorer(model, self.output, images.device)
        maps = []
        for image, target, seed in zip(
            pixels, targets.tolist(), image_seeds(images, self.seed), strict=True
        ):
            lime = _batched_lime_explainer(
                kernel_width=self.kernel_width, random_state=numpy_seed(seed)
            )
            explanation = lime.explain_instance(
                image,
                lambda batch: predict(batch[..., :channels]),
                labels=(target,),
                hide_color=self.hide_color,
                top_labels=None,
                num_features=10**9,  # keep every superpixel
                num_samples=self.num_samples,
                batch_size=self.batch_size,
                segmentation_fn=lambda x, seed=seed: superpixels(
                    x, self.segmentation, numpy_seed(seed), self.n_segments
                ),
            )
            weights = np.zeros(explanation.segments.max() + 1)
            for segment, weight in explanation.local_exp[target]:
                weights[segment] = weight
            maps.append(weights[explanation.segments])
        return torch.from_numpy(np.stack(maps).astype(np.float32)).to(images.device)
