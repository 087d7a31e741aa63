"""Files that hold keys, trust state or results: written whole, and readable by their owner only.

A reader sees the old file or the new one, never half of either: the data goes to a
temporary file in the same directory (created 0600 by ``mkstemp`` whatever the umask), is
flushed to disk, and is renamed over the target; the directory is then synced so the
rename itself survives a crash. A process killed mid-write leaves at most a
``.<name>.*.tmp`` file behind, which readers ignore.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from sealroom.errors import BackendUnavailable

__all__ = ["TEMP_SUFFIX", "write_private"]

TEMP_SUFFIX = ".tmp"


def write_private(path: Path, data: bytes) -> None:
    """Atomically replace ``path`` with ``data``, mode 0600 (its directory: 0700 if created)."""
    directory = path.parent
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=directory)
    except OSError as exc:
        raise BackendUnavailable(f"cannot write in {directory}: {exc.strerror}") from None
    tmp = Path(tmp_name)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        _fsync_directory(directory)
    except OSError as exc:
        raise BackendUnavailable(f"cannot write {path}: {exc.strerror}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
