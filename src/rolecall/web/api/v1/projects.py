"""REST routes: projects, their members and project roles."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query, Response

from rolecall.authz import policy
from rolecall.authz.load import observed, raise_if_denied
from rolecall.authz.permissions import Permission
from rolecall.errors import PermissionDenied
from rolecall.projects import service
from rolecall.projects.schemas import (
    ProjectCreate,
    ProjectList,
    ProjectMemberAdd,
    ProjectMemberList,
    ProjectMemberRead,
    ProjectMemberUpdate,
    ProjectRead,
    ProjectUpdate,
)
from rolecall.web.api.v1._router import make_router
from rolecall.web.api.v1.paging import DEFAULT_LIMIT, Limit, Offset
from rolecall.web.deps import Context, ContextDep, OptionalContextDep, project_entry

router = make_router("projects")

PROJECT = "/projects/{entity}/{project}"


@router.get("/projects", operation_id="projects-list", response_model=ProjectList)
def list_projects(
    ctx: OptionalContextDep,
    entity: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
    offset: Offset = 0,
    limit: Limit = DEFAULT_LIMIT,
) -> ProjectList:
    """The projects the caller may read (anonymous callers: open and public ones)."""
    views, total = service.list_projects(
        ctx.session, actor=ctx.actor, org=ctx.org, entity=entity, offset=offset, limit=limit
    )
    items = [ProjectRead.from_view(view) for view in views]
    return ProjectList(items=items, total=total, offset=offset, limit=limit)


@router.post(
    "/projects", operation_id="projects-create", response_model=ProjectRead, status_code=201
)
def create_project(body: ProjectCreate, ctx: ContextDep) -> ProjectRead:
    """Create a project in a team or in the caller's personal entity."""
    view = service.create_project(
        ctx.session,
        actor=ctx.actor,
        org=ctx.org,
        entity=body.entity,
        name=body.name,
        visibility=body.visibility,
        description=body.description,
        members=body.members,
    )
    return ProjectRead.from_view(view)


@router.get(PROJECT, operation_id="projects-get", response_model=ProjectRead)
async def get_project(entity: str, project: str, ctx: OptionalContextDep) -> Any:
    """A project (anonymous callers: open and public projects)."""
    # Async for the access cache's fast path: a repeated read is answered on the event loop.
    found = ctx.cached_facts(entity, project)
    if found is not None:
        actor, facts = found
        decision = policy.decide(facts, Permission.PROJECT_READ)
        body = ctx.cached(project_entry(entity, project)) if decision.allowed else None
        if body is not None or not decision.allowed:
            raise_if_denied(actor, Permission.PROJECT_READ, observed(decision))
            return Response(body, media_type="application/json")
    return await ctx.in_thread(lambda: _read_project(ctx, entity, project))


def _read_project(ctx: Context, entity: str, project: str) -> ProjectRead:
    """``get_project``'s normal path: the service, then what the next request may reuse."""
    try:
        view = service.read_project(
            ctx.session, actor=ctx.actor, org=ctx.org, entity=entity, name=project
        )
    except PermissionDenied:
        ctx.remember(entity, project)  # the next such request is refused from the cache
        raise
    read = ProjectRead.from_view(view)
    # The bytes FastAPI would send for ``read`` (its serializer for the response model).
    body = read.model_dump_json(by_alias=True).encode()
    ctx.remember(entity, project, (project_entry(entity, project), body))
    return read


@router.patch(PROJECT, operation_id="projects-update", response_model=ProjectRead)
def update_project(entity: str, project: str, body: ProjectUpdate, ctx: ContextDep) -> ProjectRead:
    """Change visibility, owner or description; fields left out stay as they are."""
    view = service.update_project(
        ctx.session,
        actor=ctx.actor,
        org=ctx.org,
        entity=entity,
        name=project,
        **body.model_dump(exclude_unset=True),
    )
    return ProjectRead.from_view(view)


@router.delete(PROJECT, operation_id="projects-delete", status_code=204)
def delete_project(entity: str, project: str, ctx: ContextDep) -> Response:
    """Delete a project with its runs."""
    service.delete_project(ctx.session, actor=ctx.actor, org=ctx.org, entity=entity, name=project)
    return Response(status_code=204)


@router.get(
    f"{PROJECT}/members", operation_id="projects-list-members", response_model=ProjectMemberList
)
def list_members(entity: str, project: str, ctx: OptionalContextDep) -> ProjectMemberList:
    """Restricted projects: the invited members; others: the team's members with their roles."""
    views = service.list_project_members(
        ctx.session, actor=ctx.actor, org=ctx.org, entity=entity, name=project
    )
    return ProjectMemberList(items=[ProjectMemberRead.from_view(view) for view in views])


@router.post(
    f"{PROJECT}/members",
    operation_id="projects-add-member",
    response_model=ProjectMemberRead,
    status_code=201,
)
def add_member(
    entity: str, project: str, body: ProjectMemberAdd, ctx: ContextDep
) -> ProjectMemberRead:
    """Invite a team member or service account, optionally with a project role."""
    view = service.add_project_member(
        ctx.session,
        actor=ctx.actor,
        org=ctx.org,
        entity=entity,
        name=project,
        principal=body.principal,
        role=body.role,
    )
    return ProjectMemberRead.from_view(view)


@router.patch(
    f"{PROJECT}/members/{{ref}}",
    operation_id="projects-set-member-role",
    response_model=ProjectMemberRead,
)
def set_member_role(
    entity: str, project: str, ref: str, body: ProjectMemberUpdate, ctx: ContextDep
) -> ProjectMemberRead:
    """Set a member's project role; ``null`` returns it to tracking its team role."""
    view = service.set_project_member_role(
        ctx.session,
        actor=ctx.actor,
        org=ctx.org,
        entity=entity,
        name=project,
        ref=ref,
        role=body.role,
    )
    return ProjectMemberRead.from_view(view)


@router.delete(f"{PROJECT}/members/{{ref}}", operation_id="projects-remove-member", status_code=204)
def remove_member(entity: str, project: str, ref: str, ctx: ContextDep) -> Response:
    """Remove a project membership (and its project-role override)."""
    service.remove_project_member(
        ctx.session, actor=ctx.actor, org=ctx.org, entity=entity, name=project, ref=ref
    )
    return Response(status_code=204)


@router.post(f"{PROJECT}/join", operation_id="projects-join", response_model=ProjectMemberRead)
def join(entity: str, project: str, ctx: ContextDep) -> ProjectMemberRead:
    """A team admin joins a restricted project of its team."""
    view = service.join_project(
        ctx.session, actor=ctx.actor, org=ctx.org, entity=entity, name=project
    )
    return ProjectMemberRead.from_view(view)
