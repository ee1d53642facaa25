"""The admin SDK over HTTP against a live server: the caller, users, teams, service accounts,
errors.

Projects, runs, roles, decisions and the audit log are in ``test_sdk_projects.py``; the
environment and the wire format (headers, error parsing) in ``test_sdk_transport.py``.
"""

from __future__ import annotations

import inspect
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select

from rolecall import Api
from rolecall.sdk import (
    AuthenticationError,
    Conflict,
    InvalidInput,
    LastAdmin,
    Member,
    NotFound,
    PermissionDenied,
    ServiceAccount,
    Team,
    User,
)
from rolecall.sdk.models import Decision
from rolecall.sdk.projects import Project, Run
from rolecall.service_accounts.models import ServiceAccount as ServiceAccountRow
from rolecall.teams.models import Team as TeamRow
from tests import factories
from tests.conftest import auth


def _member_api(db, org, api_for, **user_fields) -> tuple[Api, object]:
    user = factories.user(db, org.org, **user_fields)
    return api_for(factories.api_key(db, user)), user


def _label(value: object) -> str:
    return str(getattr(value, "__name__", value))


# --- the surface ----------------------------------------------------------------------------

#: The issue's SDK surface: (owner, method) -> parameters, exactly as the issue names them.
SURFACE = {
    (Api, "__init__"): "(self, base_url=None, api_key=None, username=None, user_email=None, *, "
    "org=None, timeout=30, client=None, identity_token_file=None, credentials_file=None)",
    (Api, "set_jwt_issuer"): "(self, url)",
    (Api, "create_user"): "(self, email, admin=False)",
    (Api, "user"): "(self, user_name_or_email)",
    (Api, "create_team"): "(self, team_name, admin_user_name=None)",
    (Api, "team"): "(self, team_name)",
    (Api, "create_project"): "(self, entity, name, visibility='team')",
    (Api, "project"): "(self, path)",
    (Api, "create_role"): "(self, name, inherited_from, permissions=(), description='')",
    (Api, "create_service_account"): "(self, description, default_team)",
    (Api, "create_api_key"): "(self, description=None, expires_in=None, scopes=None)",
    (Api, "check"): "(self, permission, project, principal=None)",
    (Api, "audit_log"): "(self, **filters)",
    (Api, "viewer"): "(self)",
    (User, "teams"): "(self)",
    (User, "set_role"): "(self, role)",
    (User, "set_seats"): "(self, models=None, weave=None)",
    (User, "deactivate"): "(self)",
    (User, "reactivate"): "(self)",
    (User, "delete"): "(self)",
    (Team, "invite"): "(self, user_name_or_email, admin=False)",
    (Team, "create_service_account"): "(self, description, subject=None)",
    (Team, "set_role"): "(self, user, role)",
    (Team, "update"): "(self, private_only=None, domain_matching=None)",
    (Member, "delete"): "(self)",
    (Project, "set_visibility"): "(self, visibility)",
    (Project, "add_member"): "(self, principal, role=None)",
    (Project, "set_role"): "(self, user, role)",
    (Project, "remove_member"): "(self, principal)",
    (Project, "join"): "(self)",
    (Project, "create_run"): "(self, name=None)",
    (Run, "stop"): "(self)",
    (Run, "delete"): "(self)",
    (Run, "move"): "(self, project)",
}


@pytest.mark.parametrize(("owner", "method"), list(SURFACE), ids=_label)
def test_the_issues_methods_have_its_names_and_parameters(owner, method):
    signature = inspect.signature(getattr(owner, method))
    bare = signature.replace(
        parameters=[p.replace(annotation=p.empty) for p in signature.parameters.values()],
        return_annotation=signature.empty,
    )
    assert str(bare) == SURFACE[(owner, method)]


def test_properties_the_issue_names():
    assert isinstance(Team.members, property)
    assert isinstance(Decision.trace, property)
    for cls, name in ((Decision, "allowed"), (Run, "attributed_to")):
        assert name in vars(cls)


def test_the_sdk_speaks_http_to_a_live_server(api, base_url):
    assert base_url.startswith("http://127.0.0.1:")
    assert api.base_url == base_url
    assert type(api._http.client) is httpx.Client  # its own client: no in-process transport
    assert httpx.get(f"{base_url}/healthz").json() == {"status": "ok"}


