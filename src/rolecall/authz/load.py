"""Loads the facts a decision needs. The only authz module that queries."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from sqlalchemy import Select, and_, bindparam, event, null, select
from sqlalchemy.orm import Session

from rolecall.authz import policy, roles
from rolecall.authz.facts import (
    DecisionFacts,
    InstanceFacts,
    MembershipFacts,
    OrgFacts,
    PrincipalFacts,
    PrincipalKind,
    ProjectFacts,
    RoleFacts,
    TeamFacts,
)
from rolecall.authz.permissions import Permission
from rolecall.authz.roles import OrgRole, SeatType, TeamRole, Visibility
from rolecall.db import rows
from rolecall.db.session import session_settings
from rolecall.errors import PermissionDenied
from rolecall.identity.principal import Principal
from rolecall.orgs.models import Organization, OrgMembership
from rolecall.orgs.settings import effective_settings
from rolecall.projects.models import Project, ProjectMembership
from rolecall.roles.models import CustomRole
from rolecall.service_accounts.models import ServiceAccount
from rolecall.teams.models import Team, TeamMembership
from rolecall.users.models import User

Target = Organization | Team | Project

#: Called with every decision made through ``check``/``require`` (the web layer counts them).
decision_observers: list[Callable[[policy.Decision], None]] = []
#: ``session.info`` key: when set to a list, ``load_facts`` appends ``(principal, target,
#: facts)`` to it (what the access cache keeps for the next request).
FACTS_SEEN = "rolecall.facts_seen"

#: ``session.info`` key of the decisions made, and the facts loaded, since the session last
#: wrote or ended.
_MEMO = "rolecall.authz.decisions"
#: Marks a memo key naming facts (a principal's about one target) rather than a decision.
_FACTS = "facts"


@event.listens_for(Session, "after_flush")
@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_rollback")
@event.listens_for(Session, "after_soft_rollback")
def _forget_decisions(session: Session, *_: Any) -> None:
    session.info.pop(_MEMO, None)


rows.after_insert.append(_forget_decisions)


def role_facts(session: Session, role: str | None, custom_role_id: str | None) -> RoleFacts | None:
    """Resolve a stored role (predefined name or ``custom`` + id) into its permissions."""
    if role is None:
        return None
    if custom_role_id is not None:
        custom = session.get(CustomRole, custom_role_id)
        if custom is None:
            return None
        extra = [Permission(p) for p in custom.permissions]
        inherited = TeamRole(custom.inherited_from)
        return RoleFacts(
            custom.name,
            roles.effective_permissions(inherited, extra),
            None,
            custom.id,
        )
    predefined = TeamRole(role)
    return RoleFacts(predefined.value, roles.PREDEFINED[predefined], predefined)


def _base_facts(principal: Principal) -> dict[str, Any]:
    return {
        "kind": principal.kind,
        "id": principal.id,
        "name": principal.name,
        "credential": principal.credential,
        "key_scopes": principal.key_scopes,
    }


def principal_facts(session: Session, principal: Principal, org_id: str) -> PrincipalFacts:
    base = _base_facts(principal)
    if principal.kind is PrincipalKind.USER:
        membership = session.scalar(
            select(OrgMembership).where(
                OrgMembership.org_id == org_id, OrgMembership.user_id == principal.user_id
            )
        )
        if membership is None:
            return PrincipalFacts(**base)
        return _user_facts(
            base, membership.role, membership.active, membership.models_seat, membership.weave_seat
        )
    if principal.kind is PrincipalKind.SERVICE_ACCOUNT:
        account = session.get(ServiceAccount, principal.service_account_id)
        if account is None:
            return PrincipalFacts(**base, sa_deleted=True)
        return _account_facts(
            base, account.scope, account.team_id, account.org_id, account.deleted_at
        )
    return PrincipalFacts(**base)


def _user_facts(
    base: dict[str, Any], role: str, active: bool, models_seat: str, weave_seat: str
) -> PrincipalFacts:
    """A user's facts from its org membership's columns."""
    return PrincipalFacts(
        **base,
        org_role=OrgRole(role),
        org_active=active,
        models_seat=SeatType(models_seat),
        weave_seat=SeatType(weave_seat),
    )


def _account_facts(
    base: dict[str, Any], scope: str, team_id: str | None, org_id: str, deleted_at: object
) -> PrincipalFacts:
    """A service account's facts from its row's columns."""
    return PrincipalFacts(
        **base,
        sa_scope=scope,
        sa_team_id=team_id,
        sa_org_id=org_id,
        sa_deleted=deleted_at is not None,
    )


def team_facts(team: Team) -> TeamFacts:
    return TeamFacts(
        id=team.id,
        org_id=team.org_id,
        name=team.name,
        kind=team.kind,
        personal_owner_id=team.personal_owner_id,
        private_only=team.private_only,
    )


@functools.cache
def _standing_query(kind: PrincipalKind, with_team: bool, with_project: bool) -> Select[Any]:
    """``_standing``'s statement for a kind of principal, with or without a team and project
    (bound as ``anchor_id``, ``org_id``, ``team_id``, ``project_id``). Built once per shape:
    building a statement costs more than SQLite takes to run it."""
    anchor: type[User] | type[ServiceAccount]
    if kind is PrincipalKind.USER:
        anchor = User
        team_owner, project_owner = TeamMembership.user_id, ProjectMembership.user_id
        own: tuple[Any, ...] = (
            OrgMembership.role,
            OrgMembership.active,
            OrgMembership.models_seat,
            OrgMembership.weave_seat,
        )
    else:
        anchor = ServiceAccount
        team_owner = TeamMembership.service_account_id
        project_owner = ProjectMembership.service_account_id
        own = (
            ServiceAccount.scope,
            ServiceAccount.team_id,
            ServiceAccount.org_id,
            ServiceAccount.deleted_at,
        )
    # Without a team (or project) there is nothing to join: NULLs stand in for its columns.
    # Joining ``ON false`` instead would make SQLite scan the whole membership table.
    team_columns: tuple[Any, ...] = (
        (TeamMembership.role, TeamMembership.custom_role_id) if with_team else (null(), null())
    )
    project_columns: tuple[Any, ...] = (
        (ProjectMembership.invited, ProjectMembership.role, ProjectMembership.custom_role_id)
        if with_project
        else (null(), null(), null())
    )
    query = select(*own, *team_columns, *project_columns).select_from(anchor)
    if anchor is User:
        query = query.outerjoin(
            OrgMembership,
            and_(OrgMembership.user_id == User.id, OrgMembership.org_id == bindparam("org_id")),
        )
    if with_team:
        query = query.outerjoin(
            TeamMembership,
            and_(team_owner == anchor.id, TeamMembership.team_id == bindparam("team_id")),
        )
    if with_project:
        query = query.outerjoin(
            ProjectMembership,
            and_(
                project_owner == anchor.id,
                ProjectMembership.project_id == bindparam("project_id"),
            ),
        )
    return query.where(anchor.id == bindparam("anchor_id"))


def _standing(
    session: Session, principal: Principal, org_id: str, team: Team | None, project: Project | None
) -> tuple[PrincipalFacts, MembershipFacts]:
    """The principal's own facts and its memberships in ``team``/``project``, in one query:
    the principal's row, outer-joined to its org, team and project membership rows. Every
    request's guard runs this, so it is kept to one round trip."""
    if principal.kind is PrincipalKind.USER:
        anchor_id = principal.user_id
    elif principal.kind is PrincipalKind.SERVICE_ACCOUNT:
        anchor_id = principal.service_account_id
    else:
        return principal_facts(session, principal, org_id), MembershipFacts()
    query = _standing_query(principal.kind, team is not None, project is not None)
    params = {
        "anchor_id": anchor_id,
        "org_id": org_id,
        "team_id": team.id if team is not None else None,
        "project_id": project.id if project is not None else None,
    }
    row = session.execute(query, params).first()
    if row is None:
        # The principal's row is gone (a user or account deleted since it authenticated).
        return principal_facts(session, principal, org_id), MembershipFacts()
    own_values, (team_role, team_custom, invited, project_role, project_custom) = row[:4], row[4:]
    base = _base_facts(principal)
    if principal.kind is PrincipalKind.USER:
        # No membership row in this org: the outer join gave NULLs.
        facts = PrincipalFacts(**base) if own_values[0] is None else _user_facts(base, *own_values)
    else:
        facts = _account_facts(base, *own_values)
    membership = MembershipFacts(
        team_role=role_facts(session, team_role, team_custom),
        project_member=bool(invited),
        project_role=role_facts(session, project_role, project_custom),
    )
    return facts, membership


