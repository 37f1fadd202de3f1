"""One loader per card ``format``: IDX (Fashion-MNIST), MedMNIST npz, the synthetic generator, a
folder of images, COCO, PASCAL VOC. :data:`LOADERS` maps the format to its loader.

Every loader is called as ``loader(card, split, data_dir, limit, seed=..., annotations=...,
image_size=..., channels=...)``; it uses the options its format has and passes ``image_size`` and
``channels`` on to its :class:`Dataset`.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from . import synthetic
from ._base import ArrayDataset, DataError, Dataset, Item, take, to_pixels
from ._files import cache_root, locate, roots

# -- arrays ------------------------------------------------------------------------------------------


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (gzip or raw) as a numpy array; DataError naming the file if malformed."""
    try:
        raw = (gzip.open if path.suffix == ".gz" else open)(path, "rb").read()
    except (OSError, EOFError) as e:
        raise DataError(f"cannot read IDX file {path} ({e}); delete it and fetch it again") from e
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] != 0x08:
        raise DataError(f"{path} is not a uint8 IDX file; delete it and fetch it again")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise DataError(f"IDX file {path} is truncated; delete it and fetch it again")
    return data.reshape(dims)


def load_fashion_mnist(
    card: dict[str, Any], split: str, data_dir, limit, *, seed=0, annotations=None, **kw
) -> Dataset:
    prefix = {"train": "train", "test": "t10k"}.get(split)
    if prefix is None:
        raise ValueError(f"fashion-mnist has splits train and test, not {split!r}")
    images = read_idx(locate(card, f"{prefix}-images", data_dir)[0])
    labels = read_idx(locate(card, f"{prefix}-labels", data_dir)[0])
    n = len(labels) if limit is None else min(limit, len(labels))
    images, labels = images[:n], labels[:n]
    # The object mask is the garment's non-background ("instance") pixels.
    masks = images > int(card.get("mask_threshold", 0))
    ids = [f"{split}/{i:05d}" for i in range(n)]
    return ArrayDataset(
        card["name"], split, ids, card["class_names"], images, labels, masks, card=card, **kw
    )


def load_npz(
    card: dict[str, Any], split: str, data_dir, limit, *, seed=0, annotations=None, **kw
) -> Dataset:
    path = locate(card, "npz", data_dir)[0]
    try:
        with np.load(path) as f:
            if f"{split}_images" not in f.files:
                splits = sorted(k[: -len("_images")] for k in f.files if k.endswith("_images"))
                raise ValueError(f"{card['name']} has splits {', '.join(splits)}, not {split!r}")
            images, labels = f[f"{split}_images"], f[f"{split}_labels"].reshape(-1)
    except (OSError, EOFError) as e:
        raise DataError(f"cannot read {path} ({e}); delete it and fetch it again") from e
    n = len(labels) if limit is None else min(limit, len(labels))
    ids = [f"{split}/{i:05d}" for i in range(n)]
    return ArrayDataset(
        card["name"], split, ids, card["class_names"], images[:n], labels[:n], None, card=card, **kw
    )


def load_synthetic(
    card: dict[str, Any], split: str, data_dir, limit, *, seed=0, annotations=None, **kw
) -> Dataset:
    sizes = {k: int(v) for k, v in card["split_sizes"].items()}  # the card lists the splits
    if split not in sizes:
        raise ValueError(f"synthetic has splits {', '.join(sizes)}, not {split!r}")
    n = sizes[split] if limit is None else min(limit, sizes[split])
    images, labels, masks = synthetic.cached_generate(seed, split, n, cache_root() / "synthetic")
    ids = [f"{split}/{i:05d}" for i in range(n)]
    card = card | {"seed": seed}
    return ArrayDataset(
        card["name"], split, ids, synthetic.CLASS_NAMES, images, labels, masks, card=card, **kw
    )


# -- image files ----------------------------------------------------------------------------------------


def read_image(path: Path) -> np.ndarray:
    """An image file as uint8 RGB [H,W,3]; DataError naming the file if missing or corrupt."""
    try:
        with Image.open(path) as im:
            return np.array(im.convert("RGB"))  # a writable copy
    except FileNotFoundError as e:
        raise DataError(
            f"image {path} not found; restore the file or fetch the dataset again"
        ) from e
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DataError(
            f"image {path} is corrupt or not an image ({type(e).__name__}: {e}); replace it with "
            "a good copy or delete it from the annotations"
        ) from e


