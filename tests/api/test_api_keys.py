"""A user's own API keys through /api/v1/api-keys, and how keys authenticate."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from rolecall.api_keys.models import ApiKey
from rolecall.api_keys.service import MAX_EXPIRES_IN
from rolecall.audit.models import AuditEvent
from rolecall.authz import policy
from rolecall.authz.permissions import Permission
from rolecall.identity.secrets import API_KEY_PREFIX, digest
from rolecall.teams.models import Team
from tests import factories

KEYS = "/api/v1/api-keys"


def audit_events(db, action: str) -> list[AuditEvent]:
    db.expire_all()
    return list(db.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def key_count(db) -> int:
    return db.scalar(select(func.count()).select_from(ApiKey))


def test_a_user_creates_a_key_shown_once_that_authenticates(client, db, org):
    response = client.post(KEYS, headers=org.admin_headers, json={"description": "laptop"})

    assert response.status_code == 201
    body = response.json()
    secret = body["key"]
    assert secret.startswith(API_KEY_PREFIX) and body["hint"] == secret[: len(body["hint"])]
    assert (body["description"], body["scopes"], body["expires_at"]) == ("laptop", None, None)
    stored = db.get(ApiKey, body["id"])
    assert stored.user_id == org.admin.id and stored.digest == digest(secret)
    viewer = client.get("/api/v1/viewer", headers=factories.headers(secret))
    assert viewer.status_code == 200 and viewer.json()["id"] == org.admin.id
    [event] = audit_events(db, "api_key.create")
    assert event.object_id == body["id"] and event.after["description"] == "laptop"
    assert secret not in repr((event.before, event.after, event.detail, event.object_name))


def test_listing_shows_own_unrevoked_keys_without_secrets(client, db, org):
    created = client.post(KEYS, headers=org.admin_headers, json={"scopes": ["run:read"]}).json()
    other = factories.user(db, org.org)
    factories.api_key(db, other)

    response = client.get(KEYS, headers=org.admin_headers)

    assert response.status_code == 200
    items = response.json()["items"]
    # The bootstrap key and the new one; not the other user's.
    assert len(items) == 2
    assert {k["id"] for k in items} == {
        k.id for k in db.scalars(select(ApiKey).where(ApiKey.user_id == org.admin.id))
    }
    assert all("key" not in k for k in items)
    mine = next(k for k in items if k["id"] == created["id"])
    assert mine["scopes"] == ["run:read"] and mine["hint"] == created["hint"]


def test_expires_in_sets_the_expiry(client, org):
    before = datetime.now(UTC)

    body = client.post(KEYS, headers=org.admin_headers, json={"expires_in": 3600}).json()

    expires_at = datetime.fromisoformat(body["expires_at"])
    assert before + timedelta(seconds=3590) < expires_at < before + timedelta(seconds=3610)


@pytest.mark.parametrize(
    "body",
    [
        {"expires_in": 0},
        {"expires_in": -5},
        {"expires_in": MAX_EXPIRES_IN + 1},
        {"expires_in": "3600"},
        {"expires_in": 1.5},
        {"expires_in": True},
        {"scopes": ["run:launch"]},
        {"scopes": ["RUN_CREATE"]},
        {"scopes": []},
        {"scopes": "run:create"},
        {"description": "x" * 257},
        {"description": "tab\there"},
        {"owner": "someone"},
    ],
)
def test_bad_key_requests_are_422_and_create_nothing(client, db, org, body):
    keys_before = key_count(db)

    response = client.post(KEYS, headers=org.admin_headers, json=body)

    assert response.status_code == 422
    assert key_count(db) == keys_before
    assert audit_events(db, "api_key.create") == []


def test_a_key_scoped_to_run_create_can_do_nothing_else(client, db, org):
    body = client.post(KEYS, headers=org.admin_headers, json={"scopes": ["run:create"]}).json()
    scoped = factories.headers(body["key"])
    keys_before = key_count(db)

    org_read = client.get("/api/v1/org", headers=scoped)
    users = client.get("/api/v1/users", headers=scoped)
    create_user = client.post("/api/v1/users", headers=scoped, json={"email": "z@example.com"})
    new_key = client.post(KEYS, headers=scoped, json={})

    for response in (org_read, users, create_user, new_key):
        assert response.status_code == 403
        assert response.json()["error"]["rule"] == policy.RULE_KEY_SCOPES
    assert key_count(db) == keys_before
    # The viewer describes the credential itself: no permission needed.
    viewer = client.get("/api/v1/viewer", headers=scoped)
    assert viewer.status_code == 200 and viewer.json()["id"] == org.admin.id


def test_a_scoped_key_mints_only_keys_within_its_own_scopes(client, db, org):
    scopes = ["org:read", "run:create"]
    body = client.post(KEYS, headers=org.admin_headers, json={"scopes": scopes}).json()
    scoped = factories.headers(body["key"])
    keys_before = key_count(db)

    unscoped = client.post(KEYS, headers=scoped, json={})
    wider = client.post(KEYS, headers=scoped, json={"scopes": ["run:create", "project:create"]})
    narrower = client.post(KEYS, headers=scoped, json={"scopes": ["run:create"]})

    for refused in (unscoped, wider):
        assert refused.status_code == 403, refused.text
        error = refused.json()["error"]
        assert error["rule"] == policy.RULE_CREDENTIAL_MINT
        assert "its own scopes: org:read, run:create" in error["message"]
    assert narrower.status_code == 201, narrower.text
    assert narrower.json()["scopes"] == ["run:create"]
    assert key_count(db) == keys_before + 1


def test_a_run_create_key_creates_a_run_and_is_refused_everything_else(client, db, org):
    team = factories.team(db, org.org, name="vision")
    factories.member(db, team, org.admin, role="admin")
    factories.project(db, team, name="p")
    body = client.post(KEYS, headers=org.admin_headers, json={"scopes": ["run:create"]}).json()
    scoped = factories.headers(body["key"])
    teams_before = db.scalar(select(func.count()).select_from(Team))

    run = client.post("/api/v1/projects/vision/p/runs", headers=scoped, json={"name": "r1"})
    refused = [
        client.get("/api/v1/projects/vision/p", headers=scoped),
        client.get("/api/v1/projects/vision/p/runs", headers=scoped),
        client.get("/api/v1/users", headers=scoped),
        client.post("/api/v1/teams", headers=scoped, json={"name": "sneaky"}),
    ]

    assert run.status_code == 201, run.text
    assert run.json()["name"] == "r1" and run.json()["attributed_to"] == org.admin.username
    for response in refused:
        assert response.status_code == 403, response.text
        error = response.json()["error"]
        assert error["rule"] == policy.RULE_KEY_SCOPES
        [limit] = [step for step in error["trace"] if step["rule"] == policy.RULE_KEY_SCOPES]
        assert limit["outcome"] == "cap" and "run:create" in limit["detail"]
    assert db.scalar(select(func.count()).select_from(Team)) == teams_before
    # The same owner's unscoped key still reads the project: the limit is the key's, not hers.
    assert client.get("/api/v1/projects/vision/p", headers=org.admin_headers).status_code == 200


def test_the_stored_row_holds_no_plaintext_secret(client, db, org):
    created = client.post(KEYS, headers=org.admin_headers, json={"description": "ci"}).json()
    secret = created["key"]

    row = db.get(ApiKey, created["id"])
    stored = [str(getattr(row, column.key)) for column in ApiKey.__table__.columns]

    assert not any(secret in value for value in stored)
    assert row.digest == digest(secret) and len(row.hint) < len(secret) // 2
    # Neither listing shows the secret again.
    listed = client.get(KEYS, headers=org.admin_headers)
    assert secret not in listed.text and created["hint"] in listed.text


def test_a_user_sees_only_its_own_keys(client, db, org):
    mine = client.post(KEYS, headers=org.admin_headers, json={"description": "admin's"}).json()
    other = factories.user(db, org.org)
    other_headers = factories.headers(factories.api_key(db, other))

    listed = client.get(KEYS, headers=other_headers).json()["items"]

    assert mine["id"] not in {k["id"] for k in listed}
    assert len(listed) == 1
    revoke = client.delete(f"{KEYS}/{mine['id']}", headers=other_headers)
    assert revoke.status_code == 404
    assert client.get("/api/v1/viewer", headers=factories.headers(mine["key"])).is_success


@pytest.mark.parametrize("username", ["api", "foo", ""])
def test_basic_takes_any_username_with_the_key_as_password(client, org, username):
    token = base64.b64encode(f"{username}:{org.admin_key}".encode()).decode()

    response = client.get("/api/v1/viewer", headers={"Authorization": f"Basic {token}"})

    assert response.status_code == 200 and response.json()["id"] == org.admin.id


def test_a_scoped_key_cannot_mint_a_wider_key(client, db, org):
    key = factories.api_key(db, org.admin, scopes=(Permission.ORG_READ, Permission.RUN_READ))
    headers = factories.headers(key)

    wider = client.post(KEYS, headers=headers, json={"scopes": ["org:read", "org:manage_users"]})
    unscoped = client.post(KEYS, headers=headers, json={})
    narrower = client.post(KEYS, headers=headers, json={"scopes": ["run:read"]})

    assert wider.status_code == 403 and unscoped.status_code == 403
    assert narrower.status_code == 201 and narrower.json()["scopes"] == ["run:read"]


def test_an_expiring_key_mints_only_keys_that_expire_by_its_own_end(client, db, org):
    created = client.post(KEYS, headers=org.admin_headers, json={"expires_in": 3600}).json()
    headers = factories.headers(created["key"])

    forever = client.post(KEYS, headers=headers, json={})
    later = client.post(KEYS, headers=headers, json={"expires_in": 7200})
    sooner = client.post(KEYS, headers=headers, json={"expires_in": 600})

    assert forever.status_code == 403 and later.status_code == 403
    for refused in (forever, later):
        assert refused.json()["error"]["rule"] == policy.RULE_CREDENTIAL_MINT
    assert "must expire by then" in forever.json()["error"]["message"]
    assert sooner.status_code == 201, sooner.text
    ends = datetime.fromisoformat(created["expires_at"])
    assert datetime.fromisoformat(sooner.json()["expires_at"]) <= ends
    # A key without an expiry, or a session, makes keys of any lifetime.
    assert client.post(KEYS, headers=org.admin_headers, json={}).status_code == 201


def test_revoking_a_key_makes_it_fail_authentication(client, db, org):
    created = client.post(KEYS, headers=org.admin_headers, json={}).json()
    headers = factories.headers(created["key"])
    assert client.get("/api/v1/viewer", headers=headers).status_code == 200

    response = client.delete(f"{KEYS}/{created['id']}", headers=org.admin_headers)

    assert response.status_code == 204
    assert client.get("/api/v1/viewer", headers=headers).status_code == 401
    listed = client.get(KEYS, headers=org.admin_headers).json()["items"]
    assert created["id"] not in {k["id"] for k in listed}
    db.expire_all()
    assert db.get(ApiKey, created["id"]).revoked_at is not None
    [event] = audit_events(db, "api_key.revoke")
    assert event.object_id == created["id"]
    # Revoking it again: it is gone.
    assert client.delete(f"{KEYS}/{created['id']}", headers=org.admin_headers).status_code == 404


def test_a_user_cannot_revoke_another_users_key(client, db, org):
    other = factories.user(db, org.org)
    other_key = factories.api_key(db, other)
    other_key_id = db.scalar(select(ApiKey.id).where(ApiKey.digest == digest(other_key)))

    response = client.delete(f"{KEYS}/{other_key_id}", headers=org.admin_headers)

    assert response.status_code == 404
    assert client.get("/api/v1/viewer", headers=factories.headers(other_key)).status_code == 200
    assert audit_events(db, "api_key.revoke") == []


@pytest.mark.parametrize("key_id", ["not-a-key", "x" * 300, "a%00b"])
def test_revoking_an_unknown_key_is_404(client, org, key_id):
    assert client.delete(f"{KEYS}/{key_id}", headers=org.admin_headers).status_code == 404


def test_expired_key_is_401(client, db, org):
    key = factories.api_key(db, org.admin, expires_at=datetime.now(UTC) - timedelta(seconds=1))

    response = client.get("/api/v1/viewer", headers=factories.headers(key))

    assert response.status_code == 401
    assert "expired" in response.json()["error"]["message"]


@pytest.mark.parametrize("scheme", ["basic", "bearer"])
def test_keys_authenticate_with_basic_or_bearer_and_record_last_use(client, db, org, scheme):
    key = factories.api_key(db, org.admin)
    row = db.scalar(select(ApiKey).where(ApiKey.digest == digest(key)))
    assert row.last_used_at is None
    headers = factories.headers(key) if scheme == "basic" else {"Authorization": f"Bearer {key}"}

    assert client.get(KEYS, headers=headers).status_code == 200

    db.expire_all()
    assert db.get(ApiKey, row.id).last_used_at is not None
    listed = {k["id"]: k for k in client.get(KEYS, headers=headers).json()["items"]}
    assert listed[row.id]["last_used_at"] is not None


def test_service_accounts_do_not_use_the_self_service_endpoints(client, db, org):
    team = factories.team(db, org.org)
    account = factories.service_account(db, org.org, team)
    headers = factories.headers(factories.api_key(db, account))
    keys_before = key_count(db)

    created = client.post(KEYS, headers=headers, json={})
    listed = client.get(KEYS, headers=headers)

    assert created.status_code == 403 and listed.status_code == 403
    assert key_count(db) == keys_before


def test_deactivated_users_keys_are_refused(client, db, org):
    user = factories.user(db, org.org, active=False)

    response = client.get(KEYS, headers=factories.headers(factories.api_key(db, user)))

    assert response.status_code == 401
    # The code a refused password sign-in of that user gives too, as docs/rest-api.md lists.
    assert response.json()["error"]["code"] == "user_deactivated"


def test_anonymous_callers_cannot_manage_keys(client, org):
    assert client.get(KEYS).status_code == 401
    assert client.post(KEYS, json={}).status_code == 401


def test_a_scoped_key_without_org_read_may_still_revoke_itself(client, db, org):
    # Otherwise a leaked key scoped to run:create could not be switched off with itself.
    body = client.post(KEYS, headers=org.admin_headers, json={"scopes": ["run:create"]}).json()
    other = client.post(KEYS, headers=org.admin_headers, json={}).json()
    scoped = factories.headers(body["key"])

    another = client.delete(f"{KEYS}/{other['id']}", headers=scoped)
    itself = client.delete(f"{KEYS}/{body['id']}", headers=scoped)

    assert another.status_code == 403
    assert another.json()["error"]["rule"] == policy.RULE_KEY_SCOPES
    assert itself.status_code == 204
    assert client.get("/api/v1/viewer", headers=scoped).status_code == 401
    db.expire_all()
    assert db.get(ApiKey, body["id"]).revoked_at is not None
    assert db.get(ApiKey, other["id"]).revoked_at is None