def load_facts(session: Session, principal: Principal, target: Target) -> DecisionFacts:
    """Gather every fact ``policy.decide`` needs about ``principal`` and ``target``."""
    project: Project | None = None
    team: Team | None = None
    if isinstance(target, Project):
        project = target
        team = session.get(Team, target.team_id)
        assert team is not None
    elif isinstance(target, Team):
        team = target
    org_id = team.org_id if team is not None else target.id
    org = session.get(Organization, org_id)
    org_facts = OrgFacts(id=org_id, name=org.name if org else "")
    effective = effective_settings(org, session_settings(session))
    instance = InstanceFacts(
        disable_personal_entity=effective.disable_personal_entity,
        disable_admin_team_access=effective.disable_admin_team_access,
    )
    facts_team = team_facts(team) if team is not None else None
    facts_project = (
        ProjectFacts(
            id=project.id,
            name=project.name,
            visibility=Visibility(project.visibility),
            team=facts_team,  # type: ignore[arg-type]
            owner_user_id=project.owner_user_id,
            owner_needed=project.owner_needed,
        )
        if project is not None
        else None
    )
    principal_own, membership = _standing(session, principal, org_id, team, project)
    facts = DecisionFacts(
        principal=principal_own,
        org=org_facts,
        team=facts_team,
        project=facts_project,
        membership=membership,
        instance=instance,
    )
    seen = session.info.get(FACTS_SEEN)
    if seen is not None:
        seen.append((principal, target, facts))
    return facts


