"""The dataset interface every loader implements: ids, strict single-item loading, batches.

A loader turns one item (an image file, a row of an array) into native pixels, a label and an
optional mask; :class:`Dataset` adds what the runner needs on top: resizing (images bilinear,
masks nearest), channel conversion, batching, and skipping of unreadable items with a warning.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from benchmark.files import ChecksumError


class DataError(ValueError):
    """A data file is missing, corrupt, of the wrong size or fails its checksum (message names it)."""


class DataChecksumError(DataError, ChecksumError):
    """A data file's sha256 (or md5) differs from the one its dataset card lists."""


@dataclass
class Batch:
    """What the runner consumes. Pixels are in [0, 1] and NOT normalised (the model does that)."""

    ids: list[str]
    pixels: Tensor  # [B, C, H, W] float32 in [0, 1]
    labels: Tensor  # [B] int64, -1 where unknown
    masks: Tensor | None  # [B, H, W] bool, or None for sets without masks


@dataclass
class Item:
    """One item at its native size, before resizing."""

    pixels: Tensor  # [C, H, W] float32 in [0, 1]
    label: int
    mask: Tensor | None  # [H, W] bool


def as_size(size: int | Sequence[int] | None) -> tuple[int, int] | None:
    if size is None:
        return None
    if isinstance(size, int):
        return (size, size)
    h, w = size
    return (int(h), int(w))


def resize(pixels: Tensor, masks: Tensor | None, size: tuple[int, int] | None):
    """Images [B,C,H,W] bilinearly (antialiased when shrinking, like PIL), masks [B,H,W] nearest."""
    if size is None or tuple(pixels.shape[-2:]) == size:
        return pixels, masks
    pixels = F.interpolate(pixels, size=size, mode="bilinear", align_corners=False, antialias=True)
    pixels = pixels.clamp_(0, 1)
    if masks is not None:
        masks = F.interpolate(masks[:, None].float(), size=size, mode="nearest-exact")[:, 0] > 0.5
    return pixels, masks


def convert_channels(pixels: Tensor, channels: int | None) -> Tensor:
    """[B,C,H,W] to ``channels`` (1 <-> 3): grey is the ITU-R 601 luma, RGB repeats the grey."""
    c = pixels.shape[1]
    if channels is None or channels == c:
        return pixels
    if c == 1 and channels == 3:
        return pixels.expand(-1, 3, -1, -1).contiguous()
    if c == 3 and channels == 1:
        weights = torch.tensor([0.299, 0.587, 0.114], dtype=pixels.dtype).view(1, 3, 1, 1)
        return (pixels * weights).sum(dim=1, keepdim=True)
    raise ValueError(f"cannot convert {c}-channel images to {channels} channels (only 1 <-> 3)")


def to_pixels(array: np.ndarray) -> Tensor:
    """uint8 [H,W] or [H,W,C] (or a batch [N,H,W(,C)]) -> float32 [.., C, H, W] in [0, 1]."""
    batched = array.ndim == 4 or (array.ndim == 3 and array.shape[-1] not in (1, 3, 4))
    if not batched:
        array = array[None]
    if array.ndim == 3:
        array = array[..., None]
    t = torch.from_numpy(np.ascontiguousarray(array[..., :3])).permute(0, 3, 1, 2).float() / 255
    return t if batched else t[0]


