"""Teams and team membership.

Surface-neutral: the REST routes use it now, SCIM Groups later. Every use case asks the policy
first (``authz.require``), applies the ACCESS.md rules, records an audit event in the same
transaction and flushes.
"""

from __future__ import annotations

import enum
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, delete, func, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from rolecall import authz
from rolecall.audit.service import EventFields, record, record_many
from rolecall.authz.permissions import Permission
from rolecall.authz.roles import Visibility
from rolecall.db.base import utcnow
from rolecall.db.rows import insert_rows
from rolecall.errors import Conflict, InvalidInput, NotFound
from rolecall.identity.principal import Principal
from rolecall.orgs.models import Organization
from rolecall.projects.models import Project, ProjectMembership
from rolecall.roles.models import CustomRole
from rolecall.roles.service import AssignedRole, reconcile_project_roles, resolve_assignable_role
from rolecall.service_accounts.models import ServiceAccount
from rolecall.teams import writes
from rolecall.teams.models import Team, TeamMembership
from rolecall.users.models import User
from rolecall.users.naming import check_entity_name
from rolecall.users.queries import find_user
from rolecall.users.service import scim_user_name_column

TEAM = "team"
STORAGE_TYPE_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,32}$")


@dataclass(frozen=True, slots=True)
class Member:
    """A team member as listings show it: a user or a team-scoped service account."""

    kind: str  # "user" | "service_account"
    id: str
    name: str
    email: str | None
    #: The predefined role's name, or the custom role's name.
    role: str
    custom_role_id: str | None
    joined_at: datetime


# --- lookups ----------------------------------------------------------------------------------


def get_team(session: Session, *, org: Organization, ref: str) -> Team | None:
    """A team (not a personal entity) of ``org`` by name (case-insensitive) or id."""
    return session.scalar(
        select(Team).where(
            Team.org_id == org.id,
            Team.kind == TEAM,
            or_(Team.name_key == ref.strip().lower(), Team.id == ref),
        )
    )


def team_ids_named(session: Session, *, org: Organization, refs: Iterable[str]) -> list[str]:
    """The ids of ``org``'s teams that ``refs`` name, each read as ``get_team`` reads one."""
    refs = [ref for ref in set(refs) if "\x00" not in ref]
    if not refs:
        return []
    keys = {ref.strip().lower() for ref in refs}
    query = select(Team.id).where(
        Team.org_id == org.id, Team.kind == TEAM, or_(Team.name_key.in_(keys), Team.id.in_(refs))
    )
    return list(session.scalars(query))


def require_team(session: Session, *, org: Organization, ref: str) -> Team:
    """Like ``get_team``. Raises ``NotFound``."""
    team = get_team(session, org=org, ref=ref)
    if team is None:
        raise NotFound(f"no team {ref!r}", field="team")
    return team


def _resolve(session: Session, org: Organization, team: Team | str) -> Team:
    """A team given as a row or as a reference (name or id). Raises ``NotFound``."""
    return team if isinstance(team, Team) else require_team(session, org=org, ref=team)


def _active_org_user(
    session: Session, org: Organization, ref: str, field: str, *, deactivated_ok: bool = False
) -> User:
    """The user ``ref`` names, about to join a team, who must be an active org member (or any
    member, with ``deactivated_ok``); it stays one until the transaction ends
    (``writes.keep_in_org``).

    Raises ``NotFound`` (no such user in the org), ``InvalidInput`` (a deactivated member).
    """
    user = find_user(session, ref)
    active = writes.keep_in_org(session, org.id, [user.id]).get(user.id) if user else None
    if user is None or active is None:
        # A user of another organization only is no user here: naming it tells nothing of it.
        raise NotFound(f"no user {ref!r} in this organization", field=field)
    if not (active or deactivated_ok):
        raise InvalidInput(
            f"{user.username} is not an active member of the organization", field=field
        )
    return user


