"""Custom roles: create, read, replace (PUT), add/remove permissions, delete with fallback.

Surface-neutral: the REST routes use it now, SCIM ``/Roles`` later. Also resolves the role
names that team and project memberships are given (``resolve_assignable_role``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from rolecall import authz
from rolecall.audit.service import record
from rolecall.authz import policy
from rolecall.authz.permissions import ORG_PERMISSIONS, Permission, parse_permission
from rolecall.authz.roles import INHERITABLE, PREDEFINED, TeamRole, parse_predefined_team_role
from rolecall.db.base import utcnow
from rolecall.errors import Conflict, InvalidInput, NotFound, some_of
from rolecall.identity.principal import Principal
from rolecall.orgs.models import Organization
from rolecall.projects.models import Project, ProjectMembership
from rolecall.roles.models import CustomRole
from rolecall.teams import writes
from rolecall.teams.models import TeamMembership

#: The marker stored in ``role`` columns when ``custom_role_id`` names a custom role.
CUSTOM = "custom"
NAME_MAX = 128


class AssignedRole(NamedTuple):
    """A role as stored on a membership: predefined name, or ``custom`` plus the role's id."""

    role: str
    custom_role_id: str | None
    #: What listings show: the predefined name or the custom role's name.
    name: str

    @property
    def key(self) -> str:
        """What ``policy.override_after_change`` compares: the custom role id or the name."""
        return self.custom_role_id or self.role


def membership_role_key(role: str | None, custom_role_id: str | None) -> str | None:
    """The comparison key of a stored (role, custom_role_id) pair; ``None`` when unset."""
    if role is None:
        return None
    return custom_role_id or role


# --- lookups ----------------------------------------------------------------------------------


def get_role(session: Session, *, org: Organization, ref: str) -> CustomRole | None:
    """A custom role of ``org`` by exact (case-sensitive) name, else by id."""
    by_name = session.scalar(
        select(CustomRole).where(CustomRole.org_id == org.id, CustomRole.name == ref)
    )
    if by_name is not None:
        return by_name
    return session.scalar(
        select(CustomRole).where(CustomRole.org_id == org.id, CustomRole.id == ref)
    )


def require_role(session: Session, *, org: Organization, ref: str) -> CustomRole:
    """Like ``get_role``. Raises ``NotFound``."""
    role = get_role(session, org=org, ref=ref)
    if role is None:
        raise NotFound(f"no custom role {ref!r}", field="role")
    return role


def resolve_assignable_role(
    session: Session, *, org: Organization, value: str, field: str = "role"
) -> AssignedRole:
    """The role a user may be given in a team or project from what a client wrote.

    Predefined names are case-insensitive; custom role names are exact (then ids are tried).
    Raises ``InvalidInput`` for an unknown role and for ``service`` (service accounts only).
    """
    predefined = parse_predefined_team_role(value)
    if predefined is TeamRole.SERVICE:
        raise InvalidInput("the service role is only for service accounts", field=field)
    if predefined is not None:
        return AssignedRole(predefined.value, None, predefined.value)
    custom = get_role(session, org=org, ref=value)
    if custom is None:
        raise InvalidInput(
            f"unknown role {value!r}: use admin, member, viewer or a custom role's exact name",
            field=field,
        )
    return AssignedRole(CUSTOM, custom.id, custom.name)


def reconcile_project_roles(
    session: Session, *, project_rows: Iterable[ProjectMembership], team_role: AssignedRole
) -> int:
    """Bring a member's project-role overrides along after its team role changed.

    Overrides equal to the new team role return to tracking (``override_after_change``).
    A new team role of viewer clears them all: a view-only member cannot have a project role
    (ACCESS.md), so they could never apply. A row kept only for its override (not an invitation
    to a restricted project) is removed. Returns how many returned to tracking.
    """
    returned = 0
    for row in project_rows:
        override = membership_role_key(row.role, row.custom_role_id)
        if override is None:
            continue
        if team_role.role == TeamRole.VIEWER.value or (
            policy.override_after_change(team_role.key, override) is None
        ):
            if row.invited:
                row.role, row.custom_role_id = None, None
            else:
                # A row that only held the override has nothing left to say.
                session.delete(row)
            returned += 1
    return returned


# --- validation -------------------------------------------------------------------------------


def _check_name(name: str) -> str:
    if not name or name != name.strip() or len(name) > NAME_MAX:
        raise InvalidInput(
            "role names are 1-128 characters without leading or trailing spaces", field="name"
        )
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise InvalidInput("role names cannot contain control characters", field="name")
    # A custom role named like a predefined one could never be assigned: predefined names are
    # matched first, case-insensitively.
    if parse_predefined_team_role(name) is not None:
        raise InvalidInput(f"{name!r} is the name of a predefined role", field="name")
    return name


