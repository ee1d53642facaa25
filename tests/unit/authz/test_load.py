"""``authz.load``: the facts read from the database, and the decisions ``check``/``require`` make
on them (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from rolecall.authz import load, policy, roles
from rolecall.authz.facts import CredentialKind, PrincipalKind
from rolecall.authz.permissions import Permission
from rolecall.authz.roles import OrgRole, SeatType, TeamRole, Visibility
from rolecall.errors import PermissionDenied
from rolecall.identity.principal import ANONYMOUS, Principal
from rolecall.orgs.models import OrgMembership
from rolecall.service_accounts.models import ServiceAccount
from rolecall.settings import Settings
from rolecall.teams.models import Team
from rolecall.users.models import User
from tests import factories
from tests.factories import World
from tests.statements import statements_sent

P = Permission
T = TypeVar("T")


def as_user(user: User, *, scopes: frozenset[Permission] | None = None) -> Principal:
    return Principal(
        PrincipalKind.USER,
        user.username,
        CredentialKind.API_KEY,
        user_id=user.id,
        key_scopes=scopes,
    )


def as_account(account: ServiceAccount) -> Principal:
    return Principal(
        PrincipalKind.SERVICE_ACCOUNT,
        account.name,
        CredentialKind.API_KEY,
        service_account_id=account.id,
        org_id=account.org_id,
    )


def assert_allowed(decision: policy.Decision, rule: str) -> None:
    assert decision.allowed, decision.as_dict()
    assert decision.deciding_rule == rule, decision.as_dict()


def assert_denied(decision: policy.Decision, rule: str) -> None:
    assert not decision.allowed, decision.as_dict()
    assert decision.deciding_rule == rule, decision.as_dict()


def test_user_with_team_role(db: Session, org: World):
    team = factories.team(db, org.org, name="ml")
    alice = factories.user(db, org.org, models_seat="viewer")
    factories.member(db, team, alice, role="admin")
    project = factories.project(db, team, visibility="team", owner=alice)

    facts = load.load_facts(db, as_user(alice), project)

    assert facts.org.id == org.org.id
    assert (facts.team.id, facts.team.kind, facts.team.name) == (team.id, "team", "ml")
    assert facts.project.visibility is Visibility.TEAM
    assert facts.project.owner_user_id == alice.id
    assert facts.principal.org_role is OrgRole.MEMBER
    assert facts.principal.models_seat is SeatType.VIEWER
    assert facts.membership.team_role.predefined is TeamRole.ADMIN
    assert facts.membership.team_role.permissions == roles.ADMIN
    assert_allowed(load.check(db, as_user(alice), P.RUN_READ, project), policy.RULE_TEAM_ROLE)
    assert_denied(
        load.check(db, as_user(alice), P.RUN_DELETE, project), policy.RULE_CAP_MODELS_SEAT
    )


def test_custom_role_permissions_are_inherited_plus_extras(db: Session, org: World):
    team = factories.team(db, org.org)
    runner = factories.custom_role(
        db, org.org, name="Runner", inherited_from="viewer", permissions=(P.RUN_CREATE,)
    )
    bob = factories.user(db, org.org)
    factories.member(db, team, bob, custom_role=runner)
    project = factories.project(db, team)

    team_role = load.load_facts(db, as_user(bob), project).membership.team_role

    assert team_role.permissions == roles.VIEWER | {P.RUN_CREATE}
    assert (team_role.name, team_role.custom_role_id, team_role.predefined) == (
        "Runner",
        runner.id,
        None,
    )
    assert_allowed(load.check(db, as_user(bob), P.RUN_CREATE, project), policy.RULE_TEAM_ROLE)
    assert_denied(load.check(db, as_user(bob), P.RUN_STOP, project), policy.RULE_TEAM_ROLE)


def test_project_role_override(db: Session, org: World):
    team = factories.team(db, org.org)
    carol = factories.user(db, org.org)
    factories.member(db, team, carol, role="member")
    project = factories.project(db, team, visibility="team")
    factories.project_member(db, project, carol, invited=False, role="viewer")

    membership = load.load_facts(db, as_user(carol), project).membership

    assert membership.team_role.predefined is TeamRole.MEMBER
    assert membership.project_role.predefined is TeamRole.VIEWER
    assert membership.project_member is False
    decision = load.check(db, as_user(carol), P.RUN_CREATE, project)
    assert_denied(decision, policy.RULE_PROJECT_OVERRIDE)
    # The override applies to this project only.
    other = factories.project(db, team, visibility="team")
    assert_allowed(load.check(db, as_user(carol), P.RUN_CREATE, other), policy.RULE_TEAM_ROLE)


def test_project_override_with_a_custom_role(db: Session, org: World):
    team = factories.team(db, org.org)
    mover = factories.custom_role(db, org.org, inherited_from="member", permissions=(P.RUN_MOVE,))
    dave = factories.user(db, org.org)
    factories.member(db, team, dave, role="member")
    project = factories.project(db, team)
    factories.project_member(db, project, dave, invited=False, custom_role=mover)

    decision = load.check(db, as_user(dave), P.RUN_MOVE, project)

    assert_allowed(decision, policy.RULE_PROJECT_OVERRIDE)


def test_restricted_project_needs_an_invitation(db: Session, org: World):
    team = factories.team(db, org.org)
    erin = factories.user(db, org.org)
    factories.member(db, team, erin, role="member")
    project = factories.project(db, team, visibility="restricted")

    before = load.check(db, as_user(erin), P.RUN_READ, project)
    assert_denied(before, policy.RULE_RESTRICTED_MEMBERSHIP)

    factories.project_member(db, project, erin, invited=True)
    assert load.load_facts(db, as_user(erin), project).membership.project_member is True
    after = load.check(db, as_user(erin), P.RUN_READ, project)
    assert_allowed(after, policy.RULE_RESTRICTED_MEMBERSHIP)


def test_org_scoped_service_account(db: Session, org: World):
    home, other = factories.team(db, org.org), factories.team(db, org.org)
    bot = factories.service_account(db, org.org, home, scope="org")
    project = factories.project(db, other, visibility="team")
    restricted = factories.project(db, other, visibility="restricted")

    facts = load.load_facts(db, as_account(bot), project)

    assert (facts.principal.sa_scope, facts.principal.sa_org_id) == ("org", org.org.id)
    assert facts.principal.sa_deleted is False
    assert facts.membership.team_role is None
    create = load.check(db, as_account(bot), P.RUN_CREATE, project)
    assert_allowed(create, policy.RULE_ORG_SERVICE_ACCOUNT)
    hidden = load.check(db, as_account(bot), P.RUN_READ, restricted)
    assert_denied(hidden, policy.RULE_RESTRICTED_MEMBERSHIP)
    factories.project_member(db, restricted, bot, invited=True)
    added = load.check(db, as_account(bot), P.RUN_CREATE, restricted)
    assert_allowed(added, policy.RULE_RESTRICTED_MEMBERSHIP)


def test_team_scoped_service_account(db: Session, org: World):
    home, other = factories.team(db, org.org), factories.team(db, org.org)
    ci = factories.service_account(db, org.org, home, scope="team")
    own = factories.project(db, home, visibility="team")

    facts = load.load_facts(db, as_account(ci), own)

    assert facts.principal.sa_scope == "team"
    assert facts.principal.sa_team_id == home.id
    assert facts.membership.team_role.predefined is TeamRole.SERVICE
    assert_allowed(load.check(db, as_account(ci), P.RUN_CREATE, own), policy.RULE_TEAM_ROLE)
    theirs = factories.project(db, other, visibility="team")
    assert_denied(load.check(db, as_account(ci), P.RUN_CREATE, theirs), policy.RULE_NO_BASE_ROLE)
    open_project = factories.project(db, other, visibility="open")
    submit = load.check(db, as_account(ci), P.RUN_CREATE, open_project)
    assert_allowed(submit, policy.RULE_OPEN)


def test_deactivated_user_is_denied(db: Session, org: World):
    team = factories.team(db, org.org)
    frank = factories.user(db, org.org, role="admin", active=False)
    factories.member(db, team, frank, role="admin")
    project = factories.project(db, team)

    assert load.load_facts(db, as_user(frank), project).principal.org_active is False
    for target in (project, team, org.org):
        decision = load.check(db, as_user(frank), P.PROJECT_READ, target)
        assert_denied(decision, policy.RULE_DEACTIVATED)
    with pytest.raises(PermissionDenied) as refused:
        load.require(db, as_user(frank), P.ORG_READ, org.org)
    assert refused.value.decision.deciding_rule == policy.RULE_DEACTIVATED
    assert refused.value.as_dict()["rule"] == policy.RULE_DEACTIVATED


def test_deleted_service_account_is_denied(db: Session, org: World):
    team = factories.team(db, org.org)
    ci = factories.service_account(db, org.org, team, scope="team")
    project = factories.project(db, team)
    ci.deleted_at = datetime.now(UTC)
    db.flush()

    assert load.load_facts(db, as_account(ci), project).principal.sa_deleted is True
    assert_denied(load.check(db, as_account(ci), P.RUN_READ, project), policy.RULE_DELETED)


def test_unknown_service_account_counts_as_deleted(db: Session, org: World):
    ghost = Principal(
        PrincipalKind.SERVICE_ACCOUNT, "ghost", CredentialKind.API_KEY, service_account_id="nope"
    )
    assert_denied(load.check(db, ghost, P.ORG_READ, org.org), policy.RULE_DELETED)


def test_org_target(db: Session, org: World):
    facts = load.load_facts(db, as_user(org.admin), org.org)
    assert (facts.team, facts.project, facts.org.id) == (None, None, org.org.id)
    assert facts.principal.org_role is OrgRole.ADMIN
    decision = load.check(db, as_user(org.admin), P.ORG_MANAGE_USERS, org.org)
    assert_allowed(decision, policy.RULE_ORG_ADMIN)
    member = factories.user(db, org.org)
    assert_denied(load.check(db, as_user(member), P.ORG_UPDATE, org.org), policy.RULE_ORG_MEMBER)


def test_user_of_another_org_is_an_outsider(db: Session, org: World):
    elsewhere = factories.bootstrap(db)
    team = factories.team(db, org.org)
    project = factories.project(db, team)
    stranger = as_user(elsewhere.admin)

    assert load.load_facts(db, stranger, project).principal.org_role is None
    assert_denied(load.check(db, stranger, P.PROJECT_UPDATE, project), policy.RULE_NO_BASE_ROLE)


def test_anonymous_reads_an_open_project_only(db: Session, org: World):
    team = factories.team(db, org.org)
    open_project = factories.project(db, team, visibility="open")
    team_project = factories.project(db, team, visibility="team")

    assert_allowed(load.check(db, ANONYMOUS, P.RUN_READ, open_project), policy.RULE_OPEN)
    assert_denied(load.check(db, ANONYMOUS, P.RUN_READ, team_project), policy.RULE_NO_BASE_ROLE)


def test_key_scopes_reach_the_policy(db: Session, org: World):
    team = factories.team(db, org.org)
    gina = factories.user(db, org.org)
    factories.member(db, team, gina, role="admin")
    project = factories.project(db, team)
    scoped = as_user(gina, scopes=frozenset({P.RUN_CREATE}))

    assert load.load_facts(db, scoped, project).principal.key_scopes == {P.RUN_CREATE}
    assert_allowed(load.check(db, scoped, P.RUN_CREATE, project), policy.RULE_TEAM_ROLE)
    assert_denied(load.check(db, scoped, P.RUN_READ, project), policy.RULE_KEY_SCOPES)


def test_instance_switches_come_from_the_sessions_settings(
    db: Session, org: World, settings: Settings
):
    hank = factories.user(db, org.org)
    own = db.scalars(select(Team).where(Team.personal_owner_id == hank.id)).one()
    team = factories.team(db, org.org)

    allowed = load.check(db, as_user(hank), P.PROJECT_CREATE, own)
    assert_allowed(allowed, policy.RULE_PERSONAL_OWNER)
    assert_allowed(
        load.check(db, as_user(org.admin), P.TEAM_MANAGE_MEMBERS, team, acting_on_self=True),
        policy.RULE_ORG_ADMIN_EXTRAS,
    )

    db.info["settings"] = settings.model_copy(
        update={"disable_personal_entity": True, "disable_admin_team_access": True}
    )
    facts = load.load_facts(db, as_user(hank), own)
    assert facts.instance.disable_personal_entity is True
    assert facts.instance.disable_admin_team_access is True
    denied = load.check(db, as_user(hank), P.PROJECT_CREATE, own)
    assert_denied(denied, policy.RULE_PERSONAL_DISABLED)
    self_join = load.check(db, as_user(org.admin), P.TEAM_MANAGE_MEMBERS, team, acting_on_self=True)
    assert_denied(self_join, policy.RULE_ADMIN_SELF_JOIN)


def test_require_returns_the_decision_and_observers_see_it(db: Session, org: World):
    seen: list[policy.Decision] = []
    load.decision_observers.append(seen.append)
    try:
        decision = load.require(db, as_user(org.admin), P.ORG_UPDATE, org.org)
    finally:
        load.decision_observers.remove(seen.append)
    assert decision.allowed
    assert seen == [decision]


def test_flagged_restricted_project_is_managed_by_admins_only(db: Session, org: World):
    team = factories.team(db, org.org)
    owner = factories.user(db, org.org)
    factories.member(db, team, owner, role="member")
    project = factories.project(db, team, visibility="restricted", owner=owner)
    factories.project_member(db, project, owner, invited=True)
    project.owner_needed = True
    db.flush()

    decision = load.check(db, as_user(owner), P.PROJECT_UPDATE, project)

    assert_denied(decision, policy.RULE_OWNER_EXTRAS)


def test_a_user_deleted_since_it_authenticated_is_an_outsider(db: Session, org: World):
    """The guard's one query finds no row for a user deleted mid-request: the user then has
    no org role, and the policy refuses what needs one."""
    gone = Principal(PrincipalKind.USER, "gone", CredentialKind.API_KEY, user_id="no-such-user")
    facts = load.load_facts(db, gone, org.org)
    assert facts.principal.org_role is None
    assert_denied(load.check(db, gone, P.ORG_READ, org.org), policy.RULE_OTHER_ORG)


def test_principal_facts_read_a_users_membership_of_that_org(db: Session, org: World):
    """``principal_facts`` (the facts without a target): the role, activity and seats of the
    user's membership in the org asked about, none in another org."""
    ivy = factories.user(db, org.org, role="viewer")
    facts = load.principal_facts(db, as_user(ivy), org.org.id)
    assert (facts.org_role, facts.org_active) == (OrgRole.VIEWER, True)
    assert facts.models_seat is SeatType.FULL
    elsewhere = factories.bootstrap(db)
    assert load.principal_facts(db, as_user(ivy), elsewhere.org.id).org_role is None
    anonymous = load.principal_facts(db, ANONYMOUS, org.org.id)
    assert (anonymous.kind, anonymous.org_role) == (PrincipalKind.ANONYMOUS, None)


