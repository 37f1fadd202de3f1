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
import math
import os
import re
import tarfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from . import synthetic
from ._base import ArrayDataset, DataError, Dataset, Item, take, to_pixels
from ._files import DATA_ENV, cache_root, data_root, list_datasets, locate, roots

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
    except (
        UnidentifiedImageError,
        Image.DecompressionBombError,
        OSError,
        SyntaxError,
        ValueError,
    ) as e:
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
#
# A COCO file is checked record by record before pycocotools sees it. A whole-file problem (not
# JSON, not an object with images/annotations/categories lists) is a DataError naming the file.
# Any other malformed record makes the image it belongs to a per-image failure (it keeps its place
# in the ids and raises a DataError naming the file, the record and the fix when loaded), or, for
# a record that belongs to no image (an annotation whose image_id matches no image, an unused
# malformed category), a record problem of the dataset (``Dataset.record_problems``, reported
# with the per-image ones in ``Dataset.problems``). Images whose records are fine are unaffected.

MAX_PIXELS = 2**28  # larger than PIL opens by default; pycocotools' RLE strings hold 30-bit runs
_NOTHING = object()


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_id(value: Any) -> bool:
    return _is_int(value) or isinstance(value, str)


def _show(value: Any, limit: int = 60) -> str:
    try:
        text = repr(value)
    except RecursionError:
        text = f"a deeply nested {type(value).__name__}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _field(record: dict, key: str) -> str:
    return _show(record[key]) if key in record else "missing"


def unsafe_file_name(name: str) -> str | None:
    """Why ``name`` cannot be a path inside its folder (absolute, '..', empty), or None."""
    if not name.strip():
        return "is empty"
    if "\0" in name:
        return "contains a NUL character"
    posix = name.replace("\\", "/")
    if posix.startswith("/") or re.match(r"[A-Za-z]:", posix) or Path(name).is_absolute():
        return "is an absolute path"
    if ".." in posix.split("/"):
        return "climbs out of the folder ('..')"
    return None


def inside(folder: Path, name: str, what: str = "file") -> Path:
    """``folder / name``, a path that cannot leave ``folder``; DataError if ``name`` would."""
    why = unsafe_file_name(name)
    if why is not None:
        raise DataError(f"{what} {name!r} {why}: data paths must be relative paths inside {folder}")
    path = folder / name
    if not os.path.abspath(path).startswith(os.path.join(os.path.abspath(folder), "")):
        raise DataError(f"{what} {name!r} leaves {folder}: use a relative path inside it")
    return path


def _polygons_problem(polygons: list, height: int | None, width: int | None) -> str | None:
    if not polygons:
        return "segmentation is an empty list: give at least one polygon [x1, y1, x2, y2, ...]"
    for k, poly in enumerate(polygons):
        if not isinstance(poly, list):
            return f"polygon {k} is {_show(poly)}, not a list of numbers [x1, y1, x2, y2, ...]"
        if len(poly) < 6 or len(poly) % 2:
            return (
                f"polygon {k} has {len(poly)} numbers: a polygon needs an even number of them, at "
                "least 6 (three x, y points)"
            )
        bad = next((v for v in poly if not _is_number(v)), _NOTHING)
        if bad is not _NOTHING:
            return f"polygon {k} holds {_show(bad)}: every coordinate must be a finite number"
        if height is not None and width is not None:
            xs, ys = poly[0::2], poly[1::2]
            if min(xs) < -width or max(xs) > 2 * width or min(ys) < -height or max(ys) > 2 * height:
                return (
                    f"polygon {k} has points far outside the {width}x{height} (WxH) image (x "
                    f"{min(xs):g} to {max(xs):g}, y {min(ys):g} to {max(ys):g}): fix the "
                    "coordinates or the image's width/height"
                )
    return None


def rle_string_counts(counts: str) -> list[int] | str:
    """The run lengths of a compressed COCO RLE string (pycocotools' ``rleFrString``), or why it
    is not one (a character out of range, a run cut off, a negative run)."""
    runs: list[int] = []
    p, n = 0, len(counts)
    while p < n:
        x = k = 0
        more = True
        while more:
            if p >= n:
                return "the compressed RLE string ends in the middle of a run length"
            c = ord(counts[p]) - 48
            if not 0 <= c < 64:
                return f"the compressed RLE string holds {counts[p]!r} (only '0' to 'o' occur)"
            if k == 6:
                return "the compressed RLE string holds a run length of more than 30 bits"
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p, k = p + 1, k + 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(runs) > 2:
            x += runs[-2]
        if x < 0:
            return f"the compressed RLE string decodes to a negative run length ({x})"
        runs.append(x)
    return runs


