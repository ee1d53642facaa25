"""REST routes: teams and team members (``{team}`` is a team's name or id)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Response

from rolecall.teams import service
from rolecall.teams.models import Team
from rolecall.teams.schemas import (
    MemberCreate,
    MemberList,
    MemberRead,
    MemberUpdate,
    TeamCreate,
    TeamPage,
    TeamRead,
    TeamUpdate,
)
from rolecall.web.api.v1._router import make_router
from rolecall.web.api.v1.paging import DEFAULT_LIMIT, Limit, Offset
from rolecall.web.deps import ContextDep

router = make_router("teams")

#: Control characters (NUL above all, which PostgreSQL refuses in a query) are a 422.
_PRINTABLE = r"^[^\x00-\x1f\x7f]+$"
TeamRef = Annotated[str, Path(min_length=1, max_length=128, pattern=_PRINTABLE)]
MemberRef = Annotated[str, Path(min_length=1, max_length=320, pattern=_PRINTABLE)]


@router.get("/teams", operation_id="teams-list", response_model=TeamPage)
def list_teams(ctx: ContextDep, offset: Offset = 0, limit: Limit = DEFAULT_LIMIT) -> TeamPage:
    """A page of the organization's teams, oldest first (any org member)."""
    teams, total = service.search_teams(
        ctx.session,
        actor=ctx.actor,
        org=ctx.org,
        order=(Team.created_at,),
        offset=offset,
        limit=limit,
    )
    items = [TeamRead.of(team, ctx.org) for team in teams]
    return TeamPage(items=items, total=total, offset=offset, limit=limit)


@router.post("/teams", operation_id="teams-create", response_model=TeamRead, status_code=201)
def create_team(body: TeamCreate, ctx: ContextDep) -> TeamRead:
    """Create a team, optionally with its first admin (org admins)."""
    team = service.create_team(ctx.session, actor=ctx.actor, org=ctx.org, **body.model_dump())
    return TeamRead.of(team, ctx.org)


@router.get("/teams/{team}", operation_id="teams-get", response_model=TeamRead)
def get_team(team: TeamRef, ctx: ContextDep) -> TeamRead:
    """A team's details (its members and org admins)."""
    row = service.read_team(ctx.session, actor=ctx.actor, org=ctx.org, ref=team)
    return TeamRead.of(row, ctx.org)


@router.patch("/teams/{team}", operation_id="teams-update", response_model=TeamRead)
def update_team(team: TeamRef, body: TeamUpdate, ctx: ContextDep) -> TeamRead:
    """Rename a team or change its settings (team admins and org admins)."""
    changes = body.model_dump(exclude_none=True)
    row = service.update_team(ctx.session, actor=ctx.actor, org=ctx.org, team=team, **changes)
    return TeamRead.of(row, ctx.org)


@router.delete(
    "/teams/{team}", operation_id="teams-delete", status_code=204, response_class=Response
)
def delete_team(team: TeamRef, ctx: ContextDep) -> Response:
    """Delete a team with its projects and memberships (org admins)."""
    service.delete_team(ctx.session, actor=ctx.actor, org=ctx.org, team=team)
    return Response(status_code=204)


@router.get("/teams/{team}/members", operation_id="teams-list-members", response_model=MemberList)
def list_members(
    team: TeamRef, ctx: ContextDep, offset: Offset = 0, limit: Limit = DEFAULT_LIMIT
) -> MemberList:
    """A page of a team's users and service accounts, in the order they joined."""
    members, total = service.page_members(
        ctx.session, actor=ctx.actor, org=ctx.org, team=team, offset=offset, limit=limit
    )
    items = [MemberRead.model_validate(member) for member in members]
    return MemberList(items=items, total=total, offset=offset, limit=limit)


@router.post(
    "/teams/{team}/members",
    operation_id="teams-add-member",
    response_model=MemberRead,
    status_code=201,
)
def add_member(team: TeamRef, body: MemberCreate, ctx: ContextDep) -> MemberRead:
    """Add an org member to a team with a predefined or custom role."""
    member = service.add_member(
        ctx.session, actor=ctx.actor, org=ctx.org, team=team, user=body.user, role=body.role
    )
    return MemberRead.model_validate(member)


@router.patch(
    "/teams/{team}/members/{ref}", operation_id="teams-update-member", response_model=MemberRead
)
def update_member(team: TeamRef, ref: MemberRef, body: MemberUpdate, ctx: ContextDep) -> MemberRead:
    """Change a member's team role (project-role overrides follow)."""
    member = service.change_member_role(
        ctx.session, actor=ctx.actor, org=ctx.org, team=team, member=ref, role=body.role
    )
    return MemberRead.model_validate(member)


@router.delete(
    "/teams/{team}/members/{ref}",
    operation_id="teams-remove-member",
    status_code=204,
    response_class=Response,
)
def remove_member(team: TeamRef, ref: MemberRef, ctx: ContextDep) -> Response:
    """Remove a user from a team and its projects; its runs stay."""
    service.remove_member(ctx.session, actor=ctx.actor, org=ctx.org, team=team, member=ref)
    return Response(status_code=204)
