"""Missing files, checksum mismatches, corrupt images, wrong-size masks; download-and-verify."""

import gzip
import hashlib
import io
import json
import shutil
import tarfile
import urllib.error

import numpy as np
import pytest
from PIL import Image

from benchmark.data import (
    DataChecksumError,
    DataError,
    _files,
    download,
    load_dataset,
    locate,
    read_card,
)


def test_missing_file_names_it_and_says_what_to_do(tmp_path, monkeypatch):
    def offline(url, *a, **k):
        raise urllib.error.URLError("no internet")

    monkeypatch.setattr(_files, "urlopen", offline)
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte\.gz.*BENCHMARK_DATA_DIR"):
        load_dataset("fashion-mnist", data_dir=tmp_path)
    with pytest.raises(DataError, match=r"annotations\.json not found.*voc2012-val"):
        load_dataset("voc-masks", data_dir=tmp_path)  # no public download: the opt-in is named


def test_checksum_mismatch_names_the_file(tmp_path, data_dir):
    source = data_dir / "fashion-mnist"
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(source / name, tmp_path / name)
    load_dataset("fashion-mnist", data_dir=tmp_path, limit=3)  # recompressed copies are fine
    labels = bytearray(gzip.open(source / "t10k-labels-idx1-ubyte.gz").read())
    labels[100] = (labels[100] + 1) % 10  # one wrong label
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(bytes(labels)))
    with pytest.raises(DataChecksumError, match=r"t10k-labels-idx1-ubyte\.gz.*decompressed"):
        load_dataset("fashion-mnist", data_dir=tmp_path)