def test_environment_names_the_server_and_key(monkeypatch, base_url, org):
    monkeypatch.setenv("WANDB_BASE_URL", base_url)
    monkeypatch.setenv("WANDB_API_KEY", org.admin_key)
    with Api() as from_wandb:
        assert from_wandb.viewer().id == org.admin.id
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("WANDB_API_KEY", "rc_wrong")
    monkeypatch.setenv("ROLECALL_BASE_URL", base_url)
    monkeypatch.setenv("ROLECALL_API_KEY", org.admin_key)
    with Api() as from_rolecall:
        assert from_rolecall.viewer().email == org.admin.email


# --- the caller -------------------------------------------------------------------------------


def test_viewer_is_the_key_owner(api, org):
    viewer = api.viewer()
    assert viewer.kind == "user"
    assert viewer.id == org.admin.id
    assert viewer.username == org.admin.username
    assert viewer.email == org.admin.email
    assert viewer.org["name"] == org.org.name
    assert viewer.role == "admin"


def test_create_api_key_returns_a_working_scoped_key(api, api_for, org):
    secret = api.create_api_key(description="laptop", expires_in=3600, scopes=["run:create"])
    assert isinstance(secret, str) and secret.startswith("rc_")
    scoped = api_for(secret)
    assert scoped.viewer().id == org.admin.id
    # Scoped to run:create, the key can do nothing else (the policy's rule says why).
    with pytest.raises(PermissionDenied) as refused:
        scoped.create_team("not-with-this-key")
    assert refused.value.rule == "credential.key_scopes"
    assert api.team("not-with-this-key") is None


def test_wrong_key_raises_authentication_error(api_for, org):
    with pytest.raises(AuthenticationError) as refused:
        api_for("rc_not-a-key").viewer()
    assert refused.value.status == 401
    assert refused.value.message == "invalid API key"
    with pytest.raises(AuthenticationError):
        api_for(None).viewer()


@pytest.mark.parametrize(
    ("lookup", "error"),
    [
        (lambda api: api.team(None), TypeError),
        (lambda api: api.user(None), TypeError),
        (lambda api: api.role(42), TypeError),
        (lambda api: api.team(""), ValueError),
        (lambda api: api.project(None), TypeError),
    ],
)
def test_a_lookup_of_no_name_is_refused_before_any_request(api, monkeypatch, lookup, error):
    # api.team(None) found the team named "None"; api.project(None) was an AttributeError.
    api.create_team("None")
    sent = []
    monkeypatch.setattr(api._http, "request", lambda *args, **kwargs: sent.append(args))

    with pytest.raises(error):
        lookup(api)

    assert sent == []


# --- users ------------------------------------------------------------------------------------


def test_created_user_is_found_by_email_and_by_username(api):
    user = api.create_user("Grace.Hopper@example.com")
    assert isinstance(user, User)
    assert user.role == "member"
    assert user.active is True
    by_email = api.user("grace.hopper@example.com")
    by_username = api.user(user.username)
    assert by_email == user
    assert by_username == user
    assert by_username.email == user.email


def test_create_user_as_admin(api):
    user = api.create_user("ada@example.com", admin=True)
    assert user.role == "admin"
    assert api.user("ada@example.com").role == "admin"


def test_unknown_user_team_and_project_are_none(api):
    assert api.user("nobody") is None
    assert api.team("no-such-team") is None
    assert api.project("nobody/nothing") is None
    assert api.role("no such role") is None


def test_duplicate_email_is_a_conflict_with_the_server_message(api, client, org):
    api.create_user("dup@example.com")
    with pytest.raises(Conflict) as refused:
        api.create_user("DUP@example.com")
    raw = client.post(
        "/api/v1/users", json={"email": "DUP@example.com"}, headers=org.admin_headers
    ).json()["error"]
    assert refused.value.status == 409
    assert refused.value.message == raw["message"]
    assert refused.value.code == raw["code"]


def test_bad_email_is_invalid_input(api):
    with pytest.raises(InvalidInput) as refused:
        api.create_user("not-an-email")
    assert refused.value.status == 422
    assert refused.value.field == "email"
    assert api.user("not-an-email") is None