def test_a_role_naming_a_custom_role_that_is_gone_grants_nothing(db: Session):
    assert load.role_facts(db, "custom", "no-such-role") is None
    assert load.role_facts(db, None, None) is None
    member = load.role_facts(db, "member", None)
    assert member is not None and member.predefined is TeamRole.MEMBER


def test_decide_observed_is_told_to_the_observers(db: Session, org: World):
    """The access cache decides on facts it kept (``decide_observed``); its decisions reach
    the same observers (metrics, the audit of denials) as ``check``'s."""
    facts = load.load_facts(db, as_user(org.admin), org.org)
    seen: list[policy.Decision] = []
    load.decision_observers.append(seen.append)
    try:
        decision = load.decide_observed(facts, P.ORG_UPDATE)
    finally:
        load.decision_observers.remove(seen.append)
    assert_allowed(decision, policy.RULE_ORG_ADMIN)
    assert seen == [decision]


def _statements_during(db: Session, work: Callable[[], T]) -> tuple[T, list[str]]:
    """``work()``'s result, and the SQL statements it sent."""
    with statements_sent(db) as sent:
        return work(), sent


def test_a_second_permission_on_the_same_target_reuses_the_loaded_facts(db: Session, org: World):
    admin = as_user(org.admin)
    load.check(db, admin, P.ORG_MANAGE_USERS, org.org)

    decision, sent = _statements_during(db, lambda: load.check(db, admin, P.ORG_READ, org.org))

    assert sent == []
    expected = policy.decide(load.load_facts(db, admin, org.org), P.ORG_READ)
    assert decision.allowed and decision.as_dict() == expected.as_dict()


def test_facts_are_loaded_again_after_a_write(db: Session, org: World):
    user = factories.user(db, org.org)
    principal = as_user(user)
    assert load.check(db, principal, P.ORG_READ, org.org).allowed
    membership = db.scalars(select(OrgMembership).where(OrgMembership.user_id == user.id)).one()

    membership.active = False  # pending: the memo is bypassed, and the check flushes it

    assert_denied(load.check(db, principal, P.ORG_MANAGE_USERS, org.org), policy.RULE_DEACTIVATED)
    assert_denied(load.check(db, principal, P.ORG_READ, org.org), policy.RULE_DEACTIVATED)