def _rle_problem(rle: dict, height: int | None, width: int | None) -> str | None:
    size = rle.get("size", _NOTHING)
    if not (isinstance(size, list) and len(size) == 2 and all(_is_int(s) and s > 0 for s in size)):
        shown = "missing" if size is _NOTHING else _show(size)
        return f"RLE size is {shown}: it must be [height, width], two positive integers"
    if height is not None and width is not None and size != [height, width]:
        return (
            f"RLE size {size} differs from the image record's [height, width] = "
            f"[{height}, {width}]: fix one of them"
        )
    total = size[0] * size[1]
    counts = rle.get("counts", _NOTHING)
    if isinstance(counts, list):
        bad = next((c for c in counts if not _is_int(c) or c < 0), _NOTHING)
        if bad is not _NOTHING:
            return f"RLE counts hold {_show(bad)}: run lengths must be non-negative integers"
        runs = counts
    elif isinstance(counts, str):
        runs = rle_string_counts(counts)
        if isinstance(runs, str):
            return f"{runs}: re-encode the mask (pycocotools.mask.encode)"
    else:
        shown = "missing" if counts is _NOTHING else _show(counts)
        return (
            f"RLE counts is {shown}: it must be a list of run lengths or a compressed COCO RLE "
            "string"
        )
    if sum(runs) != total:
        return (
            f"RLE run lengths sum to {sum(runs)}, not height * width = {total}: the mask is "
            "truncated or belongs to another image size"
        )
    return None


@dataclass
class _CocoImage:
    """One image record of a COCO file: its dataset id, its problems, its annotations."""

    id: str
    label: str  # how messages name the record: images[i] (id ...)
    record: Any
    problems: list[str] = field(default_factory=list)
    annotations: list[dict] = field(default_factory=list)


@dataclass
class CocoCheck:
    """A COCO file checked record by record (see :func:`check_coco`)."""

    images: list[_CocoImage]  # every image record, in file order
    categories: list[dict]  # the usable categories, sorted by id
    record_problems: list[tuple[str, str]]  # (FILE:records[i], message) of records of no image


