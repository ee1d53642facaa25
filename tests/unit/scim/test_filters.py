"""SCIM filters translated into SQL, run against each backend: what the HTTP tests cannot show
on a database whose collation happens to order by code point."""

from __future__ import annotations

import pytest
from sqlalchemy import column, select, table, text

from rolecall.scim.filters import Attr, to_sql

URN = "urn:example:Thing"


@pytest.fixture
def names(db, backend):
    """A column collated by a locale, which orders "a-3" before "B-1" and "Éa" before "F"
    (code points: after both)."""
    collation = '"und-x-icu"' if backend == "postgres" else "NOCASE"
    db.execute(text(f"CREATE TEMPORARY TABLE filtered_names (name TEXT COLLATE {collation})"))
    db.execute(text("INSERT INTO filtered_names VALUES ('b-2'), ('a-3'), ('B-1'), ('Éa')"))
    return table("filtered_names", column("name"))


@pytest.mark.parametrize(
    ("filter_text", "expected"),
    [
        ('name gt "B-1"', {"a-3", "b-2", "Éa"}),
        ('name ge "B-1"', {"B-1", "a-3", "b-2", "Éa"}),
        ('name lt "a-3"', {"B-1"}),
        ('name le "a-3"', {"B-1", "a-3"}),
    ],
)
def test_a_case_exact_string_orders_by_code_point_whatever_the_collation(
    db, names, filter_text, expected
):
    """RFC 7644 §3.4.2.2: gt, ge, lt and le compare strings lexicographically; rolecall's
    lexicon is the code points, as its sorting's (``scim.sorting``), on every locale."""
    attrs = {"name": Attr(names.c.name, case_exact=True)}

    found = db.scalars(select(names.c.name).where(to_sql(filter_text, attrs, URN)))

    assert set(found) == expected


def test_a_case_insensitive_string_orders_by_the_code_points_of_its_folded_text(db, names):
    attrs = {"name": Attr(names.c.name)}

    before_f = db.scalars(select(names.c.name).where(to_sql('name lt "F"', attrs, URN)))
    after_a = db.scalars(select(names.c.name).where(to_sql('name gt "A-9"', attrs, URN)))

    assert set(before_f) == {"b-2", "a-3", "B-1"}
    assert set(after_a) == {"b-2", "B-1", "Éa"}
