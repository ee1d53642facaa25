"""Service accounts and their keys through the REST API, and what their keys may do."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from rolecall import authz
from rolecall.api_keys.models import ApiKey
from rolecall.audit.models import AuditEvent
from rolecall.authz import policy
from rolecall.authz.facts import CredentialKind, PrincipalKind
from rolecall.authz.permissions import Permission
from rolecall.identity.authenticate import authenticate_api_key
from rolecall.identity.principal import Principal
from rolecall.service_accounts.models import ServiceAccount
from rolecall.teams.models import TeamMembership
from tests import factories

ACCOUNTS = "/api/v1/service-accounts"


def _user_with_key(db, org, **kwargs):
    user = factories.user(db, org.org, **kwargs)
    return user, factories.headers(factories.api_key(db, user))


def _account_count(db) -> int:
    db.expire_all()
    return db.scalar(select(func.count(ServiceAccount.id)))


def _events(db, action: str) -> list[AuditEvent]:
    db.expire_all()
    query = select(AuditEvent).where(AuditEvent.action == action)
    return list(db.scalars(query.order_by(AuditEvent.seq)))


def _team_admin(db, org):
    """A team with an admin (not an org admin) and that admin's headers."""
    team = factories.team(db, org.org)
    admin, headers = _user_with_key(db, org)
    factories.member(db, team, admin, role="admin")
    return team, headers


# --- create -----------------------------------------------------------------------------------


def test_org_admin_creates_an_org_scoped_account_whose_key_works_once_shown(client, db, org):
    team = factories.team(db, org.org)
    response = client.post(
        ACCOUNTS,
        json={"name": "Trainer", "description": "nightly", "scope": "org", "team": team.name},
        headers=org.admin_headers,
    )
    assert response.status_code == 201, response.text
    account = response.json()
    assert (account["scope"], account["team"], account["kind"]) == ("org", team.name, "builtin")
    assert account["api_key"]
    # Org-scoped accounts are not team members.
    members = client.get(f"/api/v1/teams/{team.name}/members", headers=org.admin_headers).json()
    assert members == {"items": [], "total": 0, "offset": 0, "limit": 100}
    # The key authenticates; the key is never shown again.
    as_account = client.get("/api/v1/teams", headers=factories.headers(account["api_key"]))
    assert as_account.status_code == 200
    fetched = client.get(f"{ACCOUNTS}/trainer", headers=org.admin_headers).json()
    assert fetched["id"] == account["id"]
    assert fetched["api_key"] is None
    (event,) = _events(db, "service_account.create")
    assert event.after["scope"] == "org"
    assert account["api_key"] not in str(event.after)


def test_team_admin_creates_a_team_scoped_account_that_joins_the_team_last(client, db, org):
    team, headers = _team_admin(db, org)
    response = client.post(
        ACCOUNTS, json={"name": "ci-bot", "scope": "team", "team": team.id}, headers=headers
    )
    assert response.status_code == 201, response.text
    members = client.get(f"/api/v1/teams/{team.name}/members", headers=headers).json()["items"]
    assert [(m["kind"], m["name"], m["role"]) for m in members][-1] == (
        "service_account",
        "ci-bot",
        "service",
    )


def test_team_scoped_key_reaches_its_team_but_not_other_teams_or_restricted_projects(
    client, db, org
):
    team, headers = _team_admin(db, org)
    other = factories.team(db, org.org)
    own_project = factories.project(db, team)
    own_restricted = factories.project(db, team, visibility="restricted")
    other_project = factories.project(db, other)
    other_open = factories.project(db, other, visibility="open")
    secret = client.post(
        ACCOUNTS, json={"name": "bot", "scope": "team", "team": team.name}, headers=headers
    ).json()["api_key"]
    db.expire_all()
    principal = authenticate_api_key(db, secret)
    assert principal.kind is PrincipalKind.SERVICE_ACCOUNT

    def allowed(project) -> bool:
        return authz.check(db, principal, Permission.RUN_CREATE, project).allowed

    assert allowed(own_project)
    assert allowed(other_open)
    assert not allowed(own_restricted)
    assert not allowed(other_project)
    denied = authz.check(db, principal, Permission.RUN_CREATE, own_restricted)
    assert denied.deciding_rule == "base.restricted_membership"


