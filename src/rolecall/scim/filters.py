"""SCIM filters (RFC 7644 §3.4.2.2) translated into SQL conditions.

The filter is parsed by ``scim2-models``' grammar; this module walks the tree and builds a
SQLAlchemy condition over the columns each resource's attribute table names. Each attribute
says how it compares (RFC 7643 §2.2 ``caseExact``), so case-insensitive attributes compare
lower-cased text and case-exact ones compare as stored. ``eq`` on ``userName`` and
``displayName`` uses the resource's index-friendly equality (lower-cased key columns), so the
lookups identity providers make on every sync are index lookups, never scans.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from scim2_models import SCIMException
from scim2_models.path import (
    AttrPath,
    CompareOperator,
    Comparison,
    FilterNode,
    LogicalExpr,
    LogicalOperator,
    Not,
    Present,
    ScimFilter,
    ValuePath,
)
from sqlalchemy import ColumnElement, and_, false, func, not_, or_, true

from rolecall.db.text import by_code_point, lowered, position
from rolecall.db.types import as_stored
from rolecall.scim.errors import INVALID_FILTER, ScimError, bad_request
from rolecall.strict_json import escapes_unpaired_surrogate

MAX_FILTER_LENGTH = 4096
STRING, BOOLEAN, DATETIME = "string", "boolean", "dateTime"


@dataclass(frozen=True)
class Attr:
    """How one SCIM attribute maps onto SQL.

    ``column`` is compared directly; ``lowered`` says it already holds lower-cased text;
    ``equals`` builds an index-friendly ``eq`` from the lower-cased value; ``constant`` is a
    value every resource has (``emails.type`` is always ``work``); ``sub`` holds a complex
    attribute's sub-attributes, and ``wrap`` turns a condition on them into one on the
    resource (an ``EXISTS`` for ``members``).
    """

    column: Any = None
    kind: str = STRING
    case_exact: bool = False
    lowered: bool = False
    equals: Callable[[str], ColumnElement[bool]] | None = None
    constant: Any = None
    sub: Mapping[str, Attr] = field(default_factory=dict)
    wrap: Callable[[ColumnElement[bool]], ColumnElement[bool]] | None = None
    #: The sub-attribute a bare comparison on a complex attribute means (``emails eq x``).
    default_sub: str | None = None


def parse(text: str) -> FilterNode:
    """The filter's syntax tree; ``invalidFilter`` when it does not parse."""
    if len(text) > MAX_FILTER_LENGTH:
        raise bad_request(INVALID_FILTER, f"filters are at most {MAX_FILTER_LENGTH} characters")
    if "\x00" in text:
        raise bad_request(INVALID_FILTER, "a filter holds no NUL character")
    try:
        node = ScimFilter(text).ast
    except SCIMException as exc:
        raise bad_request(INVALID_FILTER, f"invalid filter: {exc}") from None
    # A value no database can store: it would fail inside the query.
    if escapes_unpaired_surrogate(text, node):
        raise bad_request(INVALID_FILTER, "a string holds an unpaired UTF-16 surrogate escape")
    return node


def to_sql(text: str, attrs: Mapping[str, Attr], core_urn: str) -> ColumnElement[bool]:
    """The SQL condition for filter ``text`` over a resource whose attributes are ``attrs``
    (keys lower-cased, sub-attributes as ``name.sub``). Raises ``ScimError`` (invalidFilter)."""
    return _Translator(attrs, core_urn).visit(parse(text))


def attribute_of(path: str, attrs: Mapping[str, Attr], core_urn: str) -> tuple[Attr, bool]:
    """The attribute an attribute path (``name.familyName``) names, and whether a resource has
    one value of it (``members.value`` has several). Raises ``ScimError`` (invalidFilter)."""
    try:
        node = parse(f"{path} pr")
    except ScimError:
        node = None
    if not isinstance(node, Present):
        raise bad_request(INVALID_FILTER, "not an attribute path")
    attr, wrap = _Translator(attrs, core_urn)._resolve(node.attr_path)
    return attr, wrap is _same


class _Translator:
    def __init__(self, attrs: Mapping[str, Attr], core_urn: str) -> None:
        self.attrs = attrs
        self.core_urn = core_urn.lower()

    def visit(self, node: FilterNode) -> ColumnElement[bool]:
        if isinstance(node, LogicalExpr):
            terms = [self.visit(term) for term in node.terms]
            return and_(*terms) if node.op is LogicalOperator.and_ else or_(*terms)
        if isinstance(node, Not):
            # Absent values make SQL's NULL; SCIM's ``not`` of "no match" is a match.
            return not_(func.coalesce(self.visit(node.expr), false()))
        if isinstance(node, Present):
            attr, wrap = self._resolve(node.attr_path)
            return wrap(_present(attr))
        if isinstance(node, Comparison):
            attr, wrap = self._resolve(node.attr_path)
            return wrap(_compare(attr, node.op, node.value, str(node.attr_path)))
        if isinstance(node, ValuePath):
            path = node.attr_path
            if path.uri is not None and path.uri.lower() != self.core_urn:
                raise bad_request(INVALID_FILTER, f"unsupported attribute {path}")
            attr = self.attrs.get(path.attr.lower())
            if attr is None:
                raise bad_request(INVALID_FILTER, f"unknown or unsupported attribute {path}")
            if path.sub_attr is not None or not attr.sub:
                raise bad_request(INVALID_FILTER, f"{node.attr_path} is not multi-valued")
            inner = _Translator(attr.sub, "")
            condition = inner.visit(node.val_filter)
            return attr.wrap(condition) if attr.wrap else condition
        raise bad_request(INVALID_FILTER, "unsupported filter expression")  # pragma: no cover

    def _resolve(
        self, path: AttrPath
    ) -> tuple[Attr, Callable[[ColumnElement[bool]], ColumnElement[bool]]]:
        """The attribute a path names, and how to lift a condition on it to the resource."""
        if path.uri is not None and path.uri.lower() != self.core_urn:
            raise bad_request(INVALID_FILTER, f"unsupported attribute {path}")
        name = path.attr.lower()
        attr = self.attrs.get(name)
        if attr is None:
            raise bad_request(INVALID_FILTER, f"unknown or unsupported attribute {path}")
        sub_name = path.sub_attr.lower() if path.sub_attr else attr.default_sub
        if sub_name is None:
            if attr.sub:
                raise bad_request(INVALID_FILTER, f"name a sub-attribute of {path.attr}")
            return attr, _same
        sub = attr.sub.get(sub_name) or self.attrs.get(f"{name}.{sub_name}")
        if sub is None:
            raise bad_request(INVALID_FILTER, f"unknown or unsupported attribute {path}")
        return sub, attr.wrap or _same