def _ensure_entity_name_free(session: Session, name: str) -> None:
    """Team names and usernames share one namespace, case-insensitively. Raises ``Conflict``."""
    key = name.lower()
    if session.scalar(select(Team.id).where(Team.name_key == key)) is not None:
        raise Conflict(f"the name {name!r} is already taken by a team or user", field="name")
    if session.scalar(select(User.id).where(User.username_key == key)) is not None:
        raise Conflict(f"the name {name!r} is already taken by a user", field="name")


def _check_storage_type(value: str) -> str:
    if not STORAGE_TYPE_RE.fullmatch(value):
        raise InvalidInput(
            "storage_type uses letters, digits, '_', '.', ':' and '-' (1-32 characters)",
            field="storage_type",
        )
    return value


class Unchanged(enum.Enum):
    """Marks an argument that was not given where ``None`` is a value (it clears)."""

    UNCHANGED = enum.auto()


UNCHANGED = Unchanged.UNCHANGED
MAX_DISPLAY_NAME = 256


def display_name_of(team: Team) -> str:
    """A team's SCIM ``displayName``: its display name, else its name."""
    return team.display_name or team.name


def display_name_matches(key: str) -> ColumnElement[bool]:
    """``displayName`` equals ``key`` (lower-cased): the expression
    ``ix_teams_org_scim_display_name`` indexes (with the org), so no scan."""
    return func.coalesce(Team.display_name_key, Team.name_key) == key


def name_for_display_name(display_name: str) -> str:
    """A valid team name suggested by a group's display name (``Data Science`` ->
    ``Data-Science``)."""
    candidate = re.sub(r"[^A-Za-z0-9_.-]+", "-", display_name).strip("-.")[:128].rstrip("-.")
    return candidate or "group"


def _set_display_name(team: Team, display_name: str | None) -> None:
    value = _check_text(display_name, "display_name", MAX_DISPLAY_NAME)
    if value is None or value == team.name:
        team.display_name, team.display_name_key = None, None
    else:
        team.display_name, team.display_name_key = value, value.lower()


def _check_text(value: str | None, field: str, limit: int = 256) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be a string", field=field)
    value = value.strip()
    if len(value) > limit or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise InvalidInput(f"{field} is at most {limit} printable characters", field=field)
    return value or None


def _settings(team: Team) -> dict[str, object]:
    return {
        "name": team.name,
        "private_only": team.private_only,
        "domain_matching": team.domain_matching,
        "storage_type": team.storage_type,
        "display_name": team.display_name,
        "external_id": team.external_id,
    }


def _event(action: str, team: Team, **change: Any) -> EventFields:
    """An audit event of ``action`` on ``team``; ``change`` carries before, after and detail."""
    return EventFields(
        action=action,
        object_type="team",
        object_id=team.id,
        object_name=team.name,
        org_id=team.org_id,
        **change,
    )


def _audit(session: Session, actor: Principal, action: str, team: Team, **change: object) -> None:
    """Record ``action`` on ``team``; ``change`` carries before, after and detail."""
    record(session, actor=actor, **_event(action, team, **change))


# --- teams ------------------------------------------------------------------------------------


def list_teams(session: Session, *, actor: Principal, org: Organization) -> list[Team]:
    """The org's teams, oldest first; every org member may list them (``org:read``).

    Raises ``PermissionDenied``.
    """
    authz.require(session, actor, Permission.ORG_READ, org)
    query = select(Team).where(Team.org_id == org.id, Team.kind == TEAM)
    return list(session.scalars(query.order_by(Team.created_at, Team.id)))


def search_teams(
    session: Session,
    *,
    actor: Principal,
    org: Organization,
    where: ColumnElement[bool] | None = None,
    order: Sequence[ColumnElement[Any]] = (),
    offset: int = 0,
    limit: int = 100,
) -> tuple[list[Team], int]:
    """A page of the org's teams matching ``where`` (such as a translated SCIM filter), by
    ``order`` (a translated SCIM sort) then by id, a unique order, with the total matched;
    ``limit`` 0 only counts.

    Raises ``PermissionDenied`` (needs ``org:read``).
    """
    authz.require(session, actor, Permission.ORG_READ, org)
    query = select(Team).where(Team.org_id == org.id, Team.kind == TEAM)
    if where is not None:
        query = query.where(where)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    if limit <= 0:
        return [], total
    page = session.scalars(query.order_by(*order, Team.id).offset(offset).limit(limit))
    return list(page), total