class Dataset:
    """Images (+ labels, + masks) of one split of one dataset, in a fixed, deterministic order.

    Subclasses implement :meth:`_item` (native pixels, label, mask of the i-th item, raising
    :class:`DataError` naming the file when it cannot be read) and may override :meth:`_items`
    with a vectorised version.
    """

    def __init__(
        self,
        name: str,
        split: str,
        ids: Sequence[str],
        class_names: Sequence[str],
        *,
        has_masks: bool,
        card: dict[str, Any] | None = None,
        image_size: int | Sequence[int] | None = None,
        channels: int | None = None,
    ) -> None:
        self.name, self.split = name, split
        self.ids: list[str] = list(ids)
        if len(set(self.ids)) != len(self.ids):
            raise ValueError(f"dataset {name!r} has duplicate image ids")
        self.class_names: list[str] = list(class_names)
        self.has_masks = has_masks
        self.card: dict[str, Any] = dict(card or {})
        self.image_size = as_size(image_size)
        self.channels = channels
        # (id, message) of each item that could not be read in the last pass of batches(), after
        # the record problems: malformed records of the source that belong to no item (e.g. a
        # COCO annotation whose image_id matches no image), as (FILE:RECORD, message).
        self.problems: list[tuple[str, str]] = []
        self.record_problems: list[tuple[str, str]] = []
        self._index = {id_: i for i, id_ in enumerate(self.ids)}

    # -- what a loader implements ----------------------------------------------------------------

    def _item(self, index: int) -> Item:
        raise NotImplementedError

    def _items(self, indices: Sequence[int]) -> list[Item | DataError]:
        """Native items for ``indices``; a DataError in place of each one that cannot be read."""
        out: list[Item | DataError] = []
        for i in indices:
            try:
                out.append(self._item(i))
            except DataError as e:
                out.append(e)
        return out

    # -- public interface --------------------------------------------------------------------------

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        return (
            f"<Dataset {self.name}/{self.split}: {len(self)} images, {self.num_classes} classes, "
            f"masks={self.has_masks}>"
        )

    def load(self, id_: str) -> Batch:
        """One item as a batch of one; raises :class:`DataError` naming the file if unreadable."""
        if id_ not in self._index:
            raise KeyError(f"no image {id_!r} in dataset {self.name}/{self.split}")
        return self._collate([id_], [self._item(self._index[id_])])

    def batches(self, batch_size: int = 32) -> Iterator[Batch]:
        """All items in order. Unreadable items are skipped, warned about and added to ``problems``
        (which starts with the ``record_problems``).

        Without ``image_size`` a batch also ends where the native image size changes.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.problems = list(self.record_problems)
        for _, message in self.record_problems:
            warnings.warn(f"{self.name}: {message}", stacklevel=2)
        for start in range(0, len(self), batch_size):
            indices = list(range(start, min(start + batch_size, len(self))))
            ids, items = [], []
            for i, item in zip(indices, self._items(indices), strict=True):
                if isinstance(item, DataError):
                    self.problems.append((self.ids[i], str(item)))
                    warnings.warn(f"skipped {self.name}/{self.ids[i]}: {item}", stacklevel=2)
                    continue
                if items and self.image_size is None and item.pixels.shape != items[0].pixels.shape:
                    yield self._collate(ids, items)
                    ids, items = [], []
                ids.append(self.ids[i])
                items.append(item)
            if items:
                yield self._collate(ids, items)

    def sample(self, n: int, seed: int = 0) -> Tensor:
        """``n`` pixel images [n,C,H,W] drawn without replacement by ``seed`` (e.g. SHAP background)."""
        n = min(n, len(self))
        order = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))
        chosen = sorted(order[:n].tolist())
        items = [it for it in self._items(chosen) if not isinstance(it, DataError)]
        if not items:
            raise DataError(f"no readable images in {self.name}/{self.split} to sample from")
        return self._collate([""] * len(items), items).pixels

    def arrays(self) -> tuple[Tensor, Tensor]:
        """(pixels [N,C,H,W], labels [N]) of the whole split in memory, for training."""
        parts = list(self.batches(1024))
        return torch.cat([b.pixels for b in parts]), torch.cat([b.labels for b in parts])

    # -- helpers --------------------------------------------------------------------------------------

    def _collate(self, ids: list[str], items: list[Item]) -> Batch:
        if self.image_size is None:
            pixels = torch.stack(
                [convert_channels(it.pixels[None], self.channels)[0] for it in items]
            )
            masks = torch.stack([it.mask for it in items]) if self.has_masks else None
        else:
            resized = [
                resize(it.pixels[None], None if it.mask is None else it.mask[None], self.image_size)
                for it in items
            ]
            pixels = convert_channels(torch.cat([p for p, _ in resized]), self.channels)
            masks = torch.cat([m for _, m in resized]) if self.has_masks else None
        labels = torch.tensor([it.label for it in items], dtype=torch.int64)
        return Batch(ids, pixels.float(), labels, masks)


class ArrayDataset(Dataset):
    """A dataset held in memory as uint8 arrays (MNIST-style sets, the synthetic set)."""

    def __init__(
        self,
        name: str,
        split: str,
        ids: Sequence[str],
        class_names: Sequence[str],
        images: np.ndarray,  # uint8 [N,H,W] or [N,H,W,C]
        labels: np.ndarray,  # int [N]
        masks: np.ndarray | None = None,  # bool [N,H,W]
        **kwargs: Any,
    ) -> None:
        super().__init__(name, split, ids, class_names, has_masks=masks is not None, **kwargs)
        self.images, self.labels, self.masks = images, np.asarray(labels, dtype=np.int64), masks

    def _item(self, index: int) -> Item:
        return self._items([index])[0]

    def _items(self, indices: Sequence[int]) -> list[Item | DataError]:
        idx = np.asarray(indices, dtype=np.int64)
        pixels = to_pixels(self.images[idx]) if len(idx) else torch.empty(0)
        masks = None if self.masks is None else torch.from_numpy(self.masks[idx])
        return [
            Item(pixels[k], int(self.labels[i]), None if masks is None else masks[k])
            for k, i in enumerate(idx)
        ]

    def _collate(self, ids: list[str], items: list[Item]) -> Batch:
        # Arrays share one native size: resize and convert the whole batch at once.
        pixels = torch.stack([it.pixels for it in items])
        masks = torch.stack([it.mask for it in items]) if self.has_masks else None
        pixels, masks = resize(pixels, masks, self.image_size)
        labels = torch.tensor([it.label for it in items], dtype=torch.int64)
        return Batch(ids, convert_channels(pixels, self.channels).float(), labels, masks)


def take(ids: Sequence[Any], limit: int | None) -> list[Any]:
    """The first ``limit`` of a deterministic order (all of them for None)."""
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    return list(ids if limit is None else ids[:limit])
