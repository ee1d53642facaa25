"""REST routes: users of the organization (``/users``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from rolecall.teams.schemas import TeamList, TeamRead
from rolecall.users import service
from rolecall.users.schemas import PRINTABLE, UserCreate, UserList, UserRead, UserUpdate
from rolecall.web.api.v1._router import make_router
from rolecall.web.api.v1.paging import DEFAULT_LIMIT, Limit, Offset
from rolecall.web.deps import ContextDep

router = make_router("users")

#: A user reference in a path: id, username or email.
USER_REF = "/users/{ref}"


@router.get("/users", operation_id="users-list", response_model=UserList)
def list_users(
    ctx: ContextDep,
    offset: Offset = 0,
    limit: Limit = DEFAULT_LIMIT,
    q: Annotated[str | None, Query(max_length=320, pattern=PRINTABLE)] = None,
) -> UserList:
    """A page of the organization's users, in the order they joined it; ``q`` searches
    username and email."""
    page = service.list_users(
        ctx.session, actor=ctx.actor, org=ctx.org, q=q, offset=offset, limit=limit
    )
    items = [UserRead.of(user) for user in page.items]
    return UserList(items=items, total=page.total, offset=page.offset, limit=page.limit)


@router.post("/users", operation_id="users-create", response_model=UserRead, status_code=201)
def create_user(body: UserCreate, ctx: ContextDep) -> UserRead:
    """Add a user to the organization (org admins)."""
    user = service.create_user(ctx.session, actor=ctx.actor, org=ctx.org, **body.model_dump())
    return UserRead.of(user)


@router.get(USER_REF, operation_id="users-get", response_model=UserRead)
def get_user(ref: str, ctx: ContextDep) -> UserRead:
    """A user by id, username or email."""
    user = service.require_user(ctx.session, actor=ctx.actor, org=ctx.org, ref=ref)
    return UserRead.of(user)


@router.patch(USER_REF, operation_id="users-update", response_model=UserRead)
def update_user(ref: str, body: UserUpdate, ctx: ContextDep) -> UserRead:
    """Change a user's org role, seats or full name (org admins)."""
    changes = body.model_dump(exclude_unset=True)
    user = service.update_user(
        ctx.session,
        actor=ctx.actor,
        org=ctx.org,
        ref=ref,
        role=changes.get("role"),
        models_seat=changes.get("models_seat"),
        weave_seat=changes.get("weave_seat"),
        full_name=changes.get("full_name", service.UNSET),
    )
    return UserRead.of(user)


@router.delete(USER_REF, operation_id="users-delete", status_code=204)
def delete_user(ref: str, ctx: ContextDep) -> None:
    """Remove a user from the organization; its runs stay attributed to it (org admins)."""
    service.delete_user(ctx.session, actor=ctx.actor, org=ctx.org, ref=ref)


@router.post(USER_REF + "/deactivate", operation_id="users-deactivate", response_model=UserRead)
def deactivate_user(ref: str, ctx: ContextDep) -> UserRead:
    """Deactivate a user: listed still, but it holds no permission (org admins)."""
    user = service.set_user_active(ctx.session, actor=ctx.actor, org=ctx.org, ref=ref, active=False)
    return UserRead.of(user)


@router.post(USER_REF + "/reactivate", operation_id="users-reactivate", response_model=UserRead)
def reactivate_user(ref: str, ctx: ContextDep) -> UserRead:
    """Reactivate a deactivated user (org admins)."""
    user = service.set_user_active(ctx.session, actor=ctx.actor, org=ctx.org, ref=ref, active=True)
    return UserRead.of(user)


@router.get(USER_REF + "/teams", operation_id="users-teams", response_model=TeamList)
def list_user_teams(ref: str, ctx: ContextDep) -> TeamList:
    """The teams (not personal entities) the user belongs to, by name."""
    teams = service.user_teams(ctx.session, actor=ctx.actor, org=ctx.org, ref=ref)
    return TeamList(items=[TeamRead.of(team, ctx.org) for team in teams])