class UserMember(NamedTuple):
    """A team's user as a group lists it: its id and login name (SCIM ``userName``)."""

    id: str
    user_name: str


def user_members(session: Session, *, team_ids: list[str]) -> dict[str, list[UserMember]]:
    """The users (not service accounts) of each team, in the order they joined; one query of
    plain columns (a company's group has tens of thousands of members: no objects are made).
    No authorization: for callers that have already read these teams."""
    found: dict[str, list[UserMember]] = {team_id: [] for team_id in team_ids}
    if not team_ids:
        return found
    query = (
        select(TeamMembership.team_id, User.id, scim_user_name_column())
        .join(User, User.id == TeamMembership.user_id)
        .where(TeamMembership.team_id.in_(team_ids))
        .order_by(TeamMembership.created_at, TeamMembership.id)
    )
    for team_id, user_id, user_name in session.execute(query):
        found[team_id].append(UserMember(user_id, user_name))
    return found


def user_member_ids(session: Session, *, team: Team) -> list[str]:
    """The ids of ``team``'s users (not service accounts), in the order they joined; one
    indexed query, no rows loaded as objects. No authorization."""
    query = (
        select(TeamMembership.user_id)
        .where(TeamMembership.team_id == team.id)
        .order_by(TeamMembership.created_at, TeamMembership.id)
    )
    return [user_id for user_id in session.scalars(query) if user_id is not None]


def member_user_ids(session: Session, *, team: Team, user_ids: Iterable[str]) -> set[str]:
    """Which of ``user_ids`` are members of ``team`` (one indexed query). No authorization."""
    wanted = list(user_ids)
    if not wanted:
        return set()
    query = select(TeamMembership.user_id).where(
        TeamMembership.team_id == team.id, TeamMembership.user_id.in_(wanted)
    )
    return {user_id for user_id in session.scalars(query) if user_id is not None}


def read_team(session: Session, *, actor: Principal, org: Organization, ref: str) -> Team:
    """A team's details (``team:read``: its members and org admins).

    Raises ``NotFound``, ``PermissionDenied``.
    """
    team = require_team(session, org=org, ref=ref)
    authz.require(session, actor, Permission.TEAM_READ, team)
    return team


def create_team(
    session: Session,
    *,
    actor: Principal,
    org: Organization,
    name: str,
    admin: str | None = None,
    private_only: bool = False,
    domain_matching: bool = False,
    storage_type: str = "default",
    display_name: str | None = None,
    external_id: str | None = None,
) -> Team:
    """Create a team, optionally with a first admin (an active org member).

    ``display_name`` (SCIM ``displayName``) is kept when it differs from ``name``;
    ``external_id`` is the identity provider's id for the group.

    Raises ``PermissionDenied`` (needs ``org:manage_teams``), ``InvalidInput``, ``Conflict``
    (name taken by a team or user), ``NotFound`` (unknown admin).
    """
    authz.require(session, actor, Permission.ORG_MANAGE_TEAMS, org)
    check_entity_name(name)
    _check_storage_type(storage_type)
    _ensure_entity_name_free(session, name)
    admin_user = _active_org_user(session, org, admin, "admin") if admin is not None else None
    team = Team(
        org_id=org.id,
        name=name,
        name_key=name.lower(),
        kind=TEAM,
        private_only=private_only,
        domain_matching=domain_matching,
        storage_type=storage_type,
        external_id=_check_text(external_id, "external_id"),
    )
    _set_display_name(team, display_name)
    session.add(team)
    session.flush()
    if admin_user is not None and admin_user.id == actor.user_id:
        # Naming itself as the first admin is adding itself to the team: refused under
        # GORILLA_DISABLE_ADMIN_TEAM_ACCESS like ``add_member`` (the request rolls back).
        authz.require(session, actor, Permission.TEAM_MANAGE_MEMBERS, team, acting_on_self=True)
    after = _settings(team) | {"admin": admin_user.username if admin_user else None}
    _audit(session, actor, "team.create", team, after=after)
    if admin_user is not None:
        _add_user(session, actor, team, admin_user, AssignedRole("admin", None, "admin"))
    session.flush()
    return team


