"""Properties of the policy over random but valid facts (hypothesis).

Valid means what the loader can produce: team memberships only in real teams, for users and for
team-scoped service accounts of that team; org-scoped service accounts hold no team membership;
anonymous holds none at all.
"""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

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
from rolecall.authz.permissions import Permission
from rolecall.authz.roles import OrgRole, SeatType, TeamRole, Visibility

ORG = OrgFacts(id="org-1", name="acme")
TEAMS = [
    TeamFacts(id="team-ml", org_id=ORG.id, name="ml"),
    TeamFacts(id="team-cv", org_id=ORG.id, name="cv", private_only=True),
    TeamFacts(
        id="p-alice", org_id=ORG.id, name="alice", kind="personal", personal_owner_id="alice"
    ),
]
PERMISSIONS = list(Permission)
RULES = {value for name, value in vars(policy).items() if name.startswith("RULE_")}
AUTHENTICATED = [CredentialKind.API_KEY, CredentialKind.SESSION, CredentialKind.ACCESS_TOKEN]
PROFILE = settings(max_examples=300, deadline=None)

# --- strategies -------------------------------------------------------------------------------

permission_sets = st.frozensets(st.sampled_from(PERMISSIONS), max_size=6)
key_scopes = st.none() | permission_sets


def predefined(role: TeamRole) -> RoleFacts:
    return RoleFacts(role.value, roles.PREDEFINED[role], role)


@st.composite
def custom_roles(draw: st.DrawFn) -> RoleFacts:
    inherited = draw(st.sampled_from(roles.INHERITABLE))
    extra = draw(permission_sets)
    return RoleFacts("Custom", roles.effective_permissions(inherited, extra), None, "custom-1")


user_roles = st.sampled_from([TeamRole.ADMIN, TeamRole.MEMBER, TeamRole.VIEWER]).map(predefined)
project_roles = user_roles | custom_roles()

users = st.builds(
    PrincipalFacts,
    kind=st.just(PrincipalKind.USER),
    id=st.sampled_from(["alice", "bob"]),
    name=st.just("someone"),
    credential=st.sampled_from(AUTHENTICATED),
    key_scopes=key_scopes,
    org_role=st.none() | st.sampled_from(list(OrgRole)),
    org_active=st.booleans(),
    models_seat=st.sampled_from(list(SeatType)),
    weave_seat=st.sampled_from(list(SeatType)),
)
service_accounts = st.builds(
    PrincipalFacts,
    kind=st.just(PrincipalKind.SERVICE_ACCOUNT),
    id=st.just("sa-1"),
    name=st.just("ci"),
    credential=st.sampled_from(AUTHENTICATED),
    key_scopes=key_scopes,
    sa_scope=st.sampled_from(["org", "team"]),
    sa_team_id=st.sampled_from([t.id for t in TEAMS if t.kind == "team"]),
    sa_org_id=st.sampled_from([ORG.id, "org-2"]),
    sa_deleted=st.booleans(),
)
anonymous = st.just(PrincipalFacts(kind=PrincipalKind.ANONYMOUS))
principals = users | service_accounts | anonymous


def may_hold_team_role(principal: PrincipalFacts, team: TeamFacts | None) -> bool:
    if team is None or team.kind != "team":
        return False
    if principal.kind is PrincipalKind.USER:
        return True
    return (
        principal.kind is PrincipalKind.SERVICE_ACCOUNT
        and principal.sa_scope == "team"
        and principal.sa_team_id == team.id
        and principal.sa_org_id == team.org_id
    )


