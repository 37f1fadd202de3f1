"""A procedurally generated shape set with exact ground-truth masks (the offline default).

Each image is one object of a shape class (:data:`CLASS_NAMES`, the set's only list of them;
the card ``datasets/synthetic.toml`` gives the split sizes) drawn with hard edges on a cluttered,
textured background. The label is the shape; the mask is exactly the object's pixels. Position,
size, rotation, colours and textures are drawn independently of the label, so nothing but the
shape tells the classes apart and localisation metrics are exact here.

Images are 32x32: at 64x64 the seed CNNs (two conv layers, receptive field 10 px) did not
learn the shapes in a CPU budget of minutes; at 32x32 cnn_gap does.

Item ``i`` of a split depends only on (seed, split, i): every run, and every ``limit``, sees the
same images.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

CLASS_NAMES = ("circle", "square", "triangle", "cross")  # label k is CLASS_NAMES[k]
SIZE = 32
_SPLIT_CODES = {"train": 0, "test": 1, "val": 2}
VERSION = "5"  # bump whenever the images a seed gives change
_AXIS = np.arange(SIZE, dtype=np.float32)
_YY, _XX = np.meshgrid(_AXIS, _AXIS, indexing="ij")


def _smooth_field(rng: np.random.Generator, size: int, waves: int) -> np.ndarray:
    """A random texture in [0, 1]: a sum of ``waves`` random plane waves."""
    field = np.zeros((size, size), np.float32)
    for _ in range(waves):
        fy, fx = rng.uniform(-3, 3, 2) * (2 * np.pi / size)
        a, b = fy * _AXIS + rng.uniform(0, 2 * np.pi), fx * _AXIS
        # sin(a + b) = sin a cos b + cos a sin b: two outer products instead of size^2 sines
        field += np.outer(np.sin(a), np.cos(b)) + np.outer(np.cos(a), np.sin(b))
    return (field - field.min()) / (np.ptp(field) + 1e-6)


def _luma(rgb: np.ndarray) -> float:
    return float(rgb @ np.array([0.299, 0.587, 0.114], np.float32))


def _shape_mask(shape: int, rng: np.random.Generator, size: int) -> np.ndarray:
    """Exact boolean mask of one shape, tested at pixel centres in the shape's rotated frame."""
    r = rng.uniform(0.18, 0.28) * size  # circumradius-like scale
    cy, cx = rng.uniform(r + 1, size - r - 1, 2)
    theta = rng.uniform(-0.2, 0.2)  # upright, +-11 degrees
    dy, dx = _YY + 0.5 - cy, _XX + 0.5 - cx
    u = np.cos(theta) * dx + np.sin(theta) * dy  # rotated coordinates
    v = -np.sin(theta) * dx + np.cos(theta) * dy
    name = CLASS_NAMES[shape]
    if name == "circle":
        return u**2 + v**2 <= r**2
    if name == "square":
        half = r / np.sqrt(2) * 1.1
        return (np.abs(u) <= half) & (np.abs(v) <= half)
    if name == "triangle":  # equilateral, inside all three half-planes
        inside = np.ones_like(u, dtype=bool)
        for k in range(3):
            a = theta + k * 2 * np.pi / 3
            inside &= np.cos(a) * dx + np.sin(a) * dy <= r * 0.6
        return inside
    arm = r * 0.38  # cross: union of two bars
    return ((np.abs(u) <= arm) & (np.abs(v) <= r)) | ((np.abs(v) <= arm) & (np.abs(u) <= r))


def _item(
    seed: int, split: str, index: int, draw_object: bool = True
) -> tuple[np.ndarray, int, np.ndarray]:
    """(image uint8 [32,32,3], label, mask). ``draw_object=False`` gives the same image without
    its object (every random draw is still made), which is how the tests prove masks exact."""
    rng = np.random.default_rng([seed, _SPLIT_CODES[split], index])
    label = index % len(CLASS_NAMES)
    # Background: two nearby colours blended by a smooth texture, with a few soft blobs.
    c1 = rng.uniform(0, 1, 3).astype(np.float32)
    c2 = np.clip(c1 + rng.uniform(-0.3, 0.3, 3), 0, 1).astype(np.float32)
    t = _smooth_field(rng, SIZE, 4)[..., None]
    image = c1 * t + c2 * (1 - t)
    for _ in range(rng.integers(2, 5)):  # clutter: blurry blobs of random colour
        by, bx, bs = rng.uniform(0, SIZE, 2).tolist() + [rng.uniform(2, 5) * SIZE / 64]
        gy, gx = (np.exp(-((_AXIS - c) ** 2) / (2 * bs**2)) for c in (by, bx))
        weight = 0.7 * np.outer(gy, gx)[..., None]  # a separable Gaussian
        image = image * (1 - weight) + rng.uniform(0, 1, 3).astype(np.float32) * weight
    # Object: a colour far enough from the local background, modulated by its own stripes.
    mask = _shape_mask(label, rng, SIZE)
    background_mean = image[mask].mean(axis=0)
    colour = rng.uniform(0, 1, 3).astype(np.float32)
    if abs(_luma(colour) - _luma(background_mean)) < 0.3:  # keep the object visible in grey too
        colour = np.where(_luma(background_mean) > 0.5, colour * 0.3, 0.7 + colour * 0.3)
    stripes = 0.85 + 0.15 * _smooth_field(rng, SIZE, 2)[..., None]
    if draw_object:
        image = np.where(mask[..., None], colour * stripes, image)
    image += 0.03 * rng.standard_normal(image.shape, dtype=np.float32)  # sensor noise
    return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8), label, mask


@lru_cache(maxsize=8)
def generate(seed: int, split: str, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images uint8 [n,32,32,3], labels int64 [n], masks bool [n,32,32]) for ``split``."""
    if split not in _SPLIT_CODES:
        raise ValueError(f"synthetic has splits {', '.join(_SPLIT_CODES)}, not {split!r}")
    items = [_item(seed, split, i) for i in range(n)]
    images = np.stack([it[0] for it in items])
    labels = np.array([it[1] for it in items], dtype=np.int64)
    masks = np.stack([it[2] for it in items])
    for array in (images, labels, masks):
        array.setflags(write=False)
    return images, labels, masks


def cached_generate(seed: int, split: str, n: int, cache_dir=None) -> tuple[np.ndarray, ...]:
    """:func:`generate`, kept on disk under ``cache_dir`` (generation takes seconds per 1000)."""
    if cache_dir is None:
        return generate(seed, split, n)
    from pathlib import Path

    from benchmark.files import atomic_write

    path = Path(cache_dir) / f"synthetic-v{VERSION}-seed{seed}-{split}-{n}.npz"
    if path.is_file():
        try:
            with np.load(path) as f:
                return f["images"], f["labels"], f["masks"]
        except (OSError, ValueError, KeyError):
            path.unlink(missing_ok=True)  # a damaged cache file: regenerate it
    arrays = generate(seed, split, n)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, images=arrays[0], labels=arrays[1], masks=arrays[2])

    try:
        atomic_write(path, write)
    except OSError:
        pass  # a read-only cache only costs time
    return arrays