def update_team(
    session: Session,
    *,
    actor: Principal,
    org: Organization,
    team: Team | str,
    name: str | None = None,
    private_only: bool | None = None,
    domain_matching: bool | None = None,
    storage_type: str | None = None,
    display_name: str | None = None,
    external_id: str | Unchanged | None = UNCHANGED,
) -> Team:
    """Rename a team or change its settings (``None``: unchanged; ``external_id``: ``UNCHANGED``).

    A ``display_name`` without a ``name`` keeps the name and changes only the display name.

    Raises ``PermissionDenied`` (needs ``team:update``), ``InvalidInput``, ``Conflict``.
    """
    team = _resolve(session, org, team)
    authz.require(session, actor, Permission.TEAM_UPDATE, team)
    before = _settings(team)
    # Validate everything before changing anything, so a refusal leaves the row untouched.
    if storage_type is not None:
        _check_storage_type(storage_type)
    if name is not None and name != team.name:
        check_entity_name(name)
        if name.lower() != team.name_key:  # a change of case keeps the name
            _ensure_entity_name_free(session, name)
        team.name, team.name_key = name, name.lower()
    if display_name is not None or name is not None:
        _set_display_name(team, display_name if display_name is not None else team.display_name)
    if not isinstance(external_id, Unchanged):
        team.external_id = _check_text(external_id, "external_id")
    if storage_type is not None:
        team.storage_type = storage_type
    if private_only is not None:
        team.private_only = private_only
    if domain_matching is not None:
        team.domain_matching = domain_matching
    after = _settings(team)
    changed = [key for key in after if after[key] != before[key]]
    if changed:
        session.flush()
        _audit(
            session,
            actor,
            "team.update",
            team,
            before={key: before[key] for key in changed},
            after={key: after[key] for key in changed},
        )
        session.flush()
    return team


def delete_team(session: Session, *, actor: Principal, org: Organization, team: Team | str) -> None:
    """Delete a team with its projects (and their runs) and memberships.

    The org's default-team reference clears. Its team-scoped service accounts go with it.
    Raises ``PermissionDenied`` (needs ``org:manage_teams``), ``Conflict`` (it is the default
    team of an org-scoped service account: give the account another default team first).
    """
    authz.require(session, actor, Permission.ORG_MANAGE_TEAMS, org)
    team = _resolve(session, org, team)
    writes.hold(session, [team.id])
    dependants = session.scalars(
        select(ServiceAccount.name).where(
            ServiceAccount.team_id == team.id,
            ServiceAccount.scope == "org",
            ServiceAccount.deleted_at.is_(None),
        )
    ).all()
    if dependants:
        raise Conflict(
            f"team {team.name!r} is the default team of org-scoped service accounts: "
            f"{', '.join(sorted(dependants))}",
            field="team",
        )
    projects = session.scalar(select(func.count(Project.id)).where(Project.team_id == team.id))
    members = session.scalar(
        select(func.count(TeamMembership.id)).where(TeamMembership.team_id == team.id)
    )
    if org.default_team_id == team.id:
        org.default_team_id = None
    _audit(
        session,
        actor,
        "team.delete",
        team,
        before=_settings(team) | {"projects": projects, "members": members},
    )
    session.flush()
    # Projects, runs, memberships and team-scoped service accounts follow by ON DELETE CASCADE.
    session.delete(team)
    session.flush()


# --- members ----------------------------------------------------------------------------------


def list_members(
    session: Session, *, actor: Principal, org: Organization, team: Team | str
) -> list[Member]:
    """Users and (not deleted) service accounts of a team, in the order they joined.

    Raises ``PermissionDenied`` (needs ``team:read``).
    """
    members, _ = page_members(session, actor=actor, org=org, team=team)
    return members


