"""Engine and session factory.

SQLite: the documented pysqlite recipe (emit ``BEGIN`` ourselves) so transactions and SAVEPOINTs
behave, plus WAL and foreign keys; writers take turns (``WriterConnection``, ``db.write_turn``).
PostgreSQL: psycopg 3.
"""

from __future__ import annotations

import logging
import sqlite3

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from rolecall.db.changes import announce_writes
from rolecall.db.text import register_sqlite_functions
from rolecall.db.write_turn import WriteTurn, lock_path_for

#: Execution option naming how a SQLite transaction begins (IMMEDIATE unless it only reads).
BEGIN_OPTION = "rolecall_sqlite_begin"
#: How much of a SQLite database file its connections read through a memory map (1 GiB).
MMAP_BYTES = 1 << 30
#: The size a SQLite write-ahead log is cut back to once checkpointed (64 MiB).
WAL_KEPT_BYTES = 64 << 20
#: SQLite's wait for a lock another process holds (ms).
BUSY_TIMEOUT_MS = 30_000
#: The longest a writer waits for its turn among the other writers (seconds) before it
#: leaves the waiting to SQLite's lock: far more than a queue of requests takes, short enough
#: that a turn never given back (a bug) would slow writes, not stop them.
WRITE_TURN_TIMEOUT = 5.0

log = logging.getLogger("rolecall.db")


class WriterConnection(sqlite3.Connection):
    """A pysqlite connection whose write transactions queue for their engine's ``WriteTurn``
    (threads of this process, and the other processes on the same file), which the end of the
    transaction hands to the next writer at once (see ``db.write_turn``).
    """

    write_turn: WriteTurn | None = None
    holds_turn = False

    def take_write_turn(self) -> None:
        if self.write_turn is not None and not self.holds_turn:
            self.holds_turn = self.write_turn.acquire(timeout=WRITE_TURN_TIMEOUT)
            if not self.holds_turn:
                log.warning(
                    "no write turn in %.0f s; waiting for SQLite's lock", WRITE_TURN_TIMEOUT
                )

    def give_back_write_turn(self) -> None:
        if self.holds_turn and not self.in_transaction:
            self.holds_turn = False
            assert self.write_turn is not None
            self.write_turn.release()

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self.give_back_write_turn()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.give_back_write_turn()

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self.holds_turn and self.write_turn is not None:
                self.holds_turn = False
                self.write_turn.release()


def normalise_url(url: str) -> str:
    """Map plain ``postgresql://`` URLs onto the psycopg 3 driver."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def make_engine(url: str, **kwargs: object) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        connect_args = {"check_same_thread": False, "timeout": 30, "factory": WriterConnection}
        engine = create_engine(url, connect_args=connect_args, **kwargs)
        _apply_sqlite_recipe(engine)
        return engine
    engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20, **kwargs)
    # Other processes' access caches learn of every committed write (``db.changes``).
    announce_writes(engine)
    return engine


def _apply_sqlite_recipe(engine: Engine) -> None:
    write_turn = WriteTurn(lock_path_for(engine.url.database))

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        # Let SQLAlchemy own transaction boundaries (pysqlite's own handling breaks SAVEPOINT).
        dbapi_connection.isolation_level = None
        dbapi_connection.write_turn = write_turn
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        # WAL with synchronous=NORMAL, SQLite's documented setting for WAL: a commit needs no
        # fsync; a power loss may lose the last commits, never the database's integrity.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        # Reads through a memory map instead of read() calls into each connection's small page
        # cache: once the database outgrows that cache (100,000 users is ~180 MB), a lookup no
        # longer pays a read() for each page the cache lacks. Beyond the map SQLite reads as before.
        cursor.execute(f"PRAGMA mmap_size={MMAP_BYTES}")
        # SQLite reuses the log from its start after a checkpoint but never shrinks the file: one
        # large import (90,000 users in a transaction is ~180 MB of log) would keep its size on
        # disk for good. Past this size the log is cut back when it is next reused.
        cursor.execute(f"PRAGMA journal_size_limit={WAL_KEPT_BYTES}")
        cursor.close()
        register_sqlite_functions(dbapi_connection)

    @event.listens_for(engine, "begin")
    def _on_begin(conn):  # type: ignore[no-untyped-def]
        # IMMEDIATE takes the write lock up front, so two writers never deadlock on upgrade.
        # Read-only work (``for_reading``) begins DEFERRED: under WAL, readers then run side by
        # side instead of queueing for the one write lock.
        mode = conn.get_execution_options().get(BEGIN_OPTION, "IMMEDIATE")
        raw = conn.connection.dbapi_connection
        if mode == "IMMEDIATE":
            raw.take_write_turn()
        try:
            conn.exec_driver_sql(f"BEGIN {mode}")
        except BaseException:
            raw.give_back_write_turn()
            raise


def for_reading(engine: Engine) -> Engine:
    """The same engine (same pool) for transactions that only read: on SQLite they begin
    DEFERRED. A read transaction must not write: SQLite refuses to upgrade a read snapshot that
    another writer has overtaken."""
    return engine.execution_options(**{BEGIN_OPTION: "DEFERRED"})


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=True)
