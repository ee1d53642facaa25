"""REST routes: custom roles (``{ref}`` is a role's exact name or its id)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Response

from rolecall.roles import service
from rolecall.roles.schemas import (
    RoleCreate,
    RoleList,
    RolePermissionsPatch,
    RoleRead,
    RoleReplace,
)
from rolecall.web.api.v1._router import make_router
from rolecall.web.api.v1.paging import DEFAULT_LIMIT, Limit, Offset
from rolecall.web.deps import ContextDep

router = make_router("roles")

# Custom role names may contain "/" (they are free text), so the reference takes the rest of
# the path.
ROLE_PATH = "/roles/{ref:path}"
#: Control characters (NUL above all, which PostgreSQL refuses in a query) are a 422.
RoleRef = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")]


@router.get("/roles", operation_id="roles-list", response_model=RoleList)
def list_roles(ctx: ContextDep, offset: Offset = 0, limit: Limit = DEFAULT_LIMIT) -> RoleList:
    """A page of the organization's custom roles, by name."""
    # An organization has tens of custom roles, not thousands: the page is cut from them all.
    roles = service.list_roles(ctx.session, actor=ctx.actor, org=ctx.org)
    items = [RoleRead.of(role) for role in roles[offset : offset + limit]]
    return RoleList(items=items, total=len(roles), offset=offset, limit=limit)


@router.post("/roles", operation_id="roles-create", response_model=RoleRead, status_code=201)
def create_role(body: RoleCreate, ctx: ContextDep) -> RoleRead:
    """Create a custom role (org admins)."""
    role = service.create_role(
        ctx.session,
        actor=ctx.actor,
        org=ctx.org,
        name=body.name,
        inherited_from=body.inherited_from,
        permissions=body.permissions,
        description=body.description,
    )
    return RoleRead.of(role)


@router.get(ROLE_PATH, operation_id="roles-get", response_model=RoleRead)
def get_role(ref: RoleRef, ctx: ContextDep) -> RoleRead:
    """One custom role, by exact name or id."""
    return RoleRead.of(service.read_role(ctx.session, actor=ctx.actor, org=ctx.org, ref=ref))


@router.put(ROLE_PATH, operation_id="roles-replace", response_model=RoleRead)
def replace_role(ref: RoleRef, body: RoleReplace, ctx: ContextDep) -> RoleRead:
    """Set name, description and inherited role; custom permissions are kept."""
    role = service.replace_role(
        ctx.session,
        actor=ctx.actor,
        org=ctx.org,
        ref=ref,
        name=body.name,
        inherited_from=body.inherited_from,
        description=body.description,
    )
    return RoleRead.of(role)


@router.patch(ROLE_PATH, operation_id="roles-update-permissions", response_model=RoleRead)
def update_role_permissions(ref: RoleRef, body: RolePermissionsPatch, ctx: ContextDep) -> RoleRead:
    """Add and remove custom permissions."""
    role = service.change_role_permissions(
        ctx.session, actor=ctx.actor, org=ctx.org, ref=ref, add=body.add, remove=body.remove
    )
    return RoleRead.of(role)


@router.delete(ROLE_PATH, operation_id="roles-delete", status_code=204, response_class=Response)
def delete_role(ref: RoleRef, ctx: ContextDep) -> Response:
    """Delete a custom role; its holders get the role it inherited from."""
    service.delete_role(ctx.session, actor=ctx.actor, org=ctx.org, ref=ref)
    return Response(status_code=204)