def test_user_role_and_seats(api):
    user = api.create_user("lin@example.com")
    assert user.set_role("viewer") is user
    assert user.role == "viewer"
    user.set_seats(models="viewer")
    assert (user.models_seat, user.weave_seat) == ("viewer", "full")
    user.set_seats(weave="none")
    fresh = api.user(user.id)
    assert (fresh.role, fresh.models_seat, fresh.weave_seat) == ("viewer", "viewer", "none")
    with pytest.raises(ValueError):
        user.set_seats()


def test_deactivate_reactivate_delete(api, api_for, db, org):
    member_api, row = _member_api(db, org, api_for)
    user = api.user(row.email)
    user.deactivate()
    assert user.active is False
    assert api.user(row.email).active is False  # still listed
    with pytest.raises(AuthenticationError):
        member_api.viewer()
    user.reactivate()
    assert user.active is True
    assert member_api.viewer().id == row.id
    user.delete()
    assert api.user(row.email) is None


def test_last_admin_cannot_be_demoted(api, org):
    admin = api.user(org.admin.email)
    with pytest.raises(Conflict) as refused:
        admin.set_role("member")
    assert refused.value.code == "last_admin"
    assert "admin" in refused.value.message
    assert api.user(org.admin.email).role == "admin"


def test_last_admin_cannot_be_deactivated_or_deleted(api, client, org):
    admin = api.user(org.admin.email)
    for action in (admin.deactivate, admin.delete):
        with pytest.raises(LastAdmin) as refused:
            action()
        assert isinstance(refused.value, Conflict)
        assert (refused.value.status, refused.value.code) == (409, "last_admin")
    raw = client.post(f"/api/v1/users/{org.admin.id}/deactivate", headers=org.admin_headers)
    assert raw.status_code == 409
    assert (
        refused.value.message
        == client.delete(f"/api/v1/users/{org.admin.id}", headers=org.admin_headers).json()[
            "error"
        ]["message"]
    )
    fresh = api.user(org.admin.email)
    assert (fresh.active, fresh.role) == (True, "admin")
    assert api.viewer().id == org.admin.id


def test_other_conflicts_are_not_last_admin(api):
    api.create_user("once@example.com")
    with pytest.raises(Conflict) as refused:
        api.create_user("once@example.com")
    assert not isinstance(refused.value, LastAdmin)


def test_member_cannot_create_users(api, api_for, db, org, client):
    member_api, member = _member_api(db, org, api_for)
    with pytest.raises(PermissionDenied) as refused:
        member_api.create_user("eve@example.com")
    raw = client.post(
        "/api/v1/users",
        json={"email": "eve@example.com", "role": "member"},
        headers=auth(factories.api_key(db, member)),
    ).json()["error"]
    assert (refused.value.message, refused.value.rule) == (raw["message"], raw["rule"])
    assert str(refused.value).startswith(raw["message"])
    assert str(refused.value).count(raw["rule"]) == 1
    assert refused.value.status == 403
    assert refused.value.rule
    assert refused.value.trace
    assert refused.value.rule in {step["rule"] for step in refused.value.trace}
    assert api.user("eve@example.com") is None


# --- teams ------------------------------------------------------------------------------------


def test_create_team_with_an_admin_and_find_it(api):
    alice = api.create_user("alice@example.com")
    team = api.create_team("research", admin_user_name=alice.username)
    assert isinstance(team, Team)
    assert api.team("research") == team
    members = team.members
    assert [(m.name, m.role, m.admin) for m in members] == [(alice.username, "admin", True)]
    assert [t.name for t in alice.teams()] == ["research"]


def test_invite_as_admin_and_as_member_in_join_order(api):
    team = api.create_team("vision")
    bob = api.create_user("bob@example.com")
    carol = api.create_user("carol@example.com")
    invited_admin = team.invite("bob@example.com", admin=True)
    invited_member = team.invite(carol.username)
    assert isinstance(invited_admin, Member)
    assert (invited_admin.name, invited_admin.role, invited_admin.admin) == (
        bob.username,
        "admin",
        True,
    )
    assert (invited_member.role, invited_member.admin) == ("member", False)
    assert [m.id for m in team.members] == [bob.id, carol.id]


def test_inviting_twice_is_a_conflict(api):
    team = api.create_team("audio")
    api.create_user("dan@example.com")
    team.invite("dan@example.com")
    with pytest.raises(Conflict):
        team.invite("dan@example.com")
    assert len(team.members) == 1


