"""SCIM bulk operations (RFC 7644 §3.7): ``POST /Bulk`` runs many creates, replaces, patches
and deletes of Users, Groups and Roles in one request.

Each operation is the request it stands for (the same functions as ``POST /Users`` and the
rest, so the same services, policy decisions and audit records), run in a savepoint of the
request's transaction: a failed operation is undone alone and answered with its SCIM error,
while the others stand. ``failOnErrors`` stops the request after that many failures (the
operations not reached are left out of the response).

- A ``POST`` needs a ``bulkId``; other operations may name a resource created in the same
  request as ``bulkId:<id>``, in their ``path`` (``/Groups/bulkId:g1``) or as any value in their
  ``data`` (a member ``{"value": "bulkId:u1"}``). Operations run in order, except that one whose
  references are not created yet waits until they are; a reference that cannot be resolved
  (its operation failed, or references go round in a circle) fails that operation with 409
  ``invalidValue``.
- ``version`` on a ``PUT``, ``PATCH`` or ``DELETE`` is its ``If-Match`` (``scim.versions``).
  An operation's answer carries the resource's new version, except a group ``PATCH``: it is
  ``204``, as when sent alone, so a large group is not rendered for each change.
- A request that is malformed as a whole (no ``Operations`` list, an unknown method, a path that
  names no resource, a missing or repeated ``bulkId``, a ``bulkId`` referred to but declared
  nowhere) is refused before anything runs: 400, nothing changes. More than
  ``MAX_BULK_OPERATIONS`` operations is 413, and so is a body over ``messages.MAX_BODY``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from rolecall.db.session import runs_again_after
from rolecall.identity.principal import Principal
from rolecall.orgs.models import Organization
from rolecall.scim import groups, roles, users
from rolecall.scim.errors import (
    INVALID_SYNTAX,
    INVALID_VALUE,
    REFUSALS,
    ScimError,
    bad_request,
    refusal,
)
from rolecall.scim.messages import get, require_object, text

REQUEST_URN = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
RESPONSE_URN = "urn:ietf:params:scim:api:messages:2.0:BulkResponse"
#: Advertised as ``bulk.maxOperations``.
MAX_BULK_OPERATIONS = 1000
MAX_BULK_ID_LENGTH = 256
METHODS = ("POST", "PUT", "PATCH", "DELETE")
#: ``/Users``, ``/Groups/<id>``, ``/Roles/bulkId:<bulkId>`` (the resource type in any case).
_PATH = re.compile(r"^/(users|groups|roles)(?:/([^/]+))?/?$", re.IGNORECASE)
_KINDS = {"users": "Users", "groups": "Groups", "roles": "Roles"}
REFERENCE = "bulkId:"


@dataclass(frozen=True, slots=True)
class BulkOperation:
    method: str
    path: str
    kind: str
    target: str | None
    bulk_id: str | None
    version: str | None
    data: Any
    #: The bulkIds it refers to, in its path and anywhere in its data.
    references: frozenset[str]


@dataclass(frozen=True, slots=True)
class BulkContext:
    """Who runs the operations, where, and how resources are shown."""

    session: Session
    actor: Principal
    org: Organization
    base: str
    multi: bool


def run(context: BulkContext, body: Any) -> dict[str, Any]:
    """A BulkRequest's operations, run; its BulkResponse."""
    operations, fail_on_errors = parse(body)
    created: dict[str, str] = {}  # bulkId -> id of the resource it created
    failed: set[str] = set()  # bulkIds whose operation failed
    results: dict[int, dict[str, Any]] = {}
    errors = 0
    waiting = list(range(len(operations)))
    while waiting and (fail_on_errors is None or errors < fail_on_errors):
        # The first operation whose references all exist; if none, what is left waits on
        # failures or on one another, and the first of it fails.
        index = next((i for i in waiting if operations[i].references <= created.keys()), waiting[0])
        waiting.remove(index)
        operation = operations[index]
        result, new_id = _run_one(context, operation, created, failed)
        results[index] = result
        if new_id is not None and operation.bulk_id is not None:
            created[operation.bulk_id] = new_id
        elif "response" in result:
            errors += 1
            if operation.bulk_id is not None:
                failed.add(operation.bulk_id)
    return {"schemas": [RESPONSE_URN], "Operations": [results[i] for i in sorted(results)]}


