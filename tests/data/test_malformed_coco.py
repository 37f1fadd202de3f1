"""Malformed COCO files never abort a load: each ends in a DataError naming the file at load time,
or in per-image failures and record problems naming the file and the record; never another
exception. The images whose records are fine still load, with their exact masks and labels.

A case is a folder with three clean images (a polygon, an uncompressed RLE, a compressed RLE plus
a polygon) and victim images carrying exactly one fault each (so each check must catch its own
fault: a missed one leaves a victim that loads), plus orphan annotations (of no image) and
malformed categories. ``test_every_listed_fault_alone`` applies each listed fault on its own;
``test_generated_malformed_coco_files_never_abort`` draws (Hypothesis, derandomized) combinations
of them with generated values, one file in ten broken as a whole.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from benchmark.data import DataError, coco_union_mask, load_dataset

MISSING = object()  # a key left out
DUP = object()  # a second record with the same id (or file name)
VICTIM_W, VICTIM_H = 6, 5
VICTIMS = 6  # at most, per file
ORPHAN_IDS = range(5000, 5010)


def _rle_string(mask: np.ndarray) -> str:
    return mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))["counts"].decode()


def _clean_coco() -> dict:
    c_mask = np.zeros((9, 7), np.uint8)
    c_mask[2:7, 1:5] = 1  # 20 px
    return {
        "images": [
            {"id": 1, "file_name": "a.png", "width": 8, "height": 6},
            {"id": 2, "file_name": "b.png", "width": 10, "height": 10},
            {"id": 3, "file_name": "sub/c.png", "width": 7, "height": 9},
        ],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[1, 1, 6, 1, 6, 4, 1, 4]]},
            {
                "id": 2,
                "image_id": 2,
                "category_id": 2,
                "segmentation": {"size": [10, 10], "counts": [23, 4, 6, 4, 6, 4, 53]},
                "area": 12,
            },
            {
                "id": 3,
                "image_id": 3,
                "category_id": 2,
                "segmentation": {"size": [9, 7], "counts": _rle_string(c_mask)},
                "area": 20.0,
            },
            {
                "id": 4,
                "image_id": 3,
                "category_id": 1,
                "segmentation": [[0.5, 0.5, 3.5, 0.5, 3.5, 2.5]],
                "area": 6,
                "iscrowd": 0,
            },
        ],
        "categories": [
            {"id": 1, "name": "one"},
            {"id": 2, "name": "two"},
            {"id": 3, "name": "victims"},  # used by victim annotations only
        ],
    }


CLEAN = _clean_coco()
CLEAN_NAMES = ["a.png", "b.png", "sub/c.png"]
CLEAN_LABELS = {"a.png": 0, "b.png": 1, "sub/c.png": 1}


# -- what can be wrong: the listed faults -----------------------------------------------------------


def _rle(size=MISSING, counts=MISSING) -> dict:
    return {k: v for k, v in (("size", size), ("counts", counts)) if v is not MISSING}


GOOD_COUNTS = [7, 4, 2, 4, 2, 4, 7]  # 30 px = 5 x 6
BAD_SIZES = [[6, 5], [5], [5, 6, 1], "5x6", None, [5.0, 6.0], [0, 0], [-5, -6], [True, 6]]
BAD_SIZES += [[50, 60], [5, 7], MISSING]
BAD_COUNTS = [
    [*GOOD_COUNTS, 3],
    GOOD_COUNTS[:-1],
    [],
    [-1, 31],
    [10.0, 20.0],
    ["10", "20"],
    [[10], [20]],
    [True, 29],
    None,
    5,
    {},
    MISSING,
    # compressed strings: out-of-range characters, a cut-off run, another image size, too long
    "\x00",
    " ~",
    "é",
    "P",
    _rle_string(np.ones((6, 6))),
    _rle_string(np.ones((4, 6))),
    "",
    "ooooooo1",
    "0" * 40,
]
SEGMENTATION_FAULTS = [
    [[1, 1, 4, 1, 4, 3, 1]],  # odd
    [[1, 1, 4, 1]],  # too short (pycocotools would take 4 numbers for a box)
    [[1, 1]],
    [[]],
    [[1, 1, 4, 1, 4, math.nan]],
    [[1, math.inf, 4, 1, 4, 3]],
    [[-math.inf, 1, 4, 1, 4, 3]],
    [[1, 1, "4", 1, 4, 3]],
    [[1, 1, None, 1, 4, 3]],
    [[1, 1, True, 1, 4, 3]],
    [[1, 1, [4], 1, 4, 3]],
    [[1, 1, 4, 1, 4, 3], [1, 1, 4]],
    [[1, 1, 4, 1, 4, 3], 7],
    [],
    [5],
    ["abc"],
    [None],
    [{"x": 1}],
    [[0, 0, 1e6, 0, 1e6, 1e6]],  # far outside the image: a garbage mask
    [[-100, -100, 2, 0, 2, 2]],
    [[0, 0, 10**20, 0, 3, 3]],  # pycocotools takes a minute, then returns garbage
    [[0, 0, 1e308, 1e308, 3, 3]],
    MISSING,
    5,
    "polygon",
    None,
    True,
    1.5,
    *[_rle(size, GOOD_COUNTS) for size in BAD_SIZES],
    *[_rle([VICTIM_H, VICTIM_W], counts) for counts in BAD_COUNTS],
]
ANNOTATION_FAULTS = [
    *[("segmentation", s) for s in SEGMENTATION_FAULTS],
    *[("category_id", v) for v in [999, "3", "1", True, 1.0, 3.0, None, -1, [1], MISSING, 7, 8]],
    *[("id", v) for v in [MISSING, None, 1.5, [1], {}, True, DUP]],
    *[("area", v) for v in ["big", -1, math.nan, math.inf, [1], None, True]],
]
IMAGE_FAULTS = [
    *[
        (key, v)
        for key in ("width", "height")
        for v in [MISSING, 0, -5, 5.5, "6", None, True, [6], 10**12, 10**5, "wrong"]
    ],
    *[
        ("file_name", v)
        for v in [
            MISSING,
            None,
            5,
            "",
            "   ",
            "ABSOLUTE",  # the absolute path of a real image outside the folder
            "../outside.png",
            "images/../../outside.png",
            "./../outside.png",
            "..\\outside.png",
            "C:\\outside.png",
            "a\x00b.png",
            "nope.png",
            "images",
            "annotations.json",
            "sub",
            DUP,
        ]
    ],
    *[("id", v) for v in [MISSING, None, 1.5, [100], True, DUP]],
    *[("record", v) for v in [5, "image", None, [], True]],
]
ORPHAN_FAULTS = [
    *[("image_id", v) for v in [999, "1", True, 1.0, None, MISSING, [1], "a.png"]],
    *[("record", v) for v in [5, "annotation", None, [], [1, 2]]],
]
BAD_CATEGORIES = [  # groups of category records that no clean annotation uses
    [{"id": 7}],
    [{"id": "8", "name": "x"}],
    [{"name": "y"}],
    [5],
    [None],
    [{"id": 4, "name": "four"}, {"id": 4, "name": "four again"}],
    [{"id": 9.5, "name": "z"}],
    [{"id": True, "name": "a bool is not 1"}],
    [{"id": 1.0, "name": "a float is not 1"}],
    [{"id": 7, "name": 5}],
]
WHOLE_FILES = [
    b"",
    b"{",
    b"null",
    b"[]",
    b"5",
    b'"coco"',
    b'{"images": []}',
    b'{"images": {}, "annotations": [], "categories": []}',
    b'{"images": [], "annotations": 5, "categories": []}',
    b'{"images": [], "annotations": [], "categories": "x"}',
    b'{"images": null, "annotations": [], "categories": []}',
    b"\xef\xbb\xbf{}",
    b"\xff\xfe\x00garbage",
    b"[" * 100_000,
]


# -- a case: the listed or generated faults in one file ---------------------------------------------


@dataclass
class Case:
    raw: bytes | None = None
    coco: dict | None = None
    victims: int = 0  # image records that must fail
    bad_annotations: int = 0  # malformed annotation records (victims' faults + orphans)
    bad_records: int = 0  # malformed image records and categories
    batch_size: int = 4
    image_size: int | None = None
    faults: list = field(default_factory=list)
    orphan_positions: list[int] = field(default_factory=list)  # in the annotations list
    bad_categories: list[int] = field(default_factory=list)  # positions no image reports


def _set(record: dict, key: str, value) -> None:
    if value is MISSING:
        record.pop(key, None)
    else:
        record[key] = value


def build(
    victim_faults: list[tuple[str, str, object]],
    orphans: list[tuple[str, object]] = (),
    categories: list[list] = (),
    pick: Callable[[int, int], int] = max,
    shuffle: Callable[[list], list] = list,
) -> Case:
    """A file with the clean images and one victim per fault (``"annotation"`` or ``"image"``,
    key, value); ``pick(lo, hi)`` chooses annotation counts and which one breaks, ``shuffle``
    the order of the records."""
    case = Case()
    coco = copy.deepcopy(CLEAN)
    n = len(victim_faults)
    records = [
        {"id": 100 + v, "file_name": f"v{v}.png", "width": VICTIM_W, "height": VICTIM_H}
        for v in range(n)
    ]
    anns = [
        [
            {
                "id": 1000 + 10 * v + k,
                "image_id": 100 + v,
                "category_id": 3,
                "segmentation": [[1, 1, 4, 1, 4, 3, 1, 3]],
                "area": 6,
            }
            for k in range(pick(1, 3))
        ]
        for v in range(n)
    ]
    extra_records, extra_anns = [], []
    for v, (kind, key, value) in enumerate(victim_faults):
        case.faults.append((kind, key, value))
        if kind == "annotation":
            ann = anns[v][pick(0, len(anns[v]) - 1)]
            if value is DUP:
                extra_anns.append(ann | {"segmentation": [[0, 0, 2, 0, 2, 2]]})
            else:
                _set(ann, key, value)
            case.bad_annotations += 1
            continue
        if value is DUP:  # a second record with the same id, or the same file name
            other = {"id": 200 + v, "file_name": f"w{v}.png"}
            extra_records.append(records[v] | {k: other[k] for k in other if k != key})
        elif key == "record":
            records[v] = value
        else:
            if value == "ABSOLUTE":
                value = "OUTSIDE"  # the real path, filled in when the file is written
            elif value == "wrong":
                value = {"width": VICTIM_W + 1, "height": VICTIM_H - 1}[key]
            _set(records[v], key, value)
        case.bad_records += 1
    records += extra_records
    case.victims = len(records)
    orphan_records = []
    for j, (key, value) in enumerate(orphans):
        case.faults.append(("orphan", key, value))
        if key == "record":
            orphan_records.append(value)
            continue
        ann = {
            "id": ORPHAN_IDS[j],
            "image_id": 1,
            "category_id": 1,
            "segmentation": [[0, 0, 5, 0, 5, 5]],
            "area": 12.5,
        }
        _set(ann, key, value)
        orphan_records.append(ann)
    case.bad_annotations += len(orphan_records)
    bad_categories = [c for group in categories for c in group]
    case.bad_records += len(bad_categories)
    uses_7 = ("annotation", "category_id", 7) in [f[:3] for f in case.faults]
    case.bad_categories = [
        3 + k
        for k, c in enumerate(bad_categories)
        if not (uses_7 and isinstance(c, dict) and type(c.get("id")) is int and c["id"] == 7)
    ]
    coco["images"] = shuffle(coco["images"] + records)
    coco["annotations"] = shuffle(
        coco["annotations"] + [a for group in anns for a in group] + extra_anns + orphan_records
    )
    coco["categories"] += bad_categories
    case.orphan_positions = [
        j
        for j, a in enumerate(coco["annotations"])
        if not isinstance(a, dict) or a.get("id") in ORPHAN_IDS
    ]
    case.coco = coco
    return case


# -- generated values -----------------------------------------------------------------------------

coordinate = st.integers(-2, 8) | st.floats(-1, 6, allow_nan=False)
odd_polygon = st.lists(coordinate, min_size=1, max_size=13).filter(lambda p: len(p) % 2)
short_polygon = st.lists(coordinate, max_size=5)


@st.composite
def spoiled_polygon(draw) -> list:
    poly = draw(st.lists(coordinate, min_size=3, max_size=6).map(lambda p: p + p))
    bad = st.sampled_from([math.nan, math.inf, -math.inf, "3", None, True, False, [1], {}])
    poly[draw(st.integers(0, len(poly) - 1))] = draw(bad | st.floats(1e4, 1e300))
    return poly


@st.composite
def spoiled_polygons(draw) -> list:
    good = st.just([1, 1, 4, 1, 4, 3])
    polys = draw(st.lists(good, max_size=2))
    polys.insert(
        draw(st.integers(0, len(polys))), draw(odd_polygon | short_polygon | spoiled_polygon())
    )
    return polys


counts_of_wrong_sum = st.lists(st.integers(0, 12), max_size=9).filter(lambda c: sum(c) != 30)
generated_segmentation = st.one_of(
    spoiled_polygons(),
    st.builds(_rle, st.just([VICTIM_H, VICTIM_W]), counts_of_wrong_sum),
    st.builds(
        _rle,
        st.lists(st.integers(-3, 9) | st.floats(0, 9) | st.none(), max_size=3).filter(
            lambda s: s != [VICTIM_H, VICTIM_W]
        ),
        st.just(GOOD_COUNTS),
    ),
    st.builds(
        _rle,
        st.just([VICTIM_H, VICTIM_W]),
        st.text(max_size=12).filter(lambda s: _sums_to(s, 30) is False),
    ),
)


def _sums_to(counts: str, total: int) -> bool:
    from benchmark.data._loaders import rle_string_counts

    runs = rle_string_counts(counts)
    return not isinstance(runs, str) and sum(runs) == total


junk = st.sampled_from([None, True, False, [], {}, [1, 2]]) | st.floats()
annotation_fault = st.one_of(
    st.sampled_from(ANNOTATION_FAULTS),
    st.tuples(st.just("segmentation"), generated_segmentation),
    st.tuples(
        st.sampled_from(["id", "category_id", "segmentation"]), junk | st.text(max_size=3)
    ).filter(lambda kv: not (kv[0] == "id" and isinstance(kv[1], str))),  # strings are ids
    st.tuples(st.just("area"), junk.filter(lambda v: not (_is_float(v) and v >= 0))),
)


def _is_float(v) -> bool:
    return isinstance(v, float) and math.isfinite(v)


image_fault = st.one_of(
    st.sampled_from(IMAGE_FAULTS),
    st.tuples(st.sampled_from(["width", "height"]), st.integers(-10, 0) | st.floats()),
    st.tuples(
        st.just("file_name"),
        st.builds(
            lambda up, name: "../" * up + name,
            st.integers(1, 3),
            st.sampled_from(["outside.png", "set/images/a.png", "x"]),
        ),
    ),
)


@st.composite
def cases(draw) -> Case:
    if draw(st.integers(0, 9)) == 0:
        return Case(raw=draw(st.sampled_from(WHOLE_FILES) | st.binary(max_size=64)))
    faults = []
    for _ in range(draw(st.integers(1, VICTIMS))):
        if draw(st.integers(0, 2)):
            faults.append(("annotation", *draw(annotation_fault)))
        else:
            faults.append(("image", *draw(image_fault)))
    orphans = draw(st.lists(st.sampled_from(ORPHAN_FAULTS), max_size=3))
    categories = draw(st.lists(st.sampled_from(BAD_CATEGORIES), max_size=2))
    case = build(
        faults,
        orphans,
        categories,
        pick=lambda lo, hi: draw(st.integers(lo, hi)),
        shuffle=lambda records: draw(st.permutations(records)),
    )
    case.batch_size = draw(st.integers(1, 8))
    case.image_size = draw(st.sampled_from([None, None, None, 8]))
    return case


# -- the folder and the check -----------------------------------------------------------------------


def _png(path: Path, height: int, width: int, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("malformed")
    _png(base / "outside.png", VICTIM_H, VICTIM_W, 99)  # what an escaping file_name would open
    root = base / "set"
    for i, im in enumerate(CLEAN["images"]):
        _png(root / "images" / im["file_name"], im["height"], im["width"], i)
    for v in range(VICTIMS):
        _png(root / "images" / f"v{v}.png", VICTIM_H, VICTIM_W, 10 + v)
    return root


@pytest.fixture(scope="module")
def expected() -> dict[str, tuple[torch.Tensor, int]]:
    """The clean images' masks (pycocotools on the clean file alone) and labels."""
    coco = COCO()
    coco.dataset = copy.deepcopy(CLEAN)
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return {
        im["file_name"]: (
            torch.from_numpy(coco_union_mask(coco, im)),
            CLEAN_LABELS[im["file_name"]],
        )
        for im in coco.dataset["images"]
    }


