"""SCIM sorting (RFC 7644 §3.4.2.3): ``sortBy`` and ``sortOrder`` translated into ``ORDER BY``.

``sortBy`` names one attribute of the resource, in the notation of filters (a sub-attribute of a
complex one, ``name.familyName``; a multi-valued one stands for its value, ``emails`` for
``emails.value``), from the same attribute tables the filters use. Strings that are not
case-exact sort case-insensitively, case-exact ones as stored, both by Unicode code point
whatever the database's locale ("no specific locale implied"). Resources without a value sort
last ascending and first descending. The resource's usual order follows the sort key, so equal
values keep one order and pages never overlap. ``sortOrder`` defaults to ascending and is
ignored without ``sortBy`` (a bad one is still refused); anything that cannot be sorted on is
``invalidValue``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement

from rolecall.db.text import by_code_point, lowered
from rolecall.scim.errors import INVALID_VALUE, ScimError
from rolecall.scim.filters import STRING, Attr, attribute_of

ASCENDING, DESCENDING = "ascending", "descending"
MAX_SORT_BY_LENGTH = 256


@dataclass(frozen=True)
class Sort:
    """A list's ``sortBy`` and ``sortOrder``, as sent (none: the resource's usual order)."""

    by: str | None = None
    order: str | None = None

    def terms(self, attrs: Mapping[str, Attr], core_urn: str) -> list[ColumnElement[Any]]:
        return order_by(self.by, self.order, attrs, core_urn)


UNSORTED = Sort()


def order_by(
    sort_by: str | None,
    sort_order: str | None,
    attrs: Mapping[str, Attr],
    core_urn: str,
) -> list[ColumnElement[Any]]:
    """The ``ORDER BY`` terms that go before the resource's usual order (none without
    ``sortBy``). Raises ``ScimError`` 400 ``invalidValue``."""
    descending = _descending(sort_order)
    if sort_by is None or not sort_by.strip():
        return []
    if len(sort_by) > MAX_SORT_BY_LENGTH:
        raise ScimError(400, f"sortBy is at most {MAX_SORT_BY_LENGTH} characters", INVALID_VALUE)
    try:
        attr, single = attribute_of(sort_by.strip(), attrs, core_urn)
    except ScimError as exc:
        raise ScimError(
            400, f"cannot sort by {sort_by[:64]!r}: {exc.detail}", INVALID_VALUE
        ) from None
    if not single:
        raise ScimError(
            400, f"cannot sort by {sort_by[:64]!r}: a resource has several values", INVALID_VALUE
        )
    if attr.constant is not None:
        return []  # every resource has the same value: the usual order decides
    key = attr.column
    if attr.kind == STRING:
        key = by_code_point(key if attr.case_exact or attr.lowered else lowered(key))
    return [key.desc().nulls_first() if descending else key.asc().nulls_last()]


def _descending(sort_order: str | None) -> bool:
    if sort_order is None or not sort_order.strip():
        return False
    wanted = sort_order.strip().lower()
    if wanted not in (ASCENDING, DESCENDING):
        raise ScimError(400, "sortOrder is ascending or descending", INVALID_VALUE)
    return wanted == DESCENDING
