"""Whose turn it is to write to a SQLite database: one writer at a time, handed on at once.

SQLite lets one connection write at a time; another's ``BEGIN IMMEDIATE`` waits in SQLite's
busy handler, which sleeps and polls (1, 2, 5, ... up to 100 ms a sleep). A burst of writes
(an identity provider provisioning) then spends much of its time asleep with the database
free. So writers queue here first: the threads of a process on a lock, and the processes that
share a database file (``rolecall serve --workers``, the CLI beside a server) on an ``flock``
of a file beside it, ``<database>-write-turn``. SQLite's own lock still decides; the turn only
makes the waiting short.
"""

from __future__ import annotations

import logging
import os
import threading
import time

try:
    import fcntl
except ImportError:  # not on Windows: threads still take turns, processes use SQLite's lock
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("rolecall.db")

#: The longest sleep between two tries for another process's turn (seconds): a turn is handed
#: on within this, where SQLite's busy handler may sleep 100 ms.
LONGEST_NAP = 0.002


class WriteTurn:
    """A lock for this process's threads, plus (for a database file) an ``flock`` among the
    processes using it. ``acquire`` returns whether the thread lock was taken; if another
    process keeps the file's lock past the timeout, the caller goes on holding the thread lock
    only and SQLite's own lock decides."""

    def __init__(self, lock_path: str | None) -> None:
        self._threads = threading.Lock()
        self._path = lock_path if fcntl is not None else None
        self._fd: int | None = None
        self._fd_pid = 0
        self._file_held = False

    def locked(self) -> bool:
        return self._threads.locked()

    def acquire(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        if not self._threads.acquire(timeout=timeout):
            return False
        if self._path is not None:
            self._take_file(deadline)
        return True

    def release(self) -> None:
        if self._file_held:
            self._file_held = False
            assert fcntl is not None and self._fd is not None
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._threads.release()

    def _take_file(self, deadline: float) -> None:
        assert fcntl is not None
        fd = self._file()
        nap = LONGEST_NAP / 16
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    log.warning("another process kept the write turn; waiting for SQLite's lock")
                    return
                time.sleep(nap)
                nap = min(nap * 2, LONGEST_NAP)
            else:
                self._file_held = True
                return

    def _file(self) -> int:
        """This process's descriptor of the lock file. A child made by ``fork`` opens its own:
        an inherited descriptor would share the parent's lock instead of excluding it."""
        if self._fd is None or self._fd_pid != os.getpid():
            assert self._path is not None
            self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
            self._fd_pid = os.getpid()
        return self._fd


def lock_path_for(database: str | None) -> str | None:
    """The turn's lock file for a SQLite database path (none for an in-memory database)."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return f"{database}-write-turn"