def page_members(
    session: Session,
    *,
    actor: Principal,
    org: Organization,
    team: Team | str,
    offset: int = 0,
    limit: int | None = None,
) -> tuple[list[Member], int]:
    """A page of ``list_members`` (``limit`` None: to the end) and how many members there are.

    Raises ``PermissionDenied`` (needs ``team:read``).
    """
    team = _resolve(session, org, team)
    authz.require(session, actor, Permission.TEAM_READ, team)
    query = _members_query(team).where(
        or_(TeamMembership.service_account_id.is_(None), ServiceAccount.deleted_at.is_(None))
    )
    ordered = query.order_by(TeamMembership.created_at, TeamMembership.id).offset(offset)
    rows = session.execute(ordered.limit(limit) if limit is not None else ordered).all()
    members = [_member(row, user, account, custom) for row, user, account, custom in rows]
    if offset == 0 and (limit is None or len(members) < limit):
        return members, len(members)  # the whole list: nothing more to count
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    return members, total


def _members_query(team: Team):  # type: ignore[no-untyped-def]
    """Memberships of ``team`` with the user or account and the custom role's name."""
    return (
        select(TeamMembership, User, ServiceAccount, CustomRole.name)
        .outerjoin(User, User.id == TeamMembership.user_id)
        .outerjoin(ServiceAccount, ServiceAccount.id == TeamMembership.service_account_id)
        .outerjoin(CustomRole, CustomRole.id == TeamMembership.custom_role_id)
        .where(TeamMembership.team_id == team.id)
    )


def _member(
    row: TeamMembership, user: User | None, account: ServiceAccount | None, custom: str | None
) -> Member:
    role = custom if row.custom_role_id is not None and custom is not None else row.role
    if user is not None:
        kind, id_, name, email = "user", user.id, user.username, user.email
    else:
        assert account is not None
        kind, id_, name, email = "service_account", account.id, account.name, None
    return Member(kind, id_, name, email, role, row.custom_role_id, row.created_at)


def _find_membership(session: Session, team: Team, ref: str) -> tuple[TeamMembership, Member]:
    """A member by username, email or id; else a service account of the team by name or id,
    its membership held until the transaction ends (PostgreSQL: ``FOR UPDATE``; on SQLite a
    writer holds the database already). So of two requests changing or removing the same
    membership at once the second waits, then finds it as the first left it: gone (404) rather
    than removed twice, each time audited.

    Raises ``NotFound``.
    """
    user = find_user(session, ref)
    query = _members_query(team)
    if user is not None:
        query = query.where(TeamMembership.user_id == user.id)
    else:
        query = query.where(
            ServiceAccount.deleted_at.is_(None),
            or_(ServiceAccount.name_key == ref.strip().lower(), ServiceAccount.id == ref),
        )
    found = session.execute(query.with_for_update(of=TeamMembership)).first()
    if found is None:
        raise NotFound(f"{ref!r} is not a member of team {team.name!r}", field="member")
    row, found_user, account, custom = found
    return row, _member(row, found_user, account, custom)


def add_member(
    session: Session,
    *,
    actor: Principal,
    org: Organization,
    team: Team | str,
    user: str,
    role: str = "member",
    deactivated_ok: bool = False,
) -> Member:
    """Add an active org member to a team with a predefined or custom role.

    ``deactivated_ok``: a deactivated member may be added too (SCIM: an identity provider
    keeps a suspended user's groups; it holds no permission while deactivated).

    An org admin adding itself is refused under GORILLA_DISABLE_ADMIN_TEAM_ACCESS.
    Raises ``PermissionDenied`` (needs ``team:manage_members``), ``NotFound`` (unknown user),
    ``InvalidInput`` (not an active org member, unknown or ``service`` role), ``Conflict``
    (already a member).
    """
    team = _resolve(session, org, team)
    writes.hold(session, [team.id])
    authz.require(session, actor, Permission.TEAM_MANAGE_MEMBERS, team)
    target = _active_org_user(session, org, user, "user", deactivated_ok=deactivated_ok)
    if target.id == actor.user_id:
        authz.require(session, actor, Permission.TEAM_MANAGE_MEMBERS, team, acting_on_self=True)
    assigned = resolve_assignable_role(session, org=org, value=role)
    row = _add_user(session, actor, team, target, assigned)
    session.flush()
    return _member(row, target, None, assigned.name)


