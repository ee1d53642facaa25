"""REST routes: runs."""

from __future__ import annotations

from fastapi import Response

from rolecall.runs import service
from rolecall.runs.schemas import RunCreate, RunCreateInProject, RunList, RunMove, RunRead
from rolecall.web.api.v1._router import make_router
from rolecall.web.deps import ContextDep, OptionalContextDep

router = make_router("runs")

RUN = "/runs/{run_id}"


@router.get("/projects/{entity}/{project}/runs", operation_id="runs-list", response_model=RunList)
def list_runs(entity: str, project: str, ctx: OptionalContextDep) -> RunList:
    """The runs of a project, oldest first."""
    views = service.list_runs(
        ctx.session, actor=ctx.actor, org=ctx.org, project=f"{entity}/{project}"
    )
    return RunList(items=[RunRead.from_view(view) for view in views])


@router.post(
    "/projects/{entity}/{project}/runs",
    operation_id="runs-create-in-project",
    response_model=RunRead,
    status_code=201,
)
def create_run_in_project(
    entity: str, project: str, body: RunCreateInProject, ctx: ContextDep
) -> RunRead:
    """Submit a run to this project."""
    view = service.create_run(
        ctx.session, actor=ctx.actor, org=ctx.org, project=f"{entity}/{project}", name=body.name
    )
    return RunRead.from_view(view)


@router.post("/runs", operation_id="runs-create", response_model=RunRead, status_code=201)
def create_run(body: RunCreate, ctx: ContextDep) -> RunRead:
    """Submit a run; a bare project name means the caller's default entity."""
    view = service.create_run(
        ctx.session, actor=ctx.actor, org=ctx.org, project=body.project, name=body.name
    )
    return RunRead.from_view(view)


@router.get(RUN, operation_id="runs-get", response_model=RunRead)
def get_run(run_id: str, ctx: OptionalContextDep) -> RunRead:
    """A run."""
    view = service.read_run(ctx.session, actor=ctx.actor, org=ctx.org, run_id=run_id)
    return RunRead.from_view(view)


@router.delete(RUN, operation_id="runs-delete", status_code=204)
def delete_run(run_id: str, ctx: ContextDep) -> Response:
    """Delete a run."""
    service.delete_run(ctx.session, actor=ctx.actor, org=ctx.org, run_id=run_id)
    return Response(status_code=204)


@router.post(f"{RUN}/stop", operation_id="runs-stop", response_model=RunRead)
def stop_run(run_id: str, ctx: ContextDep) -> RunRead:
    """Stop a running run."""
    view = service.stop_run(ctx.session, actor=ctx.actor, org=ctx.org, run_id=run_id)
    return RunRead.from_view(view)


@router.post(f"{RUN}/move", operation_id="runs-move", response_model=RunRead)
def move_run(run_id: str, body: RunMove, ctx: ContextDep) -> RunRead:
    """Move a run to another project (never out of a restricted one)."""
    view = service.move_run(
        ctx.session, actor=ctx.actor, org=ctx.org, run_id=run_id, destination=body.project
    )
    return RunRead.from_view(view)
