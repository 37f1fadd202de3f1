"""Bring your own data: a folder of images + a COCO json. Paths stay inside the folder, ``data
list/verify FOLDER`` report per-image problems without a traceback, ``coco-folder`` finds its
folder through ``$BENCHMARK_DATA_DIR``, and a folder dataset's name carries no path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

from benchmark.data import DataError, coco_union_mask, load_dataset, portable, read_card
from benchmark.data.__main__ import main as data_main
from benchmark.data._loaders import inside, load_coco_folder, unsafe_file_name

REPO = Path(__file__).resolve().parents[2]
SQUARE = [[2, 2, 8, 2, 8, 8, 2, 8]]  # 36 px


def _image(path: Path, size=(12, 12), value=128) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((*size, 3), value, np.uint8)).save(path)


def _folder(root: Path, images: list[dict], anns: list[dict] | None = None) -> Path:
    """``root/images/*.png`` for each image record that names one, and ``root/annotations.json``."""
    for im in images:
        if isinstance(im.get("file_name"), str) and "/" not in im["file_name"]:
            _image(root / "images" / im["file_name"])  # 12x12, whatever the record says
    if anns is None:
        anns = [
            {"id": i + 1, "image_id": im["id"], "category_id": 1, "segmentation": SQUARE}
            for i, im in enumerate(images)
        ]
    coco = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "thing"}]}
    root.mkdir(parents=True, exist_ok=True)
    (root / "annotations.json").write_text(json.dumps(coco))
    return root


def _record(i: int, file_name, **kw) -> dict:
    return {"id": i, "file_name": file_name, "width": 12, "height": 12, **kw}


def _load_all(ds):
    with pytest.warns(UserWarning):
        return [b for b in ds.batches(8)]


def test_file_names_cannot_leave_the_folder(tmp_path):
    _image(tmp_path / "outside.png")  # what a file_name escaping the folder would open
    _image(tmp_path / "set" / "outside.png")
    folder = _folder(
        tmp_path / "set",
        [
            _record(1, "good.png"),
            _record(2, "../outside.png"),
            _record(3, str(tmp_path / "outside.png")),
            _record(4, "images/../../outside.png"),
            _record(5, "..\\outside.png"),
        ],
    )
    ds = load_dataset(str(folder))
    batches = _load_all(ds)
    assert [i for b in batches for i in b.ids] == ["good.png"]
    assert batches[0].masks[0].sum() == 36
    problems = dict(ds.problems)
    assert "climbs out of the folder" in problems["../outside.png"]
    assert "images[1] (id 2)" in problems["../outside.png"]  # the record, by position and id
    assert "is an absolute path" in problems[str(tmp_path / "outside.png")]
    assert "climbs out" in problems["images/../../outside.png"]
    assert "climbs out" in problems["..\\outside.png"]
    assert all(str(folder / "annotations.json") in m for m in problems.values())
    # The path helpers themselves (a second line of defence behind the record check).
    for bad in ("../x", "/etc/passwd", "a/../../x", "C:\\x", "", "a\0b"):
        assert unsafe_file_name(bad), bad
        with pytest.raises(DataError, match="inside"):
            inside(folder, bad)
    assert unsafe_file_name("images/sub/x.png") is None
    assert inside(folder, "a/b.png") == folder / "a" / "b.png"


def test_a_bad_record_fails_its_image_only_and_names_the_fix(tmp_path):
    images = [
        _record(1, "good.png"),
        _record(2, "neg.png", width=-12),
        {"id": 3, "width": 12, "height": 12},  # no file_name
        _record(4, "poly.png"),
        _record(5, "rle.png"),
        _record(6, "cat.png"),
    ]
    anns = [
        {"id": 1, "image_id": 1, "category_id": 1, "segmentation": SQUARE, "area": 36},
        {"id": 2, "image_id": 2, "category_id": 1, "segmentation": SQUARE},
        {"id": 3, "image_id": 4, "category_id": 1, "segmentation": [[1, 1, 5, "x", 5, 5]]},
        {
            "id": 4,
            "image_id": 5,
            "category_id": 1,
            "segmentation": {"size": [12, 12], "counts": [5]},
        },
        {"id": 5, "image_id": 6, "category_id": 9, "segmentation": SQUARE},
        {"id": 6, "image_id": 77, "category_id": 1, "segmentation": SQUARE},  # no such image
    ]
    folder = _folder(tmp_path, images, anns)
    ds = load_dataset(str(folder))
    assert ds.ids == ["cat.png", "good.png", "images[2]", "neg.png", "poly.png", "rle.png"]
    assert ds.labels[ds.ids.index("good.png")] == 0 and ds.labels[ds.ids.index("neg.png")] == -1
    batches = _load_all(ds)
    assert [i for b in batches for i in b.ids] == ["good.png"]
    problems = dict(ds.problems)
    assert "category_id 9, which matches no category" in problems["cat.png"]
    assert "has width -12: it must be the image's width in pixels" in problems["neg.png"]
    assert "has file_name missing" in problems["images[2]"]
    assert "polygon 0 holds 'x': every coordinate must be a finite number" in problems["poly.png"]
    assert "RLE run lengths sum to 5, not height * width = 144" in problems["rle.png"]
    assert (
        "image_id 77, which matches no image record" in problems["annotations.json:annotations[5]"]
    )
    assert ds.record_problems == [
        (k, v) for k, v in ds.problems if k.startswith("annotations.json")
    ]
    with pytest.raises(DataError, match=r"annotations\.json: image record images\[3\] \(id 4\)"):
        ds.load("poly.png")


def test_pycocotools_errors_become_data_errors():
    """The second line of defence: pycocotools' own exceptions on records it is handed raw."""
    coco = COCO()
    coco.dataset = {
        "images": [{"id": 1, "file_name": "a.png", "width": 12, "height": 10}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[1, 1, "x", 1, 4, 4]]}
        ],
        "categories": [{"id": 1, "name": "thing"}],
    }
    coco.createIndex()
    with pytest.raises(DataError, match="cannot be decoded by pycocotools.*fix its segmentation"):
        coco_union_mask(coco, coco.imgs[1], "my.json")


def test_an_image_the_card_does_not_list_fails_alone(data_dir):
    card = read_card("voc-masks")
    card["files"] = [f for f in card["files"] if f["role"] != "image:voc2012val_0.png"]
    ds = load_coco_folder(card, "test", data_dir / "voc-masks", None)
    with pytest.warns(UserWarning):
        ids = [i for b in ds.batches(32) for i in b.ids]
    assert len(ids) == 17 and [p for p, _ in ds.problems] == ["voc2012val_0.png"]
    assert "not among the files datasets/voc-masks.toml lists" in ds.problems[0][1]


def test_data_list_and_verify_a_folder(tmp_path, capsys):
    good = _folder(tmp_path / "good", [_record(1, "a.png"), _record(2, "b.png")])
    assert data_main(["list", str(good)]) == 0
    out = capsys.readouterr().out
    assert "good (coco-folder at" in out and "2 images, 1 classes (thing)" in out
    assert data_main(["verify", str(good)]) == 0
    assert "ok (every image and mask read)" in capsys.readouterr().out

    bad = _folder(tmp_path / "bad", [_record(1, "a.png"), _record(2, "../a.png")])
    (bad / "images" / "broken.png").write_bytes(b"not a png")
    coco = json.loads((bad / "annotations.json").read_text())
    coco["images"].append(_record(3, "broken.png"))
    (bad / "annotations.json").write_text(json.dumps(coco))
    assert data_main(["list", str(bad)]) == 1  # the record problem, without reading images
    out = capsys.readouterr().out
    assert "../a.png: " in out and "broken.png" not in out
    assert data_main(["verify", str(bad)]) == 1  # and the unreadable image
    captured = capsys.readouterr()
    assert "../a.png: " in captured.out and "broken.png: " in captured.out
    assert "2 problem(s)" in captured.err

    assert data_main(["verify", str(tmp_path / "nowhere") + "/"]) == 1
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "notcoco").mkdir()
    (tmp_path / "notcoco" / "annotations.json").write_text("[1, 2]")
    assert data_main(["verify", str(tmp_path / "notcoco")]) == 1
    assert "is not a COCO file" in capsys.readouterr().err
    assert data_main(["verify", "no-such-set"]) == 1
    assert "unknown dataset 'no-such-set'" in capsys.readouterr().err


def test_data_verify_a_folder_from_the_shell_has_no_traceback(tmp_path):
    bad = _folder(tmp_path / "mine", [_record(1, "a.png"), _record(2, "b.png", height="12")])
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    outputs = {}
    for argv in (["verify", str(bad)], ["verify", "not-a-set"]):
        run = subprocess.run(
            [sys.executable, "-m", "benchmark.data", *argv],
            capture_output=True,
            text=True,
            env=env,
            cwd=REPO,
        )
        assert run.returncode == 1, (argv, run.stdout, run.stderr)
        assert "Traceback" not in run.stdout + run.stderr, (argv, run.stderr)
        outputs[argv[1]] = run.stdout + run.stderr
    assert "b.png: " in outputs[str(bad)] and "has height '12'" in outputs[str(bad)]
    assert "unknown dataset 'not-a-set'" in outputs["not-a-set"]


def test_coco_folder_is_found_through_the_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCHMARK_DATA_DIR", str(tmp_path / "data"))
    (tmp_path / "data").mkdir()
    with pytest.raises(DataError, match=r"has no coco-folder/ and no annotations\.json"):
        load_dataset("coco-folder")
    # $BENCHMARK_DATA_DIR itself, holding the COCO json ...
    _folder(tmp_path / "data", [_record(1, "a.png")])
    ds = load_dataset("coco-folder")
    assert ds.ids == ["a.png"] and ds.name == "data"
    # ... and its coco-folder/ subfolder, which comes first.
    _folder(tmp_path / "data" / "coco-folder", [_record(1, "b.png"), _record(2, "c.png")])
    ds = load_dataset("coco-folder", limit=1)
    assert ds.ids == ["b.png"] and ds.name == "coco-folder"
    assert data_main(["verify", "coco-folder"]) == 0
    monkeypatch.delenv("BENCHMARK_DATA_DIR")
    with pytest.raises(DataError, match="BENCHMARK_DATA_DIR is not set"):
        load_dataset("coco-folder")


def test_a_folder_dataset_is_named_without_its_path(tmp_path):
    mine = _folder(tmp_path / "my photos", [_record(1, "a.png")])
    for ds in (
        load_dataset(str(mine)),
        load_dataset(str(mine) + "/"),
        load_dataset("coco-folder", data_dir=mine),
        load_dataset(os.path.relpath(mine) + "/"),
    ):
        assert ds.name == "my photos"
        assert str(tmp_path) not in json.dumps(ds.card, default=str)
    clash = _folder(tmp_path / "synthetic", [_record(1, "a.png")])
    assert load_dataset(str(clash)).name == "synthetic-folder"  # not the built-in set's name


def test_recorded_messages_name_files_relative_to_the_data_and_cache_folders(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCHMARK_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("BENCHMARK_CACHE_DIR", str(tmp_path / "cache"))
    message = (
        f"{tmp_path}/data/voc-masks/annotations.json: image 3 has no file; "
        f"see {tmp_path}/cache/models/cnn_gap.pt and /elsewhere/x.json"
    )
    assert portable(message) == (
        "$BENCHMARK_DATA_DIR/voc-masks/annotations.json: image 3 has no file; "
        "see $BENCHMARK_CACHE_DIR/models/cnn_gap.pt and /elsewhere/x.json"
    )
