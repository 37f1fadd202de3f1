"""Datasets as batches the runner consumes: ``load_dataset(name, split)`` -> :class:`Dataset`.

Each dataset has a card, ``datasets/NAME.toml`` (data only: format, files with URLs and
checksums, licence, class names, image size, mask source); its ``format`` picks the loader
(``_loaders.LOADERS``; cards with ``kind = "tabular"`` are tables, loaded by
:mod:`benchmark.tabular.data`), and ``opt_in = true`` keeps it out of ``python -m benchmark.data
list/fetch/verify`` unless it is named. Files are found in ``$BENCHMARK_DATA_DIR/<folder>`` (a
local copy), else in the user cache (``$BENCHMARK_CACHE_DIR``, default
``~/.cache/explainer-benchmark``), else downloaded there and verified. ``synthetic`` needs no
files at all: the harness generates it from a seed.

Bring your own data. Any folder of images with one COCO annotation file (labelme and CVAT export
COCO; RLE or polygon segmentations) is a dataset: the images sit in the folder or in an
``images/`` subfolder, the annotations in ``annotations.json`` (or the folder's only ``*.json``).
Check it with ``python -m benchmark.data verify FOLDER``, which reads every image and mask and
lists each problem, naming the record and what to fix (``list FOLDER`` checks the annotation
file alone). Load it with ``load_dataset("FOLDER/")`` or ``load_dataset("coco-folder",
data_dir=FOLDER)``; in a suite, ``dataset = "coco-folder"`` is the folder
``$BENCHMARK_DATA_DIR/coco-folder/`` (``--data-dir DIR`` sets ``$BENCHMARK_DATA_DIR``), or else
``$BENCHMARK_DATA_DIR`` itself if it holds an ``annotations.json``. The mask of an image is the
union of its annotations, its label the category of its largest annotation (categories sorted by
id). A folder dataset is named by the folder's basename (``Dataset.name``; ``NAME-folder`` where
the basename is another dataset's name), never by its path, so a board cites the same name on
every machine. The annotation file is checked record by record before pycocotools sees it: a file
that is not COCO JSON is an error naming it; a malformed image record or annotation (a polygon
that is not an even number >= 6 of finite numbers, an RLE whose size is not the image's [height,
width] or whose counts do not cover it, a size that is not a positive integer, a file_name that
is absolute or climbs out with ``..``, an unknown or duplicate id) fails only its own image,
which stays in the dataset and is reported as a per-image failure with the fix; a record that
belongs to no image (an annotation of an unknown image_id, an unused malformed category) is
reported in ``Dataset.record_problems``. No bad record aborts a run or the rest of the dataset.

The opt-in full PASCAL VOC 2012 validation set (1,449 images with masks, a 2 GB download) is
``voc2012-val``, fetched only on request: ``python -m benchmark.data fetch voc2012-val``.
"""

from __future__ import annotations

from pathlib import Path

from ._base import Batch, DataChecksumError, DataError, Dataset
from ._files import (
    cache_root,
    data_root,
    download,
    list_datasets,
    locate,
    portable,
    read_card,
    verify,
)
from ._loaders import LOADERS, coco_union_mask

__all__ = [
    "Batch",
    "DataChecksumError",
    "DataError",
    "Dataset",
    "cache_root",
    "coco_union_mask",
    "data_root",
    "download",
    "list_datasets",
    "load_dataset",
    "locate",
    "portable",
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
    if card.get("kind") == "tabular":  # a table's card sits beside the image cards
        raise ValueError(
            f"{name!r} is a table (kind = 'tabular'), not an image dataset: use it in a tabular "
            "suite (benchmark/tabular/suites/) or with benchmark.tabular.data.load_table"
        )
    loader = LOADERS.get(card.get("format"))
    if loader is None:
        raise ValueError(
            f"dataset card {name!r} has unknown format {card.get('format')!r}; "
            f"known: {', '.join(LOADERS)}"
        )
    return loader(
        card,
        split,
        data_dir,
        limit,
        seed=seed,
        annotations=annotations,
        image_size=image_size,
        channels=channels,
    )
