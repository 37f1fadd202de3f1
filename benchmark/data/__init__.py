"""Datasets as batches the runner consumes: ``load_dataset(name, split)`` -> :class:`Dataset`.

Each dataset has a card, ``datasets/NAME.toml`` (data only: format, files with URLs and
checksums, licence, class names, image size, mask source); the loaders live here. Files are found
in ``$BENCHMARK_DATA_DIR/<folder>`` (a local copy), else in the user cache
(``$BENCHMARK_CACHE_DIR``, default ``~/.cache/explainer-benchmark``), else downloaded there and
verified. ``synthetic`` needs no files at all: the harness generates it from a seed.

Any folder of images with a COCO annotation file (labelme and CVAT export COCO) is a dataset too::

    load_dataset("coco-folder", data_dir="my_photos")   # my_photos/annotations.json + images
    load_dataset("my_photos/")                           # the same, by path

The opt-in full PASCAL VOC 2012 validation set (1,449 images with masks, a 2 GB download) is
``voc2012-val``, fetched only on request: ``python -m benchmark.data fetch voc2012-val``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import _loaders
from ._base import Batch, DataChecksumError, DataError, Dataset
from ._files import cache_root, data_root, download, list_datasets, locate, read_card, verify

__all__ = [
    "Batch",
    "DataChecksumError",
    "DataError",
    "Dataset",
    "cache_root",
    "data_root",
    "download",
    "list_datasets",
    "load_dataset",
    "locate",
    "read_card",
    "verify",
]


def load_dataset(
    name: str,
    split: str = "test",
    *,
    image_size: int | tuple[int, int] | None = None,
    channels: int | None = None,
    limit: int | None = None,
    data_dir: str | Path | None = None,
    seed: int = 0,
    annotations: str | Path | None = None,
) -> Dataset:
    """One split of a dataset, in a fixed order.

    ``image_size`` resizes images (bilinear) and masks (nearest); ``channels`` converts 1 <-> 3;
    ``limit`` keeps the first N items; ``data_dir`` is the dataset's own folder (overrides
    ``$BENCHMARK_DATA_DIR``); ``seed`` only matters for ``synthetic``; ``annotations`` names the
    COCO file of a coco-folder (default: ``annotations.json`` or the folder's only ``*.json``).
    Raises :class:`DataError` (naming the file and what to do) when files are missing or corrupt.
    """
    data_dir = Path(data_dir).expanduser() if data_dir is not None else None
    if name not in list_datasets() and ("/" in name or Path(name).expanduser().is_dir()):
        data_dir, name = Path(name).expanduser(), "coco-folder"  # a user's folder, by path
    card = read_card(name)
    kw: dict[str, Any] = {"image_size": image_size, "channels": channels}
    fmt = card.get("format")
    if fmt == "idx":
        return _loaders.load_fashion_mnist(card, split, data_dir, limit, **kw)
    if fmt == "npz":
        return _loaders.load_npz(card, split, data_dir, limit, **kw)
    if fmt == "synthetic":
        return _loaders.load_synthetic(card, split, data_dir, limit, seed=seed, **kw)
    if fmt == "image-folder":
        return _loaders.load_imagenet50(card, split, data_dir, limit, **kw)
    if fmt == "coco" and card.get("files"):  # a card that lists (and checksums) its files
        annotations_path = locate(card, "annotations", data_dir)[0]
        return _loaders.load_coco(
            card, split, annotations_path, annotations_path.parent, limit,
            lambda file_name: locate(card, f"image:{file_name}", data_dir)[0], **kw,
        )  # fmt: skip
    if fmt == "coco":  # a user's folder
        if data_dir is None:
            raise ValueError(
                "coco-folder needs the folder: load_dataset('coco-folder', data_dir=FOLDER) "
                "(FOLDER holds the images, or an images/ subfolder, and a COCO json)"
            )
        annotations_path = _find_annotations(data_dir, annotations)
        image_dir = data_dir / "images" if (data_dir / "images").is_dir() else data_dir

        def resolve(file_name: str) -> Path:  # file names may carry their folder (labelme, CVAT)
            direct = annotations_path.parent / file_name
            return direct if direct.is_file() else image_dir / file_name

        card = card | {"folder": str(data_dir)}
        return _loaders.load_coco(card, split, annotations_path, image_dir, limit, resolve, **kw)
    if fmt == "voc":
        return _loaders.load_voc(card, split, data_dir, limit, **kw)
    raise ValueError(f"dataset card {name!r} has unknown format {fmt!r}")


def _find_annotations(folder: Path, annotations: str | Path | None) -> Path:
    if annotations is not None:
        path = Path(annotations)
        return path if path.is_absolute() or path.exists() else folder / path
    if not folder.is_dir():
        raise DataError(f"coco-folder {folder} does not exist: pass a folder of images + COCO json")
    if (folder / "annotations.json").is_file():
        return folder / "annotations.json"
    candidates = sorted(folder.glob("*.json"))
    if len(candidates) != 1:
        found = ", ".join(p.name for p in candidates) or "none"
        raise DataError(
            f"coco-folder {folder}: expected annotations.json or exactly one *.json COCO file "
            f"(found {found}); pass annotations=PATH"
        )
    return candidates[0]
