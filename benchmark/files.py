"""File helpers shared by model weights, datasets and caches: checksums and atomic writes."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path


class ChecksumError(ValueError):
    """A file's sha256 differs from the one it is known to have."""


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def verify_sha256(path: str | os.PathLike, expected: str | None, what_to_do: str = "") -> None:
    """Raise :class:`ChecksumError` naming ``path`` if its sha256 is not ``expected`` (None: no check)."""
    if not expected:
        return
    actual = sha256_file(path)
    if actual != expected.lower():
        advice = (
            what_to_do or "the file is corrupt or a different version: delete it and fetch it again"
        )
        raise ChecksumError(
            f"checksum mismatch for {path}: expected sha256 {expected}, got {actual}; {advice}"
        )


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` then rename onto ``path``: readers never see a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