def _add_user(
    session: Session, actor: Principal, team: Team, user: User, assigned: AssignedRole
) -> TeamMembership:
    exists = session.scalar(
        select(TeamMembership.id).where(
            TeamMembership.team_id == team.id, TeamMembership.user_id == user.id
        )
    )
    if exists is not None:
        raise Conflict(f"{user.username} is already a member of team {team.name!r}", field="user")
    row = TeamMembership(
        team_id=team.id, user_id=user.id, role=assigned.role, custom_role_id=assigned.custom_role_id
    )
    session.add(row)
    session.flush()
    _touch(session, team, [user.id])
    _audit(
        session,
        actor,
        "team.member.add",
        team,
        after={"user": user.username, "role": assigned.name},
    )
    return row


def _touch(
    session: Session, team: Team, user_ids: Iterable[str], *, group_too: bool = True
) -> None:
    """Mark the users (and the team) changed now: a team's members are part of its SCIM group,
    a user's teams and team roles part of its SCIM user, so each one's ``meta.lastModified``
    moves (RFC 7643 §3.1), and a provider's delta sync (``meta.lastModified gt``) sees them.

    Both are stamped as the transaction commits (``teams.writes``); they show the new time at
    once (this request's answer and its version agree with what is stored)."""
    now = utcnow()
    writes.mark_members_changed(session, team.org_id, user_ids, now)
    if group_too:
        if team.updated_at is None or team.updated_at < now:
            set_committed_value(team, "updated_at", now)
        writes.mark_changed(session, team.id, now)


#: Ids named in one statement by ``add_users`` and ``remove_users``, which take the rest in
#: further rounds: SQLite allows 32,766 parameters a statement and PostgreSQL 65,535, and a
#: group replaced or emptied through SCIM names every member it had.
IDS_PER_STATEMENT = 10_000


def _per_statement(ids: list[str]) -> Iterator[list[str]]:
    """``ids`` in runs of ``IDS_PER_STATEMENT``, in order: one statement's worth each."""
    for first in range(0, len(ids), IDS_PER_STATEMENT):
        yield ids[first : first + IDS_PER_STATEMENT]


def add_users(
    session: Session,
    *,
    actor: Principal,
    org: Organization,
    team: Team | str,
    user_ids: Sequence[str],
    role: str = "member",
    deactivated_ok: bool = False,
) -> list[str]:
    """Add many org members, by id, to a team at once: what ``add_member`` checks and records
    (a ``team.member.add`` event each), in a fixed number of statements. A company's group
    gains thousands of members in one SCIM request; one at a time, each paid a policy check,
    four lookups and two inserts (2.4 ms a member, under SQLite's write lock). Users already in
    the team are skipped. Returns the ids added, in the order given.

    Raises ``PermissionDenied``, ``NotFound`` (no user has an id), ``InvalidInput`` (not an
    active org member, unknown or ``service`` role).
    """
    team = _resolve(session, org, team)
    writes.hold(session, [team.id])
    authz.require(session, actor, Permission.TEAM_MANAGE_MEMBERS, team)
    wanted = list(dict.fromkeys(user_ids))
    if actor.user_id in wanted:
        authz.require(session, actor, Permission.TEAM_MANAGE_MEMBERS, team, acting_on_self=True)
    assigned = resolve_assignable_role(session, org=org, value=role)
    added: list[str] = []
    for chunk in _per_statement(wanted):
        added += _add_chunk(session, actor, org, team, chunk, assigned, deactivated_ok)
    return added


