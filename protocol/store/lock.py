"""One writer per store: an exclusive ``flock`` on ``<store>.lock`` that holds the owner's pid.

The kernel drops the lock when its holder exits, even on SIGKILL, so a crashed daemon never
leaves the store locked; the pid written into the file lets the refusal name the live holder.
(The pattern of pid files under ``flock``, as systemd and postgres' ``postmaster.pid`` use it.)
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from protocol.store.errors import StoreLocked


class WriterLock:
    """An exclusive advisory lock file ``path`` guarding the database ``store``."""

    def __init__(self, path: Path, store: Path) -> None:
        self.path = path
        self.store = store
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock without waiting and record this process's pid in the lock file.

        Raises :class:`StoreLocked` with the holder's pid when another open file holds it.
        """
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            raise StoreLocked(str(self.store), holder) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        os.fsync(fd)
        self._fd = fd

    def release(self) -> None:
        """Drop the lock (idempotent); the pid is cleared first so a stale number is never read."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
        finally:
            os.close(fd)  # closing the last descriptor releases the flock


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", errors="replace").strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None
