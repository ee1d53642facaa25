"""SQLite's writers of one process take turns on a lock that the end of each write transaction
hands on at once (``db.engine.WriterConnection``), instead of polling in SQLite's busy handler."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import Engine, text

from rolecall.db.engine import for_reading, make_engine


@pytest.fixture
def engine(tmp_path) -> Engine:
    engine = make_engine(f"sqlite:///{tmp_path / 'turns.db'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE rows (n INTEGER)"))
    yield engine
    engine.dispose()


def turn_taken(engine: Engine) -> bool:
    with engine.connect() as conn:
        turn = conn.connection.dbapi_connection.write_turn
        conn.rollback()
    return turn.locked()


def test_a_write_transaction_holds_the_turn_until_it_commits(engine):
    with engine.connect() as conn:
        conn.execute(text("INSERT INTO rows VALUES (1)"))
        assert conn.connection.dbapi_connection.holds_turn
        assert conn.connection.dbapi_connection.write_turn.locked()
        conn.commit()
        assert not conn.connection.dbapi_connection.write_turn.locked()


def test_a_rolled_back_or_failed_transaction_gives_the_turn_back(engine):
    with engine.connect() as conn:
        conn.execute(text("INSERT INTO rows VALUES (1)"))
        conn.rollback()
    assert not turn_taken(engine)
    with pytest.raises(Exception, match="no such table"), engine.begin() as conn:
        conn.execute(text("INSERT INTO missing VALUES (1)"))
    assert not turn_taken(engine)


def test_a_read_transaction_takes_no_turn(engine):
    with engine.connect() as writer, for_reading(engine).connect() as reader:
        writer.execute(text("INSERT INTO rows VALUES (1)"))
        assert reader.execute(text("SELECT count(*) FROM rows")).scalar() == 0
        assert not reader.connection.dbapi_connection.holds_turn
        writer.commit()


def test_concurrent_writers_all_commit_one_after_another(engine):
    """Eight threads, each a write transaction that holds on a moment: none fails, none is
    lost, and no two were ever inside a write transaction at once."""
    inside, most = [0], [0]
    lock = threading.Lock()
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def write(n: int) -> None:
        try:
            barrier.wait(timeout=30)
            with engine.begin() as conn:
                conn.execute(text("INSERT INTO rows VALUES (:n)"), {"n": n})
                with lock:
                    inside[0] += 1
                    most[0] = max(most[0], inside[0])
                time.sleep(0.02)
                with lock:
                    inside[0] -= 1
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert most[0] == 1
    with engine.connect() as conn:
        assert sorted(conn.execute(text("SELECT n FROM rows")).scalars()) == list(range(8))
        conn.rollback()
    assert not turn_taken(engine)
