"""The real ``wandb`` SDK (0.31) drives rolecall over HTTP: ``wandb.Api`` and ``wandb login``.

Each test's server is a live uvicorn on loopback serving the test's app; ``wandb`` talks to it
through its own ``wandb-core`` process, so every request is the SDK's own, byte for byte.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from sqlalchemy import select
from wandb.errors import AuthenticationError

from rolecall.audit.models import AuditEvent
from rolecall.service_accounts.models import ServiceAccount
from rolecall.teams.models import Team
from rolecall.users.models import User
from tests import factories

UNKNOWN_KEY = "rc_" + "0" * 64


@pytest.fixture
def admin_api(wandb_api, org):
    return wandb_api(org.admin_key)


def events(db, action):
    db.expire_all()
    query = select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)
    return list(db.scalars(query))


def test_api_checks_the_key_when_built(wandb_api, org):
    api = wandb_api(org.admin_key)
    viewer = api.viewer
    assert (viewer.username, viewer.email) == (org.admin.username, org.admin.email)
    assert viewer.admin is True
    assert api.default_entity == org.admin.username
    with pytest.raises(AuthenticationError):
        wandb_api(UNKNOWN_KEY)


def _login(base_url, key, home):
    env = {**os.environ, "WANDB_BASE_URL": "", "WANDB_API_KEY": ""}
    env = {name: value for name, value in env.items() if value}
    return subprocess.run(
        [sys.executable, "-m", "wandb", "login", "--host", base_url, key],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_wandb_login_accepts_a_good_key_and_refuses_a_bad_one(base_url, org, wandb_home):
    netrc = wandb_home / ".netrc"
    refused = _login(base_url, UNKNOWN_KEY, wandb_home)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "invalid API key" in refused.stdout + refused.stderr
    assert not netrc.exists() or UNKNOWN_KEY not in netrc.read_text()

    accepted = _login(base_url, org.admin_key, wandb_home)
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    host = base_url.removeprefix("http://")
    stored = netrc.read_text()
    assert host in stored and org.admin_key in stored
    settings = (wandb_home / ".config" / "wandb" / "settings").read_text()
    assert base_url in settings


def test_create_user_then_find_it_by_email_and_by_username(admin_api, db, org):
    created = admin_api.create_user("alice@example.com", admin=True)
    assert created.email == "alice@example.com" and created.admin is True
    by_email = admin_api.user("alice@example.com")
    by_name = admin_api.user(created.username)
    assert by_email.id == by_name.id == created.id
    assert by_name.email == "alice@example.com" and by_email.username == created.username
    assert [event.surface for event in events(db, "user.create")] == ["graphql"]


def test_user_search_puts_the_exact_match_first(admin_api, db, org):
    factories.user(db, org.org, username="alice", email="alice@example.com")
    factories.user(db, org.org, username="alice2", email="a2@example.com")
    assert admin_api.user("alice2").username == "alice2"  # alice is older, but inexact
    assert [u.username for u in admin_api.users("alice")] == ["alice", "alice2"]
    assert admin_api.user("nobody-here") is None
    assert admin_api.users("nobody-here") == []


def test_generate_list_and_delete_api_keys(admin_api, wandb_api, db, org):
    viewer = admin_api.viewer
    assert len(viewer.api_keys) == 1  # the bootstrap key, by its hint
    secret = viewer.generate_api_key("ci")
    assert secret and secret.startswith("rc_")
    assert wandb_api(secret).viewer.username == org.admin.username  # a working key
    reloaded = admin_api.user(org.admin.email)
    assert len(reloaded.api_keys) == 2
    [new_name] = [name for name in reloaded.api_keys if secret.startswith(name)]
    assert reloaded.delete_api_key(new_name) is True
    with pytest.raises(AuthenticationError):
        wandb_api(secret)
    assert len(admin_api.user(org.admin.email).api_keys) == 1


def test_teams_invites_and_members(admin_api, wandb_api, db, org):
    alice = factories.user(db, org.org, username="alice")
    factories.user(db, org.org, username="bob", email="bob@example.com")
    factories.user(db, org.org, username="carol")
    team = admin_api.create_team("ml", admin_username="alice")
    assert [(m.username, m.admin) for m in team.members] == [("alice", True)]
    assert admin_api.user("alice").teams == ["ml"]
    assert team.invite("bob@example.com") is True
    assert team.invite("carol", admin=True) is True
    assert team.invite("carol") is False  # already a member
    assert team.invite("nobody@example.com") is False  # no such user
    members = admin_api.team("ml").members
    assert [(m.username, m.admin, m.account_type) for m in members] == [
        ("alice", True, "USER"),
        ("bob", False, "USER"),
        ("carol", True, "USER"),
    ]
    bob = next(m for m in members if m.username == "bob")
    assert bob.delete() is True
    assert [m.username for m in admin_api.team("ml").members] == ["alice", "carol"]
    assert alice.id == members[0].id


def test_service_account_is_the_last_member_with_a_working_key(admin_api, wandb_api, db, org):
    admin_api.create_team("ml")  # the caller becomes its admin
    team = admin_api.team("ml")
    account = team.create_service_account("nightly training")
    assert account is not None
    members = admin_api.team("ml").members
    assert members[-1].id == account.id
    assert (account.name, account.account_type) == ("nightly-training", "SERVICE")
    robot = wandb_api(account.api_key)
    assert robot.viewer.username == "nightly-training"
    assert robot.default_entity == "ml"

    assert account.delete() is True
    assert [m.account_type for m in admin_api.team("ml").members] == ["USER"]
    db.expire_all()
    row = db.scalar(select(ServiceAccount).where(ServiceAccount.id == account.id))
    assert row.deleted_at is not None
    with pytest.raises(AuthenticationError):
        wandb_api(account.api_key)


def test_organization(admin_api, org):
    organization = admin_api.organization()
    assert (organization.id, organization.name) == (org.org.id, org.org.name)
    assert organization.org_entity.name == org.org.name


def test_a_non_admin_is_refused_by_the_policy(wandb_api, db, org):
    member = factories.user(db, org.org, username="mallory")
    team = factories.team(db, org.org, name="ml")
    factories.member(db, team, member, role="member")
    factories.service_account(db, org.org, team, name="bot")
    api = wandb_api(factories.api_key(db, member))
    assert api.viewer.username == "mallory" and api.viewer.admin is False
    with pytest.raises(Exception, match="org:manage_users"):
        api.create_user("eve@example.com")
    with pytest.raises(KeyError):  # the SDK swallows the refusal, then finds no team
        api.create_team("mallory-team")
    ml = api.team("ml")
    assert ml.invite("admin@example.com") is False
    assert ml.create_service_account("sneaky") is None
    assert [(m.name, m.api_key) for m in ml.members] == [("mallory", None), ("bot", None)]
    db.expire_all()
    assert db.scalar(select(User).where(User.email_key == "eve@example.com")) is None
    assert db.scalar(select(Team).where(Team.name_key == "mallory-team")) is None
    assert events(db, "user.create") == [] and events(db, "team.create") == []
