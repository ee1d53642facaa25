"""A request's transaction that PostgreSQL failed for a deadlock is run again
(``web.deps._in_transaction``), once and only once to success, and never after the work
committed part of itself; a service lets such a failure through only while it will be
(``db.session.runs_again_after``)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from rolecall.db.session import (
    COMMITTED,
    RUNS_AGAIN,
    ChangedMeanwhile,
    commit_before_calling_out,
    lost_to_contention,
    runs_again_after,
)
from rolecall.web.deps import CONTENTION_RETRIES, _in_transaction
from tests.threads import run_together


class _DriverError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("sqlstate", "lost"),
    [
        ("40P01", True),  # deadlock_detected
        ("40001", True),  # serialization_failure
        ("23505", True),  # unique_violation: the row was inserted meanwhile
        ("23503", True),  # foreign_key_violation: the row referred to was deleted meanwhile
        ("23502", False),  # not_null_violation: a bug, the same each time
        ("57014", False),  # query_canceled
    ],
)
def test_what_a_concurrent_writer_may_cause_is_lost_to_contention(
    sqlstate: str, lost: bool
) -> None:
    error = DBAPIError("UPDATE t", {}, _DriverError(sqlstate))
    assert lost_to_contention(error) is lost


def test_a_row_changed_under_an_update_is_lost_to_contention() -> None:
    assert lost_to_contention(StaleDataError("UPDATE expected to update 1 row(s); 0 were matched"))


def test_a_change_the_work_noticed_itself_is_lost_to_contention() -> None:
    assert lost_to_contention(ChangedMeanwhile("the user joined a team while leaving"))


def test_errors_that_are_not_the_database_s_are_not_lost_to_contention() -> None:
    assert not lost_to_contention(ValueError("40P01"))
    assert not lost_to_contention(DBAPIError("SELECT 1", {}, Exception("no sqlstate")))


@pytest.fixture
def probe(engine: Engine) -> Iterator[str]:
    """A table of two rows, committed, that two transactions can lock in opposite orders."""
    name = f"deadlock_probe_{uuid.uuid4().hex[:8]}"
    with engine.begin() as conn:
        conn.execute(text(f"CREATE TABLE {name} (id integer PRIMARY KEY, n integer NOT NULL)"))
        conn.execute(text(f"INSERT INTO {name} VALUES (1, 0), (2, 0)"))
    yield name
    with engine.begin() as conn:
        conn.execute(text(f"DROP TABLE {name}"))


def _crossed_writers(
    engine: Engine, table: str, *, commit_early: bool, savepoint: bool = False
) -> tuple[list[object], list[BaseException], list[int]]:
    """Two requests' transactions, each adding 1 to both rows, in opposite orders, meeting
    after their first row (their first attempt only): a deadlock. Returns their results, their
    errors and how many attempts each made."""
    met = threading.Barrier(2)
    results: list[object] = []
    errors: list[BaseException] = []
    attempts = [0, 0]

    def request(index: int, order: tuple[int, int]) -> None:
        session = Session(engine)

        def work() -> str:
            attempts[index] += 1
            if commit_early:
                session.execute(text("SELECT 1"))
                commit_before_calling_out(session)
            if savepoint:  # released: SQLAlchemy announces it as a commit, and it is none
                with session.begin_nested():
                    session.execute(text("SELECT 1"))
            bump = text(f"UPDATE {table} SET n = n + 1 WHERE id = :id")
            session.execute(bump, {"id": order[0]})
            if attempts[index] == 1:
                met.wait(timeout=30)
            session.execute(bump, {"id": order[1]})
            return f"request {index}"

        try:
            results.append(_in_transaction(session, work))
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=request, args=(0, (1, 2))),
        threading.Thread(target=request, args=(1, (2, 1))),
    ]
    run_together(threads, timeout=60)
    return results, errors, attempts


def _counts(engine: Engine, table: str) -> list[int]:
    with engine.connect() as conn:
        return list(conn.scalars(text(f"SELECT n FROM {table} ORDER BY id")))


@pytest.mark.postgres_only
def test_the_transaction_a_deadlock_failed_runs_again_and_both_succeed(
    engine: Engine, probe: str
) -> None:
    results, errors, attempts = _crossed_writers(engine, probe, commit_early=False)
    assert errors == []
    assert sorted(results) == ["request 0", "request 1"]  # type: ignore[type-var]
    assert sorted(attempts) == [1, 2]  # PostgreSQL failed one of them, once
    assert _counts(engine, probe) == [2, 2]  # each request's work committed exactly once


@pytest.mark.postgres_only
def test_work_that_released_a_savepoint_still_runs_again(engine: Engine, probe: str) -> None:
    results, errors, attempts = _crossed_writers(engine, probe, commit_early=False, savepoint=True)
    assert errors == [] and len(results) == 2
    assert sorted(attempts) == [1, 2]
    assert _counts(engine, probe) == [2, 2]


@pytest.mark.postgres_only
def test_work_that_committed_part_of_itself_is_not_run_again(engine: Engine, probe: str) -> None:
    results, errors, attempts = _crossed_writers(engine, probe, commit_early=True)
    assert len(results) == 1 and len(errors) == 1
    assert isinstance(errors[0], OperationalError) and lost_to_contention(errors[0])
    assert attempts == [1, 1]
    assert _counts(engine, probe) == [1, 1]  # the survivor's work only


def _unique_violation() -> IntegrityError:
    return IntegrityError("INSERT INTO users", {}, _DriverError("23505"))


def test_a_service_lets_a_lost_race_through_only_while_the_work_runs_again() -> None:
    """``runs_again_after``: a service that would refuse a name taken at the same moment lets
    the error through only when the runner will run the work again and nothing is committed."""
    session = Session()
    assert not runs_again_after(session, _unique_violation())  # no runner: refuse it yourself
    session.info[RUNS_AGAIN] = True
    assert runs_again_after(session, _unique_violation())
    not_null = IntegrityError("INSERT INTO users", {}, _DriverError("23502"))
    assert not runs_again_after(session, not_null)  # a bug, the same each time
    session.info[COMMITTED] = True
    assert not runs_again_after(session, _unique_violation())  # part of it stands already


def test_the_last_attempt_is_told_that_it_will_not_run_again(engine: Engine) -> None:
    session = Session(engine)
    told: list[bool] = []

    def work() -> None:
        told.append(session.info[RUNS_AGAIN])
        raise _unique_violation()

    with pytest.raises(IntegrityError):
        _in_transaction(session, work)
    assert told == [True] * CONTENTION_RETRIES + [False]