class FileDataset(Dataset):
    """Images read one by one from files, with optional masks from a callback."""

    def __init__(
        self,
        name,
        split,
        ids: list[str],
        resolve: Callable[[int], Path],
        labels: list[int],
        class_names,
        mask_fn=None,
        **kw,
    ) -> None:
        super().__init__(name, split, ids, class_names, has_masks=mask_fn is not None, **kw)
        self.resolve, self.labels, self.mask_fn = resolve, labels, mask_fn

    def _item(self, index: int) -> Item:
        path = self.resolve(index)  # verified against the card where it lists the file
        image = read_image(path)
        mask = None
        if self.mask_fn is not None:
            mask = self.mask_fn(index)
            if mask.shape != image.shape[:2]:
                raise DataError(
                    f"mask of {path} is {mask.shape[1]}x{mask.shape[0]} (WxH) but the image is "
                    f"{image.shape[1]}x{image.shape[0]}: fix the image's width/height or the "
                    "segmentation in the annotation file"
                )
            mask = torch.from_numpy(mask.astype(bool))
        return Item(to_pixels(image), self.labels[index], mask)


def load_imagenet50(
    card: dict[str, Any], split: str, data_dir, limit, *, seed=0, annotations=None, **kw
) -> Dataset:
    if split not in ("test", "all"):
        raise ValueError(f"imagenet50 has one split, 'test', not {split!r}")
    entries = take([f for f in card["files"] if f["role"].startswith("image:")], limit)
    ids = [e["role"][len("image:") :] for e in entries]  # SHAP's order, as the card lists them
    labels = [-1] * len(ids)  # 43 of the 50 synsets are not ImageNet-1k classes: no labels
    card = card | {
        "imagenet_index": {i: int(e["imagenet_index"]) for i, e in zip(ids, entries, strict=True)}
    }
    return FileDataset(
        card["name"],
        split,
        ids,
        lambda i: locate(card, f"image:{ids[i]}", data_dir)[0],
        labels,
        [],
        card=card,
        **kw,
    )


# -- COCO folders ----------------------------------------------------------------------------------------


def coco_union_mask(
    coco: Any, image: dict[str, Any], source: str | Path = "the annotations"
) -> np.ndarray:
    """Bool [H,W]: the union of pycocotools ``annToMask`` over every annotation of the image
    record ``image`` (crowd ones included); DataError naming ``source`` if a mask's size
    differs from the record's."""
    union = np.zeros((image["height"], image["width"]), dtype=bool)
    for ann in coco.loadAnns(coco.getAnnIds(imgIds=image["id"], iscrowd=None)):
        m = coco.annToMask(ann).astype(bool)
        if m.shape != union.shape:
            raise DataError(
                f"annotation {ann['id']} of image {image['file_name']} is "
                f"{m.shape[1]}x{m.shape[0]} (WxH) but the image record says "
                f"{image['width']}x{image['height']}: fix the segmentation in {source}"
            )
        union |= m
    return union


def load_coco_folder(
    card: dict[str, Any], split: str, data_dir, limit, *, seed=0, annotations=None, **kw
) -> Dataset:
    """A card that lists (and checksums) its files, or a user's folder (``data_dir``) holding the
    images, or an ``images/`` subfolder, and a COCO json (``annotations``, default
    ``annotations.json`` or the folder's only ``*.json``)."""
    if card.get("files"):
        annotations_path = locate(card, "annotations", data_dir)[0]
        return load_coco(
            card,
            split,
            annotations_path,
            annotations_path.parent,
            limit,
            lambda file_name: locate(card, f"image:{file_name}", data_dir)[0],
            **kw,
        )
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
    return load_coco(card, split, annotations_path, image_dir, limit, resolve, **kw)


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


def load_coco(
    card: dict[str, Any],
    split: str,
    annotations: Path,
    image_dir: Path,
    limit,
    resolve_image: Callable[[str], Path] | None = None,
    **kw,
) -> Dataset:
    """Images listed in a COCO ``annotations`` file, read from ``image_dir`` (or through
    ``resolve_image(file_name)``, which verifies a card's files). Mask: :func:`coco_union_mask`;
    label: the category of the image's largest annotation, as an index into the categories
    sorted by id (their ids: ``card["category_ids"]``)."""
    from pycocotools.coco import COCO

    try:
        with open(annotations) as f:
            data = json.load(f)
    except FileNotFoundError as e:
        raise DataError(
            f"COCO annotation file {annotations} not found: a coco-folder needs images plus one "
            "COCO json (labelme and CVAT export it); pass its path with annotations=..."
        ) from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{annotations} is not valid JSON ({e}); re-export it") from e
    if not isinstance(data, dict) or not {"images", "annotations", "categories"} <= data.keys():
        raise DataError(f"{annotations} is not a COCO file (needs images, annotations, categories)")
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        coco.createIndex()
    categories = sorted(data["categories"], key=lambda c: c["id"])
    class_of = {c["id"]: i for i, c in enumerate(categories)}
    images = sorted(data["images"], key=lambda im: im["file_name"])
    images = take(images, limit)
    resolve_image = resolve_image or (lambda file_name: image_dir / file_name)

    def annotations_of(image: dict) -> list[dict]:
        return coco.loadAnns(coco.getAnnIds(imgIds=image["id"], iscrowd=None))

    def label(image: dict) -> int:
        anns = annotations_of(image)
        return class_of[max(anns, key=lambda a: a.get("area", 0))["category_id"]] if anns else -1

    ids = [im["file_name"] for im in images]
    card = card | {
        "categories": categories,
        "category_ids": {
            im["file_name"]: sorted({a["category_id"] for a in annotations_of(im)}) for im in images
        },
    }
    return FileDataset(
        card["name"],
        split,
        ids,
        lambda i: resolve_image(ids[i]),
        [label(im) for im in images],
        [c["name"] for c in categories],
        lambda i: coco_union_mask(coco, images[i], annotations),
        card=card,
        **kw,
    )


