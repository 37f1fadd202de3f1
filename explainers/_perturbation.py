"""Helpers shared by the perturbation explainers (shap_partition, lime): pixels in, scores out."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

OUTPUTS = ("probability", "logit")


def to_pixels(model, images: Tensor) -> np.ndarray:
    """Normalised model inputs [B,C,H,W] -> the model's pixel space, [B,H,W,C] float32 numpy.

    Pixels are in [0,1] for images that came from real data; they are not clipped (the model must
    see exactly the image being explained when nothing is masked).
    """
    pixels = model.denormalize(images.detach()).permute(0, 2, 3, 1)
    return pixels.to("cpu", torch.float32).contiguous().numpy()


def scorer(
    model, output: str, device: torch.device, scale: float = 1.0
) -> Callable[[np.ndarray], np.ndarray]:
    """A prediction function for perturbation libraries: ``[N,H,W,C]`` pixels (times ``scale``) ->
    scores ``[N,classes]`` (softmax probabilities or logits), float64; one forward pass per call,
    without gradients, on ``device`` (the images', where the model is)."""
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")

    @torch.no_grad()
    def predict(pixels: np.ndarray) -> np.ndarray:
        batch = torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.float32)).to(device)
        logits = model(model.normalize(batch.permute(0, 3, 1, 2) / scale)).float()
        scores = F.softmax(logits, dim=1) if output == "probability" else logits
        return scores.cpu().numpy().astype(np.float64)

    return predict


def numpy_seed(seed: int) -> int:
    """A 63-bit image seed folded into the 32-bit range numpy's legacy RandomState accepts."""
    return seed % 2**32


@contextlib.contextmanager
def seeded_globals(seed: int, device: torch.device):
    """torch's and numpy's global generators seeded for the block, then restored (for libraries
    that draw from them: captum's noise with torch.normal, GradientSHAP's and Quantus's np.random)."""
    state = np.random.get_state()
    devices = [device] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            np.random.seed(numpy_seed(seed))
            yield
    finally:
        np.random.set_state(state)
