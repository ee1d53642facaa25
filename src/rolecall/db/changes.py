"""Change feeds: has anything been committed to the database since we last looked?

The access cache (``authz.cache``) is dropped whole on every committed write, from any process
(another server replica, the operator's CLI). How a process learns of a write depends on the
backend:

- SQLite: ``PRAGMA data_version`` on a connection of its own changes whenever any *other*
  connection (of this process or another) has committed. Asking costs microseconds and needs no
  lock, so it is asked before every lookup: no write is ever missed.
- PostgreSQL: every transaction that wrote issues ``NOTIFY`` (delivered on commit, to every
  listener); a thread of each server process ``LISTEN``s on a connection of its own. A write of
  another process is seen once its notification arrives (normally well under a millisecond on
  one host; the network's latency across hosts). Writes of this process are also announced to
  its own cache when they commit. While the listening connection is down the feed answers
  "cannot tell", and the cache is bypassed until it is back.

Writes that change no access fact (an API key's last-used time) carry the ``BOOKKEEPING``
execution option and announce nothing on PostgreSQL; on SQLite a server makes them on its
feed's own connection (``SqliteChanges.write_quietly``), which its ``data_version`` ignores
(other SQLite processes still count them as a change).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Final

from sqlalchemy import Connection, Engine, Executable, event

log = logging.getLogger("rolecall.db")

#: The PostgreSQL notification channel of committed writes.
CHANNEL = "rolecall_changes"
#: Execution option of a write that changes no access fact (no notification is sent for it).
BOOKKEEPING = "rolecall_bookkeeping"
#: ``Connection.info`` key: the current transaction has written.
_WROTE = "rolecall.wrote"
#: Statements that begin with these words do not write.
_READS = frozenset({"SELECT", "SHOW", "SET", "BEGIN", "SAVEPOINT", "RELEASE", "ROLLBACK"})
#: Seconds between checks that the listening connection is alive, and before reconnecting.
PING_INTERVAL = 1.0
RECONNECT_DELAY = 0.5

#: ``changed()``'s answer when it cannot ask right now and has lost nothing: skip the cache
#: for this request, keep its entries (the next answer tells of anything committed meanwhile).
BUSY: Final = "busy"

#: Callbacks per engine, run when a transaction that wrote is about to commit.
_local_listeners: dict[int, list[Callable[[], None]]] = {}


def announce_writes(engine: Engine) -> None:
    """PostgreSQL: make every transaction of ``engine`` that wrote send ``NOTIFY`` with its
    commit. ``db.engine.make_engine`` installs this on every PostgreSQL engine, the CLI's too."""

    @event.listens_for(engine, "after_cursor_execute")
    def _note_write(conn, _cursor, statement, _params, context, _many):  # type: ignore[no-untyped-def]
        if _WROTE in conn.info:
            return
        if context is not None and context.execution_options.get(BOOKKEEPING):
            return
        words = statement.lstrip().split(None, 1)
        if words and words[0].upper() not in _READS:
            conn.info[_WROTE] = True

    @event.listens_for(engine, "commit")
    def _announce(conn):  # type: ignore[no-untyped-def]
        if conn.info.pop(_WROTE, None) is None:
            return
        for listener in _local_listeners.get(id(engine), ()):
            listener()
        # Inside the transaction being committed: delivered if, and only if, it commits.
        conn.connection.dbapi_connection.execute(f"NOTIFY {CHANNEL}")

    @event.listens_for(engine, "rollback")
    def _forget(conn):  # type: ignore[no-untyped-def]
        conn.info.pop(_WROTE, None)


