"""Engine and session factory.

SQLite: the documented pysqlite recipe (emit ``BEGIN`` ourselves) so transactions and SAVEPOINTs
behave, plus WAL and foreign keys. PostgreSQL: psycopg 3.
"""

from __future__ import annotations

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from rolecall.db.changes import announce_writes

#: Execution option naming how a SQLite transaction begins (IMMEDIATE unless it only reads).
BEGIN_OPTION = "rolecall_sqlite_begin"


def normalise_url(url: str) -> str:
    """Map plain ``postgresql://`` URLs onto the psycopg 3 driver."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def make_engine(url: str, **kwargs: object) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs
        )
        _apply_sqlite_recipe(engine)
        return engine
    engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20, **kwargs)
    # Other processes' access caches learn of every committed write (``db.changes``).
    announce_writes(engine)
    return engine


def _apply_sqlite_recipe(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        # Let SQLAlchemy own transaction boundaries (pysqlite's own handling breaks SAVEPOINT).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):  # type: ignore[no-untyped-def]
        # IMMEDIATE takes the write lock up front, so two writers never deadlock on upgrade.
        # Read-only work (``for_reading``) begins DEFERRED: under WAL, readers then run side by
        # side instead of queueing for the one write lock.
        mode = conn.get_execution_options().get(BEGIN_OPTION, "IMMEDIATE")
        conn.exec_driver_sql(f"BEGIN {mode}")


def for_reading(engine: Engine) -> Engine:
    """The same engine (same pool) for transactions that only read: on SQLite they begin
    DEFERRED. A read transaction must not write: SQLite refuses to upgrade a read snapshot that
    another writer has overtaken."""
    return engine.execution_options(**{BEGIN_OPTION: "DEFERRED"})


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=True)