def check_coco(data: Any, source: Path) -> CocoCheck:
    """Validate a parsed COCO file before pycocotools sees it.

    Whole-file problems raise :class:`DataError` naming ``source``; a malformed image record,
    annotation or category becomes a problem of the image it belongs to, or a record problem."""
    if not isinstance(data, dict):
        raise DataError(
            f"{source} is not a COCO file: its top level is a {type(data).__name__}, not an "
            "object with images, annotations and categories; re-export it"
        )
    missing = [k for k in ("images", "annotations", "categories") if k not in data]
    if missing:
        raise DataError(
            f"{source} is not a COCO file (needs images, annotations, categories; "
            f"{', '.join(missing)} missing); re-export it"
        )
    for key in ("images", "annotations", "categories"):
        if not isinstance(data[key], list):
            raise DataError(
                f"{source} is not a COCO file: {key} is a {type(data[key]).__name__}, not a "
                "list; re-export it"
            )
    record_problems: list[tuple[str, str]] = []

    def record_problem(where: str, message: str) -> None:
        record_problems.append(
            (f"{source.name}:{where.split(' ')[0]}", f"{source}: {where} {message}")
        )

    # Categories: an integer id of its own and a name.
    categories = data["categories"]
    cat_count = Counter(c["id"] for c in categories if isinstance(c, dict) and _is_int(c.get("id")))
    usable: dict[int, dict] = {}
    unusable: dict[int, str] = {}  # integer id -> why its category cannot be used
    unused: dict[int, list[tuple[str, str]]] = {}  # those of unusable ids no annotation uses
    for i, cat in enumerate(categories):
        where = f"categories[{i}]"
        if not isinstance(cat, dict):
            why = f"is {_show(cat)}, not a category object with id and name"
        elif not _is_int(cat.get("id")):
            why = f"has id {_field(cat, 'id')}: a category id must be an integer"
        elif cat_count[cat["id"]] > 1:
            why = f"has id {cat['id']}, which {cat_count[cat['id']]} categories share: give each its own"
        elif not isinstance(cat.get("name"), str):
            why = f"has name {_field(cat, 'name')}: a category name must be a string"
        else:
            usable[cat["id"]] = cat
            continue
        if isinstance(cat, dict) and _is_int(cat.get("id")):
            unusable.setdefault(cat["id"], f"{where} {why}")
            unused.setdefault(cat["id"], []).append((where, why))
        else:
            record_problem(where, why)

    # Image records: an id of their own, a relative file name of their own, a positive size.
    records = data["images"]
    id_count = Counter(r["id"] for r in records if isinstance(r, dict) and _is_id(r.get("id")))
    name_count = Counter(
        r["file_name"]
        for r in records
        if isinstance(r, dict) and isinstance(r.get("file_name"), str)
    )
    images: list[_CocoImage] = []
    by_id: dict[Any, list[_CocoImage]] = {}
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            images.append(
                _CocoImage(
                    f"images[{i}]",
                    f"images[{i}]",
                    rec,
                    [f"is {_show(rec)}, not an image object with id, file_name, width and height"],
                )
            )
            continue
        rid, file_name = rec.get("id"), rec.get("file_name")
        label = f"images[{i}] (id {rid!r})" if _is_id(rid) else f"images[{i}]"
        image = _CocoImage(
            file_name if isinstance(file_name, str) and file_name else f"images[{i}]", label, rec
        )
        if not _is_id(rid):
            image.problems.append(
                f"has id {_field(rec, 'id')}: an image id must be an integer or a string"
            )
        elif id_count[rid] > 1:
            image.problems.append(
                f"has id {rid!r}, which {id_count[rid]} image records share: give each image its own id"
            )
        if not isinstance(file_name, str):
            image.problems.append(
                f"has file_name {_field(rec, 'file_name')}: it must be the image's path, relative "
                "to the folder"
            )
        elif (why := unsafe_file_name(file_name)) is not None:
            image.problems.append(
                f"has file_name {file_name!r}, which {why}: it must be a relative path inside the "
                "folder"
            )
        elif name_count[file_name] > 1:
            image.problems.append(
                f"has file_name {file_name!r}, which {name_count[file_name]} image records share: "
                "keep one record per image"
            )
        sizes_ok = True
        for key in ("width", "height"):
            value = rec.get(key)
            if not (_is_int(value) and value > 0):
                sizes_ok = False
                image.problems.append(
                    f"has {key} {_field(rec, key)}: it must be the image's {key} in pixels, a "
                    "positive integer"
                )
        if sizes_ok and rec["width"] * rec["height"] > MAX_PIXELS:
            image.problems.append(
                f"says the image is {rec['width']}x{rec['height']} (WxH), more than the "
                f"{MAX_PIXELS:,} pixels this harness reads: fix its width/height"
            )
        images.append(image)
        if _is_id(rid):
            by_id.setdefault(rid, []).append(image)

    # Annotations: each belongs to an image record (by id, compared with its type: 1 is not "1").
    annotations = data["annotations"]
    ann_count = Counter(a["id"] for a in annotations if isinstance(a, dict) and _is_id(a.get("id")))
    for j, ann in enumerate(annotations):
        where = f"annotations[{j}]"
        if not isinstance(ann, dict):
            record_problem(where, f"is {_show(ann)}, not an annotation object")
            continue
        if _is_id(ann.get("id")):
            where += f" (id {ann['id']!r})"
        image_id = ann.get("image_id")
        owners = by_id.get(image_id, []) if _is_id(image_id) else []
        if not owners:
            record_problem(
                where,
                f"has image_id {_field(ann, 'image_id')}, which matches no image record's id "
                "(ids compare with their type: 1 is not '1'): fix the image_id or add the image",
            )
            continue
        problems = []
        aid = ann.get("id")
        if not _is_id(aid):
            problems.append(
                f"has id {_field(ann, 'id')}: an annotation id must be an integer or a string"
            )
        elif ann_count[aid] > 1:
            problems.append(
                f"has id {aid!r}, which {ann_count[aid]} annotations share: give each its own id"
            )
        cid = ann.get("category_id")
        if not _is_int(cid):
            problems.append(
                f"has category_id {_field(ann, 'category_id')}: it must be a category's integer id"
            )
        elif cid in unusable:
            unused.pop(cid, None)
            problems.append(f"has category_id {cid}, whose category is unusable: {unusable[cid]}")
        elif cid not in usable:
            problems.append(
                f"has category_id {cid}, which matches no category: fix it or add the category"
            )
        if "area" in ann and not (_is_number(ann["area"]) and ann["area"] >= 0):
            problems.append(
                f"has area {_show(ann['area'])}: it must be a non-negative number (or left out)"
            )
        rec = owners[0].record
        height = rec.get("height") if _is_int(rec.get("height")) else None
        width = rec.get("width") if _is_int(rec.get("width")) else None
        segmentation = ann.get("segmentation", _NOTHING)
        if isinstance(segmentation, list):
            why = _polygons_problem(segmentation, height, width)
        elif isinstance(segmentation, dict):
            why = _rle_problem(segmentation, height, width)
        else:
            shown = "missing" if segmentation is _NOTHING else _show(segmentation)
            why = (
                f"segmentation is {shown}: it must be a list of polygons [[x1, y1, ...], ...] or "
                "an RLE object {size, counts}"
            )
        if why is not None:
            problems.append(f"has a bad segmentation: {why}")
        for owner in owners:
            if problems:
                owner.problems.append(f"{where} {'; '.join(problems)}")
            else:
                owner.annotations.append(ann)
    for where, why in (problem for problems in unused.values() for problem in problems):
        record_problem(where, why)

    seen: set[str] = set()
    for image in images:  # dataset ids are unique; records that share a file name are flagged
        base, k = image.id, 2
        while image.id in seen:
            image.id, k = f"{base}#{k}", k + 1
        seen.add(image.id)
    return CocoCheck(images, [usable[c] for c in sorted(usable)], record_problems)