def _check_external_id(value: str | None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 256 or not value.isprintable():
        raise InvalidInput("externalId is at most 256 printable characters", field="external_id")
    return value.strip() or None


def _check_inherited(value: str) -> TeamRole:
    role = parse_predefined_team_role(value)
    if role not in INHERITABLE:
        raise InvalidInput("inherited_from must be member or viewer", field="inherited_from")
    assert role is not None
    return role


def _parse_permissions(values: Iterable[str], field: str) -> set[Permission]:
    """Catalogue permissions from client strings. Raises ``InvalidInput``."""
    parsed: set[Permission] = set()
    unknown: list[str] = []
    for value in values:
        permission = parse_permission(value)
        if permission is None:
            unknown.append(value)
        else:
            parsed.add(permission)
    if unknown:
        raise InvalidInput(f"unknown permissions: {some_of(unknown)}", field=field)
    org_level = sorted(p.value for p in parsed if p in ORG_PERMISSIONS)
    if org_level:
        # Custom roles are team and project roles; org operations belong to org admins only.
        raise InvalidInput(
            f"org permissions cannot be given to a custom role: {', '.join(org_level)}",
            field=field,
        )
    return parsed


def _ensure_name_free(session: Session, org: Organization, name: str, role_id: str | None) -> None:
    existing = session.scalar(
        select(CustomRole.id).where(CustomRole.org_id == org.id, CustomRole.name == name)
    )
    if existing is not None and existing != role_id:
        raise Conflict(f"a custom role named {name!r} already exists", field="name")


def _snapshot(role: CustomRole) -> dict[str, object]:
    return {
        "name": role.name,
        "description": role.description,
        "inherited_from": role.inherited_from,
        "permissions": list(role.permissions),
        "external_id": role.external_id,
    }


def _audit(
    session: Session,
    actor: Principal,
    action: str,
    role: CustomRole,
    before: dict[str, object] | None,
    after: dict[str, object] | None,
    detail: str | None = None,
) -> None:
    record(
        session,
        actor=actor,
        action=action,
        object_type="custom_role",
        object_id=role.id,
        object_name=role.name,
        org_id=role.org_id,
        before=before,
        after=after,
        detail=detail,
    )


# --- use cases --------------------------------------------------------------------------------


def list_roles(session: Session, *, actor: Principal, org: Organization) -> list[CustomRole]:
    """The org's custom roles by name. Raises ``PermissionDenied`` (needs ``org:read``)."""
    authz.require(session, actor, Permission.ORG_READ, org)
    query = select(CustomRole).where(CustomRole.org_id == org.id)
    return list(session.scalars(query.order_by(CustomRole.name, CustomRole.id)))


def read_role(session: Session, *, actor: Principal, org: Organization, ref: str) -> CustomRole:
    """One custom role by exact name or id. Raises ``PermissionDenied``, ``NotFound``."""
    authz.require(session, actor, Permission.ORG_READ, org)
    return require_role(session, org=org, ref=ref)


def create_role(
    session: Session,
    *,
    actor: Principal,
    org: Organization,
    name: str,
    inherited_from: str,
    permissions: Iterable[str] = (),
    description: str = "",
    external_id: str | None = None,
) -> CustomRole:
    """Create a custom role: an inherited predefined role plus extra permissions.

    Extras that the inherited role already grants are not stored as custom permissions.
    Raises ``PermissionDenied``, ``InvalidInput``, ``Conflict`` (name taken, case-sensitively).
    """
    authz.require(session, actor, Permission.ORG_MANAGE_ROLES, org)
    _check_name(name)
    inherited = _check_inherited(inherited_from)
    extras = _parse_permissions(permissions, "permissions") - PREDEFINED[inherited]
    _ensure_name_free(session, org, name, None)
    role = CustomRole(
        org_id=org.id,
        name=name,
        description=description,
        inherited_from=inherited.value,
        permissions=sorted(p.value for p in extras),
        external_id=_check_external_id(external_id),
    )
    session.add(role)
    session.flush()
    _audit(session, actor, "role.create", role, None, _snapshot(role))
    session.flush()
    return role


def replace_role(
    session: Session,
    *,
    actor: Principal,
    org: Organization,
    ref: str,
    name: str,
    inherited_from: str,
    description: str = "",
    external_id: str | bool | None = False,
) -> CustomRole:
    """PUT: set name, description and inherited role; the custom permissions are kept.
    ``external_id`` (an identity provider's id) is set unless ``False``.

    Raises ``PermissionDenied``, ``NotFound``, ``InvalidInput``, ``Conflict``.
    """
    authz.require(session, actor, Permission.ORG_MANAGE_ROLES, org)
    role = require_role(session, org=org, ref=ref)
    _check_name(name)
    inherited = _check_inherited(inherited_from)
    _ensure_name_free(session, org, name, role.id)
    before = _snapshot(role)
    # Seeds: "This operation doesn't affect any of the existing, non-inherited custom
    # permissions", so the stored extras stay exactly as they were.
    if name != role.name:
        holders = select(TeamMembership.user_id).where(TeamMembership.custom_role_id == role.id)
        _holders_changed(session, org, session.scalars(holders))
    role.name, role.description, role.inherited_from = name, description, inherited.value
    if external_id is not False:
        role.external_id = _check_external_id(external_id)  # type: ignore[arg-type]
    session.flush()
    _audit(session, actor, "role.update", role, before, _snapshot(role))
    session.flush()
    return role


def _hold(session: Session, role: CustomRole) -> None:
    """Lock ``role``'s row until the transaction ends and read it again, before a change built
    from what it holds (its permission list is written back whole): two PATCHes at once
    (PostgreSQL) each kept only their own permissions. SQLite's one writer needs nothing."""
    if session.get_bind().dialect.name != "sqlite":
        session.refresh(role, with_for_update={"key_share": True})


def change_role_permissions(
    session: Session,
    *,
    actor: Principal,
    org: Organization,
    ref: str,
    add: Iterable[str] = (),
    remove: Iterable[str] = (),
) -> CustomRole:
    """PATCH: add and remove custom permissions.

    Adding an inherited permission stores nothing; removing one is refused (change the
    inherited role instead); removing one the role does not have is a no-op.
    Raises ``PermissionDenied``, ``NotFound``, ``InvalidInput``.
    """
    authz.require(session, actor, Permission.ORG_MANAGE_ROLES, org)
    role = require_role(session, org=org, ref=ref)
    _hold(session, role)
    to_add = _parse_permissions(add, "add")
    to_remove = _parse_permissions(remove, "remove")
    both = sorted(p.value for p in to_add & to_remove)
    if both:
        raise InvalidInput(f"both added and removed: {', '.join(both)}", field="remove")
    inherited = PREDEFINED[TeamRole(role.inherited_from)]
    stored = {Permission(p) for p in role.permissions}
    locked = sorted(p.value for p in to_remove & (inherited - stored))
    if locked:
        raise InvalidInput(
            f"inherited from {role.inherited_from}, cannot be removed: {', '.join(locked)}",
            field="remove",
        )
    updated = (stored | (to_add - inherited)) - to_remove
    if updated == stored:
        return role
    before = _snapshot(role)
    role.permissions = sorted(p.value for p in updated)
    session.flush()
    _audit(session, actor, "role.update_permissions", role, before, _snapshot(role))
    session.flush()
    return role


def delete_role(session: Session, *, actor: Principal, org: Organization, ref: str) -> None:
    """Delete a custom role; everyone who held it gets the role it inherited from.

    Team memberships get the inherited role. Project-role overrides get it too, then return to
    tracking when that equals the member's team role (``policy.override_after_change``), or
    when the team role is viewer (a view-only member cannot have a project role).
    Raises ``PermissionDenied``, ``NotFound``.
    """
    authz.require(session, actor, Permission.ORG_MANAGE_ROLES, org)
    role = require_role(session, org=org, ref=ref)
    inherited = role.inherited_from
    holding = select(TeamMembership.team_id).where(TeamMembership.custom_role_id == role.id)
    # ``teams.writes``' lock order: the teams whose members change before those members' rows.
    writes.hold(session, session.scalars(holding.distinct()))
    team_rows = list(
        session.scalars(select(TeamMembership).where(TeamMembership.custom_role_id == role.id))
    )
    for row in team_rows:
        row.role, row.custom_role_id = inherited, None
    _holders_changed(session, org, (row.user_id for row in team_rows))
    session.flush()
    project_rows = session.execute(
        select(ProjectMembership, Project.team_id)
        .join(Project, Project.id == ProjectMembership.project_id)
        .where(ProjectMembership.custom_role_id == role.id)
    ).all()
    for project_row, team_id in project_rows:
        team_key = _team_role_key(session, team_id, project_row)
        if team_key == TeamRole.VIEWER.value:
            project_row.role = None
        else:
            project_row.role = policy.override_after_change(team_key, inherited)
        project_row.custom_role_id = None
    session.flush()
    detail = (
        f"{len(team_rows)} team and {len(project_rows)} project memberships "
        f"fell back to {inherited}"
    )
    after = {"team_memberships": len(team_rows), "project_memberships": len(project_rows)}
    _audit(session, actor, "role.delete", role, _snapshot(role), after, detail)
    session.delete(role)
    session.flush()


def _holders_changed(session: Session, org: Organization, user_ids: Iterable[str | None]) -> None:
    """The role's holders show another role's name in their SCIM ``teamRoles``: their
    ``meta.lastModified`` moves, so a provider's delta sync sees them (``teams.writes``).
    Service accounts (no user id) have no SCIM resource."""
    users = [user_id for user_id in user_ids if user_id is not None]
    writes.mark_members_changed(session, org.id, users, utcnow())


def _team_role_key(session: Session, team_id: str, project_row: ProjectMembership) -> str | None:
    """The comparison key of the project member's role in the project's team, if any."""
    query = select(TeamMembership).where(TeamMembership.team_id == team_id)
    if project_row.user_id is not None:
        query = query.where(TeamMembership.user_id == project_row.user_id)
    else:
        query = query.where(TeamMembership.service_account_id == project_row.service_account_id)
    team_row = session.scalar(query)
    if team_row is None:
        return None
    return membership_role_key(team_row.role, team_row.custom_role_id)
