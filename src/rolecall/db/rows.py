"""Inserting new rows at once, one plain ``INSERT`` each, instead of through the unit of work.

A flush works out what changed, orders the tables and builds each statement anew: for the few
rows a create makes (a user, its personal entity, its membership, the audit record) that costs
several times the inserts themselves, and identity providers provision users by the thousand.
``insert_now`` fills the columns' Python-side defaults as a flush would, sends one ``INSERT`` per
object on the session's connection, in its transaction, and then makes each object persistent
in the session, exactly as if it had been flushed: later changes to it are updates, and
``session.get`` finds it.

Only for tables whose defaults are all Python-side (every model here): a column with a server
default would be sent as NULL.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Column, inspect
from sqlalchemy.orm import Session, make_transient_to_detached

#: Called with the session after every ``insert_now`` (what a flush's ``after_flush`` listeners
#: would have done: the policy engine forgets the decisions it memoised for the session).
after_insert: list[Callable[[Session], None]] = []


def _default(column: Column[Any]) -> Any:
    """The Python-side default of ``column`` for one new row (called anew for each row)."""
    default = column.default
    if default is None:
        return None
    return default.arg(None) if default.is_callable else default.arg  # type: ignore[attr-defined]


def insert_rows(session: Session, model: type[Any], rows: Sequence[dict[str, Any]]) -> None:
    """INSERT ``rows`` (column values by column key) into ``model``'s table in one
    ``executemany``, in this order, in ``session``'s transaction: for the thousands of rows one
    request may add (a group's new members and their audit records). Columns a row leaves out
    get their Python-side default, as a flush would give them; a database-numbered key is left
    to the database. Unlike ``insert_now`` no objects are made: read the rows back by query.
    Pending changes are flushed first, so the rows may refer to them."""
    if not rows:
        return
    if session.new or session.dirty or session.deleted:
        session.flush()
    table = inspect(model).local_table
    keys = table.primary_key.columns
    numbered = {c.key for c in keys if c.default is None and c.autoincrement is not False}
    missing = [c for c in table.columns if c.key not in rows[0] and c.key not in numbered]
    filled = [row | {column.key: _default(column) for column in missing} for row in rows]
    session.connection().execute(table.insert(), filled)
    for listener in after_insert:
        listener(session)


def insert_now(session: Session, *objects: Any) -> None:
    """INSERT ``objects`` (new ORM instances) now, in this order, in ``session``'s transaction,
    then add them to the session as persistent objects. Pending changes are flushed first, so
    rows inserted here may refer to them."""
    if session.new or session.dirty or session.deleted:
        session.flush()
    connection = session.connection()
    for obj in objects:
        mapper = inspect(obj).mapper
        table = mapper.local_table
        values: dict[str, Any] = {}
        for prop in mapper.column_attrs:
            column = prop.columns[0]
            value = getattr(obj, prop.key)
            if value is None and column.default is not None:
                value = _default(column)
                setattr(obj, prop.key, value)
            if value is None and column.primary_key and column.autoincrement is not False:
                continue  # the database numbers it
            values[column.key] = value
        result = connection.execute(table.insert(), values)
        for column, key in zip(table.primary_key.columns, result.inserted_primary_key, strict=True):
            prop = mapper.get_property_by_column(column)
            if getattr(obj, prop.key) is None:
                setattr(obj, prop.key, key)
        make_transient_to_detached(obj)
        session.add(obj)
    for listener in after_insert:
        listener(session)