class SqliteChanges:
    """``PRAGMA data_version`` on a connection kept for it, opened on first use.

    Bookkeeping writes (``write_quietly``) are made on that same connection: SQLite does not
    count a connection's own commits in its ``data_version``, so they drop no cache.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._connection: Connection | None = None
        self._version: int | None = None
        self._lock = threading.Lock()

    def _open(self) -> Connection:
        if self._connection is None:
            connection = self._engine.connect()
            connection.detach()  # ours alone, outside the pool
            self._connection = connection
        return self._connection

    def _read(self) -> int:
        # On the driver's connection: SQLAlchemy would begin a transaction around it. Outside a
        # transaction the pysqlite recipe leaves the driver in autocommit, so this takes no lock.
        raw = self._open().connection.dbapi_connection
        cursor = raw.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute("PRAGMA data_version")
            return int(cursor.fetchone()[0])
        finally:
            cursor.close()

    def changed(self) -> bool | str | None:
        # Never wait on the event loop: while a bookkeeping write holds the connection (it may
        # wait for SQLite's write lock), the request skips the cache.
        if not self._lock.acquire(blocking=False):
            return BUSY
        try:
            version = self._read()
            changed, self._version = version != self._version, version
        except Exception:  # the file went away, the disk failed: do not trust the cache
            log.warning("cannot read SQLite's data_version; the access cache is bypassed")
            self._close_locked()
            return None
        finally:
            self._lock.release()
        return changed

    def write_quietly(self, statement: Executable) -> None:
        """Execute and commit a bookkeeping write (no access fact) without it counting as a
        change for this process's cache. Other processes still see a change."""
        with self._lock:
            connection = self._open()
            try:
                with connection.begin():
                    connection.execute(statement)
            except Exception:
                self._close_locked()
                raise

    def _close_locked(self) -> None:
        connection, self._connection, self._version = self._connection, None, None
        if connection is not None:
            try:
                connection.close()
            except Exception:  # already broken
                log.debug("closing the change feed's connection failed", exc_info=True)

    def close(self) -> None:
        with self._lock:
            self._close_locked()


class PostgresChanges:
    """A thread ``LISTEN``ing on a connection of its own; ``start()`` it, ``stop()`` it."""

    def __init__(self, engine: Engine, *, connect: Callable[[], Any] | None = None) -> None:
        self._engine = engine
        self._connect = connect or self._default_connect
        self._dirty = threading.Event()
        self._listening = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        #: The listening connection's server process id (tests end it to simulate a drop).
        self.backend_pid: int | None = None
        _local_listeners.setdefault(id(engine), []).append(self._dirty.set)

    def _default_connect(self) -> Any:
        import psycopg

        url = self._engine.url.set(drivername="postgresql")
        return psycopg.connect(url.render_as_string(hide_password=False), autocommit=True)

    def changed(self) -> bool | None:
        if not self._listening.is_set():
            return None
        if self._dirty.is_set():
            self._dirty.clear()
            return True
        return False

    @property
    def listening(self) -> bool:
        return self._listening.is_set()

    def start(self) -> None:
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="rolecall-changes", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        listeners = _local_listeners.get(id(self._engine), [])
        if self._dirty.set in listeners:
            listeners.remove(self._dirty.set)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._listen()
            except Exception as exc:  # psycopg.Error, OSError: reconnect
                if not self._stopping.is_set():
                    log.warning("change listener lost its connection (%s); reconnecting", exc)
            self._listening.clear()
            self._stopping.wait(RECONNECT_DELAY)

    def _listen(self) -> None:
        with self._connect() as conn:
            conn.execute(f"LISTEN {CHANNEL}")
            self.backend_pid = conn.info.backend_pid
            # Whatever was committed while nobody listened: treat as changed.
            self._dirty.set()
            self._listening.set()
            while not self._stopping.is_set():
                for _ in conn.notifies(timeout=PING_INTERVAL):
                    self._dirty.set()
                conn.execute("SELECT 1")  # a dead connection raises here


def watch(engine: Engine) -> SqliteChanges | PostgresChanges | None:
    """The change feed for ``engine``'s database; None when there can be none (in-memory
    SQLite). A PostgreSQL feed must be started."""
    backend = engine.url.get_backend_name()
    if backend == "sqlite":
        if engine.url.database in (None, "", ":memory:"):
            return None
        return SqliteChanges(engine)
    if backend == "postgresql":
        return PostgresChanges(engine)
    return None
