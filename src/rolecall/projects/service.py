"""Projects: create, read, list, update, delete; project membership and project roles.

Project membership (ACCESS.md, "Project-level roles"): a ``ProjectMembership`` row exists only
while a principal has a project-level relationship: an invitation (``invited``, what a restricted
project requires) or a project-role override (``role``/``custom_role_id``). A member without a row
tracks its team role.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from rolecall import authz
from rolecall.audit import service as audit_service
from rolecall.authz import policy
from rolecall.authz.facts import RoleFacts
from rolecall.authz.load import role_facts
from rolecall.authz.permissions import Permission
from rolecall.authz.roles import TeamRole, Visibility, parse_predefined_team_role
from rolecall.errors import Conflict, InvalidInput, NotFound
from rolecall.identity.principal import Principal
from rolecall.orgs.models import Organization
from rolecall.projects.models import Project, ProjectMembership
from rolecall.projects.queries import find_project
from rolecall.roles.models import CustomRole
from rolecall.service_accounts.models import ServiceAccount
from rolecall.teams import writes
from rolecall.teams.models import Team, TeamMembership
from rolecall.teams.queries import find_entity
from rolecall.users.models import User
from rolecall.users.naming import check_entity_name
from rolecall.users.queries import find_user, org_membership

Member = User | ServiceAccount
#: Predefined roles a project role may be (``service`` belongs to service accounts' team seats).
PROJECT_ROLES = (TeamRole.ADMIN, TeamRole.MEMBER, TeamRole.VIEWER)
ROLE_SCOPES = (Visibility.TEAM, Visibility.RESTRICTED)


class _Unset(Enum):
    UNSET = "unset"


#: A keyword left out of an update (distinct from ``None``, which clears a field).
UNSET = _Unset.UNSET


@dataclass(frozen=True, slots=True)
class ProjectView:
    project: Project
    entity: str
    owner: str | None

    @property
    def path(self) -> str:
        return f"{self.entity}/{self.project.name}"


@dataclass(frozen=True, slots=True)
class ProjectMemberView:
    kind: str
    id: str
    name: str
    invited: bool
    team_role: str | None
    project_role: str | None
    is_override: bool


@dataclass(frozen=True, slots=True)
class _Standing:
    """A principal's place in a project's team: what a project role tracks or overrides."""

    key: str  # comparable role key: a predefined name or ``custom:<id>``
    team_role: str | None  # the displayed team role (None: an org-scoped service account)
    tracked: str  # the project role of a member that tracks its team role
    facts: RoleFacts | None


# --- lookups -----------------------------------------------------------------------------------


def get_project(session: Session, org: Organization, entity: str, name: str) -> Project | None:
    return find_project(session, entity, name, org.id)


def require_project(session: Session, org: Organization, entity: str, name: str) -> Project:
    """The project ``entity/name`` of ``org``; raises ``NotFound``."""
    project = get_project(session, org, entity, name)
    if project is None:
        raise NotFound(f"no project {entity}/{name}", field="project")
    return project


def _team_of(session: Session, project: Project) -> Team:
    team = session.get(Team, project.team_id)
    assert team is not None  # a foreign key with ON DELETE CASCADE
    return team


def view_project(session: Session, project: Project) -> ProjectView:
    owner = session.get(User, project.owner_user_id) if project.owner_user_id else None
    return ProjectView(project, _team_of(session, project).name, owner.username if owner else None)


def _record(
    session: Session, actor: Principal, org: Organization, action: str, view: ProjectView, **kw: Any
) -> None:
    audit_service.record(
        session,
        actor=actor,
        action=action,
        object_type="project",
        object_id=view.project.id,
        object_name=view.path,
        org_id=org.id,
        **kw,
    )


def _role_key(role: str | None, custom_role_id: str | None) -> str | None:
    if role is None:
        return None
    return f"custom:{custom_role_id}" if custom_role_id else role


def _role_name(session: Session, role: str | None, custom_role_id: str | None) -> str | None:
    if custom_role_id is not None:
        custom = session.get(CustomRole, custom_role_id)
        return custom.name if custom else None
    return role


def resolve_principal(
    session: Session, org: Organization, ref: str, *, field: str = "principal"
) -> Member:
    """``user:<username or email>``, ``service_account:<name>`` or a bare username or email.

    Raises ``InvalidInput`` for another form, ``NotFound`` for a principal not in ``org``.
    """
    kind, sep, value = ref.strip().partition(":")
    if not sep:
        kind, value = "user", ref.strip()
    value = value.strip()
    if kind == "service_account":
        account = session.scalar(
            select(ServiceAccount).where(
                ServiceAccount.org_id == org.id,
                ServiceAccount.name_key == value.lower(),
                ServiceAccount.deleted_at.is_(None),
            )
        )
        if account is None:
            raise NotFound(f"no service account {value!r} in this organization", field=field)
        return account
    if kind != "user":
        raise InvalidInput(
            "name a principal as user:<username or email>, service_account:<name>, "
            "or a bare username or email",
            field=field,
        )
    user = find_user(session, value) if value else None
    # Held in the organization until this write commits: a removal from it waits.
    if user is None or user.id not in writes.keep_in_org(session, org.id, [user.id]):
        raise NotFound(f"no user {value!r} in this organization", field=field)
    return user


def _standing(session: Session, team: Team, principal: Member) -> _Standing | None:
    """The principal's standing in ``team``; ``None``: it may not join the team's projects."""
    if isinstance(principal, User) and team.kind == "personal":
        if team.personal_owner_id != principal.id:
            return None
        return _Standing("admin", "admin", "admin", role_facts(session, "admin", None))
    if isinstance(principal, ServiceAccount) and principal.scope == "org":
        if principal.org_id != team.org_id:
            return None
        # ACCESS.md: an org-scoped service account acts as a member of every team of its org.
        return _Standing(TeamRole.MEMBER.value, None, TeamRole.MEMBER.value, None)
    column = (
        TeamMembership.user_id if isinstance(principal, User) else TeamMembership.service_account_id
    )
    row = session.scalar(
        select(TeamMembership).where(TeamMembership.team_id == team.id, column == principal.id)
    )
    if row is None:
        return None
    key = _role_key(row.role, row.custom_role_id)
    name = _role_name(session, row.role, row.custom_role_id)
    assert key is not None and name is not None
    return _Standing(key, name, name, role_facts(session, row.role, row.custom_role_id))


def _require_standing(session: Session, team: Team, principal: Member) -> _Standing:
    standing = _standing(session, team, principal)
    if standing is None:
        what = "team" if team.kind == "team" else "personal entity"
        raise InvalidInput(
            f"{_name_of(principal)} is not a member of the project's {what} {team.name}",
            field="principal",
        )
    return standing


def _name_of(principal: Member) -> str:
    return principal.username if isinstance(principal, User) else principal.name


def _project_row(session: Session, project: Project, principal: Member) -> ProjectMembership | None:
    column = (
        ProjectMembership.user_id
        if isinstance(principal, User)
        else ProjectMembership.service_account_id
    )
    return session.scalar(
        select(ProjectMembership).where(
            ProjectMembership.project_id == project.id, column == principal.id
        )
    )


def _new_row(project: Project, principal: Member, *, invited: bool) -> ProjectMembership:
    is_user = isinstance(principal, User)
    return ProjectMembership(
        project_id=project.id,
        user_id=principal.id if is_user else None,
        service_account_id=None if is_user else principal.id,
        invited=invited,
    )


def _raise_conflict(violation: policy.RuleViolation | None, field: str | None = None) -> None:
    if violation is not None:
        raise Conflict(violation.message, field=field, code=violation.rule)


# --- projects ----------------------------------------------------------------------------------


def create_project(
    session: Session,
    *,
    actor: Principal,
    org: Organization,
    entity: str,
    name: str,
    visibility: Visibility = Visibility.TEAM,
    description: str | None = None,
    members: list[str] | tuple[str, ...] = (),
) -> ProjectView:
    """Create a project in a team or personal entity, owned by the creating user.

    Raises ``NotFound`` (entity, member), ``PermissionDenied``, ``InvalidInput`` (name; members
    of a non-restricted project or outside the team), ``Conflict`` (duplicate name;
    ``team.private_only``).
    """
    team = find_entity(session, entity, org.id)
    if team is None:
        raise NotFound(f"no team or user {entity!r}", field="entity")
    authz.require(session, actor, Permission.PROJECT_CREATE, team)
    check_entity_name(name)
    _raise_conflict(
        policy.check_visibility_change(
            private_only=team.private_only, current=None, new=visibility
        ),
        field="visibility",
    )
    if members and visibility is not Visibility.RESTRICTED:
        raise InvalidInput("members are invited to restricted projects only", field="members")
    if session.scalar(
        select(Project.id).where(Project.team_id == team.id, Project.name_key == name.lower())
    ):
        raise Conflict(f"project {team.name}/{name} already exists", field="name")
    invitees: dict[str, Member] = {}
    for ref in members:
        principal = resolve_principal(session, org, ref, field="members")
        _require_standing(session, team, principal)
        invitees[principal.id] = principal
    creator = _actor_row(session, actor)
    if visibility is Visibility.RESTRICTED and creator is not None:
        # Restricted projects admit invited members only: the creator is the first of them.
        invitees.setdefault(creator.id, creator)
    project = Project(
        team_id=team.id,
        name=name,
        name_key=name.lower(),
        visibility=visibility.value,
        owner_user_id=actor.user_id,
        description=description,
    )
    session.add(project)
    session.flush()
    session.add_all(_new_row(project, p, invited=True) for p in invitees.values())
    view = ProjectView(project, team.name, actor.name if actor.user_id else None)
    after = {"visibility": visibility.value, "owner": view.owner, "description": description}
    after["members"] = sorted(_name_of(p) for p in invitees.values())
    _record(session, actor, org, "project.create", view, after=after)
    session.flush()
    return view


def _actor_row(session: Session, actor: Principal) -> Member | None:
    if actor.user_id:
        return session.get(User, actor.user_id)
    if actor.service_account_id:
        return session.get(ServiceAccount, actor.service_account_id)
    return None


def read_project(
    session: Session, *, actor: Principal, org: Organization, entity: str, name: str
) -> ProjectView:
    """The project, for those who may ``project:read`` it (anonymous: open and public ones).

    Raises ``NotFound``, ``PermissionDenied``.
    """
    project = require_project(session, org, entity, name)
    authz.require(session, actor, Permission.PROJECT_READ, project)
    return view_project(session, project)


def list_projects(
    session: Session,
    *,
    actor: Principal,
    org: Organization,
    entity: str | None = None,
    offset: int = 0,
    limit: int = 100,
) -> tuple[list[ProjectView], int]:
    """The projects of ``org`` (or of one entity) the caller may read, oldest first, and their
    count. Raises ``NotFound`` for an unknown entity."""
    query = (
        select(Project)
        .join(Team, Team.id == Project.team_id)
        .where(Team.org_id == org.id)
        .order_by(Project.created_at, Project.id)
    )
    if entity is not None:
        team = find_entity(session, entity, org.id)
        if team is None:
            raise NotFound(f"no team or user {entity!r}", field="entity")
        query = query.where(Project.team_id == team.id)
    visible = [
        project
        for project in session.scalars(query)
        if authz.check(session, actor, Permission.PROJECT_READ, project).allowed
    ]
    page = visible[offset : offset + limit]
    return [view_project(session, project) for project in page], len(visible)


def update_project(
    session: Session,
    *,
    actor: Principal,
    org: Organization,
    entity: str,
    name: str,
    visibility: Visibility | None = None,
    owner: str | None = None,
    description: str | _Unset | None = UNSET,
) -> ProjectView:
    """Change a project's visibility or description (``project:update``) or its owner
    (``project:manage_access``; clears ``owner_needed``).

    Raises ``NotFound``, ``PermissionDenied``, ``Conflict`` (``team.private_only``),
    ``InvalidInput`` (an owner outside the team).
    """
    project = require_project(session, org, entity, name)
    changes_settings = visibility is not None or description is not UNSET
    if changes_settings or owner is None:  # an empty PATCH still needs project:update
        authz.require(session, actor, Permission.PROJECT_UPDATE, project)
    if owner is not None:
        authz.require(session, actor, Permission.PROJECT_MANAGE_ACCESS, project)
    team = _team_of(session, project)
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    if visibility is not None and visibility.value != project.visibility:
        current = Visibility(project.visibility)
        _raise_conflict(
            policy.check_visibility_change(
                private_only=team.private_only, current=current, new=visibility
            ),
            field="visibility",
        )
        # No membership changes: the policy reads visibility, so team -> restricted shuts out
        # the uninvited and restricted -> team lets every team member back in.
        before["visibility"], after["visibility"] = project.visibility, visibility.value
        project.visibility = visibility.value
    if owner is not None:
        new_owner = resolve_principal(session, org, owner, field="owner")
        if not isinstance(new_owner, User):
            raise InvalidInput("a project's owner is a user", field="owner")
        _require_owner_candidate(session, org, team, new_owner)
        before["owner"] = view_project(session, project).owner
        before["owner_needed"] = project.owner_needed
        project.owner_user_id, project.owner_needed = new_owner.id, False
        after["owner"], after["owner_needed"] = new_owner.username, False
        if project.visibility == Visibility.RESTRICTED:
            _ensure_invited(session, project, new_owner)  # as its creator is: owners see inside
    if description is not UNSET and description != project.description:
        before["description"], after["description"] = project.description, description
        project.description = description
    view = view_project(session, project)
    if after:
        _record(session, actor, org, "project.update", view, before=before, after=after)
        session.flush()
    return view


def _ensure_invited(session: Session, project: Project, principal: Member) -> None:
    _invite(session, project, principal, _project_row(session, project, principal))


def _invite(
    session: Session, project: Project, principal: Member, row: ProjectMembership | None
) -> ProjectMembership:
    """Make ``principal`` an invited member of ``project``; returns its row.

    Invited into a restricted project, it starts from its team role: an override its row kept
    from before the project was restricted (when it was not invited, and saw nothing) is not
    brought back, as re-adding a removed member forgets it too (ACCESS.md)."""
    if row is None:
        row = _new_row(project, principal, invited=True)
        session.add(row)
    elif not row.invited and project.visibility == Visibility.RESTRICTED:
        row.role, row.custom_role_id = None, None
    row.invited = True
    return row


def _require_owner_candidate(session: Session, org: Organization, team: Team, user: User) -> None:
    if _standing(session, team, user) is None:
        raise InvalidInput(f"{user.username} is not a member of {team.name}", field="owner")
    membership = org_membership(session, org.id, user.id)
    if membership is None or not membership.active:
        raise InvalidInput(f"{user.username} is deactivated", field="owner")


def delete_project(
    session: Session, *, actor: Principal, org: Organization, entity: str, name: str
) -> None:
    """Delete a project with its runs and memberships. Raises ``NotFound``, ``PermissionDenied``."""
    project = require_project(session, org, entity, name)
    authz.require(session, actor, Permission.PROJECT_DELETE, project)
    view = view_project(session, project)
    _record(session, actor, org, "project.delete", view, before={"visibility": project.visibility})
    # Runs and memberships go with it (ON DELETE CASCADE).
    session.delete(project)
    session.flush()


# --- project members ---------------------------------------------------------------------------


def _member_view(
    session: Session, principal: Member, standing: _Standing | None, row: ProjectMembership | None
) -> ProjectMemberView:
    override = _role_name(session, row.role, row.custom_role_id) if row and row.role else None
    return ProjectMemberView(
        kind="user" if isinstance(principal, User) else "service_account",
        id=principal.id,
        name=_name_of(principal),
        invited=bool(row and row.invited),
        team_role=standing.team_role if standing else None,
        project_role=override or (standing.tracked if standing else None),
        is_override=override is not None,
    )


def _team_principals(session: Session, team: Team) -> list[Member]:
    """The team's members in join order (a personal entity: its owner)."""
    if team.kind == "personal":
        owner = session.get(User, team.personal_owner_id)
        return [owner] if owner else []
    principals: list[Member] = []
    rows = session.scalars(
        select(TeamMembership)
        .where(TeamMembership.team_id == team.id)
        .order_by(TeamMembership.created_at, TeamMembership.id)
    )
    for row in rows:
        principal = _row_principal(session, row.user_id, row.service_account_id)
        if principal is not None:
            principals.append(principal)
    return principals


