"""Counting the SQL a piece of work sends: for tests that a cost does not grow with its input,
and for tests that plan the statements a service really sends."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session


@contextmanager
def _listening(db: Session, note: Callable[..., None]) -> Iterator[None]:
    """``note`` hears every statement sent on ``db``'s connection (the test's, which the app's
    sessions share) while the block runs."""
    bind = db.get_bind()
    event.listen(bind, "before_cursor_execute", note)
    try:
        yield
    finally:
        event.remove(bind, "before_cursor_execute", note)


@contextmanager
def statements_sent(db: Session) -> Iterator[list[str]]:
    """The statements sent on ``db``'s connection while the block runs."""
    sent: list[str] = []
    with _listening(db, lambda _conn, _cursor, statement, *_: sent.append(statement)):
        yield sent


@contextmanager
def statements_and_parameters_sent(db: Session) -> Iterator[list[tuple[str, Any]]]:
    """The same, each with its parameters (to plan it again with ``EXPLAIN``)."""
    sent: list[tuple[str, Any]] = []

    def note(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        sent.append((statement, parameters))

    with _listening(db, note):
        yield sent