# -- the opt-in PASCAL VOC 2012 segmentation set -------------------------------------------------------


def voc_root(card: dict[str, Any], data_dir: Path | None) -> Path:
    """The extracted ``VOCdevkit/VOC2012`` folder; DataError with the opt-in command if absent."""
    candidates = roots(card, data_dir)
    for base in candidates:
        for root in (base / "VOCdevkit" / "VOC2012", base):
            if (root / "ImageSets" / "Segmentation").is_dir():
                return root
    raise DataError(
        f"{card['name']}: no VOCdevkit/VOC2012 found in {', '.join(map(str, candidates))}. It is "
        f"an explicit opt-in (a 2 GB download): {card['how_to_get']}"
    )


def load_voc(
    card: dict[str, Any], split: str, data_dir, limit, *, seed=0, annotations=None, **kw
) -> Dataset:
    """PASCAL VOC segmentation: mask = pixels of any object class (void and background excluded),
    label = the class with the most pixels."""
    root = voc_root(card, data_dir)
    list_file = root / "ImageSets" / "Segmentation" / f"{split}.txt"
    if not list_file.is_file():
        raise ValueError(f"{card['name']} has no split {split!r} ({list_file} is missing)")
    names = take(list_file.read_text().split(), limit)
    class_maps: dict[int, np.ndarray] = {}

    def class_map(index: int) -> np.ndarray:
        if index not in class_maps:
            path = root / "SegmentationClass" / f"{names[index]}.png"
            try:
                with Image.open(path) as im:
                    class_maps.clear()  # keep one: labels and masks ask for the same image
                    class_maps[index] = np.asarray(im)  # palette indices: 0 bg, 1-20, 255 void
            except (OSError, SyntaxError, ValueError) as e:
                raise DataError(f"cannot read VOC mask {path} ({e}); extract it again") from e
        return class_maps[index]

    def mask(index: int) -> np.ndarray:
        m = class_map(index)
        return (m >= 1) & (m <= 20)

    def label(index: int) -> int:
        counts = np.bincount(class_map(index).ravel(), minlength=256)[1:21]
        return int(counts.argmax()) if counts.any() else -1

    class VocDataset(FileDataset):
        def _item(self, index: int) -> Item:
            item = super()._item(index)
            item.label = label(index)
            return item

    files = [root / "JPEGImages" / f"{n}.jpg" for n in names]
    return VocDataset(
        card["name"],
        split,
        names,
        lambda i: files[i],
        [-1] * len(names),
        card["class_names"],
        mask,
        card=card,
        **kw,
    )


def fetch_voc(card: dict[str, Any], keep_archive: bool = False) -> Path:
    """Download the VOC 2012 trainval archive (md5-verified) and extract its segmentation part."""
    archive, _ = locate(card, "archive", None, fetch=True)
    dest = archive.parent
    with tarfile.open(archive) as tar:
        wanted = []
        for member in tar:
            parts = member.name.split("/")
            if len(parts) >= 3 and parts[2] in (
                "ImageSets",
                "SegmentationClass",
                "SegmentationObject",
                "JPEGImages",
            ):
                wanted.append(member)
        tar.extractall(dest, members=wanted, filter="data")
    root = voc_root(card, dest)
    if not keep_archive:
        archive.unlink()
    return root


LOADERS: dict[str, Callable[..., Dataset]] = {
    "idx": load_fashion_mnist,
    "npz": load_npz,
    "synthetic": load_synthetic,
    "image-folder": load_imagenet50,
    "coco": load_coco_folder,
    "voc": load_voc,
}
