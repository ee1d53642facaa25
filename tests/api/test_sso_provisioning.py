"""Just-in-time provisioning (the seeds' "Auto provision users"): what an SSO sign-in does to
users and team memberships, independent of the protocol that vouched for the identity."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from rolecall.audit.models import AuditEvent
from rolecall.errors import AuthenticationFailed
from rolecall.identity.models import BrowserSession
from rolecall.orgs.models import OrgMembership
from rolecall.sso.provisioning import ExternalIdentity, sign_in_external
from rolecall.teams.models import Team, TeamMembership
from rolecall.users.models import User
from tests import factories


def sign_in(db, org, settings, **identity):
    identity.setdefault("method", "oidc")
    return sign_in_external(
        db, org=org.org, identity=ExternalIdentity(**identity), settings=settings
    )


def events(db, action):
    return list(db.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def teams_of(db, user):
    query = (
        select(Team.name)
        .join(TeamMembership, TeamMembership.team_id == Team.id)
        .where(TeamMembership.user_id == user.id, Team.kind == "team")
    )
    return sorted(db.scalars(query))


def test_an_unknown_email_is_provisioned_as_member(db, org, settings):
    signed = sign_in(db, org, settings, email="New.Person@Example.org", full_name="New Person")

    user = db.scalars(select(User).where(User.email_key == "new.person@example.org")).one()
    membership = db.scalars(select(OrgMembership).where(OrgMembership.user_id == user.id)).one()
    assert (membership.role, membership.active) == ("member", True)
    assert user.full_name == "New Person"
    assert signed.browser_session.user_id == user.id
    assert signed.browser_session.method == "oidc"
    login = events(db, "auth.login")[-1]
    assert login.actor_name == user.username and "provisioned as member" in login.detail
    created = events(db, "user.create")[-1]
    assert created.actor_name == "sso:oidc"


def test_the_same_user_is_found_by_email_case_insensitively(db, org, settings):
    existing = factories.user(db, org.org, email="Ann@Example.org")

    signed = sign_in(db, org, settings, email="ann@EXAMPLE.org", method="ldap")

    assert signed.browser_session.user_id == existing.id
    assert db.scalar(select(User.id).where(User.email_key == "ann@example.org")) == existing.id


def test_provisioning_off_lets_only_existing_users_in(db, org, settings):
    off = settings.model_copy(update={"disable_sso_provisioning": True})
    existing = factories.user(db, org.org)

    with pytest.raises(AuthenticationFailed) as refused:
        sign_in(db, org, off, email="stranger@example.org")

    assert refused.value.code == "sso_provisioning_disabled"
    assert "DISABLE_SSO_PROVISIONING" in refused.value.message
    assert db.scalar(select(User).where(User.email_key == "stranger@example.org")) is None
    assert events(db, "auth.login_failed")[-1].object_name == "stranger@example.org"
    assert sign_in(db, org, off, email=existing.email).browser_session.user_id == existing.id


def test_the_org_setting_turns_provisioning_off_too(db, org, settings):
    org.org.settings = {**(org.org.settings or {}), "disable_sso_provisioning": True}
    db.flush()

    with pytest.raises(AuthenticationFailed) as refused:
        sign_in(db, org, settings, email="stranger@example.org")

    assert refused.value.code == "sso_provisioning_disabled"


def test_a_deactivated_user_never_gets_in(db, org, settings):
    user = factories.user(db, org.org, active=False)

    with pytest.raises(AuthenticationFailed) as refused:
        sign_in(db, org, settings, email=user.email)

    assert refused.value.code == "user_deactivated"
    assert db.scalar(select(BrowserSession).where(BrowserSession.user_id == user.id)) is None


def test_local_restore_turns_sso_off(db, org, settings):
    restore = settings.model_copy(update={"local_restore": True})

    with pytest.raises(AuthenticationFailed) as refused:
        sign_in(db, org, restore, email="someone@example.org")

    assert refused.value.code == "sso_disabled"
    assert db.scalar(select(User).where(User.email_key == "someone@example.org")) is None


@pytest.mark.parametrize("email", ["", "not-an-email", "a@b@c"])
def test_an_unusable_email_is_refused(db, org, settings, email):
    with pytest.raises(AuthenticationFailed) as refused:
        sign_in(db, org, settings, email=email)

    assert refused.value.code == "invalid_identity"


def test_identifier_claims_decide_username_and_full_name(db, org, settings):
    claims = settings.model_copy(update={"use_identifier_claims": True})

    signed = sign_in(db, org, claims, email="jo@example.org", username="jo_ml", full_name="Jo M")
    user = db.get(User, signed.browser_session.user_id)
    assert (user.username, user.full_name) == ("jo_ml", "Jo M")

    sign_in(db, org, claims, email="jo@example.org", username="jo-renamed", full_name="Jo R")
    db.refresh(user)
    assert (user.username, user.full_name) == ("jo-renamed", "Jo R")
    personal = db.scalar(select(Team).where(Team.personal_owner_id == user.id))
    assert personal.name == "jo-renamed"  # the personal entity follows the username


@pytest.mark.parametrize("username", [None, "has space", "dots.not.allowed", "x" * 65])
def test_identifier_claims_refuse_a_bad_preferred_username(db, org, settings, username):
    claims = settings.model_copy(update={"use_identifier_claims": True})

    with pytest.raises(AuthenticationFailed) as refused:
        sign_in(db, org, claims, email="jo@example.org", username=username)

    assert refused.value.code == "invalid_identity"
    assert "preferred_username" in refused.value.message
    assert db.scalar(select(User).where(User.email_key == "jo@example.org")) is None


def test_identifier_claims_refuse_a_username_someone_else_has(db, org, settings):
    claims = settings.model_copy(update={"use_identifier_claims": True})
    factories.user(db, org.org, username="taken")
    me = factories.user(db, org.org, username="me")

    with pytest.raises(AuthenticationFailed) as refused:
        sign_in(db, org, claims, email=me.email, username="taken")

    assert refused.value.code == "invalid_identity"
    db.refresh(me)
    assert me.username == "me"


def test_identifier_claims_leave_alone_a_user_other_organizations_hold(db, org, settings):
    """Rule ``user.shared_identity``: one organization's identity provider does not rename a
    user another organization holds too; the sign-in says why."""
    claims = settings.model_copy(update={"use_identifier_claims": True})
    me = factories.user(db, org.org, username="shared")
    elsewhere = factories.bootstrap(db)
    db.add(OrgMembership(org_id=elsewhere.org.id, user_id=me.id, role="member"))
    db.flush()

    with pytest.raises(AuthenticationFailed) as refused:
        sign_in(db, org, claims, email=me.email, username="renamed", full_name="Re Named")

    assert refused.value.code == "invalid_identity"
    assert "other organizations" in refused.value.message
    db.refresh(me)
    assert (me.username, me.full_name) == ("shared", None)


def test_groups_decide_team_memberships(db, org, settings):
    ml, research, ops = (factories.team(db, org.org, name=n) for n in ("ml", "research", "ops"))
    user = factories.user(db, org.org)
    factories.member(db, ops, user, role="admin")
    factories.member(db, research, user, role="admin")

    sign_in(db, org, settings, email=user.email, groups=("ML", "research", "Everyone"))

    assert teams_of(db, user) == ["ml", "research"]
    roles = dict(
        db.execute(
            select(Team.name, TeamMembership.role)
            .join(Team, Team.id == TeamMembership.team_id)
            .where(TeamMembership.user_id == user.id, Team.kind == "team")
        ).all()
    )
    assert roles == {"ml": "member", "research": "admin"}  # a role it already had stays
    assert [e.object_name for e in events(db, "team.member.add")][-1:] == [ml.name]
    assert [e.object_name for e in events(db, "team.member.remove")][-1:] == [ops.name]
    detail = events(db, "auth.login")[-1].detail
    assert "teams added: ml" in detail and "removed: ops" in detail and "Everyone" in detail


def test_no_groups_leave_memberships_alone_but_an_empty_list_empties_them(db, org, settings):
    team = factories.team(db, org.org)
    user = factories.user(db, org.org)
    factories.member(db, team, user)

    sign_in(db, org, settings, email=user.email, groups=None)
    assert teams_of(db, user) == [team.name]

    sign_in(db, org, settings, email=user.email, groups=())
    assert teams_of(db, user) == []


def test_a_new_user_joins_its_groups_teams_at_once(db, org, settings):
    factories.team(db, org.org, name="vision")

    signed = sign_in(db, org, settings, email="new@example.org", groups=("vision",))

    assert teams_of(db, db.get(User, signed.browser_session.user_id)) == ["vision"]


@pytest.mark.parametrize("verified", [False, "false", "FALSE"])
def test_an_email_the_provider_calls_unverified_signs_nobody_in(db, org, settings, verified):
    """``email_verified`` false, or "false" as some providers send it (a string was taken for
    a verified address), refuses the sign-in before anyone is provisioned."""
    from rolecall.sso.oidc import OidcFailed, _identity

    claims = {"sub": "s-1", "email": "unverified@example.org", "email_verified": verified}

    with pytest.raises(OidcFailed) as refused:
        _identity(claims, org.org, settings)

    assert refused.value.code == "email_unverified"
    assert _identity({**claims, "email_verified": "true"}, org.org, settings).email