def test_org_member_cannot_create_service_accounts(client, db, org):
    team = factories.team(db, org.org)
    user, headers = _user_with_key(db, org)
    factories.member(db, team, user, role="member")
    org_scoped = client.post(
        ACCOUNTS, json={"name": "mine", "scope": "org", "team": team.name}, headers=headers
    )
    assert org_scoped.status_code == 403
    assert org_scoped.json()["error"]["rule"] == "org.member"
    team_scoped = client.post(
        ACCOUNTS, json={"name": "mine", "scope": "team", "team": team.name}, headers=headers
    )
    assert team_scoped.status_code == 403
    assert team_scoped.json()["error"]["rule"] == "base.team_role"
    assert _account_count(db) == 0


def test_team_admin_cannot_create_org_scoped_accounts_or_in_other_teams(client, db, org):
    team, headers = _team_admin(db, org)
    other = factories.team(db, org.org)
    org_scoped = client.post(
        ACCOUNTS, json={"name": "wide", "scope": "org", "team": team.name}, headers=headers
    )
    assert org_scoped.status_code == 403
    assert org_scoped.json()["error"]["rule"] == "org.member"
    elsewhere = client.post(
        ACCOUNTS, json={"name": "wide", "scope": "team", "team": other.name}, headers=headers
    )
    assert elsewhere.status_code == 403
    assert elsewhere.json()["error"]["rule"] == "base.none"
    assert _account_count(db) == 0


def test_names_are_unique_case_insensitively(client, db, org):
    team = factories.team(db, org.org)
    factories.service_account(db, org.org, team, name="Runner")
    response = client.post(
        ACCOUNTS,
        json={"name": "RUNNER", "scope": "team", "team": team.name},
        headers=org.admin_headers,
    )
    assert response.status_code == 409
    assert _account_count(db) == 1


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"name": "has space", "scope": "team"}, 422),
        ({"name": "x" * 65, "scope": "team"}, 422),
        ({"name": "ok", "scope": "project"}, 422),
        ({"name": "ok", "scope": "team", "kind": "magic"}, 422),
        ({"name": "ok", "scope": "team", "kind": "external"}, 422),
        ({"name": "ok", "scope": "org", "kind": "external", "subject": "s"}, 422),
        ({"name": "ok", "scope": "team", "subject": "only-external"}, 422),
        ({"name": "ok", "scope": "team", "colour": "red"}, 422),
        ({"name": "ok", "scope": "team", "team": None}, 422),
        ({"name": "ok", "scope": "team", "team": "nope"}, 404),
        ({"name": "ok", "scope": "org", "team": "nope"}, 404),
    ],
)
def test_bad_account_input_is_refused_and_writes_nothing(client, db, org, body, status):
    team = factories.team(db, org.org)
    body = {"team": team.name} | body
    response = client.post(ACCOUNTS, json=body, headers=org.admin_headers)
    assert response.status_code == status, response.text
    assert _account_count(db) == 0
    assert (
        db.scalar(select(func.count(ApiKey.id)).where(ApiKey.service_account_id.is_not(None))) == 0
    )


