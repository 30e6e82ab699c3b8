"""One gateway per data dir: an exclusive lock held for the gateway's life, and private files.

The lock is ``flock`` on ``<data dir>/gateway.lock``, which also holds the owner's pid. The
operating system drops it when the process ends, however it ends (``kill -9`` included), so a
crashed gateway never blocks the next one; a second gateway on the same data dir is refused
with the first one's pid. Everything that recovers what a previous process left behind (runs,
cron firings, approvals, commands) runs after the lock is taken.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from pathlib import Path
from typing import Final, final

__all__ = ["LOCK_FILE", "DataDirLock", "DataDirLocked", "private_file", "write_private"]

LOCK_FILE: Final = "gateway.lock"


class DataDirLocked(Exception):
    """Another process holds the data dir."""

    def __init__(self, directory: Path, pid: int | None) -> None:
        who = f"pid {pid}" if pid is not None else "a process whose pid is not recorded yet"
        super().__init__(f"the data dir {directory} is in use by another gateway ({who})")
        self.directory = directory
        self.pid = pid


def _read_pid(fd: int) -> int | None:
    text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    return int(text) if text.isdigit() else None


@final
class DataDirLock:
    """Held from :meth:`acquire` until :meth:`release` (or the process's end)."""

    def __init__(self, directory: Path, fd: int) -> None:
        self.directory = directory
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, directory: Path) -> DataDirLock:
        """Take the lock, or raise :class:`DataDirLocked`. Blocking: call it in a thread."""
        # O_CLOEXEC: a command the gateway starts must not inherit (and so keep) the lock.
        fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            raise DataDirLocked(directory, pid) from None
        except BaseException:
            os.close(fd)
            raise
        os.fchmod(fd, 0o600)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        return cls(directory, fd)

    def release(self) -> None:
        """Let another gateway have the data dir. The file stays: removing it would race with
        a process that has just opened it."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)


def private_file(path: Path) -> None:
    """Make ``path`` readable and writable by its owner only, creating it empty if missing."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
    os.chmod(path, 0o600)


def write_private(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically and durably, mode 0600 (blocking).

    A temporary file in the same folder is written, synced and renamed over ``path``, then the
    folder is synced so the rename survives a crash: a reader sees the old content or the new,
    never a part. The temporary file is removed if anything fails."""
    directory = path.parent
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
