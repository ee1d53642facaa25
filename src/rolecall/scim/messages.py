"""SCIM protocol messages (RFC 7644): list responses, paging, PATCH operations, lenient values.

Identity providers do not send textbook requests: op names come in any case (``Replace``),
booleans as strings (``"False"``), keys in any case. The readers here accept those and refuse
what is really malformed with the right ``scimType``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from scim2_models import SCIMException
from scim2_models.path import AttrPath, Path, PathNode

from rolecall.scim.errors import INVALID_PATH, INVALID_SYNTAX, INVALID_VALUE, bad_request
from rolecall.strict_json import escapes_unpaired_surrogate

LIST_URN = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
#: ``count`` when the client names none, and the most one page holds (``filter.maxResults``).
DEFAULT_COUNT = 100
MAX_RESULTS = 1000
MAX_OPERATIONS = 1000
#: The largest request body (advertised as ``bulk.maxPayloadSize``).
MAX_BODY = 1024 * 1024
MAX_PATH_LENGTH = 1024
OPS = frozenset({"add", "remove", "replace"})


@dataclass(frozen=True, slots=True)
class Page:
    """A page request: ``offset`` rows skipped, at most ``limit``, SCIM's ``startIndex``."""

    offset: int
    limit: int
    start_index: int


def page(start_index: str | None, count: str | None) -> Page:
    """RFC 7644 §3.4.2.4: ``startIndex`` below 1 counts as 1, a negative ``count`` as 0, and a
    ``count`` above the maximum as the maximum. Non-numbers are ``invalidValue``."""
    start = _integer(start_index, "startIndex", 1)
    limit = _integer(count, "count", DEFAULT_COUNT)
    start = max(start, 1)
    limit = min(max(limit, 0), MAX_RESULTS)
    return Page(start - 1, limit, start)


def _integer(value: str | None, name: str, default: int) -> int:
    if value is None or value.strip() == "":
        return default
    try:
        number = int(value.strip())
    except ValueError:
        raise bad_request(INVALID_VALUE, f"{name} must be an integer") from None
    return max(min(number, 2**31 - 1), -(2**31))


def list_response(resources: list[dict[str, Any]], total: int, start_index: int) -> dict[str, Any]:
    """A ``ListResponse`` (RFC 7644 §3.4.2): ``Resources`` is always present, empty when none
    match (a lookup without a match is a 200 with an empty list, never a 404)."""
    return {
        "schemas": [LIST_URN],
        "totalResults": total,
        "startIndex": start_index,
        "itemsPerPage": len(resources),
        "Resources": resources,
    }


def get(body: dict[str, Any], name: str, default: Any = None) -> Any:
    """A member of a JSON object by case-insensitive name (attribute names are, RFC 7643
    §2.1)."""
    if name in body:
        return body[name]
    lowered = name.lower()
    for key, value in body.items():
        if isinstance(key, str) and key.lower() == lowered:
            return value
    return default


def require_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise bad_request(INVALID_SYNTAX, "the request body must be a JSON object")
    return body


def boolean(value: Any, name: str) -> bool:
    """A boolean, also as the strings ``"true"``/``"false"`` in any case (Entra ID's habit)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise bad_request(INVALID_VALUE, f"{name} must be true or false")


def text(value: Any, name: str, *, required: bool = False) -> str | None:
    """A string value; ``None`` (or an empty string) when absent unless ``required``."""
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise bad_request(INVALID_VALUE, f"{name} is required")
        return None
    if not isinstance(value, str):
        raise bad_request(INVALID_VALUE, f"{name} must be a string")
    return value


#: Attributes of every resource that no PATCH writes (RFC 7643 §3.1: ``meta`` is read-only,
#: ``schemas`` names the resource's schemas): a path naming one is ``mutability``.
READ_ONLY = frozenset({"meta", "schemas"})

_ABSENT = object()


@dataclass(frozen=True, slots=True)
class Operation:
    """One PATCH operation with its op lower-cased."""

    op: str
    path: str | None
    value: Any


def operations(body: Any) -> list[Operation]:
    """The operations of a ``PatchOp`` message (RFC 7644 §3.5.2).

    Raises ``invalidSyntax`` for a body that is no PatchOp or an unknown op, ``noTarget`` is
    left to the resource (it depends on the path).
    """
    body = require_object(body)
    ops = get(body, "Operations")
    if not isinstance(ops, list) or not ops:
        raise bad_request(INVALID_SYNTAX, "a PatchOp needs a non-empty Operations list")
    if len(ops) > MAX_OPERATIONS:
        raise bad_request(INVALID_SYNTAX, f"at most {MAX_OPERATIONS} operations per request")
    parsed = []
    for raw in ops:
        if not isinstance(raw, dict):
            raise bad_request(INVALID_SYNTAX, "each operation must be a JSON object")
        op = get(raw, "op")
        if not isinstance(op, str) or op.strip().lower() not in OPS:
            raise bad_request(INVALID_SYNTAX, "op must be add, remove or replace")
        path = get(raw, "path")
        if path is not None and not isinstance(path, str):
            raise bad_request(INVALID_PATH, "path must be a string")
        path = path.strip() if path and path.strip() else None
        op = op.strip().lower()
        value = get(raw, "value", _ABSENT)
        if value is _ABSENT and op != "remove":
            # RFC 7644 §3.5.2.1, §3.5.2.3: add and replace MUST carry a value; without one a
            # typo would clear the attribute (an explicit null still does, RFC 7643 §2.5).
            raise bad_request(INVALID_SYNTAX, "add and replace operations need a value")
        parsed.append(Operation(op, path, None if value is _ABSENT else value))
    return parsed


def parse_path(path: str) -> PathNode:
    """A PATCH path's syntax tree; ``invalidPath`` when it does not parse."""
    if len(path) > MAX_PATH_LENGTH:
        raise bad_request(INVALID_PATH, f"paths are at most {MAX_PATH_LENGTH} characters")
    if "\x00" in path:
        raise bad_request(INVALID_PATH, "a path holds no NUL character")
    try:
        node = Path(path).ast
    except SCIMException as exc:
        raise bad_request(INVALID_PATH, f"invalid path {path[:64]!r}: {exc}") from None
    if node is None:  # pragma: no cover - empty paths are turned into None above
        raise bad_request(INVALID_PATH, "empty path")
    if escapes_unpaired_surrogate(path, node):
        raise bad_request(INVALID_PATH, "a string holds an unpaired UTF-16 surrogate escape")
    return node


def split_urn(node: AttrPath, core_urn: str) -> tuple[bool, str, str | None]:
    """``(is_core, attribute, sub-attribute)`` of an attribute path, names lower-cased.

    A path of another schema (the enterprise extension...) is not core: the caller ignores it.
    """
    sub = node.sub_attr.lower() if node.sub_attr else None
    if node.uri is None or node.uri.lower() == core_urn.lower():
        return True, node.attr.lower(), sub
    return False, node.attr.lower(), sub
