import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools.coco import COCO

from benchmark.data import Batch, coco_union_mask, list_datasets, load_dataset, read_card
from benchmark.data import synthetic as synth
from benchmark.data.__main__ import main as data_main

REPO = Path(__file__).resolve().parents[2]


def _all(ds, batch_size=512) -> Batch:
    parts = list(ds.batches(batch_size))
    masks = None if parts[0].masks is None else torch.cat([b.masks for b in parts])
    return Batch(
        [i for b in parts for i in b.ids],
        torch.cat([b.pixels for b in parts]),
        torch.cat([b.labels for b in parts]),
        masks,
    )


def test_cards_are_data_only_and_complete():
    assert not list((REPO / "datasets").glob("*.py")), "no Python in datasets/ (shadows HF)"
    names = list_datasets()
    assert {
        "synthetic",
        "fashion-mnist",
        "voc-masks",
        "coco-folder",
        "imagenet50",
        "pneumonia",
        "voc2012-val",
    } <= set(names)
    assert set(list_datasets("voc*")) == {"voc-masks", "voc2012-val"}
    for name in names:
        card = read_card(name)
        assert {"name", "format", "licence", "description", "masks"} <= card.keys(), name
        for entry in card.get("files", []):
            assert {"role", "path"} <= entry.keys()
            assert entry.get("sha256") or entry.get("content_sha256") or entry.get("md5"), entry
    with pytest.raises(KeyError, match="Did you mean: fashion-mnist"):
        load_dataset("fashion-mnst")


def test_the_cards_format_picks_the_loader(monkeypatch):
    import benchmark.data

    images = [n for n in list_datasets() if read_card(n).get("kind") != "tabular"]
    assert {read_card(n)["format"] for n in images} <= set(benchmark.data.LOADERS)
    tiff = read_card("synthetic") | {"format": "tiff"}
    monkeypatch.setattr(benchmark.data, "read_card", lambda name: tiff)
    with pytest.raises(ValueError, match="unknown format 'tiff'; known: idx, npz"):
        load_dataset("synthetic")


def test_data_list_skips_the_cards_that_say_opt_in(capsys):
    opt_in = {n for n in list_datasets() if read_card(n).get("opt_in")}
    assert opt_in == {"voc2012-val"}  # a 2 GB download
    assert data_main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert {line.split()[0] for line in lines} == set(list_datasets()) - opt_in
    (own,) = [line for line in lines if line.startswith("coco-folder")]
    assert "bring your own data" in own and "verify FOLDER" in own  # the way to use a folder
    assert data_main(["list", "voc2012-val"]) == 0  # named: listed
    assert capsys.readouterr().out.startswith("voc2012-val")


def test_fashion_mnist(data_dir):
    test = load_dataset("fashion-mnist", "test")
    assert len(test) == 10_000 and test.num_classes == 10 and test.has_masks
    batch = _all(test, 2500)
    assert batch.pixels.shape == (10_000, 1, 28, 28) and batch.pixels.dtype == torch.float32
    assert 0 <= batch.pixels.min() and batch.pixels.max() <= 1
    assert torch.bincount(batch.labels).tolist() == [1000] * 10
    # The mask is the garment's non-background ("instance") pixels.
    assert torch.equal(batch.masks, batch.pixels[:, 0] > 0)
    assert 0.3 < batch.masks.float().mean() < 0.7
    assert len(load_dataset("fashion-mnist", "train")) == 60_000
    assert test.class_names[9] == "Ankle boot" and batch.labels[0] == 9  # first test image


def test_pneumonia(data_dir):
    sizes = {split: len(load_dataset("pneumonia", split)) for split in ("train", "val", "test")}
    assert sizes == {"train": 3882, "val": 524, "test": 624}
    ds = load_dataset("pneumonia", "test")
    batch = _all(ds)
    assert batch.pixels.shape == (624, 1, 28, 28) and batch.masks is None and not ds.has_masks
    assert set(batch.labels.tolist()) == {0, 1} and ds.class_names == ["normal", "pneumonia"]
    with pytest.raises(ValueError, match="test, train, val"):
        load_dataset("pneumonia", "holdout")


