"""SCIM ``/Roles`` = custom roles, exactly as the seeds' examples (not part of RFC 7643).

Over ``roles.service``: create (name, description, permissions, inheritedFrom), PUT (name,
description, inheritedFrom; the custom permissions stay, as the seeds say), PATCH (add or remove
``permissions``), DELETE (holders fall back to the inherited role).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from rolecall import authz
from rolecall.authz.permissions import Permission
from rolecall.identity.principal import Principal
from rolecall.orgs.models import Organization
from rolecall.roles import service as roles
from rolecall.roles.models import CustomRole
from rolecall.scim import mapping, versions
from rolecall.scim.errors import (
    INVALID_PATH,
    INVALID_VALUE,
    MUTABILITY,
    NO_TARGET,
    ScimError,
    bad_request,
)
from rolecall.scim.filters import to_sql
from rolecall.scim.mapping import ROLE_URN
from rolecall.scim.messages import (
    READ_ONLY,
    Page,
    get,
    list_response,
    operations,
    require_object,
    text,
)
from rolecall.scim.sorting import UNSORTED, Sort

MAX_ID_LENGTH = 64


def list_roles(
    session: Session,
    *,
    actor: Principal,
    org: Organization,
    base: str,
    filter_text: str | None,
    window: Page,
    sort: Sort = UNSORTED,
) -> dict[str, Any]:
    where: ColumnElement[bool] | None = None
    if filter_text:
        where = to_sql(filter_text, mapping.ROLE_ATTRS, ROLE_URN)
    order = sort.terms(mapping.ROLE_ATTRS, ROLE_URN)
    authz.require(session, actor, Permission.ORG_READ, org)
    query = select(CustomRole).where(CustomRole.org_id == org.id)
    if where is not None:
        query = query.where(where)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    query = query.order_by(*order, CustomRole.id)
    rows = session.scalars(query.offset(window.offset).limit(window.limit))
    resources = [mapping.role_resource(role, org, base) for role in rows]
    return list_response(resources if window.limit else [], total, window.start_index)


def _require(session: Session, actor: Principal, org: Organization, role_id: str) -> CustomRole:
    if len(role_id) > MAX_ID_LENGTH or "\x00" in role_id:
        raise ScimError(404, "no such role in this organization")
    authz.require(session, actor, Permission.ORG_READ, org)
    role = session.scalar(
        select(CustomRole).where(CustomRole.org_id == org.id, CustomRole.id == role_id)
    )
    if role is None:
        raise ScimError(404, f"no role {role_id[:64]!r} in this organization")
    return role


def _require_for_write(
    session: Session, actor: Principal, org: Organization, role_id: str, if_match: str | None
) -> CustomRole:
    """The role about to change, held for this transaction (``versions.lock``), and at a
    version ``If-Match`` names when one was sent (412 otherwise)."""
    if len(role_id) <= MAX_ID_LENGTH and "\x00" not in role_id:
        versions.lock(session, CustomRole.id, CustomRole.org_id == org.id, CustomRole.id == role_id)
    role = _require(session, actor, org, role_id)
    versions.require_current(if_match, lambda: mapping.role_resource(role, org, ""))
    return role


def get_role(
    session: Session, *, actor: Principal, org: Organization, base: str, role_id: str
) -> dict[str, Any]:
    return mapping.role_resource(_require(session, actor, org, role_id), org, base)


def _permission_names(value: Any, name: str = "permissions") -> list[str]:
    if value is None:
        return []
    entries = value if isinstance(value, list) else [value]
    names = []
    for entry in entries:
        if isinstance(entry, str):
            names.append(entry)
            continue
        if not isinstance(entry, dict):
            raise bad_request(INVALID_VALUE, f"{name} holds objects with a name")
        found = text(get(entry, "name"), f"{name}.name", required=True)
        assert found is not None
        names.append(found)
    return names


def create_role(
    session: Session, *, actor: Principal, org: Organization, base: str, body: Any
) -> dict[str, Any]:
    body = require_object(body)
    role = roles.create_role(
        session,
        actor=actor,
        org=org,
        name=text(get(body, "name"), "name", required=True) or "",
        inherited_from=text(get(body, "inheritedFrom"), "inheritedFrom", required=True) or "",
        permissions=_permission_names(get(body, "permissions")),
        description=text(get(body, "description"), "description") or "",
        external_id=text(get(body, "externalId"), "externalId"),
    )
    return mapping.role_resource(role, org, base)


def replace_role(
    session: Session,
    *,
    actor: Principal,
    org: Organization,
    base: str,
    role_id: str,
    body: Any,
    if_match: str | None = None,
) -> dict[str, Any]:
    """PUT: name, description and inheritedFrom; ``permissions`` in the body are ignored (the
    custom ones stay, as the seeds say)."""
    role = _require_for_write(session, actor, org, role_id, if_match)
    body = require_object(body)
    updated = roles.replace_role(
        session,
        actor=actor,
        org=org,
        ref=role.id,
        name=text(get(body, "name"), "name", required=True) or "",
        inherited_from=text(get(body, "inheritedFrom"), "inheritedFrom", required=True) or "",
        description=text(get(body, "description"), "description") or "",
        external_id=text(get(body, "externalId"), "externalId"),
    )
    return mapping.role_resource(updated, org, base)


def patch_role(
    session: Session,
    *,
    actor: Principal,
    org: Organization,
    base: str,
    role_id: str,
    body: Any,
    if_match: str | None = None,
) -> dict[str, Any]:
    """PATCH: ``add``/``remove`` on ``permissions`` (the seeds' only path); ``replace`` of
    ``permissions`` sets the custom permissions exactly; ``replace`` of ``name``,
    ``description`` or ``inheritedFrom`` works as PUT does."""
    ops = operations(body)
    role = _require_for_write(session, actor, org, role_id, if_match)
    for op in ops:
        path = (op.path or "").lower()
        if path.startswith(ROLE_URN.lower() + ":"):
            path = path[len(ROLE_URN) + 1 :]
        if op.path is None:
            if op.op == "remove":
                raise bad_request(NO_TARGET, "remove needs a path")
            if not isinstance(op.value, dict):
                raise bad_request(INVALID_VALUE, "an operation without a path needs an object")
            _replace_fields(session, actor, org, role, op.value)
        elif path == "permissions":
            names = _permission_names(op.value)
            if op.op == "add":
                roles.change_role_permissions(session, actor=actor, org=org, ref=role.id, add=names)
            elif op.op == "remove":
                if op.value is None:
                    names = list(role.permissions)
                roles.change_role_permissions(
                    session, actor=actor, org=org, ref=role.id, remove=names
                )
            else:
                inherited = {
                    p["name"]
                    for p in mapping.role_resource(role, org, "")["permissions"]
                    if p["isInherited"]
                }
                wanted = set(names) - inherited
                stale = [p for p in role.permissions if p not in wanted]
                roles.change_role_permissions(
                    session, actor=actor, org=org, ref=role.id, add=sorted(wanted), remove=stale
                )
        elif path in ("name", "description", "inheritedfrom", "externalid") and op.op != "remove":
            _replace_fields(session, actor, org, role, {path: op.value})
        elif path in ("description", "externalid"):
            _replace_fields(session, actor, org, role, {path: ""})
        elif path in ("name", "inheritedfrom"):
            raise bad_request(MUTABILITY, f"{op.path} is required and cannot be removed")
        elif path == "id" and op.op != "remove" and op.value == role.id:
            pass  # its own id, as a resource sent whole carries it
        elif path.split(".")[0] in READ_ONLY | {"id", "organizationid"}:
            raise bad_request(MUTABILITY, f"{op.path[:64]} is read-only")
        else:
            raise bad_request(INVALID_PATH, f"unsupported path {op.path[:64]!r}")
    return mapping.role_resource(role, org, base)


def _replace_fields(
    session: Session, actor: Principal, org: Organization, role: CustomRole, value: dict[str, Any]
) -> None:
    def field(name: str, current: str) -> str:
        found = get(value, name)
        return current if found is None else (text(found, name) or "")

    external_id = get(value, "externalId")
    roles.replace_role(
        session,
        actor=actor,
        org=org,
        ref=role.id,
        name=field("name", role.name),
        inherited_from=field("inheritedFrom", role.inherited_from),
        description=field("description", role.description),
        external_id=False if external_id is None else text(external_id, "externalId"),
    )


def delete_role(
    session: Session,
    *,
    actor: Principal,
    org: Organization,
    role_id: str,
    if_match: str | None = None,
) -> None:
    role = _require_for_write(session, actor, org, role_id, if_match)
    roles.delete_role(session, actor=actor, org=org, ref=role.id)