def _row_principal(
    session: Session, user_id: str | None, service_account_id: str | None
) -> Member | None:
    if user_id is not None:
        return session.get(User, user_id)
    account = session.get(ServiceAccount, service_account_id)
    return account if account is not None and account.deleted_at is None else None


def list_project_members(
    session: Session, *, actor: Principal, org: Organization, entity: str, name: str
) -> list[ProjectMemberView]:
    """Restricted projects: the invited members. Others: every team member (join order) with
    its team role and project role, then principals added explicitly (org service accounts).
    Shown to those who may see the roster (``_require_roster_access``).

    Raises ``NotFound``, ``PermissionDenied``.
    """
    project = require_project(session, org, entity, name)
    authz.require(session, actor, Permission.PROJECT_READ, project)
    team = _team_of(session, project)
    _require_roster_access(session, actor, project, team)
    rows = session.scalars(
        select(ProjectMembership)
        .where(ProjectMembership.project_id == project.id)
        .order_by(ProjectMembership.created_at, ProjectMembership.id)
    ).all()
    by_principal = {row.user_id or row.service_account_id: row for row in rows}
    views: list[ProjectMemberView] = []
    if project.visibility != Visibility.RESTRICTED:
        for principal in _team_principals(session, team):
            row = by_principal.pop(principal.id, None)
            views.append(_member_view(session, principal, _standing(session, team, principal), row))
    for row in by_principal.values():
        principal = _row_principal(session, row.user_id, row.service_account_id)
        if row.invited and principal is not None:
            views.append(_member_view(session, principal, _standing(session, team, principal), row))
    return views