def parse(body: Any) -> tuple[list[BulkOperation], int | None]:
    """The operations and ``failOnErrors`` of a BulkRequest; 400 for what is malformed."""
    body = require_object(body)
    raw_operations = get(body, "Operations")
    if not isinstance(raw_operations, list) or not raw_operations:
        raise bad_request(INVALID_SYNTAX, "a BulkRequest needs a non-empty Operations list")
    if len(raw_operations) > MAX_BULK_OPERATIONS:
        detail = f"at most {MAX_BULK_OPERATIONS} operations per bulk request (bulk.maxOperations)"
        raise ScimError(413, detail)
    fail_on_errors = get(body, "failOnErrors")
    if fail_on_errors is not None and (
        not isinstance(fail_on_errors, int)
        or isinstance(fail_on_errors, bool)
        or fail_on_errors < 1
    ):
        raise bad_request(INVALID_VALUE, "failOnErrors must be an integer of at least 1")
    operations = [_operation(raw, n) for n, raw in enumerate(raw_operations, start=1)]
    declared = Counter(op.bulk_id for op in operations if op.bulk_id is not None)
    repeated = sorted(b for b, times in declared.items() if times > 1)
    if repeated:
        raise bad_request(INVALID_VALUE, f"bulkId {repeated[0][:64]!r} is used more than once")
    for n, operation in enumerate(operations, start=1):
        unknown = sorted(operation.references - declared.keys())
        if unknown:
            detail = f"operation {n} refers to bulkId {unknown[0][:64]!r}, which no POST declares"
            raise bad_request(INVALID_VALUE, detail)
    return operations, fail_on_errors


def _operation(raw: Any, n: int) -> BulkOperation:
    if not isinstance(raw, dict):
        raise bad_request(INVALID_SYNTAX, f"operation {n} must be a JSON object")
    method = text(get(raw, "method"), f"operation {n}'s method", required=True)
    assert method is not None
    method = method.strip().upper()
    if method not in METHODS:
        raise bad_request(INVALID_VALUE, f"operation {n}'s method must be one of {METHODS}")
    path = text(get(raw, "path"), f"operation {n}'s path", required=True)
    assert path is not None
    found = _PATH.match(path.strip())
    if found is None:
        detail = f"operation {n}'s path must be /Users, /Groups or /Roles, with an id but for POST"
        raise bad_request(INVALID_VALUE, detail)
    kind, target = _KINDS[found.group(1).lower()], found.group(2)
    if (method == "POST") != (target is None):
        detail = f"operation {n}: POST goes to /{kind}; {method} needs /{kind}/<id>"
        raise bad_request(INVALID_VALUE, detail)
    bulk_id = text(get(raw, "bulkId"), f"operation {n}'s bulkId")
    if bulk_id is not None and len(bulk_id) > MAX_BULK_ID_LENGTH:
        raise bad_request(INVALID_VALUE, f"a bulkId is at most {MAX_BULK_ID_LENGTH} characters")
    if method == "POST" and bulk_id is None:
        raise bad_request(INVALID_VALUE, f"operation {n}: a POST needs a bulkId")
    data = get(raw, "data")
    if method != "DELETE" and not isinstance(data, dict):
        raise bad_request(INVALID_SYNTAX, f"operation {n}: {method} needs data, a JSON object")
    version = text(get(raw, "version"), f"operation {n}'s version")
    references = _references(data)
    if target is not None and target.startswith(REFERENCE):
        references.add(target[len(REFERENCE) :])
    return BulkOperation(
        method, path.strip(), kind, target, bulk_id, version, data, frozenset(references)
    )


