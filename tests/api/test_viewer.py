"""GET /api/v1/viewer: who the caller is, for every kind of credential."""

from __future__ import annotations

from datetime import UTC, datetime

from rolecall.authz.permissions import Permission
from tests import factories

VIEWER = "/api/v1/viewer"


def test_a_user_with_an_api_key(client, db, org):
    user = factories.user(db, org.org, username="uma", email="uma@example.com", role="viewer")
    user.full_name = "Uma U."
    db.flush()
    for name in ("zeta", "alpha"):
        factories.member(db, factories.team(db, org.org, name=name), user)
    factories.team(db, org.org, name="not-mine")

    response = client.get(VIEWER, headers=factories.headers(factories.api_key(db, user)))

    assert response.status_code == 200
    assert response.json() == {
        "kind": "user",
        "id": user.id,
        "name": "uma",
        "username": "uma",
        "email": "uma@example.com",
        "full_name": "Uma U.",
        "org": {"id": org.org.id, "name": org.org.name},
        "role": "viewer",
        "credential": "api_key",
        # Teams by name; the personal entity is not a team.
        "teams": ["alpha", "zeta"],
        "scope": None,
        "team": None,
    }


def test_a_team_scoped_service_account(client, db, org):
    team = factories.team(db, org.org, name="ml-platform")
    account = factories.service_account(db, org.org, team, name="ci-bot")

    response = client.get(VIEWER, headers=factories.headers(factories.api_key(db, account)))

    assert response.status_code == 200
    body = response.json()
    assert (body["kind"], body["id"], body["name"]) == ("service_account", account.id, "ci-bot")
    assert (body["scope"], body["team"], body["teams"]) == ("team", "ml-platform", ["ml-platform"])
    assert body["org"] == {"id": org.org.id, "name": org.org.name}
    assert body["credential"] == "api_key"
    assert body["role"] is None and body["email"] is None


def test_an_org_scoped_service_account_names_its_default_team(client, db, org):
    team = factories.team(db, org.org, name="default-home")
    account = factories.service_account(db, org.org, team, scope="org", name="org-bot")

    body = client.get(VIEWER, headers=factories.headers(factories.api_key(db, account))).json()

    assert (body["kind"], body["scope"], body["team"]) == ("service_account", "org", "default-home")
    assert body["teams"] == []


def test_a_browser_session(client, org):
    client.post(
        "/api/v1/auth/login", json={"email": org.admin.email, "password": factories.ADMIN_PASSWORD}
    )

    body = client.get(VIEWER).json()

    assert (body["kind"], body["id"], body["credential"]) == ("user", org.admin.id, "session")
    assert body["role"] == "admin"


def test_a_narrowly_scoped_key_still_learns_whose_it_is(client, db, org):
    key = factories.api_key(db, org.admin, scopes=(Permission.RUN_CREATE,))

    response = client.get(VIEWER, headers=factories.headers(key))

    assert response.status_code == 200 and response.json()["id"] == org.admin.id


def test_no_credential_is_401(client, org):
    response = client.get(VIEWER)

    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Basic")


def test_bad_credentials_are_401(client, db, org):
    revoked_account = factories.service_account(db, org.org, factories.team(db, org.org))
    key = factories.api_key(db, revoked_account)
    revoked_account.deleted_at = datetime.now(UTC)
    db.flush()

    for headers in (
        factories.headers("rc_not-a-real-key"),
        {"Authorization": "Digest abc"},
        factories.headers(key),
    ):
        assert client.get(VIEWER, headers=headers).status_code == 401