def test_imagenet50_in_shaps_order_resized_without_labels(data_dir):
    ds = load_dataset("imagenet50", image_size=224)
    assert len(ds) == 50 and not ds.has_masks
    assert ds.ids[:2] == ["sim_n03029197_6381.jpg", "sim_n02010272_1613.jpg"]
    batch = _all(ds, 16)
    assert batch.pixels.shape == (50, 3, 224, 224) and (batch.labels == -1).all()
    assert ds.card["imagenet_index"]["sim_n01687978_7467.jpg"] == 42  # agama
    grey = next(load_dataset("imagenet50", image_size=(32, 48), channels=1, limit=3).batches(8))
    assert grey.pixels.shape == (3, 1, 32, 48) and grey.ids == ds.ids[:3]


def test_voc_masks_equal_pycocotools_union(data_dir):
    ds = load_dataset("voc-masks")
    assert len(ds) == 18 and ds.num_classes == 14 and ds.class_names[0] == "aeroplane"
    coco = COCO(str(data_dir / "voc-masks" / "annotations.json"))
    by_name = {im["file_name"]: im for im in coco.dataset["images"]}
    seen = 0
    for batch in ds.batches(4):  # native sizes: a batch also ends where the size changes
        for id_, pixels, mask, label in zip(
            batch.ids, batch.pixels, batch.masks, batch.labels, strict=True
        ):
            image = by_name[id_]
            anns = coco.loadAnns(coco.getAnnIds(imgIds=image["id"]))
            assert torch.equal(mask, torch.from_numpy(coco_union_mask(coco, image))), id_
            assert pixels.shape == (3, image["height"], image["width"])
            largest = max(anns, key=lambda a: a["area"])["category_id"]
            assert ds.class_names[label] == coco.loadCats(largest)[0]["name"]
            seen += 1
    assert seen == 18 and not ds.problems
    assert ds.card["category_ids"]["voc2011_2011_000006.jpg"] == [9, 12, 13]
    small = next(load_dataset("voc-masks", image_size=64).batches(18))
    assert small.pixels.shape == (18, 3, 64, 64) and small.masks.shape == (18, 64, 64)
    assert small.masks.dtype == torch.bool


def test_coco_union_mask_is_the_union_of_the_annotations():
    """Two overlapping 4x4 squares (16 px each, 4 shared) and a 2x2 crowd square apart: 32 px."""

    def square(i, x, y, side, crowd=0):
        poly = [x, y, x + side, y, x + side, y + side, x, y + side]
        return {
            "id": i,
            "image_id": 1,
            "category_id": 1,
            "segmentation": [poly],
            "area": side**2,
            "bbox": [x, y, side, side],
            "iscrowd": crowd,
        }

    coco = COCO()
    coco.dataset = {
        "images": [{"id": 1, "file_name": "a.png", "width": 12, "height": 10}],
        "annotations": [square(1, 0, 0, 4), square(2, 2, 2, 4), square(3, 8, 6, 2, crowd=1)],
        "categories": [{"id": 1, "name": "thing"}],
    }
    coco.createIndex()
    union = coco_union_mask(coco, coco.imgs[1])
    assert union.shape == (10, 12) and union.dtype == bool and union.sum() == 16 + 16 - 4 + 4
    assert union[0, 0] and union[5, 5] and union[7, 9] and not union[0, 5]


def test_coco_folder_by_name_or_path(data_dir):
    folder = data_dir / "voc-masks"
    a = load_dataset("coco-folder", data_dir=folder, limit=2)
    b = load_dataset(str(folder) + "/", limit=2)
    assert a.ids == b.ids == load_dataset("voc-masks", limit=2).ids
    with pytest.raises(ValueError, match="data_dir=FOLDER"):
        load_dataset("coco-folder")


def test_synthetic_counts_and_balance():
    card = read_card("synthetic")
    assert "class_names" not in card  # one list: the generator's
    train, test = load_dataset("synthetic", "train"), load_dataset("synthetic", "test")
    assert tuple(test.class_names) == synth.CLASS_NAMES == ("circle", "square", "triangle", "cross")
    assert (len(train), len(test)) == (4000, 500) == tuple(card["split_sizes"].values())
    assert test.has_masks
    batch = _all(test)
    assert batch.pixels.shape == (500, 3, 32, 32) and batch.masks.shape == (500, 32, 32)
    assert torch.bincount(batch.labels).tolist() == [125] * 4
    area = batch.masks.float().mean(dim=(1, 2))
    assert (area > 0.02).all() and (area < 0.3).all()