def _write(case: Case, folder: Path) -> Path:
    path = folder / "annotations.json"
    if case.raw is not None:
        path.write_bytes(case.raw)
        return path
    text = json.dumps(case.coco)  # NaN and Infinity as JSON's common extension writes them
    path.write_text(text.replace('"OUTSIDE"', json.dumps(str(folder.parent / "outside.png"))))
    return path


def check(case: Case, folder: Path, expected: dict, totals: Counter) -> None:
    """Load the case's file and read every batch; what must hold (see the module doc)."""
    source = _write(case, folder)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if case.raw is not None:
            with pytest.raises(DataError) as caught:
                load_dataset(str(folder), image_size=case.image_size)
            assert str(source) in str(caught.value)
            totals["whole files"] += 1
            return
        ds = load_dataset(str(folder), image_size=case.image_size)
        batches = list(ds.batches(case.batch_size))
    # Every image record keeps a place: the clean images plus one id per victim record ...
    assert len(ds) == len(CLEAN_NAMES) + case.victims, case.faults
    assert set(CLEAN_NAMES) <= set(ds.ids) and ds.name == folder.name
    loaded = [i for b in batches for i in b.ids]
    assert loaded == sorted(CLEAN_NAMES), (loaded, case.faults)
    # ... the clean ones loading with their exact masks and labels ...
    for b in batches:
        for k, id_ in enumerate(b.ids):
            mask, label = expected[id_]
            assert b.labels[k].item() == label
            if case.image_size is None:
                assert torch.equal(b.masks[k], mask), (id_, case.faults)
            else:
                assert b.masks.shape[-2:] == (8, 8)
    # ... and every victim failing alone, naming the file; every orphan is a record problem.
    failed = {pid for pid, _ in ds.problems if pid in ds.ids}
    assert failed == set(ds.ids) - set(CLEAN_NAMES), (ds.problems, case.faults)
    records = [p for p in ds.problems if p[0] not in ds.ids]
    assert records == ds.record_problems
    where = {pid.split(":", 1)[1] for pid, _ in records}
    for j in case.orphan_positions:
        assert f"annotations[{j}]" in where, (j, records, case.faults)
    for k in case.bad_categories:
        assert f"categories[{k}]" in where, (k, records, case.coco["categories"])
    for pid, message in ds.problems:
        assert str(source) in message, (pid, message)
    for id_ in failed:
        with pytest.raises(DataError, match="image record"):
            ds.load(id_)
    totals["files"] += 1
    totals["malformed annotations"] += case.bad_annotations
    totals["malformed image records and categories"] += case.bad_records
    totals["failed images"] += len(failed)
    totals["record problems"] += len(records)


def test_every_listed_fault_alone(folder, expected):
    totals = Counter()
    for kind, faults in (("annotation", ANNOTATION_FAULTS), ("image", IMAGE_FAULTS)):
        for key, value in faults:
            check(build([(kind, key, value)]), folder, expected, totals)
    for orphan in ORPHAN_FAULTS:
        check(build([("image", "id", None)], [orphan]), folder, expected, totals)
    for group in BAD_CATEGORIES:
        check(build([("annotation", "category_id", 7)], [], [group]), folder, expected, totals)
    for raw in WHOLE_FILES:
        check(Case(raw=raw), folder, expected, totals)
    assert totals["files"] == len(ANNOTATION_FAULTS) + len(IMAGE_FAULTS) + len(ORPHAN_FAULTS) + len(
        BAD_CATEGORIES
    )


def test_generated_malformed_coco_files_never_abort(folder, expected):
    totals = Counter()

    @settings(
        max_examples=500,
        derandomize=True,  # the same examples on every run
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(case=cases())
    def run(case: Case) -> None:
        check(case, folder, expected, totals)

    run()
    print(dict(totals))
    assert totals["malformed annotations"] >= 1000, totals
    assert totals["whole files"] >= 5 and totals["failed images"] >= 1000, totals