def _coco_folder(tmp_path):
    """Three images: a good one, a corrupt file, and one whose mask has the wrong size."""
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(np.full((12, 12, 3), 200, np.uint8)).save(images / "good.png")
    (images / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    Image.fromarray(np.zeros((12, 12, 3), np.uint8)).save(images / "wrong_size.png")
    square = [[2, 2, 8, 2, 8, 8, 2, 8]]
    coco = {
        "images": [
            {"id": 1, "file_name": "good.png", "width": 12, "height": 12},
            {"id": 2, "file_name": "corrupt.png", "width": 12, "height": 12},
            {"id": 3, "file_name": "wrong_size.png", "width": 10, "height": 10},
        ],
        "annotations": [
            {
                "id": i,
                "image_id": i,
                "category_id": 7,
                "segmentation": square,
                "area": 36,
                "bbox": [2, 2, 6, 6],
                "iscrowd": 0,
            }
            for i in (1, 2, 3)
        ],
        "categories": [{"id": 7, "name": "thing"}],
    }
    (tmp_path / "annotations.json").write_text(json.dumps(coco))
    return tmp_path


def test_corrupt_image_and_wrong_size_mask_are_skipped_in_batches_and_raise_alone(tmp_path):
    ds = load_dataset("coco-folder", data_dir=_coco_folder(tmp_path))
    assert ds.ids == ["corrupt.png", "good.png", "wrong_size.png"]
    with pytest.warns(UserWarning) as caught:
        batches = list(ds.batches(8))
    assert [b.ids for b in batches] == [["good.png"]]
    assert batches[0].masks[0].sum() == 36 and batches[0].labels.tolist() == [0]
    assert [pid for pid, _ in ds.problems] == ["corrupt.png", "wrong_size.png"]
    assert "corrupt" in ds.problems[0][1] and "12x12" in ds.problems[1][1]
    skipped = [str(w.message) for w in caught if str(w.message).startswith("skipped")]
    assert len(skipped) == 2 and "corrupt.png" in skipped[0], [str(w.message) for w in caught]
    with pytest.raises(DataError, match=r"corrupt\.png is corrupt or not an image"):
        ds.load("corrupt.png")
    with pytest.raises(DataError, match=r"mask of .*wrong_size\.png is 10x10.*12x12"):
        ds.load("wrong_size.png")
    assert ds.load("good.png").pixels.shape == (1, 3, 12, 12)


def test_bad_annotation_files(tmp_path):
    (tmp_path / "annotations.json").write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        load_dataset("coco-folder", data_dir=tmp_path)
    (tmp_path / "annotations.json").write_text("{}")
    with pytest.raises(DataError, match="not a COCO file"):
        load_dataset("coco-folder", data_dir=tmp_path)


def test_download_verifies_and_leaves_nothing_on_mismatch(tmp_path, monkeypatch):
    import urllib.request

    monkeypatch.setattr(_files, "urlopen", urllib.request.urlopen)  # file:// only, no network
    source = tmp_path / "upstream.bin"
    source.write_bytes(b"payload")
    good = {"sha256": hashlib.sha256(b"payload").hexdigest()}
    dest = download(source.as_uri(), tmp_path / "cache" / "file.bin", good, quiet=True)
    assert dest.read_bytes() == b"payload"
    with pytest.raises(DataChecksumError, match="not the expected file"):
        download(
            source.as_uri(), tmp_path / "cache" / "other.bin", {"sha256": "0" * 64}, quiet=True
        )
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["file.bin"]
    with pytest.raises(DataError, match="could not download"):
        download((tmp_path / "absent").as_uri(), tmp_path / "cache" / "x.bin", quiet=True)


def test_locate_downloads_into_the_cache_once(tmp_path, monkeypatch):
    calls = []

    def opener(url):
        calls.append(url)
        return io.BytesIO(gzip.compress(b"abc"))

    monkeypatch.setattr(_files, "urlopen", opener)
    monkeypatch.delenv("BENCHMARK_DATA_DIR", raising=False)
    monkeypatch.setenv("BENCHMARK_CACHE_DIR", str(tmp_path))
    card = {
        "name": "toy",
        "files": [
            {
                "role": "x",
                "path": "x.gz",
                "url": "https://example.org/x.gz",
                "content_sha256": hashlib.sha256(b"abc").hexdigest(),
            }
        ],
    }
    first, _ = locate(card, "x")
    second, _ = locate(card, "x")
    assert first == second == tmp_path / "data" / "toy" / "x.gz" and len(calls) == 1


def test_pneumonia_falls_back_to_the_official_download(tmp_path, monkeypatch):
    card = read_card("pneumonia")
    assert [f["path"] for f in card["files"]] == [
        "pneumoniamnist_unofficial.npz",
        "pneumoniamnist.npz",
    ]
    calls = []
    monkeypatch.setattr(_files, "urlopen", lambda url: calls.append(url) or io.BytesIO(b"x"))
    with pytest.raises(DataChecksumError, match="md5"):
        load_dataset("pneumonia", data_dir=tmp_path)
    assert calls == [card["files"][1]["url"]]


def _palette_png(path, array):
    image = Image.fromarray(array.astype(np.uint8), mode="P")
    image.putpalette([0, 0, 0] * 256)
    image.save(path)


def test_voc2012_opt_in_is_named_then_loads_and_fetches(tmp_path, monkeypatch):
    with pytest.raises(DataError, match=r"explicit opt-in.*python -m benchmark\.data fetch"):
        load_dataset("voc2012-val", data_dir=tmp_path / "nowhere")
    # A two-image VOCdevkit: 0 background, 255 void, 1..20 classes.
    build = tmp_path / "build" / "VOCdevkit" / "VOC2012"
    for sub in ("ImageSets/Segmentation", "JPEGImages", "SegmentationClass"):
        (build / sub).mkdir(parents=True)
    (build / "ImageSets/Segmentation/val.txt").write_text("2007_000001\n2007_000002\n")
    classes = np.zeros((6, 8))
    classes[1:4, 1:4] = 15  # a person (9 pixels)
    classes[4, :] = 255  # void
    classes[0, 5:7] = 3  # a bird (2 pixels)
    for name in ("2007_000001", "2007_000002"):
        Image.fromarray(np.zeros((6, 8, 3), np.uint8)).save(build / "JPEGImages" / f"{name}.jpg")
        _palette_png(build / "SegmentationClass" / f"{name}.png", classes)
    ds = load_dataset("voc2012-val", "val", data_dir=tmp_path / "build")
    batch = next(ds.batches(4))
    assert batch.ids == ["2007_000001", "2007_000002"] and batch.masks.shape == (2, 6, 8)
    assert batch.masks[0].sum() == 11 and not batch.masks[0, 4].any()  # void is no object
    assert ds.class_names[batch.labels[0]] == "person"

    # fetch: download the archive (md5-verified), extract the segmentation part, drop the tar.
    archive = tmp_path / "VOCtrainval.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(tmp_path / "build" / "VOCdevkit", arcname="VOCdevkit")
    card = read_card("voc2012-val")
    card["files"][0] |= {
        "md5": hashlib.md5(archive.read_bytes()).hexdigest(),
        "url": archive.as_uri(),
    }
    import urllib.request

    from benchmark.data._loaders import fetch_voc

    monkeypatch.setattr(_files, "urlopen", urllib.request.urlopen)
    monkeypatch.delenv("BENCHMARK_DATA_DIR", raising=False)
    monkeypatch.setenv("BENCHMARK_CACHE_DIR", str(tmp_path / "cache"))
    root = fetch_voc(card)
    assert root == tmp_path / "cache" / "data" / "voc2012" / "VOCdevkit" / "VOC2012"
    assert len(load_dataset("voc2012-val", "val")) == 2
    assert not (root.parents[1] / "VOCtrainval_11-May-2012.tar").exists()