def _require_roster_access(
    session: Session, actor: Principal, project: Project, team: Team
) -> None:
    """Who is in a project is its team's roster (ours): those who manage the project's access
    see it; in a restricted project, its invited members (they see inside: ``run:read``); in
    any other, those who may read the team (``team:read``). A visitor of an open or public
    project, and a team admin that has not joined a restricted one, see the project, not who
    is in it. Raises ``PermissionDenied`` naming the rule that denied."""
    if authz.check(session, actor, Permission.PROJECT_MANAGE_ACCESS, project).allowed:
        return
    if project.visibility == Visibility.RESTRICTED:
        authz.require(session, actor, Permission.RUN_READ, project)
    else:
        authz.require(session, actor, Permission.TEAM_READ, team)


def _check_role_scope(project: Project, team: Team) -> None:
    if team.kind == "personal" or project.visibility not in ROLE_SCOPES:
        raise InvalidInput(
            "project roles apply to team and restricted projects of teams only", field="role"
        )


def _requested_role(
    session: Session, org: Organization, standing: _Standing, value: str
) -> tuple[str | None, str | None]:
    """The (role, custom_role_id) to store for ``value``: ``(None, None)`` when it equals the
    team role (the member tracks it again). Raises ``Conflict`` (``project_role.viewer_fixed``),
    ``InvalidInput`` (an unknown role)."""
    _raise_conflict(policy.check_project_role_assignable(standing.facts), field="role")
    predefined = parse_predefined_team_role(value)
    if predefined in PROJECT_ROLES:
        role, custom_id = predefined.value, None
    else:
        custom = session.scalar(
            select(CustomRole).where(CustomRole.org_id == org.id, CustomRole.name == value)
        )
        if custom is None:
            raise InvalidInput(
                f"no role {value!r}: use admin, member, viewer or a custom role's exact name",
                field="role",
            )
        role, custom_id = "custom", custom.id
    if policy.override_after_change(standing.key, _role_key(role, custom_id)) is None:
        return None, None
    return role, custom_id