def test_external_accounts_have_a_unique_subject_and_no_key(client, db, org):
    team = factories.team(db, org.org)
    body = {"scope": "team", "team": team.name, "kind": "external", "subject": "repo:acme/ml"}
    created = client.post(ACCOUNTS, json={"name": "gha"} | body, headers=org.admin_headers)
    assert created.status_code == 201
    assert created.json()["api_key"] is None
    assert created.json()["subject"] == "repo:acme/ml"
    same_subject = client.post(ACCOUNTS, json={"name": "gha2"} | body, headers=org.admin_headers)
    assert same_subject.status_code == 409
    key = client.post(f"{ACCOUNTS}/gha/api-keys", json={}, headers=org.admin_headers)
    assert key.status_code == 422
    assert client.get(f"{ACCOUNTS}/gha/api-keys", headers=org.admin_headers).json()["items"] == []


def test_a_team_admin_cannot_name_an_external_account_after_a_users_email(client, db, org):
    # Such an account would take the user's JWTs, an org admin's included.
    team = factories.team(db, org.org)
    team_admin = factories.user(db, org.org)
    factories.member(db, team, team_admin, role="admin")
    headers = factories.headers(factories.api_key(db, team_admin))
    body = {"name": "capture", "scope": "team", "team": team.name, "kind": "external"}

    response = client.post(
        ACCOUNTS, json=body | {"subject": org.admin.email.upper()}, headers=headers
    )

    assert response.status_code == 409, response.text
    assert response.json()["error"]["field"] == "subject"
    assert "email of a user" in response.json()["error"]["message"]
    other = client.post(ACCOUNTS, json=body | {"subject": "repo:acme/ml"}, headers=headers)
    assert other.status_code == 201, other.text


# --- list and get -----------------------------------------------------------------------------


def test_listing_shows_the_accounts_the_caller_manages(client, db, org):
    team, headers = _team_admin(db, org)
    other = factories.team(db, org.org)
    factories.service_account(db, org.org, team, name="mine")
    factories.service_account(db, org.org, other, name="theirs")
    factories.service_account(db, org.org, team, scope="org", name="global")

    def names(response) -> list[str]:
        assert response.status_code == 200
        return [a["name"] for a in response.json()["items"]]

    assert names(client.get(ACCOUNTS, headers=org.admin_headers)) == ["mine", "theirs", "global"]
    assert names(client.get(ACCOUNTS, headers=headers)) == ["mine"]
    filtered = client.get(ACCOUNTS, params={"team": team.name}, headers=org.admin_headers)
    assert names(filtered) == ["mine", "global"]
    assert names(client.get(ACCOUNTS, params={"team": other.name}, headers=headers)) == []
    assert client.get(ACCOUNTS, params={"team": "nope"}, headers=headers).status_code == 404


def test_get_is_for_those_who_manage_the_account(client, db, org):
    team, headers = _team_admin(db, org)
    other = factories.team(db, org.org)
    factories.service_account(db, org.org, team, name="mine")
    factories.service_account(db, org.org, other, name="theirs")
    factories.service_account(db, org.org, team, scope="org", name="global")
    assert client.get(f"{ACCOUNTS}/MINE", headers=headers).json()["team"] == team.name
    theirs = client.get(f"{ACCOUNTS}/theirs", headers=headers)
    assert theirs.status_code == 403
    assert theirs.json()["error"]["rule"] == "base.none"
    wide = client.get(f"{ACCOUNTS}/global", headers=headers)
    assert wide.status_code == 403
    assert wide.json()["error"]["rule"] == "org.member"
    assert client.get(f"{ACCOUNTS}/nope", headers=headers).status_code == 404


# --- delete -----------------------------------------------------------------------------------