@st.composite
def decision_facts(
    draw: st.DrawFn,
    principal: st.SearchStrategy[PrincipalFacts] = principals,
    teams: st.SearchStrategy[TeamFacts | None] = st.none() | st.sampled_from(TEAMS),
) -> DecisionFacts:
    """Facts about one principal on the org (no team), a team, or a project of a team."""
    p = draw(principal)
    team = draw(teams)
    project = None
    if team is not None and draw(st.booleans()):
        project = ProjectFacts(
            id="project-1",
            name="project",
            visibility=draw(st.sampled_from(list(Visibility))),
            team=team,
            owner_user_id=draw(st.sampled_from([None, "alice", "bob"])),
            owner_needed=draw(st.booleans()),
        )
    membership = MembershipFacts()
    if p.kind is not PrincipalKind.ANONYMOUS and team is not None:
        team_role = None
        if may_hold_team_role(p, team) and draw(st.booleans()):
            team_role = predefined(TeamRole.SERVICE) if p.kind is not PrincipalKind.USER else None
            team_role = team_role or draw(user_roles | custom_roles())
        membership = MembershipFacts(
            team_role=team_role,
            project_member=project is not None and draw(st.booleans()),
            project_role=draw(st.none() | project_roles) if project is not None else None,
        )
    return DecisionFacts(
        principal=p,
        org=ORG,
        team=team,
        project=project,
        membership=membership,
        instance=InstanceFacts(
            disable_personal_entity=draw(st.booleans()),
            disable_admin_team_access=draw(st.booleans()),
        ),
    )


REAL_TEAMS = st.sampled_from([t for t in TEAMS if t.kind == "team"])


@st.composite
def joinable_facts(draw: st.DrawFn) -> DecisionFacts:
    """Facts whose principal may hold a role in the target's team: a user, or a team-scoped
    service account of that team."""
    team = draw(REAL_TEAMS)
    own_accounts = service_accounts.map(
        lambda sa: replace(sa, sa_scope="team", sa_team_id=team.id, sa_org_id=team.org_id)
    )
    return draw(decision_facts(users | own_accounts, st.just(team)))


def perms(facts: DecisionFacts) -> frozenset[Permission]:
    return policy.effective_permissions(facts, [])


# --- caps never add ---------------------------------------------------------------------------


@PROFILE
@given(
    facts=decision_facts(users),
    org_viewer=st.booleans(),
    models=st.sampled_from(list(SeatType)),
    weave=st.sampled_from(list(SeatType)),
)
def test_org_viewer_role_and_seats_never_add_a_permission(
    facts: DecisionFacts, org_viewer: bool, models: SeatType, weave: SeatType
):
    full_seats = replace(facts.principal, models_seat=SeatType.FULL, weave_seat=SeatType.FULL)
    full = replace(facts, principal=full_seats)
    capped_principal = replace(full.principal, models_seat=models, weave_seat=weave)
    if org_viewer and capped_principal.org_role is not None:
        capped_principal = replace(capped_principal, org_role=OrgRole.VIEWER)
    capped = replace(full, principal=capped_principal)
    assert perms(capped) <= perms(full)
    if capped_principal.org_role is OrgRole.VIEWER and capped_principal.org_active:
        assert perms(capped) <= roles.READS


@PROFILE
@given(facts=decision_facts(users | service_accounts), scopes=permission_sets)
def test_key_scopes_never_add_a_permission(facts: DecisionFacts, scopes: frozenset[Permission]):
    unscoped = replace(facts, principal=replace(facts.principal, key_scopes=None))
    scoped = replace(facts, principal=replace(facts.principal, key_scopes=scopes))
    assert perms(scoped) <= perms(unscoped) & scopes


@PROFILE
@given(facts=decision_facts(users | service_accounts), credential=st.sampled_from(AUTHENTICATED))
def test_credential_kind_never_adds_a_permission(facts: DecisionFacts, credential: CredentialKind):
    unlimited = replace(
        facts, principal=replace(facts.principal, credential=CredentialKind.SESSION)
    )
    limited = replace(facts, principal=replace(facts.principal, credential=credential))
    assert perms(limited) <= perms(unlimited)
    if credential is CredentialKind.ACCESS_TOKEN:
        assert Permission.ORG_MANAGE_AUTH not in perms(limited)


# --- memberships never remove -----------------------------------------------------------------


