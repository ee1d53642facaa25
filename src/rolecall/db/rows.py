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

from collections.abc import Callable
from typing import Any

from sqlalchemy import inspect
from sqlalchemy.orm import Session, make_transient_to_detached

#: Called with the session after every ``insert_now`` (what a flush's ``after_flush`` listeners
#: would have done: the policy engine forgets the decisions it memoised for the session).
after_insert: list[Callable[[Session], None]] = []


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
                default = column.default
                value = default.arg(None) if default.is_callable else default.arg  # type: ignore[attr-defined]
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
