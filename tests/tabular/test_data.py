"""The fetal-health card and loader: the real table, the seeded split, one error per bad input."""

from __future__ import annotations

import numpy as np
import pytest

from benchmark.data import DataChecksumError, DataError
from benchmark.tabular.data import TableError, list_tables, load_table, read_csv, read_table_card

FEATURES = ["a", "b", "c"]


def _read(tmp_path, text: str):
    path = tmp_path / "t.csv"
    path.write_text(text)
    return read_csv(
        path, features=FEATURES, target="y", class_values=[1, 2, 3], class_names=["n", "s", "p"]
    )


def test_a_good_file_parses_and_maps_labels_to_indices(tmp_path):
    table = _read(tmp_path, "a,b,extra,c,y\n1,2,zz,3,1.0\n4.5,-5,zz,6e1,3\n\n")
    assert table.features.dtype == np.float64 and table.features.shape == (2, 3)
    assert table.features.tolist() == [[1, 2, 3], [4.5, -5, 60]]
    assert table.labels.tolist() == [0, 2] and table.labels.dtype == np.int64
    assert table.row_ids == ["row00000", "row00001"]


@pytest.mark.parametrize(
    "text, message",
    [
        ("a,c,y\n1,2,1\n", r"t\.csv, line 1 \(header\): missing column\(s\) 'b'"),
        (
            "a,b,c,y\n1,2,3,1\n1,x2,3,1\n",
            r"line 3 \(data row 1\), column 'b': 'x2' is not a number",
        ),
        ("a,b,c,y\n1,2,,1\n", r"line 2 \(data row 0\), column 'c': empty cell"),
        ("a,b,c,y\n1,2,3,1\n1,NaN,3,2\n", r"line 3 \(data row 1\), column 'b': NaN"),
        ("a,b,c,y\n1,2,3,1\n1,2,inf,2\n", r"column 'c': 'inf' is infinite"),
        (
            "a,b,c,y\n1,2,3,4\n",
            r"line 2 \(data row 0\), column 'y': label '4' is not a known class",
        ),
        ("a,b,c,y\n1,2,3,1.5\n", r"column 'y': label '1.5' is not a known class; known: 1 \(n\)"),
        ("a,b,c,y\n1,2,3\n", r"line 2 \(data row 0\): 3 cells, but the header has 4"),
        ("a,b,b,c,y\n1,2,2,3,1\n", r"duplicate column\(s\) \['b'\]"),
        ("a,b,c,y\n", "no data rows"),
        ("", "is empty"),
    ],
)
def test_each_bad_input_is_an_error_naming_file_row_and_column(tmp_path, text, message):
    with pytest.raises(TableError, match=message) as info:
        _read(tmp_path, text)
    assert str(tmp_path / "t.csv") in str(info.value)


def test_the_card_lists_the_file_and_checksum():
    card = read_table_card("fetal-health")
    assert card["kind"] == "tabular" and card["format"] == "csv"
    assert card["class_names"] == ["normal", "suspect", "pathological"]
    assert len(card["features"]) == 21 and card["target"] == "fetal_health"
    assert len(card["files"][0]["sha256"]) == 64
    assert "fetal-health" in list_tables()
    with pytest.raises(KeyError, match="Did you mean: fetal-health"):
        read_table_card("fetal-helth")
    with pytest.raises(ValueError, match="'synthetic' is an image dataset, not a table"):
        read_table_card("synthetic")


def test_the_card_sits_beside_the_image_cards_which_refuse_to_load_it():
    from benchmark.data import list_datasets, load_dataset

    assert "fetal-health" in list_datasets()
    with pytest.raises(ValueError, match="is a table .* benchmark.tabular.data.load_table"):
        load_dataset("fetal-health")


def test_without_the_file_the_error_says_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.delenv("BENCHMARK_DATA_DIR", raising=False)
    monkeypatch.setenv("BENCHMARK_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(DataError, match="not found .*holds fetal-health/.*Kaggle") as info:
        load_table("fetal-health")
    assert str(tmp_path / "cache" / "data" / "fetal-health") in str(info.value)


def test_a_corrupt_copy_fails_its_checksum(tmp_path):
    (tmp_path / "fetal_health.csv").write_text("baseline value\n1\n")
    with pytest.raises(DataChecksumError, match="checksum mismatch"):
        load_table("fetal-health", data_dir=tmp_path)


def test_fetal_health_loads_and_splits_stratified(data_dir):
    table = load_table("fetal-health")
    card = read_table_card("fetal-health")
    assert table.features.shape == (card["rows"], 21)
    assert np.bincount(table.labels).tolist() == card["class_counts"]
    split = table.split(seed=0)
    assert len(split.test) == 426 and not set(split.train) & set(split.test)
    assert np.array_equal(table.split(seed=0).test, split.test)
    assert not np.array_equal(table.split(seed=1).test, split.test)
    # Stratified: each class keeps its share of the table in the test part (to one row).
    counts = np.bincount(table.labels[split.test])
    assert np.all(np.abs(counts - 0.2 * np.bincount(table.labels)) <= 1)