def _same(condition: ColumnElement[bool]) -> ColumnElement[bool]:
    return condition


def _present(attr: Attr) -> ColumnElement[bool]:
    if attr.constant is not None:
        return true()
    if attr.kind == STRING:
        return and_(attr.column.is_not(None), attr.column != "")
    return attr.column.is_not(None)


def _compare(attr: Attr, op: CompareOperator, value: Any, name: str) -> ColumnElement[bool]:
    if attr.constant is not None:
        return true() if compare_constant(attr.constant, op, value, name) else false()
    if value is None:
        if op is CompareOperator.eq:
            return attr.column.is_(None)
        if op is CompareOperator.ne:
            return attr.column.is_not(None)
        raise bad_request(INVALID_FILTER, f"{name}: null compares only with eq and ne")
    if attr.kind == BOOLEAN:
        flag = _boolean(value, name)
        if op is CompareOperator.eq:
            return attr.column.is_(flag)
        if op is CompareOperator.ne:
            return attr.column.is_not(flag)
        raise bad_request(INVALID_FILTER, f"{name} is a boolean: use eq or ne")
    if attr.kind == DATETIME:
        return _ordered(attr.column, op, _datetime(value, name), name)
    if not isinstance(value, str):
        raise bad_request(INVALID_FILTER, f"{name} is a string: compare it with a string")
    if attr.case_exact:
        return _string(attr.column, op, value, exact=True)
    key = value.lower()
    if op is CompareOperator.eq and attr.equals is not None:
        return attr.equals(key)
    column = attr.column if attr.lowered else lowered(attr.column)
    return _string(column, op, key, exact=False)


def _string(column: Any, op: CompareOperator, value: str, *, exact: bool) -> ColumnElement[bool]:
    if op is CompareOperator.eq:
        return column == value
    if op is CompareOperator.ne:
        return or_(column != value, column.is_(None))
    if op is CompareOperator.sw:
        if exact:
            return func.substr(column, 1, len(value)) == value
        return column.startswith(value, autoescape=True)
    if op is CompareOperator.ew:
        if exact:
            return func.substr(column, func.length(column) - len(value) + 1) == value
        return column.endswith(value, autoescape=True)
    if op is CompareOperator.co:
        if exact:
            return position(column, value) > 0
        return column.contains(value, autoescape=True)
    # RFC 7644 §3.4.2.2: "lexicographical", here by code point, as sorting orders them.
    return _ordered(by_code_point(column), op, value, "")


def _ordered(column: Any, op: CompareOperator, value: Any, name: str) -> ColumnElement[bool]:
    if op is CompareOperator.eq:
        return column == value
    if op is CompareOperator.ne:
        return or_(column != value, column.is_(None))
    if op is CompareOperator.gt:
        return column > value
    if op is CompareOperator.ge:
        return column >= value
    if op is CompareOperator.lt:
        return column < value
    if op is CompareOperator.le:
        return column <= value
    raise bad_request(INVALID_FILTER, f"{name}: {op.value} does not apply to dates")


def compare_constant(constant: Any, op: CompareOperator, value: Any, name: str) -> bool:
    """``constant op value``, in Python: an attribute every resource has the same value of, or
    one value already in hand (a PATCH value filter on the user's one email). Strings compare
    case-insensitively."""
    if isinstance(constant, bool):
        flag = _boolean(value, name)
        if op in (CompareOperator.eq, CompareOperator.ne):
            return (constant == flag) is (op is CompareOperator.eq)
        raise bad_request(INVALID_FILTER, f"{name} is a boolean: use eq or ne")
    if not isinstance(value, str):
        raise bad_request(INVALID_FILTER, f"{name} is a string: compare it with a string")
    left, right = str(constant).lower(), value.lower()
    checks: dict[CompareOperator, Callable[[], bool]] = {
        CompareOperator.eq: lambda: left == right,
        CompareOperator.ne: lambda: left != right,
        CompareOperator.co: lambda: right in left,
        CompareOperator.sw: lambda: left.startswith(right),
        CompareOperator.ew: lambda: left.endswith(right),
        CompareOperator.gt: lambda: left > right,
        CompareOperator.ge: lambda: left >= right,
        CompareOperator.lt: lambda: left < right,
        CompareOperator.le: lambda: left <= right,
    }
    return checks[op]()


def _boolean(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise bad_request(INVALID_FILTER, f"{name} is a boolean: compare it with true or false")


def _datetime(value: Any, name: str) -> datetime:
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            if parsed.tzinfo is not None:
                try:
                    return as_stored(parsed)
                except ValueError:
                    raise bad_request(
                        INVALID_FILTER, f"{name}: {value[:64]!r} is beyond the times stored"
                    ) from None
    raise bad_request(INVALID_FILTER, f"{name} is a dateTime: compare it with an ISO 8601 time")
