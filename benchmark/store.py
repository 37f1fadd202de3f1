"""Results store: one SQLite file holding saliency maps, per-image scores, failures and provenance.

Every write of a batch is one transaction, and every row is keyed by everything that changes it, so a
run killed at any moment (even ``kill -9``) resumes without losing or duplicating a result, and
several processes may write to one store at once (WAL journal, busy timeout, ``INSERT OR IGNORE``).

Results of every configuration a suite ever ran stay in the store (a rerun of an old configuration
computes nothing). What a board shows is decided by *claims*: each run claims every cell key its
configuration produces, computed or found in the cache, in the same transaction as the results, and
a board renders only the cells its suite's latest claiming run claimed. So a board never mixes in
the numbers of another configuration, another plugin version or another model, nor a failure
that was since fixed. ``gc`` deletes what no suite's latest run claims. Copy a store with SQLite's
backup (``sqlite3 SRC ".backup DST"``), not ``cp``: the newest writes may still be in its ``-wal``.
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
CREATE TABLE IF NOT EXISTS claims (   -- the cells (score, failure, map keys) a run's config produces
    run_id INTEGER NOT NULL, cell TEXT NOT NULL, PRIMARY KEY (run_id, cell)
) WITHOUT ROWID;
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


class StoreError(RuntimeError):
    """The store cannot be opened or written (corrupt, read-only, disk full); says what to do."""


class ResultsStore:
    """The SQLite results store at ``path``; ``readonly`` opens an existing one for rendering
    (a read-only file or folder works). One object may move between threads (the web page's
    server thread) but must not be used by two at once; processes each open their own."""

    def __init__(self, path: str | Path, *, readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        try:
            if readonly:
                if not self.path.is_file():
                    raise StoreError(
                        f"no results store at {self.path}: run `python -m benchmark run` first"
                    )
                uri = f"{self.path.resolve().as_uri()}?mode=ro"
                self.db = sqlite3.connect(
                    uri, uri=True, timeout=60, isolation_level=None, check_same_thread=False
                )
                self.db.execute("SELECT count(*) FROM sqlite_master").fetchone()
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.db = sqlite3.connect(
                    self.path, timeout=60, isolation_level=None, check_same_thread=False
                )
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA busy_timeout=60000")
                self.db.executescript(SCHEMA)
        except sqlite3.DatabaseError as e:
            raise StoreError(_advice(self.path, e)) from e
        self.has_claims = bool(
            self.db.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'claims'"
            ).fetchone()
        )

    def close(self) -> None:
        """Close the connection (every write is already committed)."""
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic write: ``BEGIN IMMEDIATE`` takes the write lock up front (other writers wait
        up to the busy timeout), everything inside commits together or not at all."""
        try:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")
        except sqlite3.DatabaseError as e:
            raise StoreError(_advice(self.path, e)) from e

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

    def suites(self) -> list[str]:
        """Names of the suites with runs in the store (gallery runs excluded)."""
        rows = self.db.execute("SELECT DISTINCT suite FROM runs ORDER BY suite").fetchall()
        return [s for (s,) in rows if not s.endswith(" (gallery)")]

    def put_model(self, model_key: str, info: dict[str, Any]) -> None:
        """Record (or refresh) a model's provenance under its cache identity."""
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO models VALUES (?, ?)",
                (model_key, json.dumps(info, sort_keys=True, default=str)),
            )

    def models(self, suite: str | None = None) -> list[dict[str, Any]]:
        """Recorded models' provenance (name, dataset, spec, weights, accuracy), by key: every
        model, or those the board of ``suite`` shows."""
        run = None if suite is None else self.board_run(suite)
        if run is None:
            rows = self.db.execute("SELECT info FROM models ORDER BY model_key").fetchall()
        else:
            rows = self.db.execute(
                "SELECT info FROM models m JOIN claims c ON c.cell = m.model_key AND c.run_id = ? "
                "ORDER BY model_key",
                (run,),
            ).fetchall()
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
            db.executemany(
                "INSERT OR IGNORE INTO claims VALUES (?, ?)", [(run_id, k) for k, _, _ in rows]
            )
            db.executemany("DELETE FROM failures WHERE cell = ?", [(k,) for k, _, _ in rows])

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
            db.executemany(
                "INSERT OR IGNORE INTO claims VALUES (?, ?)", [(run_id, k) for k, _, _ in rows]
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
            db.execute("INSERT OR IGNORE INTO claims VALUES (?, ?)", (run_id, key))

    # -- what a board shows --------------------------------------------------------------------

    def claim(self, run_id: int, cells: Iterable[str]) -> None:
        """Record that run ``run_id``'s configuration produces ``cells`` (computed or cached)."""
        with self.transaction() as db:
            db.executemany(
                "INSERT OR IGNORE INTO claims VALUES (?, ?)", [(run_id, c) for c in cells]
            )

    def board_run(self, suite: str) -> int | None:
        """The run whose claims ``suite``'s board shows: its latest run that claimed anything
        (None for a store written before claims existed: then every row is shown)."""
        if not self.has_claims:
            return None
        row = self.db.execute(
            "SELECT max(r.run_id) FROM runs r WHERE r.suite = ? "
            "AND EXISTS (SELECT 1 FROM claims c WHERE c.run_id = r.run_id)",
            (suite,),
        ).fetchone()
        return row[0]

    def _shown(self, table: str, columns: str, order: str, suite: str) -> list[tuple]:
        run = self.board_run(suite)
        if run is None:
            sql = f"SELECT {columns} FROM {table} t WHERE suite = ? ORDER BY {order}"
            return self.db.execute(sql, (suite,)).fetchall()
        sql = (
            f"SELECT {columns} FROM {table} t JOIN claims c ON c.cell = t.cell AND c.run_id = ? "
            f"WHERE t.suite = ? ORDER BY {order}"
        )
        return self.db.execute(sql, (run, suite)).fetchall()

    def scores(self, suite: str) -> list[tuple]:
        """(dataset, model, explainer, metric, score, image, value) rows the board shows, in a
        fixed order."""
        columns = "dataset, model, explainer, metric, score, image, value"
        return self._shown("scores", columns, columns.replace(", value", ""), suite)

    def board_maps(self, suite: str, dataset: str) -> dict[tuple[str, str, str], np.ndarray]:
        """(model, explainer, image) -> the map ``suite``'s board scored on ``dataset``. A map is
        found through its runtime cell, whose key is ``key_of(RUNTIME, saliency key)``."""
        places = {
            cell: (model, explainer, image)
            for cell, data, model, explainer, image, metric in self._shown(
                "scores", "t.cell, dataset, model, explainer, image, metric", "t.cell", suite
            )
            if data == dataset and metric == RUNTIME
        }
        keys = {
            key: places[cell]
            for (key,) in self.db.execute("SELECT key FROM saliency ORDER BY key")
            if (cell := key_of(RUNTIME, key)) in places
        }
        return {keys[k]: saliency for k, (saliency, _) in self.get_maps(keys).items()}

    def failures(self, suite: str) -> list[tuple]:
        """(dataset, model, explainer, metric, image, stage, message) rows the board shows."""
        columns = "dataset, model, explainer, metric, image, stage, message"
        return self._shown("failures", columns, "dataset, model, explainer, metric, image", suite)

    def computing_runs(self, suite: str) -> list[int]:
        """The runs that computed the scores the board shows, oldest first."""
        run = self.board_run(suite)
        if run is None:
            sql = "SELECT DISTINCT run_id FROM scores WHERE suite = ? ORDER BY run_id"
            return [r for (r,) in self.db.execute(sql, (suite,))]
        sql = (
            "SELECT DISTINCT t.run_id FROM scores t JOIN claims c ON c.cell = t.cell "
            "AND c.run_id = ? WHERE t.suite = ? ORDER BY t.run_id"
        )
        return [r for (r,) in self.db.execute(sql, (run, suite))]

    def gc(self) -> dict[str, int]:
        """Delete every score, failure and map no suite's board run claims, and older claims;
        returns the counts deleted per table, then compacts the file."""
        keep = (
            "SELECT c.cell FROM claims c WHERE c.run_id IN (SELECT max(r.run_id) FROM runs r "
            "WHERE EXISTS (SELECT 1 FROM claims k WHERE k.run_id = r.run_id) GROUP BY r.suite)"
        )
        counts = {}
        with self.transaction() as db:
            db.execute(f"CREATE TEMP TABLE keep AS {keep}")
            db.execute("CREATE INDEX temp.keep_cell ON keep (cell)")
            for table, column in (("scores", "cell"), ("failures", "cell"), ("saliency", "key")):
                cursor = db.execute(
                    f"DELETE FROM {table} WHERE {column} NOT IN (SELECT cell FROM keep)"
                )
                counts[table] = cursor.rowcount
            cursor = db.execute(
                "DELETE FROM claims WHERE run_id NOT IN (SELECT max(r.run_id) FROM runs r WHERE "
                "EXISTS (SELECT 1 FROM claims k WHERE k.run_id = r.run_id) GROUP BY r.suite)"
            )
            counts["claims"] = cursor.rowcount
            db.execute("DROP TABLE keep")
        self.db.execute("VACUUM")
        return counts


def score_values(path: str | Path) -> list[tuple]:
    """(cell, score, value) of every stored score but the runtimes, in cell order: what two runs
    of the same suite must agree on. Read-only; empty while a starting run has not yet created the
    file or its tables."""
    if not Path(path).exists():
        return []
    with sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True) as db:
        if not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'scores'").fetchone():
            return []
        return db.execute(
            f"SELECT cell, score, value FROM scores WHERE metric != '{RUNTIME}' "
            "ORDER BY cell, score"
        ).fetchall()


def _advice(path: Path, error: sqlite3.DatabaseError) -> str:
    """What went wrong with the store at ``path``, and what to do about it."""
    text = str(error)
    if "readonly" in text or "read-only" in text:
        how = "it is read-only: render with `python -m benchmark leaderboard`, or give --store a writable path"
    elif "disk is full" in text or "full" in text:
        how = "the disk is full: free space and rerun the same command (it resumes; nothing computed is lost)"
    elif "not a database" in text or "malformed" in text:
        how = (
            "the file is corrupt or not a results store: move it aside and rerun (results are "
            "recomputed), or restore a backup"
        )
    elif "unable to open" in text:
        how = "it cannot be opened: check that its folder exists and is writable"
    else:
        how = "check the path and permissions"
    return f"results store {path}: {text}; {how}"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