def add_project_member(
    session: Session,
    *,
    actor: Principal,
    org: Organization,
    entity: str,
    name: str,
    principal: str,
    role: str | None = None,
) -> ProjectMemberView:
    """Invite a team member (or one of the team's or org's service accounts) to a project,
    optionally with a project role.

    Raises ``NotFound``, ``PermissionDenied``, ``InvalidInput`` (outside the team, role scope),
    ``Conflict`` (already a member; ``project_role.viewer_fixed``).
    """
    project = require_project(session, org, entity, name)
    authz.require(session, actor, Permission.PROJECT_MANAGE_ACCESS, project)
    team = _team_of(session, project)
    member = resolve_principal(session, org, principal)
    standing = _require_standing(session, team, member)
    row = _project_row(session, project, member)
    if row is not None and row.invited:
        raise Conflict(f"{_name_of(member)} is already a member of this project", field="principal")
    override: tuple[str | None, str | None] | None = None
    if role is not None:
        _check_role_scope(project, team)
        override = _requested_role(session, org, standing, role)
    row = _invite(session, project, member, row)
    if override is not None:
        row.role, row.custom_role_id = override
    view = _member_view(session, member, standing, row)
    after = {"member": view.name, "invited": True, "project_role": view.project_role}
    _record(session, actor, org, "project.member.add", view_project(session, project), after=after)
    session.flush()
    return view