def test_deleted_account_loses_its_keys_and_every_permission(client, db, org):
    team = factories.team(db, org.org)
    project = factories.project(db, team)
    created = client.post(
        ACCOUNTS,
        json={"name": "bot", "scope": "team", "team": team.name},
        headers=org.admin_headers,
    ).json()
    old_key = factories.headers(created["api_key"])
    assert client.get("/api/v1/teams", headers=old_key).status_code == 200

    assert client.delete(f"{ACCOUNTS}/bot", headers=org.admin_headers).status_code == 204
    assert client.get("/api/v1/teams", headers=old_key).status_code == 401
    assert client.get(f"{ACCOUNTS}/bot", headers=org.admin_headers).status_code == 404
    db.expire_all()
    row = db.get(ServiceAccount, created["id"])
    assert row.deleted_at is not None
    assert all(
        k.revoked_at is not None
        for k in db.scalars(select(ApiKey).where(ApiKey.service_account_id == row.id))
    )
    # The team membership row stays, but the policy denies everything to a deleted account.
    assert db.scalar(select(TeamMembership).where(TeamMembership.service_account_id == row.id))
    principal = Principal(
        PrincipalKind.SERVICE_ACCOUNT, "bot", CredentialKind.API_KEY, service_account_id=row.id
    )
    decision = authz.check(db, principal, Permission.RUN_READ, project)
    assert not decision.allowed
    assert decision.deciding_rule == "principal.deleted"
    (event,) = _events(db, "service_account.delete")
    assert event.object_id == row.id
    # The name is free again.
    again = client.post(
        ACCOUNTS,
        json={"name": "bot", "scope": "team", "team": team.name},
        headers=org.admin_headers,
    )
    assert again.status_code == 201
    assert again.json()["id"] != row.id


def test_only_managers_delete_accounts(client, db, org):
    team = factories.team(db, org.org)
    user, headers = _user_with_key(db, org)
    factories.member(db, team, user, role="member")
    account = factories.service_account(db, org.org, team, name="keep")
    response = client.delete(f"{ACCOUNTS}/keep", headers=headers)
    assert response.status_code == 403
    assert response.json()["error"]["rule"] == "base.team_role"
    db.expire_all()
    assert db.get(ServiceAccount, account.id).deleted_at is None


# --- keys -------------------------------------------------------------------------------------


def test_team_admin_lists_creates_and_revokes_keys_of_its_accounts(client, db, org):
    team, headers = _team_admin(db, org)
    factories.service_account(db, org.org, team, name="bot")
    keys_url = f"{ACCOUNTS}/bot/api-keys"
    assert client.get(keys_url, headers=headers).json() == {"items": []}

    created = client.post(
        keys_url,
        json={"description": "ci", "expires_in": 3600, "scopes": ["run:create"]},
        headers=headers,
    )
    assert created.status_code == 201, created.text
    key = created.json()
    assert key["scopes"] == ["run:create"]
    assert key["expires_at"] is not None
    assert key["key"].startswith(key["hint"][:3])
    listed = client.get(keys_url, headers=headers).json()["items"]
    assert [k["id"] for k in listed] == [key["id"]]
    assert "key" not in listed[0]
    assert client.get("/api/v1/teams", headers=factories.headers(key["key"])).status_code == 403

    revoked = client.delete(f"{keys_url}/{key['id']}", headers=headers)
    assert revoked.status_code == 204
    assert client.get(keys_url, headers=headers).json() == {"items": []}
    assert client.get("/api/v1/teams", headers=factories.headers(key["key"])).status_code == 401
    assert client.delete(f"{keys_url}/{key['id']}", headers=headers).status_code == 404
    actions = [e.action for e in _events(db, "service_account.api_key.create")]
    actions += [e.action for e in _events(db, "service_account.api_key.revoke")]
    assert actions == ["service_account.api_key.create", "service_account.api_key.revoke"]


def test_keys_of_accounts_one_does_not_manage_are_refused(client, db, org):
    _, headers = _team_admin(db, org)
    other = factories.team(db, org.org)
    account = factories.service_account(db, org.org, other, name="theirs")
    factories.api_key(db, account)
    for response in (
        client.get(f"{ACCOUNTS}/theirs/api-keys", headers=headers),
        client.post(f"{ACCOUNTS}/theirs/api-keys", json={}, headers=headers),
    ):
        assert response.status_code == 403
        assert response.json()["error"]["rule"] == "base.none"
    key_id = db.scalar(select(ApiKey.id).where(ApiKey.service_account_id == account.id))
    response = client.delete(f"{ACCOUNTS}/theirs/api-keys/{key_id}", headers=headers)
    assert response.status_code == 403
    db.expire_all()
    assert db.get(ApiKey, key_id).revoked_at is None


