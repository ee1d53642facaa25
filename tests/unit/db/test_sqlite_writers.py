"""SQLite's writers of one process take turns on a lock that the end of each write transaction
hands on at once (``db.engine.WriterConnection``), instead of polling in SQLite's busy handler."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import threading
import time

import pytest
from sqlalchemy import Engine, text

from rolecall.db.engine import for_reading, make_engine
from rolecall.db.write_turn import WriteTurn, lock_path_for


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


# --- processes on the same file -------------------------------------------------------------

HOLD_A_WRITE = """
import sys
from sqlalchemy import text
from rolecall.db.engine import make_engine
engine = make_engine(sys.argv[1])
with engine.connect() as conn:
    conn.execute(text("INSERT INTO rows VALUES (100)"))
    print("inside", flush=True)
    sys.stdin.readline()
    conn.commit()
print("committed", flush=True)
"""


def held_by_another_process(lock_path: str) -> bool:
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def test_processes_on_one_file_take_turns_too(engine, tmp_path):
    """Another process's write transaction holds the file's turn: this process's writer waits
    for it (not in SQLite's busy handler) and goes on, with no error, once it has committed."""
    url = str(engine.url)
    lock_path = lock_path_for(engine.url.database)
    other = subprocess.Popen(
        [sys.executable, "-c", HOLD_A_WRITE, url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert other.stdout.readline().strip() == "inside"
        assert held_by_another_process(lock_path)
        done = threading.Event()
        errors: list[BaseException] = []

        def write() -> None:
            try:
                with engine.begin() as conn:
                    conn.execute(text("INSERT INTO rows VALUES (1)"))
            except BaseException as exc:  # reported below
                errors.append(exc)
            finally:
                done.set()

        writer = threading.Thread(target=write)
        writer.start()
        assert not done.wait(0.3)  # queued behind the other process

        other.stdin.write("go\n")
        other.stdin.flush()
        assert other.stdout.readline().strip() == "committed"
        writer.join(timeout=30)
        assert done.is_set() and errors == []
    finally:
        other.kill()
        other.wait(10)
    with engine.connect() as conn:
        assert sorted(conn.execute(text("SELECT n FROM rows")).scalars()) == [1, 100]
        conn.rollback()
    assert not held_by_another_process(lock_path)


def test_a_forked_child_opens_its_own_lock_file(tmp_path):
    """An inherited descriptor would share the parent's lock: the child must not get the turn
    while the parent holds it."""
    turn = WriteTurn(str(tmp_path / "db-write-turn"))
    assert turn.acquire(timeout=1)
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: try for the turn briefly, report whether it got the file's lock
        child = turn
        child._threads = threading.Lock()  # a fork copies the parent's held locks' state
        child._file_held = False
        child._take_file(time.monotonic() + 0.2)
        os.write(writer, b"1" if child._file_held else b"0")
        os._exit(0)
    os.waitpid(pid, 0)
    try:
        assert os.read(reader, 1) == b"0"
    finally:
        turn.release()
        os.close(reader)
        os.close(writer)
    assert turn.acquire(timeout=1)  # given back: free again
    turn.release()


def test_an_in_memory_database_has_no_lock_file():
    assert lock_path_for(":memory:") is None
    assert lock_path_for(None) is None
    assert lock_path_for("/srv/rolecall.db") == "/srv/rolecall.db-write-turn"


def test_connections_read_the_file_through_a_memory_map(engine: Engine):
    """``PRAGMA mmap_size`` on every connection, readers' and writers' alike."""
    from rolecall.db.engine import MMAP_BYTES

    for each in (engine, for_reading(engine)):
        with each.connect() as conn:
            assert conn.execute(text("PRAGMA mmap_size")).scalar() == MMAP_BYTES


def test_the_log_of_a_large_import_is_cut_back_once_checkpointed(tmp_path, monkeypatch):
    """``PRAGMA journal_size_limit``: after one large transaction the log file is cut back to
    the limit when it is next reused, instead of keeping its size on disk for good."""
    import rolecall.db.engine as engine_module

    limit = 256 << 10
    monkeypatch.setattr(engine_module, "WAL_KEPT_BYTES", limit)
    database = tmp_path / "import.db"
    engine = make_engine(f"sqlite:///{database}")
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE rows (payload TEXT)"))
            conn.execute(
                text("INSERT INTO rows VALUES (:payload)"),
                [{"payload": "x" * 1000} for _ in range(4000)],
            )
        log = tmp_path / "import.db-wal"
        assert log.stat().st_size > 8 * limit
        # The commit's automatic checkpoint copied the log into the database; the next write
        # starts the log over, and cuts the file back.
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO rows VALUES ('one more')"))
        assert log.stat().st_size <= limit
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM rows")).scalar() == 4001
    finally:
        engine.dispose()


def test_every_connection_cuts_its_log_back_past_64_mib(engine: Engine):
    from rolecall.db.engine import WAL_KEPT_BYTES

    assert WAL_KEPT_BYTES == 64 << 20
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_size_limit")).scalar() == WAL_KEPT_BYTES
