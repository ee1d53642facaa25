"""Text in SQL compared as Python compares it, on both backends: folded by ``str.lower``,
ordered by code point, searched case-sensitively.

The lower-cased key columns (``username_key``, ``email_key``, ``name_key``...) are lowered in
Python, so they fold every letter. A query that must fold a column that has no key (a SCIM
filter on ``displayName``, say) cannot use SQLite's ``lower``, which folds ASCII letters only
("Élise" would stay "Élise"): on SQLite ``lowered`` calls a function each connection registers
(``register_sqlite_functions``), Python's own ``str.lower``. PostgreSQL's ``lower`` folds by the
database's character classification, every letter under a UTF-8 locale.

Order: a column or database collated by a locale orders "a" before "B" (and may ignore
punctuation); ``by_code_point`` compares by Unicode code point whatever the collation.
"""

from __future__ import annotations

import sqlite3
from typing import Any, ClassVar

from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import Integer, String

#: The SQLite function ``lowered`` compiles to.
SQLITE_LOWER = "rolecall_lower"


class _DialectFunction(FunctionElement[Any]):
    """A function written differently per database: ``sql`` by dialect name (``default`` for
    the others), ``{}`` standing for the arguments."""

    inherit_cache = True
    sql: ClassVar[dict[str, str]]


@compiles(_DialectFunction)
def _compile(element: Any, compiler: Any, **kw: Any) -> str:
    template: str = element.sql.get(compiler.dialect.name, element.sql["default"])
    return template.format(compiler.process(element.clauses, **kw))


class lowered(_DialectFunction):
    """The text lower-cased in every script, as ``str.lower`` does."""

    type = String()
    inherit_cache = True
    sql: ClassVar[dict[str, str]] = {"default": "lower({})", "sqlite": SQLITE_LOWER + "({})"}


class by_code_point(_DialectFunction):
    """Text compared by code point, whatever the column's or database's collation (which may
    follow a locale): PostgreSQL's ``C`` collation, SQLite's ``BINARY``."""

    type = String()
    inherit_cache = True
    sql: ClassVar[dict[str, str]] = {
        "default": '({}) COLLATE "C"',
        "sqlite": "({}) COLLATE BINARY",
    }


class position(_DialectFunction):
    """Where a substring starts in a text (1 and up; 0 when absent), case-sensitively: ``LIKE``
    ignores ASCII case on SQLite, which a case-exact search must not."""

    type = Integer()
    inherit_cache = True
    sql: ClassVar[dict[str, str]] = {"default": "strpos({})", "sqlite": "instr({})"}


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def register_sqlite_functions(connection: sqlite3.Connection) -> None:
    """Make ``lowered`` callable on a new SQLite connection (deterministic: SQLite may compute
    it once for a constant argument). No index may use it: a tool without it could not then
    write to the table."""
    connection.create_function(SQLITE_LOWER, 1, _lower, deterministic=True)