def _references(value: Any) -> set[str]:
    if isinstance(value, str):
        return {value[len(REFERENCE) :]} if value.startswith(REFERENCE) else set()
    if isinstance(value, dict):
        return set().union(*(_references(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_references(v) for v in value))
    return set()


def _resolved(value: Any, created: dict[str, str]) -> Any:
    """``value`` with every ``bulkId:<id>`` replaced by the id of what that operation created."""
    if isinstance(value, str) and value.startswith(REFERENCE):
        return created.get(value[len(REFERENCE) :], value)
    if isinstance(value, dict):
        return {k: _resolved(v, created) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolved(v, created) for v in value]
    return value


def _run_one(
    context: BulkContext, operation: BulkOperation, created: dict[str, str], failed: set[str]
) -> tuple[dict[str, Any], str | None]:
    """One operation's BulkResponse entry, and the id of the resource it created, if any."""
    result: dict[str, Any] = {"method": operation.method}
    if operation.bulk_id is not None:
        result["bulkId"] = operation.bulk_id
    target = _resolved(operation.target, created)
    if target is not None:
        result["location"] = f"{context.base}/{operation.kind}/{target}"
    unresolved = sorted(operation.references - created.keys())
    if unresolved:
        why = "failed" if unresolved[0] in failed else "waits on this one in turn"
        detail = f"bulkId {unresolved[0][:64]!r} cannot be resolved: its operation {why}"
        return _failure(result, ScimError(409, detail, INVALID_VALUE)), None
    try:
        with context.session.begin_nested():
            status, resource = _dispatch(context, operation, target, created)
    except REFUSALS as exc:
        if runs_again_after(context.session, exc):
            raise  # the whole request runs again, and this operation is answered as if alone
        return _failure(result, refusal(exc)), None
    result["status"] = str(status)
    if resource is None:
        return result, None
    result["location"] = resource["meta"]["location"]
    if "version" in resource["meta"]:
        result["version"] = resource["meta"]["version"]
    return result, resource["id"] if operation.method == "POST" else None


def _failure(result: dict[str, Any], error: ScimError) -> dict[str, Any]:
    return result | {"status": str(error.status), "response": error.body()}


_Handler = Callable[[BulkContext, str | None, Any, str | None], dict[str, Any] | None]


def _dispatch(
    context: BulkContext, operation: BulkOperation, target: str | None, created: dict[str, str]
) -> tuple[int, dict[str, Any] | None]:
    handler = _HANDLERS[operation.kind, operation.method]
    data = _resolved(operation.data, created)
    resource = handler(context, target, data, operation.version)
    status = {"POST": 201, "DELETE": 204}.get(operation.method, 200 if resource else 204)
    return status, resource


def _common(context: BulkContext) -> dict[str, Any]:
    return {"actor": context.actor, "org": context.org}


def _shown(context: BulkContext) -> dict[str, Any]:
    return {**_common(context), "base": context.base}


_HANDLERS: dict[tuple[str, str], _Handler] = {
    ("Users", "POST"): lambda c, _, data, __: users.create_user(
        c.session, body=data, multi=c.multi, **_shown(c)
    ),
    ("Users", "PUT"): lambda c, target, data, version: users.replace_user(
        c.session, user_id=target or "", body=data, multi=c.multi, if_match=version, **_shown(c)
    ),
    ("Users", "PATCH"): lambda c, target, data, version: users.patch_user(
        c.session, user_id=target or "", body=data, multi=c.multi, if_match=version, **_shown(c)
    ),
    ("Users", "DELETE"): lambda c, target, _, version: users.delete_user(
        c.session, user_id=target or "", if_match=version, **_common(c)
    ),
    ("Groups", "POST"): lambda c, _, data, __: groups.create_group(
        c.session, body=data, **_shown(c)
    ),
    ("Groups", "PUT"): lambda c, target, data, version: groups.replace_group(
        c.session, group_id=target or "", body=data, if_match=version, **_shown(c)
    ),
    # As a PATCH sent alone: 204, the group not rendered (``scim.groups``).
    ("Groups", "PATCH"): lambda c, target, data, version: groups.patch_group(
        c.session, group_id=target or "", body=data, if_match=version, answers=False, **_shown(c)
    ),
    ("Groups", "DELETE"): lambda c, target, _, __: groups.delete_group(
        c.session, group_id=target or "", **_common(c)
    ),
    ("Roles", "POST"): lambda c, _, data, __: roles.create_role(c.session, body=data, **_shown(c)),
    ("Roles", "PUT"): lambda c, target, data, version: roles.replace_role(
        c.session, role_id=target or "", body=data, if_match=version, **_shown(c)
    ),
    ("Roles", "PATCH"): lambda c, target, data, version: roles.patch_role(
        c.session, role_id=target or "", body=data, if_match=version, **_shown(c)
    ),
    ("Roles", "DELETE"): lambda c, target, _, version: roles.delete_role(
        c.session, role_id=target or "", if_match=version, **_common(c)
    ),
}