def check(
    session: Session,
    principal: Principal,
    permission: Permission,
    target: Target,
    *,
    acting_on_self: bool = False,
) -> policy.Decision:
    """Decide without raising.

    A decision, and the facts it rests on, are remembered in the session until its next flush,
    commit or rollback (nothing they rest on can change before then): a route's gate and the
    service behind it load the facts once, even when they ask about different permissions on
    the same target. Pending, unflushed changes bypass the memo.
    """
    settings_id = id(session.info.get("settings"))
    facts_key = (_FACTS, principal, type(target), target.id, settings_id)
    key = (principal, permission, type(target), target.id, acting_on_self, settings_id)
    memo: dict[Any, Any] = session.info.setdefault(_MEMO, {})
    current = not (session.new or session.dirty or session.deleted)
    decision: policy.Decision | None = memo.get(key) if current else None
    if decision is None:
        facts: DecisionFacts | None = memo.get(facts_key) if current else None
        if facts is None:
            facts = memo[facts_key] = load_facts(session, principal, target)
        decision = memo[key] = policy.decide(facts, permission, acting_on_self=acting_on_self)
    return observed(decision)


def decide_observed(
    facts: DecisionFacts, permission: Permission, *, acting_on_self: bool = False
) -> policy.Decision:
    """``policy.decide`` on facts already loaded, told to ``decision_observers`` like every
    guard's decision (``check`` and the access cache's hits both come through here)."""
    decision = policy.decide(facts, permission, acting_on_self=acting_on_self)
    observed(decision)
    return decision


def observed(decision: policy.Decision) -> policy.Decision:
    """Tell ``decision_observers`` of a guard's decision."""
    for observe in decision_observers:
        observe(decision)
    return decision


def require(
    session: Session,
    principal: Principal,
    permission: Permission,
    target: Target,
    *,
    acting_on_self: bool = False,
) -> policy.Decision:
    """Decide and raise ``PermissionDenied`` (carrying the trace) when denied."""
    decision = check(session, principal, permission, target, acting_on_self=acting_on_self)
    raise_if_denied(principal, permission, decision)
    return decision


def raise_if_denied(
    principal: Principal, permission: Permission, decision: policy.Decision
) -> None:
    """``PermissionDenied`` carrying the trace, when ``decision`` denies."""
    if not decision.allowed:
        raise PermissionDenied(
            f"{principal.name} may not {permission.value} ({decision.deciding_rule})",
            decision=decision,
        )