def _add_chunk(
    session: Session,
    actor: Principal,
    org: Organization,
    team: Team,
    wanted: list[str],
    assigned: AssignedRole,
    deactivated_ok: bool,
) -> list[str]:
    found = dict(session.execute(select(User.id, User.username).where(User.id.in_(wanted))).all())
    in_org = writes.keep_in_org(session, org.id, wanted)
    for user_id in wanted:
        active = in_org.get(user_id)
        if user_id not in found or active is None:  # another organization's only: none here
            raise NotFound(f"no user {user_id!r} in this organization", field="user")
        username = found[user_id]
        if not (active or deactivated_ok):
            raise InvalidInput(
                f"{username} is not an active member of the organization", field="user"
            )
    present = member_user_ids(session, team=team, user_ids=wanted)
    added = [user_id for user_id in wanted if user_id not in present]
    joined = utcnow()
    rows = [
        {
            "team_id": team.id,
            "user_id": user_id,
            "role": assigned.role,
            "custom_role_id": assigned.custom_role_id,
            # A microsecond apart: members are listed in the order they joined.
            "created_at": joined + timedelta(microseconds=i),
        }
        for i, user_id in enumerate(added)
    ]
    insert_rows(session, TeamMembership, rows)
    if added:  # re-adding members changes nothing, their group's version and time included
        _touch(session, team, added)
    change = {"role": assigned.name}
    events = [_event("team.member.add", team, after={"user": found[u]} | change) for u in added]
    record_many(session, actor=actor, events=events)
    return added


def _user_project_rows(session: Session, team: Team, user_id: str) -> list[ProjectMembership]:
    """The user's project memberships in the team's projects."""
    return list(
        session.scalars(
            select(ProjectMembership)
            .join(Project, Project.id == ProjectMembership.project_id)
            .where(Project.team_id == team.id, ProjectMembership.user_id == user_id)
        )
    )


def change_member_role(
    session: Session,
    *,
    actor: Principal,
    org: Organization,
    team: Team | str,
    member: str,
    role: str,
) -> Member:
    """Change a user's team role and bring its project-role overrides along.

    Overrides that now equal the team role return to tracking, others stay; a new team role
    of viewer clears them all (``roles.service.reconcile_project_roles``).
    Raises ``PermissionDenied``, ``NotFound``, ``InvalidInput`` (unknown role; service
    accounts keep the service role).
    """
    team = _resolve(session, org, team)
    writes.hold(session, [team.id])
    authz.require(session, actor, Permission.TEAM_MANAGE_MEMBERS, team)
    row, current = _find_membership(session, team, member)
    if row.user_id is None:
        raise InvalidInput("a service account's team role is always service", field="role")
    assigned = resolve_assignable_role(session, org=org, value=role)
    if (row.role, row.custom_role_id) == (assigned.role, assigned.custom_role_id):
        return current
    row.role, row.custom_role_id = assigned.role, assigned.custom_role_id
    returned = reconcile_project_roles(
        session, project_rows=_user_project_rows(session, team, row.user_id), team_role=assigned
    )
    _touch(session, team, [row.user_id], group_too=False)  # a group shows no member's role
    session.flush()
    _audit(
        session,
        actor,
        "team.member.update",
        team,
        before={"user": current.name, "role": current.role},
        after={"user": current.name, "role": assigned.name},
        detail=f"{returned} project-role overrides returned to tracking the team role",
    )
    session.flush()
    return replace(current, role=assigned.name, custom_role_id=assigned.custom_role_id)