def test_team_service_account_comes_last_with_a_working_key(api, api_for):
    team = api.create_team("platform")
    api.create_user("erin@example.com")
    team.invite("erin@example.com")
    account = team.create_service_account("Nightly training (GPU)")
    assert isinstance(account, Member)
    assert account.kind == "service_account"
    assert account.name == "nightly-training-gpu"
    assert account.role == "service"
    assert account.api_key
    members = team.members
    assert members[-1].id == account.id
    assert members[-1].api_key is None  # shown once, never listed
    robot = api_for(account.api_key).viewer()
    assert (robot.kind, robot.id, robot.name) == ("service_account", account.id, account.name)


def test_service_account_names_stay_unique(api):
    team = api.create_team("infra")
    first = team.create_service_account("deploy bot")
    second = team.create_service_account("Deploy Bot")
    assert (first.name, second.name) == ("deploy-bot", "deploy-bot-2")
    assert team.create_service_account("!!!").name == "service-account"


def test_member_delete_really_removes_it(api, api_for, db):
    team = api.create_team("robotics")
    api.create_user("fay@example.com")
    person = team.invite("fay@example.com")
    account = team.create_service_account("ci")
    person.delete()
    assert [m.id for m in team.members] == [account.id]
    account.delete()
    assert team.members == []
    with pytest.raises(AuthenticationError):
        api_for(account.api_key).viewer()
    db.expire_all()
    row = db.scalar(select(ServiceAccountRow).where(ServiceAccountRow.id == account.id))
    assert row.deleted_at is not None


def test_team_set_role_and_update(api):
    team = api.create_team("nlp")
    gus = api.create_user("gus@example.com")
    team.invite(gus)
    changed = team.set_role(gus, "viewer")
    assert (changed.id, changed.role) == (gus.id, "viewer")
    assert team.members[0].set_role("admin").role == "admin"
    assert team.update(private_only=True) is team
    assert (team.private_only, team.domain_matching) == (True, False)
    team.update(domain_matching=True)
    fresh = api.team("nlp")
    assert (fresh.private_only, fresh.domain_matching) == (True, True)


def test_team_admin_cannot_create_teams(api, api_for, db, org):
    team = api.create_team("owned")
    member_api, user = _member_api(db, org, api_for)
    team.invite(user.username, admin=True)
    with pytest.raises(PermissionDenied) as refused:
        member_api.create_team("mine")
    assert refused.value.rule
    assert api.team("mine") is None
    # ... but may manage its own team's members.
    api.create_user("hal@example.com")
    assert member_api.team("owned").invite("hal@example.com").role == "member"


def test_team_delete(api, db, org):
    api.create_team("temporary").delete()
    assert api.team("temporary") is None
    db.expire_all()
    assert db.scalar(select(TeamRow).where(TeamRow.name_key == "temporary")) is None


# --- org-scoped service accounts --------------------------------------------------------------


def test_org_service_account_with_default_team(api, api_for):
    team = api.create_team("default-work")
    account = api.create_service_account("Org automation", default_team=team)
    assert isinstance(account, ServiceAccount)
    assert (account.scope, account.team, account.name) == ("org", team.name, "org-automation")
    viewer = api_for(account.api_key).viewer()
    assert (viewer.kind, viewer.name) == ("service_account", "org-automation")
    assert (viewer.scope, viewer.team) == ("org", team.name)
    assert account.id not in [m.id for m in team.members]  # org-scoped: not a member


def test_audit_log_filters(api, org):
    started = datetime.now(UTC) - timedelta(seconds=1)
    api.create_team("audited")
    zed = api.create_user("zed@example.com")
    zed.set_role("viewer")
    about_zed = api.audit_log(object_type="user", object_id=zed.id)
    assert [e.action for e in about_zed] == ["user.create", "user.update"]
    assert all(e.actor["id"] == org.admin.id for e in about_zed)
    by_admin = api.audit_log(actor=org.admin.username, since=started)
    assert {"team.create", "user.create", "user.update"} <= {e.action for e in by_admin}
    assert api.audit_log(actor=org.admin.username, until=started - timedelta(days=1)) == []
    with pytest.raises(InvalidInput):
        api.audit_log(colour="blue")


def test_org_service_account_needs_a_known_team(api):
    with pytest.raises(NotFound) as refused:
        api.create_service_account("lost", default_team="no-such-team")
    assert refused.value.status == 404
    assert "no-such-team" in refused.value.message
