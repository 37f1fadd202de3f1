"""Results store: one SQLite file holding saliency maps, per-image scores, failures and provenance.

Every write of a batch is one transaction, and every row is keyed by everything that changes it, so a
run killed at any moment (even ``kill -9``) resumes without losing or duplicating a result, and
several processes may write to one store at once (WAL journal, busy timeout, ``INSERT OR IGNORE``).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

RUNTIME = "runtime"  # pseudo-metric: explain() seconds per image, stored beside the scores

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY AUTOINCREMENT,
    suite TEXT NOT NULL, started TEXT NOT NULL, finished TEXT,
    provenance TEXT NOT NULL,         -- JSON: git, packages, device, threads, seed, config
    skipped TEXT                      -- JSON list: datasets / models the run could not use, and why
);
CREATE TABLE IF NOT EXISTS models (
    model_key TEXT PRIMARY KEY, info TEXT NOT NULL   -- JSON provenance (accuracy, checkpoint)
);
CREATE TABLE IF NOT EXISTS saliency (
    key TEXT PRIMARY KEY,
    map BLOB NOT NULL, height INTEGER NOT NULL, width INTEGER NOT NULL,
    seconds REAL NOT NULL,            -- explain() time per image (batch time / batch size)
    run_id INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS scores (
    cell TEXT NOT NULL, score TEXT NOT NULL, value REAL,   -- NULL: not applicable (skipped)
    suite TEXT NOT NULL, dataset TEXT NOT NULL, model TEXT NOT NULL, explainer TEXT NOT NULL,
    metric TEXT NOT NULL, image TEXT NOT NULL, run_id INTEGER NOT NULL,
    PRIMARY KEY (suite, cell, score)
);
CREATE TABLE IF NOT EXISTS failures (
    cell TEXT NOT NULL, stage TEXT NOT NULL, message TEXT NOT NULL,
    suite TEXT NOT NULL, dataset TEXT NOT NULL, model TEXT NOT NULL, explainer TEXT NOT NULL,
    metric TEXT, image TEXT NOT NULL, run_id INTEGER NOT NULL,
    PRIMARY KEY (suite, cell)
);
CREATE INDEX IF NOT EXISTS scores_by_table ON scores (suite, dataset, model, metric);
"""


def key_of(*parts: Any) -> str:
    """A stable hash of JSON-serialisable parts: the identity of a cached computation."""
    text = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Cell:
    """Where a per-image result belongs in the leaderboards."""

    suite: str
    dataset: str
    model: str
    explainer: str
    metric: str | None
    image: str


class ResultsStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA busy_timeout=60000")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        """Close the connection (every write is already committed)."""
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic write: ``BEGIN IMMEDIATE`` takes the write lock up front (other writers wait
        up to the busy timeout), everything inside commits together or not at all."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # -- runs and models ----------------------------------------------------------------------

    def start_run(self, suite: str, provenance: dict[str, Any]) -> int:
        """A new run of ``suite`` with its provenance (git, packages, device, config); its id."""
        with self.transaction() as db:
            cursor = db.execute(
                "INSERT INTO runs (suite, started, provenance) VALUES (?, ?, ?)",
                (suite, _now(), json.dumps(provenance, sort_keys=True, default=str)),
            )
            return int(cursor.lastrowid)

    def finish_run(self, run_id: int, skipped: list[str] = ()) -> None:
        """Mark the run finished, with the lines of what it could not run and why."""
        with self.transaction() as db:
            db.execute(
                "UPDATE runs SET finished = ?, skipped = ? WHERE run_id = ?",
                (_now(), json.dumps(list(skipped)), run_id),
            )

    def runs(self, suite: str) -> list[dict[str, Any]]:
        """Every run of ``suite``, oldest first: id, start and finish times, provenance, skipped."""
        rows = self.db.execute(
            "SELECT run_id, started, finished, provenance, skipped FROM runs WHERE suite = ? "
            "ORDER BY run_id",
            (suite,),
        ).fetchall()
        return [
            {
                "run_id": r,
                "started": s,
                "finished": f,
                **json.loads(p),
                "skipped": json.loads(k or "[]"),
            }
            for r, s, f, p, k in rows
        ]

    def put_model(self, model_key: str, info: dict[str, Any]) -> None:
        """Record (or refresh) a model's provenance under its cache identity."""
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO models VALUES (?, ?)",
                (model_key, json.dumps(info, sort_keys=True, default=str)),
            )

    def models(self) -> list[dict[str, Any]]:
        """Every recorded model's provenance (name, dataset, spec, weights, accuracy), by key."""
        rows = self.db.execute("SELECT info FROM models ORDER BY model_key").fetchall()
        return [json.loads(info) for (info,) in rows]

    # -- saliency cache -----------------------------------------------------------------------

    def _rows_in(self, sql: str, keys: Iterable[str], *params: Any) -> list[tuple]:
        """Rows of ``sql`` (which ends in ``IN ({})``) for ``keys``, in chunks under SQLite's limit."""
        keys, rows = list(keys), []
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            rows += self.db.execute(
                sql.format(",".join("?" * len(chunk))), [*params, *chunk]
            ).fetchall()
        return rows

    def get_maps(self, keys: Iterable[str]) -> dict[str, tuple[np.ndarray, float]]:
        """key -> (map [H,W] float32, explain seconds per image) for the cached keys."""
        rows = self._rows_in(
            "SELECT key, map, height, width, seconds FROM saliency WHERE key IN ({})", keys
        )
        return {k: (np.frombuffer(b, np.float32).reshape(h, w), s) for k, b, h, w, s in rows}

    def put_maps(self, rows: list[tuple[str, np.ndarray, float]], run_id: int) -> None:
        """rows of (key, map [H,W] float32, explain seconds per image)."""
        with self.transaction() as db:
            db.executemany(
                "INSERT OR IGNORE INTO saliency VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (k, np.ascontiguousarray(m, np.float32).tobytes(), *m.shape, s, run_id)
                    for k, m, s in rows
                ],
            )

    # -- scores and failures --------------------------------------------------------------------

    def done_cells(self, suite: str, cells: Iterable[str]) -> set[str]:
        """The cell keys among ``cells`` that ``suite`` already has scores for."""
        sql = "SELECT DISTINCT cell FROM scores WHERE suite = ? AND cell IN ({})"
        return {row[0] for row in self._rows_in(sql, cells, suite)}

    def put_scores(
        self, rows: list[tuple[str, Cell, dict[str, float | None]]], run_id: int
    ) -> None:
        """rows of (cell key, where it belongs, {score name: value or None}); one transaction."""
        with self.transaction() as db:
            db.executemany(
                "INSERT OR IGNORE INTO scores VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        key,
                        score,
                        value,
                        c.suite,
                        c.dataset,
                        c.model,
                        c.explainer,
                        c.metric,
                        c.image,
                        run_id,
                    )
                    for key, c, values in rows
                    for score, value in values.items()
                ],
            )
            db.executemany(
                "DELETE FROM failures WHERE suite = ? AND cell = ?",
                [(c.suite, k) for k, c, _ in rows],
            )

    def put_failure(self, key: str, cell: Cell, stage: str, message: str, run_id: int) -> None:
        """Record why a cell could not be computed (replacing an older message for it); a later
        success of the same cell removes it (:meth:`put_scores`)."""
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO failures VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key,
                    stage,
                    message,
                    cell.suite,
                    cell.dataset,
                    cell.model,
                    cell.explainer,
                    cell.metric,
                    cell.image,
                    run_id,
                ),
            )

    def scores(self, suite: str) -> list[tuple]:
        """(dataset, model, explainer, metric, score, image, value) rows, in a fixed order."""
        return self.db.execute(
            "SELECT dataset, model, explainer, metric, score, image, value FROM scores "
            "WHERE suite = ? ORDER BY dataset, model, explainer, metric, score, image",
            (suite,),
        ).fetchall()

    def failures(self, suite: str) -> list[tuple]:
        """(dataset, model, explainer, metric, image, stage, message) rows, in a fixed order."""
        return self.db.execute(
            "SELECT dataset, model, explainer, metric, image, stage, message FROM failures "
            "WHERE suite = ? ORDER BY dataset, model, explainer, metric, image",
            (suite,),
        ).fetchall()


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
