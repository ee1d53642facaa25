"""ACCESS.md rules that are not permissions: last admin, private-only teams, run moves, project
roles, overrides, minting API keys, and service-account attribution (pure functions in
``authz.policy``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rolecall.authz import policy, roles
from rolecall.authz.facts import CredentialKind, PrincipalFacts, PrincipalKind, RoleFacts
from rolecall.authz.permissions import Permission
from rolecall.authz.roles import TeamRole, Visibility

OPEN, PUBLIC, TEAM, RESTRICTED = (
    Visibility.OPEN,
    Visibility.PUBLIC,
    Visibility.TEAM,
    Visibility.RESTRICTED,
)

# --- the last active org admin ----------------------------------------------------------------


def test_last_active_admin_cannot_stop_being_one():
    # Demoting, deactivating, removing and deleting all leave the user no active admin.
    violation = policy.check_last_admin(
        is_active_admin=True, stays_active_admin=False, active_admin_count=1
    )
    assert violation is not None
    assert violation.rule == policy.RULE_LAST_ADMIN
    assert "last active admin" in violation.message


def test_an_admin_may_step_down_while_another_remains():
    assert (
        policy.check_last_admin(
            is_active_admin=True, stays_active_admin=False, active_admin_count=2
        )
        is None
    )


def test_last_admin_rule_ignores_non_admins_and_changes_that_keep_the_admin():
    assert (
        policy.check_last_admin(
            is_active_admin=False, stays_active_admin=False, active_admin_count=1
        )
        is None
    )
    assert (
        policy.check_last_admin(is_active_admin=True, stays_active_admin=True, active_admin_count=1)
        is None
    )


# --- an identity other organizations share ---------------------------------------------------


def test_a_user_of_other_organizations_too_keeps_its_identity():
    violation = policy.check_identity_change(other_organizations=1)
    assert violation is not None
    assert violation.rule == policy.RULE_SHARED_IDENTITY
    assert "other organizations" in violation.message


def test_a_user_of_this_organization_alone_may_be_renamed_and_re_addressed():
    assert policy.check_identity_change(other_organizations=0) is None


# --- private-only teams -----------------------------------------------------------------------


@pytest.mark.parametrize("new", [OPEN, PUBLIC])
def test_private_only_team_cannot_create_open_or_public_projects(new: Visibility):
    violation = policy.check_visibility_change(private_only=True, current=None, new=new)
    assert violation is not None
    assert violation.rule == policy.RULE_PRIVATE_ONLY
    assert new.value in violation.message


@pytest.mark.parametrize("current", [TEAM, RESTRICTED, OPEN, PUBLIC])
@pytest.mark.parametrize("new", [OPEN, PUBLIC])
def test_private_only_team_cannot_change_projects_to_open_or_public(
    current: Visibility, new: Visibility
):
    violation = policy.check_visibility_change(private_only=True, current=current, new=new)
    if current is new:
        assert violation is None  # projects already open or public keep their scope (ours)
    else:
        assert violation is not None
        assert violation.rule == policy.RULE_PRIVATE_ONLY


@pytest.mark.parametrize("current", [None, TEAM, RESTRICTED, OPEN, PUBLIC])
@pytest.mark.parametrize("new", [TEAM, RESTRICTED])
def test_private_only_team_may_always_go_team_or_restricted(
    current: Visibility | None, new: Visibility
):
    assert policy.check_visibility_change(private_only=True, current=current, new=new) is None


@pytest.mark.parametrize("current", [None, TEAM, RESTRICTED, OPEN, PUBLIC])
@pytest.mark.parametrize("new", list(Visibility))
def test_other_teams_choose_any_visibility(current: Visibility | None, new: Visibility):
    assert policy.check_visibility_change(private_only=False, current=current, new=new) is None


# --- moving runs ------------------------------------------------------------------------------


@pytest.mark.parametrize("destination", list(Visibility))
def test_runs_never_move_out_of_a_restricted_project(destination: Visibility):
    violation = policy.check_run_move(source=RESTRICTED, destination=destination)
    assert violation is not None
    assert violation.rule == policy.RULE_RUN_MOVE


@pytest.mark.parametrize("source", [OPEN, PUBLIC, TEAM])
@pytest.mark.parametrize("destination", list(Visibility))
def test_runs_may_move_between_other_projects_and_into_restricted(
    source: Visibility, destination: Visibility
):
    assert policy.check_run_move(source=source, destination=destination) is None


# --- project roles ----------------------------------------------------------------------------


def _predefined(role: TeamRole) -> RoleFacts:
    return RoleFacts(role.value, roles.PREDEFINED[role], role)


def test_view_only_member_cannot_be_given_a_project_role():
    violation = policy.check_project_role_assignable(_predefined(TeamRole.VIEWER))
    assert violation is not None
    assert violation.rule == policy.RULE_VIEWER_PROJECT_ROLE


@pytest.mark.parametrize("role", [TeamRole.MEMBER, TeamRole.ADMIN, TeamRole.SERVICE])
def test_other_members_may_be_given_a_project_role(role: TeamRole):
    assert policy.check_project_role_assignable(_predefined(role)) is None


def test_custom_role_holders_and_non_members_may_be_given_a_project_role():
    reader = RoleFacts(
        "Reader", roles.effective_permissions(TeamRole.VIEWER, [Permission.RUN_CREATE]), None, "r1"
    )
    assert policy.check_project_role_assignable(reader) is None
    assert policy.check_project_role_assignable(None) is None


def test_project_role_different_from_team_role_is_an_override():
    assert policy.override_after_change("member", "admin") == "admin"
    assert policy.override_after_change("member", "custom:r1") == "custom:r1"


def test_project_role_equal_to_team_role_returns_to_tracking():
    assert policy.override_after_change("member", "member") is None


def test_team_role_change_that_meets_the_override_returns_it_to_tracking():
    override = policy.override_after_change("member", "admin")
    assert override == "admin"
    # The team role later becomes admin too: the override is no longer one.
    assert policy.override_after_change("admin", override) is None


def test_no_project_role_means_tracking():
    assert policy.override_after_change("viewer", None) is None


# --- minting API keys -------------------------------------------------------------------------

NOW = datetime(2026, 12, 1, tzinfo=UTC)
RUN_CREATE = frozenset({Permission.RUN_CREATE})
RUN_AND_READ = frozenset({Permission.RUN_CREATE, Permission.ORG_READ})


def _mint(
    credential=CredentialKind.API_KEY,
    held=None,
    ends=None,
    scopes=None,
    expires=None,
    *,
    for_itself=True,
):
    return policy.check_key_mint(
        credential=credential,
        credential_scopes=held,
        credential_expires_at=ends,
        scopes=scopes,
        expires_at=expires,
        for_itself=for_itself,
    )


@pytest.mark.parametrize("expires", [None, NOW + timedelta(minutes=5)])
def test_an_access_token_mints_no_key_at_all(expires):
    violation = _mint(CredentialKind.ACCESS_TOKEN, ends=NOW + timedelta(hours=1), expires=expires)
    assert violation is not None
    assert violation.rule == policy.RULE_CREDENTIAL_MINT
    assert "access token" in violation.message


@pytest.mark.parametrize("scopes", [None, RUN_AND_READ, frozenset({Permission.PROJECT_CREATE})])
def test_a_scoped_key_mints_no_key_beyond_its_scopes(scopes):
    violation = _mint(held=RUN_CREATE, scopes=scopes)
    assert violation is not None
    assert violation.rule == policy.RULE_CREDENTIAL_MINT
    assert "its own scopes: run:create" in violation.message


@pytest.mark.parametrize("expires", [None, NOW + timedelta(hours=1, seconds=1)])
def test_an_expiring_key_mints_no_key_that_outlives_it(expires):
    violation = _mint(ends=NOW + timedelta(hours=1), expires=expires)
    assert violation is not None
    assert violation.rule == policy.RULE_CREDENTIAL_MINT
    assert "must expire by then" in violation.message


@pytest.mark.parametrize("credential", [CredentialKind.API_KEY, CredentialKind.SESSION])
def test_keys_within_the_credential_are_minted(credential):
    ends = NOW + timedelta(hours=1)
    assert _mint(credential) is None  # unscoped and never expiring: any key
    assert _mint(credential, scopes=RUN_CREATE, expires=NOW) is None
    assert _mint(held=RUN_AND_READ, scopes=RUN_CREATE) is None
    assert _mint(held=RUN_CREATE, scopes=RUN_CREATE) is None
    assert _mint(ends=ends, expires=ends) is None


def test_an_access_token_makes_a_service_accounts_key_only_within_its_own_life():
    # The account's key acts with the account's rights, not the token's owner's.
    ends = NOW + timedelta(hours=1)
    token = {"credential": CredentialKind.ACCESS_TOKEN, "ends": ends, "for_itself": False}
    assert _mint(**token, expires=ends) is None
    for expires in (None, ends + timedelta(seconds=1)):
        violation = _mint(**token, expires=expires)
        assert violation is not None
        assert violation.rule == policy.RULE_CREDENTIAL_MINT
        assert "this access token expires at" in violation.message


def test_a_scoped_or_expiring_key_makes_no_account_key_beyond_itself():
    ends = NOW + timedelta(hours=1)
    assert _mint(held=RUN_CREATE, for_itself=False) is not None  # unscoped: more than it may
    assert _mint(held=RUN_CREATE, scopes=RUN_CREATE, for_itself=False) is None
    assert _mint(ends=ends, for_itself=False) is not None  # never expires: outlives it
    assert _mint(ends=ends, expires=ends, for_itself=False) is None


# --- service-account attribution --------------------------------------------------------------


def _account(scope: str) -> PrincipalFacts:
    return PrincipalFacts(
        kind=PrincipalKind.SERVICE_ACCOUNT,
        id="sa1",
        name="ci",
        credential=CredentialKind.API_KEY,
        sa_scope=scope,
        sa_team_id="team-1",
        sa_org_id="org-1",
    )


@pytest.mark.parametrize("requested", [None, ""])
def test_attribution_without_a_named_user_stays_with_the_account(requested: str | None):
    result = policy.decide_attribution(
        account=_account("team"), requested=requested, user_id=None, user_active_in_scope=False
    )
    assert (result.user_id, result.honoured) == (None, False)
    assert (result.step.rule, result.step.outcome) == (policy.RULE_ATTRIBUTION, "skip")


def test_attribution_to_an_unknown_user_is_refused_with_a_reason():
    result = policy.decide_attribution(
        account=_account("org"), requested="ghost", user_id=None, user_active_in_scope=False
    )
    assert (result.user_id, result.honoured) == (None, False)
    assert result.step.outcome == "deny"
    assert "ghost" in result.step.detail


@pytest.mark.parametrize(("scope", "word"), [("team", "team"), ("org", "organization")])
def test_attribution_to_a_user_outside_the_accounts_scope_is_refused(scope: str, word: str):
    result = policy.decide_attribution(
        account=_account(scope), requested="bob", user_id="u-bob", user_active_in_scope=False
    )
    assert (result.user_id, result.honoured) == (None, False)
    assert result.step.outcome == "deny"
    assert f"not an active member of the account's {word}" in result.step.detail


@pytest.mark.parametrize("scope", ["team", "org"])
def test_attribution_to_an_active_member_of_the_scope_is_honoured(scope: str):
    result = policy.decide_attribution(
        account=_account(scope), requested="alice", user_id="u-alice", user_active_in_scope=True
    )
    assert (result.user_id, result.honoured) == ("u-alice", True)
    assert result.step.as_dict() == {
        "rule": policy.RULE_ATTRIBUTION,
        "outcome": "allow",
        "detail": "attributed to alice",
    }
