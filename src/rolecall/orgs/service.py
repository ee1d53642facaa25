"""The organization itself: reading it, renaming it, its default team; and who the caller is.

Each function authorizes first (``authz.require``), records an audit event in the caller's
transaction and flushes; none commits.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from rolecall import authz
from rolecall.api_keys.service import revoke_all_keys
from rolecall.audit.service import record
from rolecall.authz.facts import PrincipalKind
from rolecall.authz.permissions import Permission
from rolecall.authz.policy import check_last_admin
from rolecall.authz.roles import OrgRole, Visibility
from rolecall.db.session import session_settings
from rolecall.errors import Conflict, InvalidInput, NotFound
from rolecall.identity.principal import Principal
from rolecall.identity.sessions import revoke_user_sessions
from rolecall.orgs.models import Organization, OrgMembership
from rolecall.orgs.settings import effective_settings, store_settings
from rolecall.projects.models import Project, ProjectMembership
from rolecall.service_accounts.models import ServiceAccount
from rolecall.teams import writes
from rolecall.teams.models import Team, TeamMembership
from rolecall.teams.queries import find_entity
from rolecall.users.models import User
from rolecall.users.naming import check_org_name


class Unset(enum.Enum):
    """Marks an argument that was not given (``None`` is a value: it clears the default team)."""

    UNSET = enum.auto()


UNSET: Final = Unset.UNSET


@dataclass(frozen=True, slots=True)
class OrgView:
    """An organization with its resolved settings: what ``OrgRead`` shows."""

    org: Organization
    default_team: str | None
    settings: dict[str, Any]
    fixed_by_environment: list[str]

    @property
    def id(self) -> str:
        return self.org.id

    @property
    def name(self) -> str:
        return self.org.name

    @property
    def created_at(self) -> datetime:
        return self.org.created_at


@dataclass(frozen=True, slots=True)
class ViewerView:
    """Who the caller is, in the organization the request is about: what ``ViewerRead`` shows."""

    kind: str
    id: str | None
    name: str
    org: Organization
    credential: str
    teams: list[str]
    username: str | None = None
    email: str | None = None
    full_name: str | None = None
    role: str | None = None
    scope: str | None = None
    team: str | None = None


def read_org(session: Session, *, actor: Principal, org: Organization) -> OrgView:
    """The organization with its settings.

    Raises ``PermissionDenied`` without ``org:read`` (every active member has it).
    """
    authz.require(session, actor, Permission.ORG_READ, org)
    return _view(session, org)


def update_org(
    session: Session,
    *,
    actor: Principal,
    org: Organization,
    name: str | None = None,
    default_team: str | Unset | None = UNSET,
    settings: dict[str, Any] | None = None,
) -> OrgView:
    """Rename the organization, set its default team (a team name, or ``None`` to clear) and/or
    store settings (``orgs.settings.STORABLE``).

    Raises ``PermissionDenied`` without ``org:update``; ``InvalidInput`` for a bad name or a
    personal entity as default team; ``Conflict`` when another organization has the name
    (case-insensitively) or a setting is fixed by the environment; ``NotFound`` for an unknown
    team.
    """
    authz.require(session, actor, Permission.ORG_UPDATE, org)
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    if name is not None and name != org.name:
        check_org_name(name, field="name")
        taken = session.scalar(
            select(Organization.id).where(
                Organization.name_key == name.lower(), Organization.id != org.id
            )
        )
        if taken is not None:
            raise Conflict(f"an organization named {name!r} exists", field="name")
        before["name"], after["name"] = org.name, name
        org.name, org.name_key = name, name.lower()
    if default_team is not UNSET:
        team = _default_team(session, org, default_team)
        new_id = team.id if team is not None else None
        if new_id != org.default_team_id:
            before["default_team"] = _team_name(session, org.default_team_id)
            after["default_team"] = team.name if team is not None else None
            org.default_team_id = new_id
    if settings:
        settings_before, settings_after = store_settings(org, session_settings(session), settings)
        if settings_after:
            before["settings"], after["settings"] = settings_before, settings_after
    if after:
        record(
            session,
            actor=actor,
            action="org.update",
            object_type="organization",
            object_id=org.id,
            object_name=org.name,
            org_id=org.id,
            before=before,
            after=after,
        )
    session.flush()
    return _view(session, org)


def guard_last_admin(
    session: Session, org: Organization, membership: OrgMembership, *, stays_admin: bool
) -> None:
    """ACCESS.md: the last active org admin cannot be demoted, deactivated or removed.

    Raises ``Conflict`` with the rule's message and code ``last_admin``.
    """
    is_active_admin = membership.role == OrgRole.ADMIN and membership.active
    if not is_active_admin or stays_admin:
        return
    # Two admins demoting each other at once must not both succeed. On PostgreSQL the guard
    # holds its admin's row, then takes turns on the organization's row (FOR NO KEY UPDATE; no
    # other write holds it while taking members' rows), and each counts the admins once its
    # turn comes, seeing what the one before committed. Locking every admin's row instead
    # deadlocked: a SCIM write holds its own target's row already (``teams.writes``' lock
    # order: a member's row, then the organization's). SQLite serializes writers.
    if session.get_bind().dialect.name != "sqlite":
        target = select(OrgMembership.id).where(OrgMembership.id == membership.id)
        session.execute(target.with_for_update(key_share=True))
        turn = select(Organization.id).where(Organization.id == org.id)
        session.execute(turn.with_for_update(key_share=True))
    admins = session.scalars(
        select(OrgMembership.id)
        .where(OrgMembership.org_id == org.id, OrgMembership.role == OrgRole.ADMIN.value)
        .where(OrgMembership.active.is_(True))
    ).all()
    violation = check_last_admin(
        is_active_admin=True, stays_active_admin=False, active_admin_count=len(admins)
    )
    if violation is not None:
        raise Conflict(violation.message, code="last_admin")


def remove_membership(
    session: Session, *, org: Organization, membership: OrgMembership, now: datetime | None = None
) -> int:
    """Delete a user's membership of ``org`` and what hangs on it; returns API keys revoked.

    Its team and project memberships in the org's teams go; restricted projects it owned there
    are flagged ``owner_needed`` (ACCESS.md: a team admin sets a new owner); its browser sessions
    end; its API keys are revoked unless it belongs to another organization.

    Does NOT authorize or audit: the caller (``users.service.delete_user``) does both.
    """
    user_id, now = membership.user_id, now or datetime.now(UTC)
    org_teams = select(Team.id).where(Team.org_id == org.id)
    org_projects = select(Project.id).where(Project.team_id.in_(org_teams))
    owned_restricted = update(Project).where(
        Project.owner_user_id == user_id,
        Project.visibility == Visibility.RESTRICTED.value,
        Project.team_id.in_(org_teams.where(Team.kind == "team")),
    )
    session.execute(
        owned_restricted.values(owner_needed=True),
        execution_options={"synchronize_session": "fetch"},
    )
    session.execute(
        delete(ProjectMembership).where(
            ProjectMembership.user_id == user_id, ProjectMembership.project_id.in_(org_projects)
        )
    )
    left = session.scalars(
        delete(TeamMembership)
        .where(TeamMembership.user_id == user_id, TeamMembership.team_id.in_(org_teams))
        .returning(TeamMembership.team_id)
    ).all()
    for team_id in set(left):  # the teams' SCIM groups lost a member
        writes.mark_changed(session, team_id, now)
    session.delete(membership)
    session.flush()
    revoke_user_sessions(session, user_id=user_id, now=now, org_id=org.id)
    if session.scalar(select(OrgMembership.id).where(OrgMembership.user_id == user_id)):
        # Its keys that work in this organization only are of no use now.
        return revoke_all_keys(session, user_id=user_id, now=now, org_id=org.id)
    return revoke_all_keys(session, user_id=user_id, now=now)


def describe_viewer(session: Session, *, actor: Principal, org: Organization) -> ViewerView:
    """Who the caller is: identity, credential, and role and teams in ``org``.

    Needs no permission: it describes the caller's own credential, whatever that credential
    may do (a key scoped to ``run:create`` still learns whose key it is).

    Raises ``NotFound`` when the caller's service account no longer exists.
    """
    credential = actor.credential.value
    if actor.kind is PrincipalKind.SERVICE_ACCOUNT:
        account = session.get(ServiceAccount, actor.service_account_id)
        if account is None:
            raise NotFound("this service account no longer exists")
        return ViewerView(
            kind=PrincipalKind.SERVICE_ACCOUNT.value,
            id=account.id,
            name=account.name,
            org=org,
            credential=credential,
            teams=_team_names(session, org, TeamMembership.service_account_id == account.id),
            scope=account.scope,
            team=_team_name(session, account.team_id),
        )
    user = session.get(User, actor.user_id) if actor.user_id else None
    if user is None:
        raise NotFound("this user no longer exists")
    membership = session.scalar(
        select(OrgMembership).where(
            OrgMembership.org_id == org.id, OrgMembership.user_id == user.id
        )
    )
    return ViewerView(
        kind=PrincipalKind.USER.value,
        id=user.id,
        name=user.username,
        org=org,
        credential=credential,
        teams=_team_names(session, org, TeamMembership.user_id == user.id),
        username=user.username,
        email=user.email,
        full_name=user.full_name,
        role=membership.role if membership is not None else None,
    )


def _view(session: Session, org: Organization) -> OrgView:
    effective = effective_settings(org, session_settings(session))
    return OrgView(
        org,
        _team_name(session, org.default_team_id),
        effective.values,
        effective.fixed_by_environment,
    )


def _default_team(session: Session, org: Organization, ref: str | None) -> Team | None:
    if ref is None:
        return None
    # PostgreSQL refuses NUL in text; no team is named that way anyway.
    team = find_entity(session, ref, org.id) if "\x00" not in ref else None
    if team is None:
        raise NotFound(f"no team {ref!r} in this organization", field="default_team")
    if team.kind != "team":
        raise InvalidInput(f"{team.name!r} is a personal entity, not a team", field="default_team")
    return team


def _team_name(session: Session, team_id: str | None) -> str | None:
    if team_id is None:
        return None
    return session.scalar(select(Team.name).where(Team.id == team_id))


def _team_names(session: Session, org: Organization, principal_filter: Any) -> list[str]:
    return list(
        session.scalars(
            select(Team.name)
            .join(TeamMembership, TeamMembership.team_id == Team.id)
            .where(Team.org_id == org.id, Team.kind == "team", principal_filter)
            .order_by(Team.name_key)
        )
    )
