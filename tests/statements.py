"""Counting the SQL a piece of work sends: for tests that a cost does not grow with its input."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session


@contextmanager
def statements_sent(db: Session) -> Iterator[list[str]]:
    """The statements sent on ``db``'s connection (the test's, which the app's sessions share)
    while the block runs."""
    sent: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        sent.append(statement)

    bind = db.get_bind()
    event.listen(bind, "before_cursor_execute", note)
    try:
        yield sent
    finally:
        event.remove(bind, "before_cursor_execute", note)
