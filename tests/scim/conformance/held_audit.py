"""Making a race between two live requests certain, on PostgreSQL: the test holds the audit
table, so a write that reaches its audit record waits there with its changes made and not
committed, and a second write can be sent into that moment."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, text

from rolecall.db.engine import make_engine


def backends_waiting(engine: Engine) -> int:
    """How many of the database's connections wait for a lock."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    with engine.connect() as conn:
        return int(conn.scalar(query) or 0)


@contextmanager
def audit_table_held(database_url: str) -> Iterator[Callable[[int], int]]:
    """Hold ``audit_events`` (``LOCK TABLE ... IN EXCLUSIVE MODE``: reads go on, inserts wait)
    until the block ends. Yields ``until_waiting(n)``: returns once ``n`` connections wait
    for a lock, or after 30 s, with how many do."""
    engine = make_engine(database_url)

    def until_waiting(count: int) -> int:
        deadline = time.monotonic() + 30
        while (waiting := backends_waiting(engine)) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return waiting

    try:
        with engine.connect() as holder:
            holder.execute(text("LOCK TABLE audit_events IN EXCLUSIVE MODE"))
            yield until_waiting
            holder.rollback()
    finally:
        engine.dispose()