def test_synthetic_masks_are_exactly_the_objects_pixels():
    """The image without its object (same random draws) differs from it exactly on the mask."""
    for index in range(40):
        with_object, label, mask = synth._item(3, "test", index)
        without, _, _ = synth._item(3, "test", index, draw_object=False)
        changed = (with_object != without).any(axis=-1)
        assert np.array_equal(changed, mask), index
        assert label == index % 4


def test_synthetic_is_deterministic_per_seed_and_limit_takes_a_prefix():
    a = next(load_dataset("synthetic", limit=20).batches(20))
    b = next(load_dataset("synthetic", limit=8).batches(20))
    c = next(load_dataset("synthetic", limit=20, seed=1).batches(20))
    assert torch.equal(a.pixels[:8], b.pixels) and a.ids[:8] == b.ids
    assert not torch.equal(a.pixels, c.pixels)
    synth.generate.cache_clear()  # and from a fresh generator (and the disk cache)
    again = next(load_dataset("synthetic", limit=20).batches(20))
    assert torch.equal(a.pixels, again.pixels) and torch.equal(a.masks, again.masks)


def test_background_does_not_reveal_the_label():
    images, labels, masks = synth.generate(0, "train", 800)
    background = np.stack([images[i][~masks[i]].mean(axis=0) for i in range(len(images))])
    means = np.stack([background[labels == k].mean(axis=0) for k in range(4)])
    assert np.ptp(means, axis=0).max() < 0.1 * 255


def test_resize_channels_limit_and_sample():
    ds = load_dataset("synthetic", image_size=16, channels=1, limit=10)
    batch = next(ds.batches(4))
    assert batch.pixels.shape == (4, 1, 16, 16) and batch.masks.shape == (4, 16, 16)
    assert [len(b.ids) for b in ds.batches(4)] == [4, 4, 2]
    full = next(load_dataset("synthetic", limit=10).batches(10))
    assert torch.equal(batch.masks, full.masks[:4, 1::2, 1::2])  # nearest on an exact 2x grid
    grey = 0.299 * full.pixels[:4, 0] + 0.587 * full.pixels[:4, 1] + 0.114 * full.pixels[:4, 2]
    pil = [Image.fromarray(g.numpy()).resize((16, 16), Image.BILINEAR) for g in grey]
    torch.testing.assert_close(
        batch.pixels[:, 0], torch.from_numpy(np.stack(pil)), atol=2e-3, rtol=0
    )  # the same (antialiased) bilinear filter as PIL
    rgb = next(load_dataset("pneumonia", channels=3, limit=2).batches(2)) if _has_data() else None
    if rgb is not None:
        assert rgb.pixels.shape == (2, 3, 28, 28) and torch.equal(
            rgb.pixels[:, 0], rgb.pixels[:, 2]
        )
    s1, s2 = ds.sample(5, seed=1), ds.sample(5, seed=1)
    assert s1.shape == (5, 1, 16, 16) and torch.equal(s1, s2)
    assert not torch.equal(s1, ds.sample(5, seed=2))
    assert ds.load(ds.ids[3]).ids == [ds.ids[3]]


def _has_data() -> bool:
    from benchmark.data import data_root

    root = data_root()
    return bool(root and (root / "pneumoniamnist").is_dir())


def test_cards_list_the_offline_files_checksums(data_dir):
    """Every checksum in the cards matches the offline copy (the verifier is exercised for real)."""
    from benchmark.data import locate

    for name in ("fashion-mnist", "voc-masks", "imagenet50", "pneumonia"):
        card = read_card(name)
        for role in dict.fromkeys(f["role"] for f in card["files"]):
            path, _ = locate(card, role, fetch=False)
            assert path.is_file()
    annotations = json.loads((data_dir / "voc-masks" / "annotations.json").read_text())
    assert len(read_card("voc-masks")["files"]) == 1 + len(annotations["images"])