def set_project_member_role(
    session: Session,
    *,
    actor: Principal,
    org: Organization,
    entity: str,
    name: str,
    ref: str,
    role: str | None,
) -> ProjectMemberView:
    """Set a member's project role (``None``: track the team role again). A role equal to the
    team role is stored as tracking.

    Raises ``NotFound``, ``PermissionDenied``, ``InvalidInput`` (open/public project, unknown
    role), ``Conflict`` (``project_role.viewer_fixed``).
    """
    project = require_project(session, org, entity, name)
    authz.require(session, actor, Permission.PROJECT_MANAGE_ACCESS, project)
    team = _team_of(session, project)
    _check_role_scope(project, team)
    member = resolve_principal(session, org, ref, field="ref")
    standing = _require_standing(session, team, member)
    row = _project_row(session, project, member)
    if project.visibility == Visibility.RESTRICTED and (row is None or not row.invited):
        raise NotFound(f"{_name_of(member)} is not a member of this restricted project")
    new_role, new_custom = (
        (None, None) if role is None else _requested_role(session, org, standing, role)
    )
    before = _member_view(session, member, standing, row).project_role
    if row is None and new_role is not None:
        row = _new_row(project, member, invited=False)
        session.add(row)
    if row is not None:
        row.role, row.custom_role_id = new_role, new_custom
        if new_role is None and not row.invited:
            session.delete(row)  # nothing left to remember: the member tracks its team role
            row = None
    view = _member_view(session, member, standing, row)
    _record(
        session,
        actor,
        org,
        "project.member.role",
        view_project(session, project),
        before={"member": view.name, "project_role": before},
        after={
            "member": view.name,
            "project_role": view.project_role,
            "override": view.is_override,
        },
    )
    session.flush()
    return view


