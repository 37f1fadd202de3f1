"""Tables from dataset cards: ``load_table("fetal-health")`` -> :class:`Table`, and its seeded split.

A tabular card is a TOML file like the image cards (``format = "csv"``, ``kind = "tabular"``,
``files`` with a ``role = "table"`` entry and its sha256) plus ``target`` (the label column),
``class_values`` (the target's value of each class), ``class_names`` and ``features`` (the required
columns, in order). Cards are ``datasets/NAME.toml``, beside the image cards; the file is found and verified by :func:`benchmark.data.locate`
(``$BENCHMARK_DATA_DIR/FOLDER``, the user cache, or a download where the card gives a URL).

Validation is strict and names the place of each problem: a missing column (with the header's
line), a row with too few or too many cells, an empty, NaN, infinite or non-numeric cell, a label
that is not one of ``class_values``, each as a :class:`TableError` with the file, the line, the data
row and the column.
"""

from __future__ import annotations

import csv
import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import train_test_split

from benchmark.data import DataError, list_datasets, locate, read_card
from benchmark.data._files import CARDS_DIR
from benchmark.registry import did_you_mean


class TableError(DataError):
    """A table file is malformed; the message names the file, line, row and column."""


@dataclass(frozen=True)
class Table:
    """A whole table in memory. Row ``i`` is the i-th data row of the file (its id ``row{i}``)."""

    name: str
    features: np.ndarray  # float64 [N, F]
    labels: np.ndarray  # int64 [N], 0-based indices into class_names
    feature_names: tuple[str, ...]
    class_names: tuple[str, ...]
    path: Path
    sha256: str  # of the parsed arrays (features then labels), for cache keys

    @property
    def row_ids(self) -> list[str]:
        return [f"row{i:05d}" for i in range(len(self.labels))]

    def split(self, seed: int = 0, test_size: float = 0.2) -> Split:
        """A stratified train/test split (scikit-learn's ``train_test_split`` with
        ``stratify=labels, random_state=seed``); the indices of each part are sorted."""
        train, test = train_test_split(
            np.arange(len(self.labels)),
            test_size=test_size,
            stratify=self.labels,
            random_state=seed,
        )
        return Split(self, np.sort(train), np.sort(test), seed, test_size)


@dataclass(frozen=True)
class Split:
    """Row indices of the train and test parts of a :class:`Table`."""

    table: Table
    train: np.ndarray
    test: np.ndarray
    seed: int
    test_size: float

    def part(self, which: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """(features [n,F], labels [n], row ids) of ``"train"`` or ``"test"``."""
        index = {"train": self.train, "test": self.test}[which]
        ids = self.table.row_ids
        return self.table.features[index], self.table.labels[index], [ids[i] for i in index]


def list_tables() -> list[str]:
    """Names of the tabular cards (``kind = "tabular"``) in ``datasets/``."""
    return [n for n in list_datasets() if read_card(n).get("kind") == "tabular"]


def read_table_card(name: str) -> dict[str, Any]:
    """The tabular card ``datasets/NAME.toml``, its table keys checked."""
    known = list_tables()
    if name not in known:
        if name in list_datasets():
            raise ValueError(
                f"{name!r} is an image dataset, not a table; tables: {', '.join(known)}"
            )
        raise KeyError(
            f"unknown table {name!r}.{did_you_mean(name, known)} Known: {', '.join(known)}"
        )
    card = read_card(name)
    where = CARDS_DIR / f"{name}.toml"
    for key in ("target", "class_values", "class_names", "features", "files"):
        if key not in card:
            raise ValueError(f"tabular card {where} has no {key!r}")
    if len(card["class_values"]) != len(card["class_names"]):
        raise ValueError(f"{where}: class_values and class_names differ in length")
    return card


def load_table(name: str, data_dir: str | Path | None = None) -> Table:
    """The table of card ``name``, validated; ``data_dir`` is the table's own folder."""
    card = read_table_card(name)
    path, _ = locate(card, "table", Path(data_dir) if data_dir is not None else None)
    return read_csv(
        path,
        features=card["features"],
        target=card["target"],
        class_values=card["class_values"],
        class_names=card["class_names"],
        name=card["name"],
    )


def _number(text: str, where: str) -> float:
    if not text.strip():
        raise TableError(f"{where}: empty cell; every cell must hold a number")
    try:
        value = float(text)
    except ValueError:
        raise TableError(f"{where}: {text!r} is not a number") from None
    if math.isnan(value):
        raise TableError(f"{where}: NaN; missing values are not supported, fill or drop the row")
    if math.isinf(value):
        raise TableError(f"{where}: {text!r} is infinite")
    return value


def read_csv(
    path: str | Path,
    *,
    features: list[str],
    target: str,
    class_values: list[float],
    class_names: list[str],
    name: str | None = None,
) -> Table:
    """Parse and validate a CSV file with a header line (see the module docstring)."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            lines = list(csv.reader(f))
    except (OSError, UnicodeDecodeError) as e:
        raise TableError(f"cannot read {path} ({e})") from e
    if not lines:
        raise TableError(f"{path} is empty; expected a header line with the columns")
    header = [h.strip() for h in lines[0]]
    duplicates = sorted({h for h in header if header.count(h) > 1})
    if duplicates:
        raise TableError(f"{path}, line 1 (header): duplicate column(s) {duplicates}")
    missing = [c for c in [*features, target] if c not in header]
    if missing:
        raise TableError(
            f"{path}, line 1 (header): missing column(s) {', '.join(map(repr, missing))}; "
            f"the header has {', '.join(map(repr, header))}"
        )
    columns = [header.index(c) for c in features]
    label_column = header.index(target)
    values = {float(v): k for k, v in enumerate(class_values)}
    known = ", ".join(f"{v:g} ({n})" for v, n in zip(class_values, class_names, strict=True))
    x = np.empty((len(lines) - 1, len(features)), dtype=np.float64)
    y = np.empty(len(lines) - 1, dtype=np.int64)
    rows = 0
    for line_no, cells in enumerate(lines[1:], start=2):
        if not cells:  # a blank line (e.g. at the end of the file)
            continue
        where = f"{path}, line {line_no} (data row {rows})"
        if len(cells) != len(header):
            raise TableError(f"{where}: {len(cells)} cells, but the header has {len(header)}")
        for j, c in enumerate(columns):
            x[rows, j] = _number(cells[c], f"{where}, column {features[j]!r}")
        label = _number(cells[label_column], f"{where}, column {target!r}")
        if label not in values:
            raise TableError(
                f"{where}, column {target!r}: label {cells[label_column]!r} is not a known "
                f"class; known: {known}"
            )
        y[rows] = values[label]
        rows += 1
    if rows == 0:
        raise TableError(f"{path} has a header but no data rows")
    x, y = x[:rows], y[:rows]
    digest = hashlib.sha256(x.tobytes() + y.tobytes()).hexdigest()
    return Table(name or path.stem, x, y, tuple(features), tuple(class_names), path, digest)


__all__ = [
    "Split",
    "Table",
    "TableError",
    "list_tables",
    "load_table",
    "read_csv",
    "read_table_card",
]