@pytest.mark.parametrize(
    "body",
    [
        {"scopes": ["run:fly"]},
        {"expires_in": 0},
        {"expires_in": "soon"},
        {"expires_in": 10**12},
        {"description": "x" * 257},
        {"owner": "me"},
    ],
)
def test_bad_key_input_is_422_and_issues_nothing(client, db, org, body):
    team = factories.team(db, org.org)
    account = factories.service_account(db, org.org, team, name="bot")
    response = client.post(f"{ACCOUNTS}/bot/api-keys", json=body, headers=org.admin_headers)
    assert response.status_code == 422, response.text
    db.expire_all()
    assert (
        db.scalar(select(func.count(ApiKey.id)).where(ApiKey.service_account_id == account.id)) == 0
    )


# --- issue checks -------------------------------------------------------------------------------


@pytest.mark.parametrize("team", [None, ""])
def test_an_org_scoped_account_needs_a_default_team(client, db, org, team):
    body = {"name": "trainer", "scope": "org"}
    if team is not None:
        body["team"] = team

    response = client.post(ACCOUNTS, json=body, headers=org.admin_headers)

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_input"
    assert "team" in response.json()["error"]["message"]
    assert _account_count(db) == 0
    assert _events(db, "service_account.create") == []


def test_a_personal_entity_cannot_be_a_default_or_parent_team(client, db, org):
    for scope in ("org", "team"):
        response = client.post(
            ACCOUNTS,
            json={"name": f"bot-{scope}", "scope": scope, "team": org.admin.username},
            headers=org.admin_headers,
        )
        assert response.status_code == 404
    assert _account_count(db) == 0


def test_org_admin_manages_team_scoped_accounts_and_their_keys(client, db, org):
    team = factories.team(db, org.org)
    body = {"name": "etl", "scope": "team", "team": team.name}
    created = client.post(ACCOUNTS, json=body, headers=org.admin_headers)
    assert created.status_code == 201
    key = client.post(f"{ACCOUNTS}/etl/api-keys", json={}, headers=org.admin_headers)
    assert key.status_code == 201
    listed = client.get(f"{ACCOUNTS}/etl/api-keys", headers=org.admin_headers).json()["items"]
    assert len(listed) == 2  # the key issued with the account and this one
    key_id, secret = key.json()["id"], key.json()["key"]
    revoked = client.delete(f"{ACCOUNTS}/etl/api-keys/{key_id}", headers=org.admin_headers)
    assert revoked.status_code == 204
    assert client.get("/api/v1/teams", headers=factories.headers(secret)).status_code == 401
    # The account's first key still works.
    first = factories.headers(created.json()["api_key"])
    assert client.get("/api/v1/teams", headers=first).status_code == 200


def test_a_plain_team_member_cannot_manage_its_teams_accounts_or_their_keys(client, db, org):
    team = factories.team(db, org.org)
    user, headers = _user_with_key(db, org)
    factories.member(db, team, user, role="member")
    account = factories.service_account(db, org.org, team, name="bot")
    factories.api_key(db, account)
    key_id = db.scalar(select(ApiKey.id).where(ApiKey.service_account_id == account.id))
    keys_url = f"{ACCOUNTS}/bot/api-keys"

    for response in (
        client.get(f"{ACCOUNTS}/bot", headers=headers),
        client.get(keys_url, headers=headers),
        client.post(keys_url, json={}, headers=headers),
        client.delete(f"{keys_url}/{key_id}", headers=headers),
    ):
        assert response.status_code == 403, response.text
        assert response.json()["error"]["rule"] == "base.team_role"
    # It does not even see the account in a listing.
    listed = client.get(ACCOUNTS, headers=headers).json()
    assert listed == {"items": [], "total": 0, "offset": 0, "limit": 100}
    db.expire_all()
    assert db.get(ApiKey, key_id).revoked_at is None
    assert (
        db.scalar(select(func.count(ApiKey.id)).where(ApiKey.service_account_id == account.id)) == 1
    )
    assert _events(db, "service_account.api_key.create") == []


