"""Runs: create (with service-account attribution), list, read, stop, delete, move."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from rolecall import authz
from rolecall.audit import service as audit_service
from rolecall.authz import policy
from rolecall.authz.permissions import Permission
from rolecall.authz.roles import Visibility
from rolecall.errors import Conflict, InvalidInput, NotFound
from rolecall.identity.attribution import resolve_attribution
from rolecall.identity.principal import Principal
from rolecall.orgs.models import Organization
from rolecall.projects.models import Project
from rolecall.projects.queries import find_project, split_path
from rolecall.runs.models import Run
from rolecall.service_accounts.models import ServiceAccount
from rolecall.teams.models import Team
from rolecall.users.models import User

RUNNING = "running"
STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class RunView:
    run: Run
    project: str  # entity/name
    creator_kind: str | None  # "user" | "service_account"; None once the creator is gone
    creator_name: str | None
    #: The human the run counts for, or the service account when attribution was not honoured.
    attributed_to: str | None


def view_run(session: Session, run: Run) -> RunView:
    project = session.get(Project, run.project_id)
    assert project is not None
    team = session.get(Team, project.team_id)
    assert team is not None
    kind = name = None
    if run.created_by_user_id and (user := session.get(User, run.created_by_user_id)):
        kind, name = "user", user.username
    elif run.created_by_service_account_id and (
        account := session.get(ServiceAccount, run.created_by_service_account_id)
    ):
        kind, name = "service_account", account.name
    attributed = session.get(User, run.attributed_to_user_id) if run.attributed_to_user_id else None
    if attributed is not None:
        attributed_to = attributed.username
    else:
        attributed_to = name if kind == "service_account" else None
    return RunView(run, f"{team.name}/{project.name}", kind, name, attributed_to)


def _record(
    session: Session, actor: Principal, org: Organization, action: str, view: RunView, **kw: object
) -> None:
    audit_service.record(
        session,
        actor=actor,
        action=action,
        object_type="run",
        object_id=view.run.id,
        object_name=f"{view.project}/{view.run.name}",
        org_id=org.id,
        **kw,  # type: ignore[arg-type]
    )


def _project_at(session: Session, org: Organization, path: str) -> Project:
    entity, name = split_path(path)
    project = find_project(session, entity, name, org.id)
    if project is None:
        raise NotFound(f"no project {entity}/{name}", field="project")
    return project


def _default_entity(session: Session, actor: Principal, org: Organization) -> Team | None:
    """A service account's team (parent or default team); a user's personal entity."""
    if actor.service_account_id:
        account = session.get(ServiceAccount, actor.service_account_id)
        return session.get(Team, account.team_id) if account else None
    if actor.user_id:
        return session.scalar(
            select(Team).where(
                Team.org_id == org.id,
                Team.kind == "personal",
                Team.personal_owner_id == actor.user_id,
            )
        )
    return None


def resolve_project(session: Session, actor: Principal, org: Organization, ref: str) -> Project:
    """``entity/name``, or a bare ``name`` in the caller's default entity (the SDK's habit when
    WANDB_ENTITY is unset). Raises ``InvalidInput``, ``NotFound``."""
    if "/" in ref:
        return _project_at(session, org, ref)
    name = ref.strip()
    team = _default_entity(session, actor, org)
    if team is None or not name:
        raise InvalidInput("name the project as entity/name", field="project")
    return _project_at(session, org, f"{team.name}/{name}")


def _attribution(session: Session, actor: Principal) -> tuple[str | None, str | None]:
    """(attributed user id, note): users' runs are their own; a service account's go to the human
    it names only when ``policy.decide_attribution`` honours it (the note says why not)."""
    if not actor.is_service_account:
        return actor.user_id, None
    decision = resolve_attribution(session, actor=actor)
    if decision is None:  # the account named nobody
        return None, None
    note = None if decision.honoured else decision.step.detail
    if note is not None and len(note) > 256:  # the column holds 256: cut a very long name
        note = note[:255] + "…"
    return decision.user_id, note


def create_run(
    session: Session, *, actor: Principal, org: Organization, project: str, name: str | None = None
) -> RunView:
    """Submit a run to ``project`` (``entity/name`` or a bare name in the default entity).

    Raises ``InvalidInput``, ``NotFound``, ``PermissionDenied``.
    """
    if name is not None and not name.strip():
        # A display name of spaces alone shows as nothing, and tells no run from another.
        raise InvalidInput("a run's name cannot be blank", field="name")
    target = resolve_project(session, actor, org, project)
    authz.require(session, actor, Permission.RUN_CREATE, target)
    attributed_to, note = _attribution(session, actor)
    run = Run(
        project_id=target.id,
        # W&B generates a name when the client gives none.
        name=name or f"run-{secrets.token_hex(4)}",
        state=RUNNING,
        created_by_user_id=actor.user_id,
        created_by_service_account_id=actor.service_account_id,
        attributed_to_user_id=attributed_to,
        attribution_note=note,
    )
    session.add(run)
    session.flush()
    view = view_run(session, run)
    after = {"project": view.project, "name": run.name, "attributed_to": view.attributed_to}
    _record(session, actor, org, "run.create", view, after=after, detail=note)
    session.flush()
    return view


def list_runs(
    session: Session, *, actor: Principal, org: Organization, project: str
) -> list[RunView]:
    """The runs of ``project`` (``entity/name``), oldest first.

    Raises ``InvalidInput``, ``NotFound``, ``PermissionDenied``.
    """
    target = _project_at(session, org, project)
    authz.require(session, actor, Permission.RUN_READ, target)
    runs = session.scalars(
        select(Run).where(Run.project_id == target.id).order_by(Run.created_at, Run.id)
    )
    return [view_run(session, run) for run in runs]


def get_run(session: Session, org: Organization, run_id: str) -> Run | None:
    """The run ``run_id`` if it belongs to a project of ``org``."""
    run = session.get(Run, run_id)
    if run is None:
        return None
    in_org = session.scalar(
        select(Team.id)
        .join(Project, Project.team_id == Team.id)
        .where(Project.id == run.project_id, Team.org_id == org.id)
    )
    return run if in_org else None


def require_run(session: Session, org: Organization, run_id: str) -> tuple[Run, Project]:
    """The run and its project; raises ``NotFound``."""
    run = get_run(session, org, run_id)
    if run is None:
        raise NotFound(f"no run {run_id!r}", field="id")
    project = session.get(Project, run.project_id)
    assert project is not None
    return run, project


def read_run(session: Session, *, actor: Principal, org: Organization, run_id: str) -> RunView:
    """A run, for those who may ``run:read`` its project. Raises ``NotFound``,
    ``PermissionDenied``."""
    run, project = require_run(session, org, run_id)
    authz.require(session, actor, Permission.RUN_READ, project)
    return view_run(session, run)


def stop_run(session: Session, *, actor: Principal, org: Organization, run_id: str) -> RunView:
    """Stop a running run. Raises ``NotFound``, ``PermissionDenied``, ``Conflict`` (not running)."""
    run, project = require_run(session, org, run_id)
    authz.require(session, actor, Permission.RUN_STOP, project)
    if run.state != RUNNING:
        raise Conflict(f"run {run.name} is {run.state}, not running", field="state")
    run.state, run.stopped_at = STOPPED, datetime.now(UTC)
    view = view_run(session, run)
    _record(
        session, actor, org, "run.stop", view, before={"state": RUNNING}, after={"state": STOPPED}
    )
    session.flush()
    return view


def delete_run(session: Session, *, actor: Principal, org: Organization, run_id: str) -> None:
    """Delete a run. Raises ``NotFound``, ``PermissionDenied``."""
    run, project = require_run(session, org, run_id)
    authz.require(session, actor, Permission.RUN_DELETE, project)
    view = view_run(session, run)
    _record(session, actor, org, "run.delete", view, before={"project": view.project})
    session.delete(run)
    session.flush()


def move_run(
    session: Session, *, actor: Principal, org: Organization, run_id: str, destination: str
) -> RunView:
    """Move a run to another project of the org: ``run:move`` on the source, ``run:create`` on
    the destination, and never out of a restricted project.

    Raises ``NotFound``, ``PermissionDenied``, ``InvalidInput`` (same project),
    ``Conflict`` (``run.move_out_of_restricted``).
    """
    run, source = require_run(session, org, run_id)
    authz.require(session, actor, Permission.RUN_MOVE, source)
    target = _project_at(session, org, destination)
    authz.require(session, actor, Permission.RUN_CREATE, target)
    if target.id == source.id:
        raise InvalidInput("the run is already in that project", field="project")
    violation = policy.check_run_move(
        source=Visibility(source.visibility), destination=Visibility(target.visibility)
    )
    if violation is not None:
        raise Conflict(violation.message, field="project", code=violation.rule)
    before = view_run(session, run).project
    run.project_id = target.id
    session.flush()
    view = view_run(session, run)
    _record(
        session,
        actor,
        org,
        "run.move",
        view,
        before={"project": before},
        after={"project": view.project},
    )
    session.flush()
    return view