def coco_union_mask(
    coco: Any, image: dict[str, Any], source: str | Path = "the annotations"
) -> np.ndarray:
    """Bool [H,W]: the union of pycocotools ``annToMask`` over every annotation of the image
    record ``image`` (crowd ones included); DataError naming ``source`` if a mask's size
    differs from the record's or pycocotools cannot decode an annotation."""
    try:
        union = np.zeros((image["height"], image["width"]), dtype=bool)
        anns = coco.loadAnns(coco.getAnnIds(imgIds=image["id"], iscrowd=None))
    except (TypeError, ValueError, KeyError, IndexError, OverflowError, MemoryError) as e:
        raise DataError(
            f"image record {_show(image)} cannot be read ({type(e).__name__}: {e}): fix it in "
            f"{source}"
        ) from e
    for ann in anns:
        try:
            m = coco.annToMask(ann).astype(bool)
        except (TypeError, ValueError, KeyError, IndexError, OverflowError, MemoryError) as e:
            raise DataError(
                f"annotation {_show(ann.get('id'))} of image {_show(image.get('file_name'))} "
                f"cannot be decoded by pycocotools ({type(e).__name__}: {e}): fix its "
                f"segmentation in {source}"
            ) from e
        if m.shape != union.shape:
            raise DataError(
                f"annotation {ann['id']} of image {image['file_name']} is "
                f"{m.shape[1]}x{m.shape[0]} (WxH) but the image record says "
                f"{image['width']}x{image['height']}: fix the segmentation in {source}"
            )
        union |= m
    return union


def folder_name(folder: Path) -> str:
    """A folder dataset's name: the folder's basename (never its path, so boards and anchors are
    the same on every machine), with ``-folder`` appended where that names another card."""
    name = Path(os.path.abspath(folder)).name or "coco-folder"
    return f"{name}-folder" if name != "coco-folder" and name in list_datasets() else name


def default_coco_folder() -> Path | None:
    """What ``dataset = "coco-folder"`` means without a folder: ``$BENCHMARK_DATA_DIR/coco-folder``,
    else ``$BENCHMARK_DATA_DIR`` itself if it holds an ``annotations.json``; None without either."""
    root = data_root()
    if root is None:
        return None
    if (root / "coco-folder").is_dir():
        return root / "coco-folder"
    return root if (root / "annotations.json").is_file() else None


def load_coco_folder(
    card: dict[str, Any], split: str, data_dir, limit, *, seed=0, annotations=None, **kw
) -> Dataset:
    """A card that lists (and checksums) its files, or a user's folder (``data_dir``, else
    :func:`default_coco_folder`) holding the images, or an ``images/`` subfolder, and a COCO json
    (``annotations``, default ``annotations.json`` or the folder's only ``*.json``)."""
    if card.get("files"):
        annotations_path = locate(card, "annotations", data_dir)[0]

        def locate_image(file_name: str) -> Path:
            try:
                return locate(card, f"image:{file_name}", data_dir)[0]
            except KeyError as e:
                raise DataError(
                    f"{file_name!r} is not among the files datasets/{card['name']}.toml lists "
                    f"(and checksums): add it to the card or remove its record from "
                    f"{annotations_path}"
                ) from e

        return load_coco(
            card, split, annotations_path, annotations_path.parent, limit, locate_image, **kw
        )
    if data_dir is None:
        data_dir = default_coco_folder()
    if data_dir is None:
        where = (
            f"{DATA_ENV} is not set"
            if data_root() is None
            else (f"{data_root()} has no coco-folder/ and no annotations.json")
        )
        raise DataError(
            "coco-folder needs the folder: load_dataset('coco-folder', data_dir=FOLDER), "
            f"load_dataset('path/to/FOLDER'), or ${DATA_ENV}/coco-folder/ ({where}); FOLDER holds "
            "the images, or an images/ subfolder, and a COCO json"
        )
    annotations_path = _find_annotations(data_dir, annotations)
    image_dir = data_dir / "images" if (data_dir / "images").is_dir() else data_dir

    def resolve(file_name: str) -> Path:  # file names may carry their folder (labelme, CVAT)
        direct = inside(annotations_path.parent, file_name, "file_name")
        return direct if direct.is_file() else inside(image_dir, file_name, "file_name")

    name = folder_name(data_dir)
    card = card | {"folder": name}
    return load_coco(card, split, annotations_path, image_dir, limit, resolve, name=name, **kw)


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