@PROFILE
@given(facts=joinable_facts(), role=user_roles | custom_roles())
def test_adding_a_team_membership_never_removes_a_permission(facts: DecisionFacts, role: RoleFacts):
    if facts.principal.kind is PrincipalKind.SERVICE_ACCOUNT:
        role = predefined(TeamRole.SERVICE)
    outside = replace(facts, membership=replace(facts.membership, team_role=None))
    inside = replace(facts, membership=replace(facts.membership, team_role=role))
    assert perms(outside) <= perms(inside)


@PROFILE
@given(facts=decision_facts(users, REAL_TEAMS))
def test_upgrading_viewer_to_member_to_admin_never_removes_a_permission(facts: DecisionFacts):
    ladder = [TeamRole.VIEWER, TeamRole.MEMBER, TeamRole.ADMIN]
    held = [
        perms(replace(facts, membership=replace(facts.membership, team_role=predefined(r))))
        for r in ladder
    ]
    assert held[0] <= held[1] <= held[2]


# --- principals that hold nothing -------------------------------------------------------------


@PROFILE
@given(facts=decision_facts(users | service_accounts), permission=st.sampled_from(PERMISSIONS))
def test_deactivated_user_or_deleted_service_account_is_denied_everything(
    facts: DecisionFacts, permission: Permission
):
    p = facts.principal
    if p.kind is PrincipalKind.USER:
        gone = replace(p, org_role=p.org_role or OrgRole.MEMBER, org_active=False)
        rule = policy.RULE_DEACTIVATED
    else:
        gone, rule = replace(p, sa_deleted=True), policy.RULE_DELETED
    facts = replace(facts, principal=gone)
    assert perms(facts) == frozenset()
    for acting_on_self in (False, True):
        decision = policy.decide(facts, permission, acting_on_self=acting_on_self)
        assert not decision.allowed
        assert decision.deciding_rule == rule


@PROFILE
@given(facts=decision_facts(anonymous))
def test_anonymous_never_gets_a_write(facts: DecisionFacts):
    assert perms(facts) <= roles.READS


# --- the decision itself ----------------------------------------------------------------------


@PROFILE
@given(
    facts=decision_facts(),
    permission=st.sampled_from(PERMISSIONS),
    acting_on_self=st.booleans(),
)
def test_trace_is_complete_and_ends_with_the_result(
    facts: DecisionFacts, permission: Permission, acting_on_self: bool
):
    decision = policy.decide(facts, permission, acting_on_self=acting_on_self)
    assert decision.trace
    last = decision.trace[-1]
    if last.rule == policy.RULE_ADMIN_SELF_JOIN:
        assert acting_on_self and not decision.allowed
    else:
        assert last.rule == policy.RULE_RESULT
        assert last.outcome == ("allow" if decision.allowed else "deny")
    for step in decision.trace:
        assert step.rule in RULES
        assert step.outcome in {"grant", "cap", "deny", "allow", "skip"}
        assert step.detail.strip()
    rendered = decision.as_dict()
    assert rendered["rule"] == decision.deciding_rule


@PROFILE
@given(facts=decision_facts(), permission=st.sampled_from(PERMISSIONS))
def test_deciding_rule_is_a_step_that_fits_the_answer(facts: DecisionFacts, permission: Permission):
    decision = policy.decide(facts, permission)
    steps = [s for s in decision.trace if s.rule == decision.deciding_rule]
    assert steps, decision.as_dict()
    if decision.allowed:
        assert any(s.outcome == "grant" for s in steps), decision.as_dict()


@PROFILE
@given(
    facts=decision_facts(), permission=st.sampled_from(PERMISSIONS), acting_on_self=st.booleans()
)
def test_decide_is_deterministic(
    facts: DecisionFacts, permission: Permission, acting_on_self: bool
):
    first = policy.decide(facts, permission, acting_on_self=acting_on_self)
    second = policy.decide(facts, permission, acting_on_self=acting_on_self)
    assert first == second
    assert first.as_dict() == second.as_dict()


@PROFILE
@given(facts=decision_facts())
def test_decide_agrees_with_effective_permissions(facts: DecisionFacts):
    held = perms(facts)
    for permission in PERMISSIONS:
        assert policy.decide(facts, permission).allowed is (permission in held)
