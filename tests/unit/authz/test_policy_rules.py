"""One named test per ACCESS.md rule, over hand-built facts (no database).

Each denial asserts the rule that denied (``decision.deciding_rule``) and each allow the rule that
granted, so a test fails when the right answer comes out for the wrong reason.
"""

from __future__ import annotations

import pytest

from rolecall.authz import policy, roles
from rolecall.authz.facts import (
    CredentialKind,
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
from rolecall.authz.permissions import ORG_PERMISSIONS, Permission
from rolecall.authz.roles import OrgRole, SeatType, TeamRole, Visibility

P = Permission
ORG = OrgFacts(id="org-1", name="acme")
TEAM = TeamFacts(id="team-ml", org_id=ORG.id, name="ml")
OTHER_TEAM = TeamFacts(id="team-cv", org_id=ORG.id, name="vision")
PERSONAL = TeamFacts(
    id="personal-alice", org_id=ORG.id, name="alice", kind="personal", personal_owner_id="alice"
)

# --- fact builders ----------------------------------------------------------------------------


def role(name: TeamRole) -> RoleFacts:
    return RoleFacts(name.value, roles.PREDEFINED[name], name)


def custom(name: str, inherited: TeamRole, *extra: Permission) -> RoleFacts:
    return RoleFacts(name, roles.effective_permissions(inherited, extra), None, f"id-{name}")


def user(
    name: str = "alice",
    *,
    org_role: OrgRole | None = OrgRole.MEMBER,
    active: bool = True,
    models: SeatType = SeatType.FULL,
    weave: SeatType = SeatType.FULL,
    credential: CredentialKind = CredentialKind.API_KEY,
    scopes: frozenset[Permission] | None = None,
) -> PrincipalFacts:
    return PrincipalFacts(
        kind=PrincipalKind.USER,
        id=name,
        name=name,
        credential=credential,
        key_scopes=scopes,
        org_role=org_role,
        org_active=active,
        models_seat=models,
        weave_seat=weave,
    )


def service_account(
    name: str = "ci", *, scope: str = "team", team: TeamFacts = TEAM, deleted: bool = False
) -> PrincipalFacts:
    return PrincipalFacts(
        kind=PrincipalKind.SERVICE_ACCOUNT,
        id=name,
        name=name,
        credential=CredentialKind.API_KEY,
        sa_scope=scope,
        sa_team_id=team.id,
        sa_org_id=team.org_id,
        sa_deleted=deleted,
    )


ANONYMOUS = PrincipalFacts(kind=PrincipalKind.ANONYMOUS)
OPERATOR = PrincipalFacts(
    kind=PrincipalKind.OPERATOR, name="operator", credential=CredentialKind.LOCAL
)


def project(
    visibility: Visibility,
    *,
    team: TeamFacts = TEAM,
    owner: str | None = None,
    owner_needed: bool = False,
) -> ProjectFacts:
    return ProjectFacts(
        id=f"{team.name}-{visibility}",
        name=f"{team.name}-{visibility}",
        visibility=visibility,
        team=team,
        owner_user_id=owner,
        owner_needed=owner_needed,
    )


def facts(
    principal: PrincipalFacts,
    target: ProjectFacts | TeamFacts | None = None,
    *,
    team_role: RoleFacts | None = None,
    invited: bool = False,
    project_role: RoleFacts | None = None,
    instance: InstanceFacts | None = None,
) -> DecisionFacts:
    """Facts about ``principal`` on a project, a team, or (``None``) the org itself."""
    team = target.team if isinstance(target, ProjectFacts) else target
    return DecisionFacts(
        principal=principal,
        org=ORG,
        team=team,
        project=target if isinstance(target, ProjectFacts) else None,
        membership=MembershipFacts(
            team_role=team_role, project_member=invited, project_role=project_role
        ),
        instance=instance or InstanceFacts(),
    )


def allowed(f: DecisionFacts, permission: Permission, rule: str, **kw: bool) -> None:
    decision = policy.decide(f, permission, **kw)
    assert decision.allowed, decision.as_dict()
    assert decision.deciding_rule == rule, decision.as_dict()


def denied(f: DecisionFacts, permission: Permission, rule: str, **kw: bool) -> None:
    decision = policy.decide(f, permission, **kw)
    assert not decision.allowed, decision.as_dict()
    assert decision.deciding_rule == rule, decision.as_dict()


TEAM_PROJECT = project(Visibility.TEAM)
OPEN_PROJECT = project(Visibility.OPEN)
PUBLIC_PROJECT = project(Visibility.PUBLIC)
RESTRICTED_PROJECT = project(Visibility.RESTRICTED)
MEMBER = role(TeamRole.MEMBER)
ADMIN = role(TeamRole.ADMIN)
VIEWER = role(TeamRole.VIEWER)
SERVICE = role(TeamRole.SERVICE)

# --- principals -------------------------------------------------------------------------------


def test_deactivated_user_is_denied_everything():
    former_admin = user(org_role=OrgRole.ADMIN, active=False)
    targets = [None, TEAM, TEAM_PROJECT, OPEN_PROJECT, PUBLIC_PROJECT, RESTRICTED_PROJECT]
    for target in targets:
        for permission in Permission:
            denied(
                facts(former_admin, target, team_role=ADMIN), permission, policy.RULE_DEACTIVATED
            )


def test_deleted_service_account_is_denied():
    gone = service_account(deleted=True)
    for target in [None, TEAM, TEAM_PROJECT, OPEN_PROJECT]:
        for permission in Permission:
            denied(facts(gone, target, team_role=SERVICE), permission, policy.RULE_DELETED)


def test_anonymous_sees_only_open_and_public_projects():
    allowed(facts(ANONYMOUS, OPEN_PROJECT), P.RUN_READ, policy.RULE_OPEN)
    allowed(facts(ANONYMOUS, PUBLIC_PROJECT), P.RUN_READ, policy.RULE_PUBLIC)
    denied(facts(ANONYMOUS, TEAM_PROJECT), P.PROJECT_READ, policy.RULE_NO_BASE_ROLE)
    denied(facts(ANONYMOUS, RESTRICTED_PROJECT), P.PROJECT_READ, policy.RULE_NO_BASE_ROLE)
    denied(facts(ANONYMOUS), P.ORG_READ, policy.RULE_OTHER_ORG)


def test_operator_on_the_server_host_may_do_everything():
    for permission in Permission:
        allowed(facts(OPERATOR, TEAM_PROJECT), permission, policy.RULE_OPERATOR)


# --- roles ------------------------------------------------------------------------------------


def test_org_viewer_caps_team_admin_to_reads():
    f = facts(user(org_role=OrgRole.VIEWER), TEAM_PROJECT, team_role=ADMIN)
    allowed(f, P.RUN_READ, policy.RULE_TEAM_ROLE)
    for permission in (P.RUN_CREATE, P.RUN_DELETE, P.PROJECT_UPDATE, P.PROJECT_MANAGE_ACCESS):
        denied(f, permission, policy.RULE_CAP_ORG_VIEWER)
    denied(
        facts(user(org_role=OrgRole.VIEWER), TEAM, team_role=ADMIN),
        P.TEAM_UPDATE,
        policy.RULE_CAP_ORG_VIEWER,
    )


def test_org_viewer_cannot_submit_even_to_an_open_project():
    f = facts(user(org_role=OrgRole.VIEWER), OPEN_PROJECT)
    allowed(f, P.RUN_READ, policy.RULE_OPEN)
    denied(f, P.RUN_CREATE, policy.RULE_CAP_ORG_VIEWER)


def test_models_seat_viewer_removes_run_writes():
    f = facts(user(models=SeatType.VIEWER), TEAM_PROJECT, team_role=ADMIN)
    allowed(f, P.RUN_READ, policy.RULE_TEAM_ROLE)
    for permission in (P.RUN_CREATE, P.ARTIFACT_CREATE, P.REPORT_UPDATE, P.PROJECT_DELETE):
        denied(f, permission, policy.RULE_CAP_MODELS_SEAT)
    allowed(f, P.TRACE_CREATE, policy.RULE_TEAM_ROLE)  # Weave is another product


def test_models_seat_none_removes_models_reads_too():
    f = facts(user(models=SeatType.NONE), TEAM_PROJECT, team_role=MEMBER)
    denied(f, P.RUN_READ, policy.RULE_CAP_MODELS_SEAT)
    denied(f, P.PROJECT_READ, policy.RULE_CAP_MODELS_SEAT)
    allowed(f, P.TRACE_READ, policy.RULE_TEAM_ROLE)
    team = facts(user(models=SeatType.NONE), TEAM, team_role=ADMIN)
    allowed(team, P.TEAM_MANAGE_MEMBERS, policy.RULE_TEAM_ROLE)  # team administration is no product
    denied(team, P.PROJECT_CREATE, policy.RULE_CAP_MODELS_SEAT)


def test_weave_seat_none_removes_trace():
    f = facts(user(weave=SeatType.NONE), TEAM_PROJECT, team_role=MEMBER)
    denied(f, P.TRACE_READ, policy.RULE_CAP_WEAVE_SEAT)
    denied(f, P.TRACE_CREATE, policy.RULE_CAP_WEAVE_SEAT)
    allowed(f, P.RUN_CREATE, policy.RULE_TEAM_ROLE)


def test_weave_seat_viewer_removes_trace_writes():
    f = facts(user(weave=SeatType.VIEWER), TEAM_PROJECT, team_role=MEMBER)
    allowed(f, P.TRACE_READ, policy.RULE_TEAM_ROLE)
    denied(f, P.TRACE_CREATE, policy.RULE_CAP_WEAVE_SEAT)


def test_team_viewer_is_view_only():
    f = facts(user(), TEAM_PROJECT, team_role=VIEWER)
    allowed(f, P.RUN_READ, policy.RULE_TEAM_ROLE)
    denied(f, P.RUN_CREATE, policy.RULE_TEAM_ROLE)


def test_team_member_submits_but_cannot_delete_or_manage():
    f = facts(user(), TEAM_PROJECT, team_role=MEMBER)
    allowed(f, P.RUN_CREATE, policy.RULE_TEAM_ROLE)
    allowed(f, P.RUN_STOP, policy.RULE_TEAM_ROLE)
    for permission in (P.RUN_DELETE, P.RUN_MOVE, P.PROJECT_UPDATE, P.PROJECT_MANAGE_ACCESS):
        denied(f, permission, policy.RULE_TEAM_ROLE)
    denied(facts(user(), TEAM, team_role=MEMBER), P.TEAM_MANAGE_MEMBERS, policy.RULE_TEAM_ROLE)


def test_team_admin_manages_its_team_and_projects():
    f = facts(user(), TEAM_PROJECT, team_role=ADMIN)
    for permission in (P.RUN_DELETE, P.RUN_MOVE, P.PROJECT_DELETE, P.PROJECT_MANAGE_ACCESS):
        allowed(f, permission, policy.RULE_TEAM_ROLE)
    team = facts(user(), TEAM, team_role=ADMIN)
    for permission in (P.TEAM_UPDATE, P.TEAM_MANAGE_MEMBERS, P.TEAM_MANAGE_SERVICE_ACCOUNTS):
        allowed(team, permission, policy.RULE_TEAM_ROLE)
    allowed(team, P.LAUNCHAGENT_CREATE, policy.RULE_TEAM_ROLE)
    allowed(team, P.PROJECT_CREATE, policy.RULE_TEAM_ROLE)


def test_custom_role_adds_extra_permissions():
    runner = custom("Runner", TeamRole.VIEWER, P.RUN_CREATE, P.RUN_STOP)
    f = facts(user(), TEAM_PROJECT, team_role=runner)
    allowed(f, P.RUN_CREATE, policy.RULE_TEAM_ROLE)
    allowed(f, P.RUN_READ, policy.RULE_TEAM_ROLE)  # inherited
    denied(f, P.ARTIFACT_CREATE, policy.RULE_TEAM_ROLE)  # neither inherited nor added
    assert runner.permissions == roles.VIEWER | {P.RUN_CREATE, P.RUN_STOP}


def test_custom_role_is_assignable_at_project_level():
    deleter = custom("Deleter", TeamRole.MEMBER, P.RUN_DELETE)
    f = facts(user(), TEAM_PROJECT, team_role=MEMBER, project_role=deleter)
    allowed(f, P.RUN_DELETE, policy.RULE_PROJECT_OVERRIDE)


def test_predefined_role_names_are_case_insensitive():
    assert roles.parse_predefined_team_role(" Admin ") is TeamRole.ADMIN
    assert roles.parse_predefined_team_role("VIEWER") is TeamRole.VIEWER
    assert roles.parse_predefined_team_role("owner") is None
    assert roles.parse_org_role("Member") is OrgRole.MEMBER
    assert roles.parse_org_role("service") is None  # not an org role


# --- permission catalogue ---------------------------------------------------------------------


def _perms(names: str) -> frozenset[Permission]:
    return frozenset(Permission(name) for name in names.split())


def test_predefined_role_sets_are_the_catalogue():
    # Copied from ACCESS.md, "Permission catalogue (ours)": each set contains the one before.
    viewer = "project:read run:read artifact:read report:read launchagent:read trace:read team:read"
    member = (
        "project:create run:create run:update run:stop artifact:create artifact:update "
        "report:create report:update trace:create"
    )
    admin = (
        "project:update project:delete project:manage_access run:delete run:move artifact:delete "
        "report:delete launchagent:create team:update team:manage_members "
        "team:manage_service_accounts project:join_restricted"
    )
    assert _perms(viewer) == roles.VIEWER
    assert _perms(viewer + " " + member) == roles.MEMBER
    assert _perms(viewer + " " + member + " " + admin) == roles.ADMIN
    assert roles.SERVICE == roles.MEMBER  # a service account's membership (ours)
    assert roles.effective_permissions(TeamRole.VIEWER, [P.RUN_CREATE]) == roles.VIEWER | {
        P.RUN_CREATE
    }


def test_org_level_operations_belong_to_org_admins_only():
    for permission in ORG_PERMISSIONS:
        allowed(facts(user(org_role=OrgRole.ADMIN)), permission, policy.RULE_ORG_ADMIN)
    member = facts(user())
    allowed(member, P.ORG_READ, policy.RULE_ORG_MEMBER)
    for permission in ORG_PERMISSIONS - {P.ORG_READ}:
        denied(member, permission, policy.RULE_ORG_MEMBER)
    allowed(facts(service_account(scope="org")), P.ORG_READ, policy.RULE_ORG_MEMBER)
    denied(facts(user(org_role=None)), P.ORG_READ, policy.RULE_OTHER_ORG)


def test_permission_asked_of_the_wrong_target_is_denied():
    team_admin = facts(user(), TEAM_PROJECT, team_role=ADMIN)
    denied(team_admin, P.TEAM_UPDATE, policy.RULE_TARGET_SCOPE)  # decided on the team
    denied(facts(user(org_role=OrgRole.ADMIN)), P.RUN_READ, policy.RULE_TARGET_SCOPE)
    denied(
        facts(user(org_role=OrgRole.ADMIN), TEAM_PROJECT), P.ORG_UPDATE, policy.RULE_TARGET_SCOPE
    )


# --- visibility scopes ------------------------------------------------------------------------


def test_open_project_lets_anonymous_read():
    f = facts(ANONYMOUS, OPEN_PROJECT)
    for permission in (P.PROJECT_READ, P.RUN_READ, P.ARTIFACT_READ, P.REPORT_READ):
        allowed(f, permission, policy.RULE_OPEN)
    denied(f, P.RUN_CREATE, policy.RULE_NO_BASE_ROLE)


def test_open_project_lets_any_authenticated_principal_submit_runs():
    outsider = facts(user("mallory"), OPEN_PROJECT)
    allowed(outsider, P.RUN_CREATE, policy.RULE_OPEN)
    allowed(outsider, P.REPORT_CREATE, policy.RULE_OPEN)
    allowed(outsider, P.RUN_READ, policy.RULE_OPEN)
    for permission in (P.RUN_UPDATE, P.RUN_DELETE, P.ARTIFACT_CREATE, P.PROJECT_UPDATE):
        denied(outsider, permission, policy.RULE_NO_BASE_ROLE)
    # A team viewer is an authenticated principal too.
    allowed(facts(user(), OPEN_PROJECT, team_role=VIEWER), P.RUN_CREATE, policy.RULE_OPEN)


def test_public_project_lets_anyone_read():
    for principal in (ANONYMOUS, user("mallory"), service_account(team=OTHER_TEAM)):
        allowed(facts(principal, PUBLIC_PROJECT), P.RUN_READ, policy.RULE_PUBLIC)


def test_public_project_only_team_submits():
    denied(facts(user("mallory"), PUBLIC_PROJECT), P.RUN_CREATE, policy.RULE_NO_BASE_ROLE)
    denied(facts(user("mallory"), PUBLIC_PROJECT), P.REPORT_CREATE, policy.RULE_NO_BASE_ROLE)
    allowed(facts(user(), PUBLIC_PROJECT, team_role=MEMBER), P.RUN_CREATE, policy.RULE_TEAM_ROLE)


def test_team_project_denies_outsiders():
    outsider = facts(user("mallory"), TEAM_PROJECT)
    for permission in (P.PROJECT_READ, P.RUN_READ, P.RUN_CREATE):
        denied(outsider, permission, policy.RULE_NO_BASE_ROLE)
    allowed(facts(user(), TEAM_PROJECT, team_role=VIEWER), P.RUN_READ, policy.RULE_TEAM_ROLE)
    allowed(facts(user(), TEAM_PROJECT, team_role=MEMBER), P.RUN_CREATE, policy.RULE_TEAM_ROLE)


def test_restricted_project_needs_invitation():
    uninvited = facts(user(), RESTRICTED_PROJECT, team_role=MEMBER)
    for permission in (P.PROJECT_READ, P.RUN_READ, P.RUN_CREATE):
        denied(uninvited, permission, policy.RULE_RESTRICTED_MEMBERSHIP)
    invited = facts(user(), RESTRICTED_PROJECT, team_role=MEMBER, invited=True)
    allowed(invited, P.RUN_CREATE, policy.RULE_RESTRICTED_MEMBERSHIP)
    denied(invited, P.RUN_DELETE, policy.RULE_RESTRICTED_MEMBERSHIP)  # tracks the team role
    # An invitation alone does not make an outsider a team member.
    denied(
        facts(user("mallory"), RESTRICTED_PROJECT, invited=True),
        P.RUN_READ,
        policy.RULE_RESTRICTED_MEMBERSHIP,
    )


def test_restricted_project_override_applies():
    promoted = facts(user(), RESTRICTED_PROJECT, team_role=MEMBER, invited=True, project_role=ADMIN)
    allowed(promoted, P.RUN_DELETE, policy.RULE_PROJECT_OVERRIDE)
    demoted = facts(user(), RESTRICTED_PROJECT, team_role=ADMIN, invited=True, project_role=VIEWER)
    allowed(demoted, P.RUN_READ, policy.RULE_PROJECT_OVERRIDE)
    denied(demoted, P.RUN_CREATE, policy.RULE_PROJECT_OVERRIDE)


def test_changing_team_to_restricted_drops_uninvited_members_and_back_restores_them():
    member = {"team_role": MEMBER}
    allowed(facts(user(), TEAM_PROJECT, **member), P.RUN_READ, policy.RULE_TEAM_ROLE)
    denied(
        facts(user(), RESTRICTED_PROJECT, **member), P.RUN_READ, policy.RULE_RESTRICTED_MEMBERSHIP
    )


def test_team_admin_sees_restricted_project_but_not_its_runs_until_joining():
    before = facts(user(), RESTRICTED_PROJECT, team_role=ADMIN)
    allowed(before, P.PROJECT_READ, policy.RULE_RESTRICTED_TEAM_ADMIN)
    allowed(before, P.PROJECT_JOIN_RESTRICTED, policy.RULE_RESTRICTED_TEAM_ADMIN)
    for permission in (P.RUN_READ, P.ARTIFACT_READ, P.PROJECT_UPDATE, P.RUN_CREATE):
        denied(before, permission, policy.RULE_RESTRICTED_MEMBERSHIP)
    joined = facts(user(), RESTRICTED_PROJECT, team_role=ADMIN, invited=True)
    allowed(joined, P.RUN_READ, policy.RULE_RESTRICTED_MEMBERSHIP)
    allowed(joined, P.RUN_DELETE, policy.RULE_RESTRICTED_MEMBERSHIP)


def test_only_holders_of_join_restricted_may_join():
    denied(
        facts(user(), RESTRICTED_PROJECT, team_role=MEMBER),
        P.PROJECT_JOIN_RESTRICTED,
        policy.RULE_RESTRICTED_MEMBERSHIP,
    )
    joiner = custom("Joiner", TeamRole.MEMBER, P.PROJECT_JOIN_RESTRICTED)
    f = facts(user(), RESTRICTED_PROJECT, team_role=joiner)
    allowed(f, P.PROJECT_JOIN_RESTRICTED, policy.RULE_RESTRICTED_TEAM_ADMIN)
    denied(f, P.RUN_READ, policy.RULE_RESTRICTED_MEMBERSHIP)


def test_who_may_change_visibility():
    allowed(
        facts(user(org_role=OrgRole.ADMIN), TEAM_PROJECT),
        P.PROJECT_UPDATE,
        policy.RULE_ORG_ADMIN_EXTRAS,
    )
    allowed(facts(user(), TEAM_PROJECT, team_role=ADMIN), P.PROJECT_UPDATE, policy.RULE_TEAM_ROLE)
    owned = project(Visibility.TEAM, owner="alice")
    allowed(facts(user(), owned, team_role=MEMBER), P.PROJECT_UPDATE, policy.RULE_OWNER_EXTRAS)
    denied(facts(user(), TEAM_PROJECT, team_role=MEMBER), P.PROJECT_UPDATE, policy.RULE_TEAM_ROLE)


def test_restricted_project_whose_owner_left_is_managed_by_admins_only():
    orphaned = project(Visibility.RESTRICTED, owner="alice")
    denied(facts(user(), orphaned, invited=True), P.PROJECT_UPDATE, policy.RULE_OWNER_EXTRAS)
    flagged = project(Visibility.RESTRICTED, owner="alice", owner_needed=True)
    denied(
        facts(user(), flagged, team_role=MEMBER, invited=True),
        P.PROJECT_MANAGE_ACCESS,
        policy.RULE_OWNER_EXTRAS,
    )
    allowed(
        facts(user("bob"), flagged, team_role=ADMIN, invited=True),
        P.PROJECT_UPDATE,
        policy.RULE_RESTRICTED_MEMBERSHIP,
    )
    allowed(
        facts(user("root", org_role=OrgRole.ADMIN), flagged),
        P.PROJECT_UPDATE,
        policy.RULE_ORG_ADMIN_EXTRAS,
    )
    # While the owner is still in the team, it manages the project.
    allowed(
        facts(user(), orphaned, team_role=MEMBER, invited=True),
        P.PROJECT_UPDATE,
        policy.RULE_OWNER_EXTRAS,
    )


# --- project-level roles ----------------------------------------------------------------------


def test_project_override_tracks_team_role():
    # No override: the project role is the team role, whatever it becomes.
    denied(facts(user(), TEAM_PROJECT, team_role=VIEWER), P.RUN_CREATE, policy.RULE_TEAM_ROLE)
    allowed(facts(user(), TEAM_PROJECT, team_role=MEMBER), P.RUN_CREATE, policy.RULE_TEAM_ROLE)
    allowed(facts(user(), TEAM_PROJECT, team_role=ADMIN), P.RUN_DELETE, policy.RULE_TEAM_ROLE)


def test_project_override_stays_when_team_role_changes():
    for team_role in (MEMBER, ADMIN):
        f = facts(user(), TEAM_PROJECT, team_role=team_role, project_role=VIEWER)
        denied(f, P.RUN_CREATE, policy.RULE_PROJECT_OVERRIDE)
        allowed(f, P.RUN_READ, policy.RULE_PROJECT_OVERRIDE)


def test_team_viewer_cannot_be_given_a_project_role():
    stale = facts(user(), TEAM_PROJECT, team_role=VIEWER, project_role=ADMIN)
    denied(stale, P.RUN_CREATE, policy.RULE_TEAM_ROLE)
    decision = policy.decide(stale, P.RUN_CREATE)
    assert (policy.RULE_PROJECT_OVERRIDE, "skip") in [(s.rule, s.outcome) for s in decision.trace]


def test_project_roles_apply_in_team_and_restricted_projects_only():
    for visibility in (Visibility.OPEN, Visibility.PUBLIC):
        f = facts(user(), project(visibility), team_role=MEMBER, project_role=VIEWER)
        allowed(f, P.RUN_UPDATE, policy.RULE_TEAM_ROLE)
    f = facts(user(), TEAM_PROJECT, team_role=MEMBER, project_role=VIEWER)
    denied(f, P.RUN_UPDATE, policy.RULE_PROJECT_OVERRIDE)


# --- deciding: base roles of service accounts, extras, personal entities ----------------------


def test_org_scoped_service_account_is_member_on_non_restricted_projects():
    bot = service_account("bot", scope="org", team=OTHER_TEAM)
    for visibility in (Visibility.TEAM, Visibility.PUBLIC, Visibility.OPEN):
        f = facts(bot, project(visibility))
        allowed(f, P.RUN_CREATE, policy.RULE_ORG_SERVICE_ACCOUNT)
        allowed(f, P.ARTIFACT_UPDATE, policy.RULE_ORG_SERVICE_ACCOUNT)
        denied(f, P.RUN_DELETE, policy.RULE_ORG_SERVICE_ACCOUNT)
    allowed(facts(bot, TEAM), P.PROJECT_CREATE, policy.RULE_ORG_SERVICE_ACCOUNT)


def test_org_scoped_service_account_of_another_org_is_an_outsider():
    foreign = TeamFacts(id="team-x", org_id="org-2", name="x")
    bot = service_account("bot", scope="org", team=foreign)
    denied(facts(bot, TEAM_PROJECT), P.RUN_READ, policy.RULE_NO_BASE_ROLE)


def test_org_scoped_service_account_needs_explicit_membership_in_restricted():
    bot = service_account("bot", scope="org", team=OTHER_TEAM)
    denied(facts(bot, RESTRICTED_PROJECT), P.RUN_READ, policy.RULE_RESTRICTED_MEMBERSHIP)
    added = facts(bot, RESTRICTED_PROJECT, invited=True)
    allowed(added, P.RUN_CREATE, policy.RULE_RESTRICTED_MEMBERSHIP)
    denied(added, P.RUN_DELETE, policy.RULE_RESTRICTED_MEMBERSHIP)


def test_team_scoped_service_account_reads_and_writes_its_teams_projects():
    f = facts(service_account(), TEAM_PROJECT, team_role=SERVICE)
    allowed(f, P.RUN_CREATE, policy.RULE_TEAM_ROLE)
    allowed(f, P.ARTIFACT_READ, policy.RULE_TEAM_ROLE)


def test_team_scoped_service_account_needs_explicit_membership_in_restricted():
    denied(
        facts(service_account(), RESTRICTED_PROJECT, team_role=SERVICE),
        P.RUN_READ,
        policy.RULE_RESTRICTED_MEMBERSHIP,
    )
    added = facts(service_account(), RESTRICTED_PROJECT, team_role=SERVICE, invited=True)
    allowed(added, P.RUN_CREATE, policy.RULE_RESTRICTED_MEMBERSHIP)


def test_team_scoped_service_account_can_submit_to_open_project_of_other_team():
    f = facts(service_account(team=OTHER_TEAM), OPEN_PROJECT)
    allowed(f, P.RUN_CREATE, policy.RULE_OPEN)
    denied(f, P.RUN_UPDATE, policy.RULE_NO_BASE_ROLE)


def test_team_scoped_service_account_cannot_submit_to_team_project_of_other_team():
    stranger = service_account(team=OTHER_TEAM)
    denied(facts(stranger, TEAM_PROJECT), P.RUN_CREATE, policy.RULE_NO_BASE_ROLE)
    denied(facts(stranger, PUBLIC_PROJECT), P.RUN_CREATE, policy.RULE_NO_BASE_ROLE)
    # Not even when added to a restricted project of the other team.
    denied(
        facts(stranger, RESTRICTED_PROJECT, invited=True),
        P.RUN_CREATE,
        policy.RULE_RESTRICTED_MEMBERSHIP,
    )


def test_org_admin_manages_every_project_but_reads_no_run_data_without_membership():
    root = user("root", org_role=OrgRole.ADMIN)
    for target in (TEAM_PROJECT, RESTRICTED_PROJECT, project(Visibility.TEAM, team=OTHER_TEAM)):
        f = facts(root, target)
        for permission in (P.PROJECT_READ, P.PROJECT_UPDATE, P.PROJECT_MANAGE_ACCESS):
            allowed(f, permission, policy.RULE_ORG_ADMIN_EXTRAS)
        first_step = policy.decide(f, P.RUN_READ).trace[0].rule
        for permission in (P.RUN_READ, P.ARTIFACT_READ, P.REPORT_READ, P.TRACE_READ, P.RUN_CREATE):
            denied(f, permission, first_step)
        assert first_step in (policy.RULE_NO_BASE_ROLE, policy.RULE_RESTRICTED_MEMBERSHIP)
    # With a membership the data comes through the team role.
    allowed(facts(root, TEAM_PROJECT, team_role=VIEWER), P.RUN_READ, policy.RULE_TEAM_ROLE)


def test_org_admin_extras_reach_personal_projects():
    f = facts(user("root", org_role=OrgRole.ADMIN), project(Visibility.TEAM, team=PERSONAL))
    allowed(f, P.PROJECT_MANAGE_ACCESS, policy.RULE_ORG_ADMIN_EXTRAS)
    denied(f, P.RUN_READ, policy.RULE_NO_BASE_ROLE)


def test_org_admin_manages_every_team():
    f = facts(user("root", org_role=OrgRole.ADMIN), TEAM)
    for permission in (P.TEAM_MANAGE_MEMBERS, P.TEAM_UPDATE, P.TEAM_MANAGE_SERVICE_ACCOUNTS):
        allowed(f, permission, policy.RULE_ORG_ADMIN_EXTRAS)
    denied(f, P.PROJECT_CREATE, policy.RULE_NO_BASE_ROLE)  # creating work needs membership


def test_org_admin_extras_stop_at_the_organizations_edge():
    """A team of another organization gets none of an org admin's extras, even if facts about
    it reached the policy: an org admin manages its own org's teams and projects only."""
    elsewhere = TeamFacts(id="team-x", org_id="org-2", name="x")
    root = user("root", org_role=OrgRole.ADMIN)
    denied(facts(root, elsewhere), P.TEAM_UPDATE, policy.RULE_NO_BASE_ROLE)
    denied(facts(root, project(Visibility.TEAM, team=elsewhere)), P.PROJECT_UPDATE,
           policy.RULE_NO_BASE_ROLE)  # fmt: skip
    # The same admin on its own org's team: the extras decide.
    allowed(facts(root, TEAM), P.TEAM_UPDATE, policy.RULE_ORG_ADMIN_EXTRAS)


def test_org_admin_may_add_itself_to_any_team():
    f = facts(user("root", org_role=OrgRole.ADMIN), TEAM)
    allowed(f, P.TEAM_MANAGE_MEMBERS, policy.RULE_ORG_ADMIN_EXTRAS, acting_on_self=True)


def test_org_admin_may_not_self_join_when_admin_team_access_disabled():
    disabled = InstanceFacts(disable_admin_team_access=True)
    f = facts(user("root", org_role=OrgRole.ADMIN), TEAM, instance=disabled)
    denied(f, P.TEAM_MANAGE_MEMBERS, policy.RULE_ADMIN_SELF_JOIN, acting_on_self=True)
    # Adding someone else stays allowed, and so does a team admin adding itself.
    allowed(f, P.TEAM_MANAGE_MEMBERS, policy.RULE_ORG_ADMIN_EXTRAS)
    admin_of_team = facts(
        user("root", org_role=OrgRole.ADMIN), TEAM, team_role=ADMIN, instance=disabled
    )
    allowed(admin_of_team, P.TEAM_MANAGE_MEMBERS, policy.RULE_TEAM_ROLE, acting_on_self=True)


def test_org_admin_of_another_org_gets_no_extras():
    outsider = user("root", org_role=None)  # an admin elsewhere: no membership of this org
    denied(facts(outsider, TEAM_PROJECT), P.PROJECT_UPDATE, policy.RULE_NO_BASE_ROLE)


def test_project_owner_may_update_and_manage_access():
    owned = project(Visibility.TEAM, owner="alice")
    f = facts(user(), owned, team_role=MEMBER)
    allowed(f, P.PROJECT_UPDATE, policy.RULE_OWNER_EXTRAS)
    allowed(f, P.PROJECT_MANAGE_ACCESS, policy.RULE_OWNER_EXTRAS)
    denied(f, P.PROJECT_DELETE, policy.RULE_TEAM_ROLE)  # owning is not administering
    denied(facts(user("bob"), owned, team_role=MEMBER), P.PROJECT_UPDATE, policy.RULE_TEAM_ROLE)


@pytest.mark.parametrize("visibility", [Visibility.TEAM, Visibility.OPEN, Visibility.PUBLIC])
def test_an_owner_who_left_the_team_has_no_owner_extras(visibility):
    # It is anyone else now: it may not make the team's project public, or give it away (ours).
    owned = project(visibility, owner="alice")
    for permission in (P.PROJECT_UPDATE, P.PROJECT_MANAGE_ACCESS):
        denied(facts(user(), owned), permission, policy.RULE_OWNER_EXTRAS)
    # Nor one who left the organization, still a member of the team's rows or not.
    gone = user(org_role=None)
    denied(facts(gone, owned, team_role=MEMBER), P.PROJECT_UPDATE, policy.RULE_OWNER_EXTRAS)


def test_org_viewer_owner_gets_no_owner_extras():
    owned = project(Visibility.TEAM, owner="alice")
    f = facts(user(org_role=OrgRole.VIEWER), owned, team_role=MEMBER)
    denied(f, P.PROJECT_UPDATE, policy.RULE_OWNER_EXTRAS)
    allowed(f, P.PROJECT_READ, policy.RULE_TEAM_ROLE)


def test_personal_entity_owner_administers_it_and_others_have_no_role():
    personal_project = project(Visibility.TEAM, team=PERSONAL)
    allowed(facts(user(), personal_project), P.RUN_DELETE, policy.RULE_PERSONAL_OWNER)
    allowed(facts(user(), PERSONAL), P.PROJECT_CREATE, policy.RULE_PERSONAL_OWNER)
    denied(facts(user("bob"), personal_project), P.RUN_READ, policy.RULE_NO_BASE_ROLE)
    bot = service_account("bot", scope="org")
    denied(facts(bot, personal_project), P.RUN_READ, policy.RULE_NO_BASE_ROLE)


def test_personal_entity_read_only_when_disabled():
    disabled = InstanceFacts(disable_personal_entity=True)
    f = facts(user(), project(Visibility.TEAM, team=PERSONAL), instance=disabled)
    allowed(f, P.RUN_READ, policy.RULE_PERSONAL_OWNER)
    for permission in (P.RUN_CREATE, P.RUN_DELETE, P.PROJECT_UPDATE):
        denied(f, permission, policy.RULE_PERSONAL_DISABLED)
    denied(
        facts(user(), PERSONAL, instance=disabled), P.PROJECT_CREATE, policy.RULE_PERSONAL_DISABLED
    )
    # Team projects are untouched by the switch.
    allowed(
        facts(user(), TEAM_PROJECT, team_role=MEMBER, instance=disabled),
        P.RUN_CREATE,
        policy.RULE_TEAM_ROLE,
    )


# --- credentials ------------------------------------------------------------------------------


def test_key_scoped_to_run_create_can_do_nothing_else():
    scoped = user(scopes=frozenset({P.RUN_CREATE}))
    f = facts(scoped, TEAM_PROJECT, team_role=ADMIN)
    allowed(f, P.RUN_CREATE, policy.RULE_TEAM_ROLE)
    for permission in (P.RUN_READ, P.RUN_DELETE, P.PROJECT_UPDATE):
        denied(f, permission, policy.RULE_KEY_SCOPES)
    denied(facts(scoped, TEAM, team_role=ADMIN), P.TEAM_UPDATE, policy.RULE_KEY_SCOPES)
    denied(facts(scoped), P.ORG_READ, policy.RULE_KEY_SCOPES)


def test_key_scope_grants_nothing_by_itself():
    scoped = user(scopes=frozenset({P.RUN_DELETE}))
    denied(facts(scoped, TEAM_PROJECT, team_role=MEMBER), P.RUN_DELETE, policy.RULE_TEAM_ROLE)


def test_access_token_cannot_manage_auth():
    f = facts(user(org_role=OrgRole.ADMIN, credential=CredentialKind.ACCESS_TOKEN))
    denied(f, P.ORG_MANAGE_AUTH, policy.RULE_CREDENTIAL_KIND)
    allowed(f, P.ORG_MANAGE_USERS, policy.RULE_ORG_ADMIN)


def test_unauthenticated_credential_only_reads():
    f = facts(user(credential=CredentialKind.NONE), TEAM_PROJECT, team_role=MEMBER)
    allowed(f, P.RUN_READ, policy.RULE_TEAM_ROLE)
    denied(f, P.RUN_CREATE, policy.RULE_CREDENTIAL_KIND)


# --- the decision and its trace ---------------------------------------------------------------


def test_trace_explains_each_step_in_words():
    f = facts(user(models=SeatType.VIEWER), TEAM_PROJECT, team_role=MEMBER)
    decision = policy.decide(f, P.RUN_CREATE)
    body = decision.as_dict()
    assert body["allowed"] is False
    assert body["permission"] == "run:create"
    assert body["rule"] == policy.RULE_CAP_MODELS_SEAT
    assert body["trace"] == [
        {"rule": policy.RULE_TEAM_ROLE, "outcome": "grant", "detail": "team role member in ml"},
        {
            "rule": policy.RULE_CAP_MODELS_SEAT,
            "outcome": "cap",
            "detail": "Models seat viewer: removes artifact:create, artifact:update, "
            "project:create, report:create, report:update, run:create, run:stop, run:update",
        },
        {"rule": policy.RULE_RESULT, "outcome": "deny", "detail": "run:create not granted"},
    ]


@pytest.mark.parametrize("permission", [P.RUN_READ, P.RUN_DELETE])
def test_trace_ends_with_the_result(permission: Permission):
    decision = policy.decide(facts(user(), TEAM_PROJECT, team_role=MEMBER), permission)
    last = decision.trace[-1]
    assert last.rule == policy.RULE_RESULT
    assert last.outcome == ("allow" if decision.allowed else "deny")
    assert last.detail.startswith(permission.value)
