"""Files that hold keys, trust state or results: written whole, and readable by their owner only.

A reader sees the old file or the new one, never half of either: the data goes to a
temporary file in the same directory (created 0600 by ``mkstemp`` whatever the umask), is
flushed to disk, and is renamed over the target; the directory is then synced so the
rename itself survives a crash. A process killed mid-write leaves at most a
``.<name>.*.tmp`` file behind, which readers ignore.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from pathlib import Path

from sealroom.errors import BackendUnavailable, KeystoreError

__all__ = ["TEMP_SUFFIX", "create_private", "read_private", "write_private"]

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


def read_private(path: Path, *, what: str, max_size: int = 1 << 20) -> bytes | None:
    """The bytes of ``path``, or None if it does not exist; :class:`KeystoreError` if it is
    a symlink, not a regular file, someone else's, readable by group or others, or too large.

    Checks run on the opened descriptor, so the file cannot be swapped between check and read.
    """
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise KeystoreError(f"{what} {path} is a symbolic link; refusing it") from None
        raise KeystoreError(f"cannot open {what} {path}: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise KeystoreError(f"{what} {path} is not a regular file")
        if st.st_mode & 0o077:
            raise KeystoreError(
                f"{what} {path} is accessible by group or others "
                f"(mode {stat.S_IMODE(st.st_mode):04o}); its keys may have leaked. "
                f"If that is impossible, run `chmod 600 {path}`"
            )
        if hasattr(os, "getuid") and st.st_uid != os.getuid():
            raise KeystoreError(f"{what} {path} is owned by another user")
        if st.st_size > max_size:
            raise KeystoreError(f"{what} {path} is too large")
        chunks = []
        remaining = max_size + 1
        while remaining > 0:
            chunk = os.read(fd, remaining)
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
    finally:
        os.close(fd)
    raw = b"".join(chunks)
    if len(raw) > max_size:
        raise KeystoreError(f"{what} {path} is too large")
    return raw


def create_private(path: Path) -> None:
    """Make sure ``path`` exists with mode 0600 before another library opens it (an SQLite
    database, whose -wal and -shm files SQLite then creates with the same mode).

    A new file is created 0600 whatever the umask; an existing one wider than that is
    narrowed to 0600, since it holds the same secrets.
    """
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
        try:
            if stat.S_IMODE(os.fstat(fd).st_mode) & 0o077:
                os.fchmod(fd, 0o600)
        finally:
            os.close(fd)
        for suffix in ("-wal", "-shm", "-journal"):
            side = path.with_name(path.name + suffix)
            with contextlib.suppress(FileNotFoundError):
                if stat.S_IMODE(side.stat().st_mode) & 0o077:
                    side.chmod(0o600)
    except OSError as exc:
        raise BackendUnavailable(f"cannot create {path}: {exc.strerror}") from None
