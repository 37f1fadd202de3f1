"""Dataset cards, where data lives, and download-and-verify.

A card (``datasets/NAME.toml``) lists the files of a dataset, each with a ``role`` (what the
loader uses it for), a ``path`` inside the dataset's folder, the checksum of its content and, where
the file has a public home, its ``url``. A file is looked for in ``$BENCHMARK_DATA_DIR/FOLDER``
(a local copy, e.g. the CI's ``../shared/data``), then in the user cache
``$BENCHMARK_CACHE_DIR/data/FOLDER``; failing both it is downloaded there and verified.

Checksums: ``sha256`` is of the file's bytes; ``content_sha256`` of its decompressed bytes (for
``.gz`` files that mirrors recompress, such as Debian's Fashion-MNIST); ``md5`` where only the
upstream's md5 is published.
"""

from __future__ import annotations

import os
import shutil
import sys
import tomllib
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmark.files import atomic_write, file_digest
from benchmark.registry import did_you_mean, match_patterns

from ._base import DataChecksumError, DataError

CARDS_DIR = Path(__file__).resolve().parents[2] / "datasets"
DATA_ENV, CACHE_ENV = "BENCHMARK_DATA_DIR", "BENCHMARK_CACHE_DIR"

# The opener used for downloads; tests replace it (nothing may touch the network there).
urlopen: Callable[..., Any] = urllib.request.urlopen


def data_root() -> Path | None:
    """The local data folder named by ``$BENCHMARK_DATA_DIR``, or None."""
    value = os.environ.get(DATA_ENV)
    return Path(value).expanduser() if value else None


def portable(message: str) -> str:
    """``message`` with the local data and cache folders written as ``$BENCHMARK_DATA_DIR`` and
    ``$BENCHMARK_CACHE_DIR``, so a failure recorded on one machine reads the same on a board
    built anywhere."""
    folders = {CACHE_ENV: cache_root(), DATA_ENV: data_root()}
    for env, folder in folders.items():
        if folder is None:
            continue
        for form in sorted({str(folder.resolve()), str(folder)}, key=len, reverse=True):
            message = message.replace(form.rstrip("/") + "/", f"${env}/")
    return message


def cache_root() -> Path:
    """Where downloads and trained models go: ``$BENCHMARK_CACHE_DIR`` or ~/.cache/explainer-benchmark."""
    value = os.environ.get(CACHE_ENV)
    return Path(value).expanduser() if value else Path.home() / ".cache" / "explainer-benchmark"


def list_datasets(pattern: str = "*") -> list[str]:
    """Names of the dataset cards in ``datasets/*.toml`` matching shell wildcards."""
    return match_patterns((p.stem for p in CARDS_DIR.glob("*.toml")), pattern)


def read_card(name: str) -> dict[str, Any]:
    """The card ``datasets/NAME.toml`` as a dict (``name`` filled in); KeyError with close names."""
    path = CARDS_DIR / f"{name}.toml"
    if not path.is_file():
        known = list_datasets()
        raise KeyError(
            f"unknown dataset {name!r}.{did_you_mean(name, known)} Known: {', '.join(known)}; or pass a folder of "
            "images with a COCO annotation file: load_dataset('coco-folder', data_dir=FOLDER)"
        )
    with open(path, "rb") as f:
        card = tomllib.load(f)
    card.setdefault("name", name)
    return card


def verify(path: Path, entry: dict[str, Any], advice: str) -> None:
    """Check ``path`` against the checksums of its card entry; DataChecksumError naming it."""
    checks = [
        ("sha256", "sha256", False),
        ("content_sha256", "sha256", True),
        ("md5", "md5", False),
    ]
    for key, algorithm, decompress in checks:
        expected = entry.get(key)
        if not expected:
            continue
        try:
            actual = file_digest(path, algorithm, decompress)
        except (OSError, EOFError) as e:
            raise DataError(f"cannot read {path} ({e}); {advice}") from e
        if actual != expected.lower():
            what = "decompressed content " if decompress else ""
            raise DataChecksumError(
                f"checksum mismatch for {path}: expected {what}{algorithm} {expected}, got "
                f"{actual}; the file is corrupt or a different version: {advice}"
            )


_verified: dict[tuple[str, int, int], bool] = {}  # (path, size, mtime) already checked this process


def _verify_once(path: Path, entry: dict[str, Any], advice: str) -> None:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _verified:
        verify(path, entry, advice)
        _verified[key] = True


def download(
    url: str, dest: Path, entry: dict[str, Any] | None = None, quiet: bool = False
) -> Path:
    """Fetch ``url`` into ``dest`` atomically, then verify it against ``entry``'s checksums."""
    entry = entry or {}
    if not quiet:
        print(f"downloading {url} -> {dest}", file=sys.stderr)

    def write(tmp: Path) -> None:
        try:
            with urlopen(url) as response, open(tmp, "wb") as out:
                shutil.copyfileobj(response, out, 1 << 20)
        except OSError as e:  # URLError is an OSError
            raise DataError(
                f"could not download {url} to {dest} ({e}); without internet, put a copy of the "
                f"file at {dest} or set {DATA_ENV} to a folder holding it"
            ) from e
        verify(tmp, entry, f"the download from {url} is not the expected file; try again later")

    return atomic_write(dest, write)


def roots(card: dict[str, Any], data_dir: Path | None = None) -> list[Path]:
    """The folders that may hold a card's files, in search order: ``data_dir`` (else
    ``$BENCHMARK_DATA_DIR/FOLDER``), then the user cache, where downloads go."""
    folder = card.get("folder", card["name"])
    found = [data_dir] if data_dir else [r / folder for r in (data_root(),) if r]
    return [*found, cache_root() / "data" / folder]


def locate(
    card: dict[str, Any], role: str, data_dir: Path | None = None, fetch: bool = True
) -> tuple[Path, dict[str, Any]]:
    """The verified local path of the card's file with ``role`` (downloading it if allowed).

    Several entries may share a role (e.g. an official and an alternative copy); the first one
    present locally wins, else the first one with a URL is downloaded.
    """
    entries = [f for f in card.get("files", []) if f.get("role") == role]
    if not entries:
        raise KeyError(f"dataset card {card['name']!r} lists no file with role {role!r}")
    candidates = roots(card, data_dir)
    advice = _advice(card)
    for entry in entries:
        for root in candidates:
            path = root / entry["path"]
            if path.is_file():
                _verify_once(path, entry, f"delete or replace {path} ({advice})")
                return path, entry
    downloadable = [e for e in entries if e.get("url")]
    looked = ", ".join(str(r) for r in candidates)
    if not downloadable or not fetch:
        raise DataError(
            f"{card['name']}: file {entries[0]['path']} not found (looked in {looked}); {advice}"
        )
    entry = downloadable[0]
    return download(entry["url"], candidates[-1] / entry["path"], entry), entry


def _advice(card: dict[str, Any]) -> str:
    folder = card.get("folder", card["name"])
    how = card.get("how_to_get", "")
    base = f"set {DATA_ENV} to a folder that holds {folder}/"
    if any(f.get("url") for f in card.get("files", [])):
        base += " or let the harness download it (needs internet)"
    return f"{base}{'; ' + how if how else ''}"
