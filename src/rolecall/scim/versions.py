"""Resource versions (RFC 7644 §3.14): ``meta.version``, the ``ETag`` header, ``If-Match`` on
writes and ``If-None-Match`` on reads.

A version is a digest of the whole resource as rendered (every attribute, ``meta.created`` and
``meta.lastModified`` included; ``meta.location`` and the ``$ref`` URLs not, since they depend
only on the URL prefix the client used). Nothing is stored: any change a client could see
changes the version, and an update that changes nothing keeps it. The tags are weak
(``W/"..."``), as in the RFC's examples, because a version names a resource, not one byte-exact
representation (a projection with ``attributes`` carries the same tag), and they are compared
weakly (RFC 9110 §8.8.3.2).

A group rendered without its members (``excludedAttributes=members``) carries no version: its
version covers its members, and leaving them out is what makes such a read cheap.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from rolecall.scim.errors import INVALID_VALUE, ScimError, bad_request

#: One element of a list of entity tags, each optionally weak (RFC 9110 §8.8.3); empty list
#: elements are skipped (RFC 9110 §5.6.1.2).
_TAG = re.compile(r'[\s,]*(?:W/)?"([\x21\x23-\x7e\x80-\xff]*)"[ \t]*(?:,|$)')
#: Longer preconditions are no list of our tags: refused before any parsing.
MAX_PRECONDITION_LENGTH = 4096


def version_of(resource: dict[str, Any]) -> str:
    """The weak entity tag of ``resource``: its URLs and ``meta.version`` aside."""
    meta = {k: v for k, v in resource.get("meta", {}).items() if k not in ("location", "version")}
    canonical = json.dumps(
        _without_refs({**resource, "meta": meta}),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return f'W/"{hashlib.sha256(canonical.encode()).hexdigest()[:32]}"'


def _without_refs(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_refs(v) for k, v in value.items() if k != "$ref"}
    if isinstance(value, list):
        return [_without_refs(v) for v in value]
    return value


def stamp(resource: dict[str, Any]) -> dict[str, Any]:
    """``resource`` with its ``meta.version`` set."""
    resource["meta"]["version"] = version_of(resource)
    return resource


def tags(header: str) -> frozenset[str] | None:
    """The opaque tags an ``If-Match``/``If-None-Match`` header lists (weak or not alike);
    ``None`` for ``*``. ``invalidValue`` when it is neither."""
    if header.strip() == "*":
        return None
    found: list[str] = []
    position = 0
    if len(header) <= MAX_PRECONDITION_LENGTH:
        while position < len(header):
            match = _TAG.match(header, position)
            if match is None:
                break
            found.append(match.group(1))
            position = match.end()
    if not found or header[position:].strip(" \t,"):
        message = 'preconditions are "*" or a list of entity tags, such as W/"3694e05e9dff591"'
        raise bad_request(INVALID_VALUE, message)
    return frozenset(found)


def matches(header: str, version: str | None) -> bool:
    """Whether the header names ``version`` (or is ``*``, which any resource matches, even one
    shown without a version), comparing weakly."""
    listed = tags(header)
    if listed is None:
        return True
    return version is not None and version.removeprefix("W/").strip('"') in listed


def lock(
    session: Session,
    key: ColumnElement[Any],
    *conditions: ColumnElement[bool],
    deleting: bool = False,
) -> None:
    """Hold the row of the resource about to change until the transaction ends, so that SCIM
    writes to one resource take turns and an ``If-Match`` check still holds when the write
    commits. PostgreSQL: ``FOR NO KEY UPDATE`` (rows that merely refer to it, such as a new
    team membership, are not held up), or ``FOR UPDATE`` for a row about to be ``deleting``
    (taken at once: a weaker lock made stronger later waits for those that merely refer to
    it, while they wait for the weaker one). SQLite needs nothing: a write request holds the
    database's one write lock from its first statement."""
    if session.get_bind().dialect.name != "sqlite":
        held = select(key).where(*conditions)
        session.execute(held.with_for_update(key_share=not deleting))


def require_current(if_match: str | None, current: Callable[[], dict[str, Any]]) -> None:
    """``If-Match``: a 412 unless the resource (rendered by ``current``, only when a
    precondition was sent) is at a version the header names. The caller holds the resource's
    lock, so the version cannot change between this check and its write."""
    if if_match is None:
        return
    if not matches(if_match, version_of(current())):
        raise ScimError(412, "the resource has changed: read it again before changing it")
