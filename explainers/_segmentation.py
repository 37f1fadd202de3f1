"""Superpixel segmentation for region explainers (LIME), with settings that scale with image size."""

from __future__ import annotations

import numpy as np

METHODS = ("quickshift", "slic")


def superpixels(image: np.ndarray, method: str, seed: int, n_segments: int = 50) -> np.ndarray:
    """Segment an RGB image [H,W,3] (pixels, clipped to [0,1] here) -> labels [H,W] in 0..K-1.

    ``quickshift`` is LIME's default (kernel_size=4, max_dist=200, ratio=0.2, tuned for ~224 px);
    from 64 px up both distances shrink with the image side (~30-40 superpixels at 64-224 px);
    smaller images (28x28 Fashion-MNIST, 32x32) get their own setting, kernel_size=1 and
    max_dist=8 (~10-35 superpixels), as the scaled one merges nearly everything. ``slic`` asks for
    ``n_segments`` superpixels at any size. ``seed`` feeds quickshift's tie-breaking noise
    (scikit-image's ``rng``; LIME's own seed argument no longer reaches it).
    """
    from skimage.segmentation import quickshift, slic

    image = np.clip(image, 0.0, 1.0).astype(np.float64)
    side = min(image.shape[:2])
    if method == "quickshift":
        kernel_size, max_dist = (4 * side / 224, 200 * side / 224) if side >= 64 else (1.0, 8.0)
        labels = quickshift(
            image, kernel_size=kernel_size, max_dist=max_dist, ratio=0.2, rng=seed % 2**31
        )  # skimage's Cython takes a C int
    elif method == "slic":
        labels = slic(image, n_segments=n_segments, compactness=10.0, start_label=0)
    else:
        raise ValueError(f"segmentation must be one of {METHODS}, got {method!r}")
    return np.unique(labels, return_inverse=True)[1].reshape(labels.shape)  # LIME needs 0..K-1