def remove_member(
    session: Session, *, actor: Principal, org: Organization, team: Team | str, member: str
) -> None:
    """Remove a user from a team and from the team's projects; its runs stay.

    Restricted projects of the team that it owns are flagged ``owner_needed`` (ACCESS.md).
    Raises ``PermissionDenied``, ``NotFound``, ``Conflict`` (a service account leaves its team
    only by being deleted).
    """
    team = _resolve(session, org, team)
    writes.hold(session, [team.id])
    authz.require(session, actor, Permission.TEAM_MANAGE_MEMBERS, team)
    row, current = _find_membership(session, team, member)
    if row.user_id is None:
        raise Conflict(
            "a service account cannot leave its team: delete the service account instead",
            field="member",
        )
    user_id = row.user_id
    project_rows = _user_project_rows(session, team, user_id)
    orphaned = list(
        session.scalars(
            select(Project).where(
                Project.team_id == team.id,
                Project.owner_user_id == user_id,
                Project.visibility == Visibility.RESTRICTED.value,
            )
        )
    )
    for project in orphaned:
        project.owner_needed = True
    for project_row in project_rows:
        session.delete(project_row)
    session.delete(row)
    session.flush()
    _touch(session, team, [user_id])
    _audit(
        session,
        actor,
        "team.member.remove",
        team,
        before={"user": current.name, "role": current.role},
        detail=(
            f"left {len(project_rows)} project memberships; "
            f"{len(orphaned)} restricted projects need a new owner"
        ),
    )
    session.flush()


def remove_users(
    session: Session,
    *,
    actor: Principal,
    org: Organization,
    team: Team | str,
    user_ids: Sequence[str],
) -> list[str]:
    """Remove many users, by id, from a team at once: what ``remove_member`` does to each (its
    project memberships in the team go, restricted projects it owns are flagged
    ``owner_needed``, one ``team.member.remove`` event each), in a fixed number of statements.
    Users not in the team are skipped. Returns the ids removed, in the order given.

    Raises ``PermissionDenied``.
    """
    team = _resolve(session, org, team)
    writes.hold(session, [team.id])
    authz.require(session, actor, Permission.TEAM_MANAGE_MEMBERS, team)
    wanted = list(dict.fromkeys(user_ids))
    removed: list[str] = []
    for chunk in _per_statement(wanted):
        removed += _remove_chunk(session, actor, team, chunk)
    return removed


def _remove_chunk(session: Session, actor: Principal, team: Team, wanted: list[str]) -> list[str]:
    query = (
        select(TeamMembership.id, User.id, User.username, TeamMembership.role, CustomRole.name)
        .join(User, User.id == TeamMembership.user_id)
        .outerjoin(CustomRole, CustomRole.id == TeamMembership.custom_role_id)
        .where(TeamMembership.team_id == team.id, TeamMembership.user_id.in_(wanted))
    )
    leaving = {
        user_id: (row_id, name, custom or role)
        for row_id, user_id, name, role, custom in session.execute(query)
    }
    removed = [user_id for user_id in wanted if user_id in leaving]
    if not removed:
        return []
    in_team = select(Project.id).where(Project.team_id == team.id)
    project_rows = session.execute(
        select(ProjectMembership.id, ProjectMembership.user_id).where(
            ProjectMembership.project_id.in_(in_team), ProjectMembership.user_id.in_(removed)
        )
    ).all()
    orphaned = session.execute(
        select(Project.id, Project.owner_user_id).where(
            Project.team_id == team.id,
            Project.owner_user_id.in_(removed),
            Project.visibility == Visibility.RESTRICTED.value,
        )
    ).all()
    if orphaned:
        flagged = [project_id for project_id, _ in orphaned]
        session.execute(update(Project).where(Project.id.in_(flagged)).values(owner_needed=True))
    if project_rows:
        left = [row_id for row_id, _ in project_rows]
        session.execute(delete(ProjectMembership).where(ProjectMembership.id.in_(left)))
    memberships = [leaving[user_id][0] for user_id in removed]
    session.execute(delete(TeamMembership).where(TeamMembership.id.in_(memberships)))
    _touch(session, team, removed)
    left_by = Counter(user_id for _, user_id in project_rows)
    owned_by = Counter(owner for _, owner in orphaned)
    events = [
        _event(
            "team.member.remove",
            team,
            before={"user": leaving[u][1], "role": leaving[u][2]},
            detail=(
                f"left {left_by[u]} project memberships; "
                f"{owned_by[u]} restricted projects need a new owner"
            ),
        )
        for u in removed
    ]
    record_many(session, actor=actor, events=events)
    return removed
