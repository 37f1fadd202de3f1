"""File helpers shared by model weights, datasets and caches: checksums and atomic writes."""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path


class ChecksumError(ValueError):
    """A file's sha256 differs from the one it is known to have."""


def file_digest(
    path: str | os.PathLike, algorithm: str = "sha256", decompress: bool = False
) -> str:
    """Hex digest of a file's bytes (of its gzip-decompressed bytes with ``decompress``)."""
    h = hashlib.new(algorithm)
    with (gzip.open if decompress else open)(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` then rename onto ``path``: readers never see a half-written file.
    The file gets the permissions of an ordinary new file (``0o666`` less the umask), not the
    owner-only ones of a temporary file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