class CocoDataset(FileDataset):
    """The images of a checked COCO file: a record with problems fails alone, when loaded."""

    def __init__(self, name, split, check: CocoCheck, entries, coco, source, **kw) -> None:
        super().__init__(name, split, [e.id for e in entries], **kw)
        self.entries, self.coco, self.source = entries, coco, source
        self.record_problems = list(check.record_problems)

    def known_problems(self) -> list[tuple[str, str]]:
        """The problems found in the annotation file alone (without reading any image)."""
        return self.record_problems + [(e.id, self._message(e)) for e in self.entries if e.problems]

    def _message(self, entry: _CocoImage) -> str:
        return (
            f"{self.source}: image record {entry.label} {'; '.join(entry.problems)} (fix the "
            f"record or its annotations in {self.source.name}, or remove the image)"
        )

    def _item(self, index: int) -> Item:
        entry = self.entries[index]
        if entry.problems:
            raise DataError(self._message(entry))
        try:
            path = self.resolve(index)
            image = read_image(path)
        except DataError as e:
            raise DataError(f"{e} (image record {entry.label} in {self.source})") from e
        record = entry.record
        if image.shape[:2] != (record["height"], record["width"]):
            raise DataError(
                f"mask of {path} is {record['width']}x{record['height']} (WxH, as image record "
                f"{entry.label} says) but the image is {image.shape[1]}x{image.shape[0]}: fix the "
                f"record's width/height in {self.source} (or the image)"
            )
        mask = coco_union_mask(self.coco, record, self.source)
        return Item(to_pixels(image), self.labels[index], torch.from_numpy(mask.astype(bool)))


def load_coco(
    card: dict[str, Any],
    split: str,
    annotations: Path,
    image_dir: Path,
    limit,
    resolve_image: Callable[[str], Path] | None = None,
    *,
    name: str | None = None,
    **kw,
) -> Dataset:
    """Images listed in a COCO ``annotations`` file, read from ``image_dir`` (or through
    ``resolve_image(file_name)``, which verifies a card's files), checked by :func:`check_coco`.
    Mask: :func:`coco_union_mask`; label: the category of the image's largest annotation, as an
    index into the categories sorted by id (their ids: ``card["category_ids"]``)."""
    from pycocotools.coco import COCO

    try:
        with open(annotations, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError as e:
        raise DataError(
            f"COCO annotation file {annotations} not found: a coco-folder needs images plus one "
            "COCO json (labelme and CVAT export it); pass its path with annotations=..."
        ) from e
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise DataError(f"{annotations} is not valid JSON ({e}); re-export it") from e
    except OSError as e:
        raise DataError(f"cannot read COCO annotation file {annotations} ({e})") from e
    check = check_coco(data, annotations)
    good = [im for im in check.images if not im.problems]
    coco = COCO()
    coco.dataset = {
        "images": [im.record for im in good],
        "annotations": [a for im in good for a in im.annotations],
        "categories": check.categories,
    }
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        coco.createIndex()
    class_of = {c["id"]: i for i, c in enumerate(check.categories)}
    entries = take(sorted(check.images, key=lambda im: im.id), limit)
    resolve_image = resolve_image or (lambda file_name: inside(image_dir, file_name, "file_name"))

    def label(image: _CocoImage) -> int:
        anns = [] if image.problems else image.annotations
        return class_of[max(anns, key=lambda a: a.get("area", 0))["category_id"]] if anns else -1

    card = card | {
        "categories": check.categories,
        "category_ids": {
            im.id: [] if im.problems else sorted({a["category_id"] for a in im.annotations})
            for im in entries
        },
    }
    return CocoDataset(
        name or card["name"],
        split,
        check,
        entries,
        coco,
        annotations,
        resolve=lambda i: resolve_image(entries[i].record["file_name"]),
        labels=[label(im) for im in entries],
        class_names=[c["name"] for c in check.categories],
        mask_fn=lambda i: None,  # masks come from coco_union_mask in _item
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
