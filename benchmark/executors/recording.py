"""A stand-in for the results store on a worker: reads answered from what the driver sent, writes
recorded for the driver to replay (the driver is the only writer of the real store)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

#: The store methods the explain and evaluate stages (and Table.fail) write through.
WRITES = ("put_maps", "put_scores", "put_failure", "claim")


class RecordingStore:
    """Answers ``get_maps`` / ``done_cells`` from ``maps`` and ``done`` (what the driver found in
    the store for one unit of work) and records every write as ``(method, args)``, in call order.
    A write is also visible to later reads of the same unit, as it would be in the real store."""

    def __init__(self) -> None:
        self.load({}, set())

    def load(self, maps: dict[str, tuple[np.ndarray, float]], done: Iterable[str]) -> None:
        """Start a unit of work: what the store holds for it, and no records yet."""
        self.maps = dict(maps)
        self.done = set(done)
        self.records: list[tuple[str, tuple]] = []

    def get_maps(self, keys: Iterable[str]) -> dict[str, tuple[np.ndarray, float]]:
        return {k: self.maps[k] for k in keys if k in self.maps}

    def done_cells(self, suite: str, cells: Iterable[str]) -> set[str]:
        return {c for c in cells if c in self.done}

    # The callers may mutate what they pass after the call (explain's ``cached`` dict), so every
    # record holds its own copy, as the real store consumes its arguments at once.

    def put_maps(self, rows: list[tuple[str, np.ndarray, float]], run_id: int) -> None:
        rows = list(rows)
        self.maps.update({k: (m, s) for k, m, s in rows})
        self.records.append(("put_maps", (rows, run_id)))

    def put_scores(self, rows: list[tuple], run_id: int) -> None:
        rows = list(rows)
        self.done.update(k for k, _, _ in rows)
        self.records.append(("put_scores", (rows, run_id)))

    def put_failure(self, key: str, cell: Any, stage: str, message: str, run_id: int) -> None:
        self.records.append(("put_failure", (key, cell, stage, message, run_id)))

    def claim(self, run_id: int, cells: Iterable[str]) -> None:
        self.records.append(("claim", (run_id, list(cells))))

    def put_model(self, model_key: str, info: dict[str, Any]) -> None:
        """The worker's own table opening records its model too; the driver already did."""


def replay(records: list[tuple[str, tuple]], store) -> None:
    """Make ``records`` (of a :class:`RecordingStore`) in ``store``, in their order."""
    for method, args in records:
        if method not in WRITES:
            raise ValueError(f"not a store write a worker may record: {method!r}")
        getattr(store, method)(*args)