def test_a_team_admin_cannot_manage_an_org_scoped_accounts_keys(client, db, org):
    team, headers = _team_admin(db, org)
    factories.service_account(db, org.org, team, scope="org", name="global")

    for response in (
        client.get(f"{ACCOUNTS}/global/api-keys", headers=headers),
        client.post(f"{ACCOUNTS}/global/api-keys", json={}, headers=headers),
        client.delete(f"{ACCOUNTS}/global", headers=headers),
    ):
        assert response.status_code == 403
        assert response.json()["error"]["rule"] == "org.member"


# --- keys a credential makes for an account (credential.mint) -------------------------------------


def _key_headers(db, user, **kwargs):
    return factories.headers(factories.api_key(db, user, **kwargs))


def test_an_expiring_key_makes_account_keys_only_within_its_own_life(client, db, org):
    team = factories.team(db, org.org, name="ml")
    factories.service_account(db, org.org, team, name="bot")
    ends = datetime.now(UTC) + timedelta(hours=1)
    headers = _key_headers(db, org.admin, expires_at=ends)
    keys_before = db.scalar(select(func.count(ApiKey.id)))

    forever = client.post(f"{ACCOUNTS}/bot/api-keys", json={}, headers=headers)
    later = client.post(f"{ACCOUNTS}/bot/api-keys", json={"expires_in": 7200}, headers=headers)
    account = client.post(
        ACCOUNTS, json={"name": "new", "scope": "team", "team": "ml"}, headers=headers
    )
    sooner = client.post(f"{ACCOUNTS}/bot/api-keys", json={"expires_in": 600}, headers=headers)

    for refused in (forever, later, account):
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["rule"] == policy.RULE_CREDENTIAL_MINT
    assert "must expire by then" in forever.json()["error"]["message"]
    assert sooner.status_code == 201, sooner.text
    db.expire_all()
    assert db.scalar(select(func.count(ApiKey.id))) == keys_before + 1
    assert db.scalar(select(ServiceAccount.id).where(ServiceAccount.name == "new")) is None


def test_a_scoped_key_makes_account_keys_only_within_its_scopes(client, db, org):
    team = factories.team(db, org.org, name="ml")
    factories.service_account(db, org.org, team, name="bot")
    scopes = (Permission.TEAM_MANAGE_SERVICE_ACCOUNTS, Permission.RUN_READ)
    headers = _key_headers(db, org.admin, scopes=scopes)

    unscoped = client.post(f"{ACCOUNTS}/bot/api-keys", json={}, headers=headers)
    wider = client.post(
        f"{ACCOUNTS}/bot/api-keys", json={"scopes": ["run:read", "run:create"]}, headers=headers
    )
    account = client.post(
        ACCOUNTS, json={"name": "new", "scope": "team", "team": "ml"}, headers=headers
    )
    within = client.post(f"{ACCOUNTS}/bot/api-keys", json={"scopes": ["run:read"]}, headers=headers)

    # The account's own rights (run:create in its team) would reach what the key may not do.
    for refused in (unscoped, wider, account):
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["rule"] == policy.RULE_CREDENTIAL_MINT
    assert within.status_code == 201, within.text
    assert within.json()["scopes"] == ["run:read"]
    # An external account has no key: such a key may make it.
    external = {"name": "gha", "scope": "team", "team": "ml", "kind": "external", "subject": "s"}
    assert client.post(ACCOUNTS, json=external, headers=headers).status_code == 201