def remove_project_member(
    session: Session, *, actor: Principal, org: Organization, entity: str, name: str, ref: str
) -> None:
    """Remove a principal's project membership, forgetting its override (re-adding starts from
    the team role). Raises ``NotFound``, ``PermissionDenied``."""
    project = require_project(session, org, entity, name)
    authz.require(session, actor, Permission.PROJECT_MANAGE_ACCESS, project)
    member = resolve_principal(session, org, ref, field="ref")
    row = _project_row(session, project, member)
    if row is None:
        raise NotFound(f"{_name_of(member)} has no membership in this project", field="ref")
    before = {
        "member": _name_of(member),
        "invited": row.invited,
        "project_role": _role_name(session, row.role, row.custom_role_id),
    }
    _record(
        session, actor, org, "project.member.remove", view_project(session, project), before=before
    )
    session.delete(row)
    session.flush()


def join_project(
    session: Session, *, actor: Principal, org: Organization, entity: str, name: str
) -> ProjectMemberView:
    """A team admin joins a restricted project (``project:join_restricted``).

    Raises ``NotFound``, ``PermissionDenied``, ``InvalidInput`` (not restricted), ``Conflict``
    (already a member).
    """
    project = require_project(session, org, entity, name)
    authz.require(session, actor, Permission.PROJECT_JOIN_RESTRICTED, project)
    if project.visibility != Visibility.RESTRICTED:
        raise InvalidInput("only restricted projects are joined; this one is open to its team")
    member = _actor_row(session, actor)
    if member is None:
        raise InvalidInput("only users and service accounts join projects")
    row = _project_row(session, project, member)
    if row is not None and row.invited:
        raise Conflict(f"{_name_of(member)} is already a member of this project")
    row = _invite(session, project, member, row)
    view = _member_view(
        session, member, _standing(session, _team_of(session, project), member), row
    )
    after = {"member": view.name, "invited": True}
    _record(session, actor, org, "project.member.join", view_project(session, project), after=after)
    session.flush()
    return view
