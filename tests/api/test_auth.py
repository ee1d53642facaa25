"""Password sign-in, browser sessions, CSRF and sign-out through /api/v1/auth."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from rolecall.api_keys.models import ApiKey
from rolecall.audit.models import AuditEvent
from rolecall.identity.models import BrowserSession
from rolecall.identity.passwords import hash_password
from rolecall.identity.secrets import digest
from rolecall.identity.sessions import SIGN_IN_FAILED
from rolecall.web.deps import CSRF_HEADER, SESSION_COOKIE
from tests import factories

LOGIN = "/api/v1/auth/login"
LOGOUT = "/api/v1/auth/logout"
PASSWORD = "correct horse battery"  # what tests/factories.bootstrap gives the admin


def audit_events(db, action: str) -> list[AuditEvent]:
    db.expire_all()
    return list(db.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def sign_in(client, org) -> str:
    response = client.post(LOGIN, json={"email": org.admin.email, "password": PASSWORD})
    assert response.status_code == 200
    return response.json()["csrf_token"]


def test_sign_in_sets_a_hardened_session_cookie_and_returns_the_user(client, db, org):
    response = client.post(LOGIN, json={"email": org.admin.email.upper(), "password": PASSWORD})

    assert response.status_code == 200
    body = response.json()
    assert body["user"]["id"] == org.admin.id and body["user"]["role"] == "admin"
    assert body["csrf_token"]
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    attributes = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite=lax", f"max-age={720 * 3600}", "path=/"} <= attributes
    assert "secure" not in attributes  # served over plain http here
    secret = response.cookies[SESSION_COOKIE]
    stored = db.scalar(select(BrowserSession).where(BrowserSession.user_id == org.admin.id))
    assert stored.digest == digest(secret) and stored.csrf_token == body["csrf_token"]
    [event] = audit_events(db, "auth.login")
    assert event.actor_id == org.admin.id and event.object_id == org.admin.id
    assert event.org_id == org.org.id and event.credential == f"session:{stored.id}"


def test_session_length_bounds_the_session(make_client, db, org):
    client = make_client(session_length_hours=2)
    before = datetime.now(UTC)

    response = client.post(LOGIN, json={"email": org.admin.email, "password": PASSWORD})

    assert f"max-age={2 * 3600}" in response.headers["set-cookie"].lower()
    stored = db.scalar(select(BrowserSession).where(BrowserSession.user_id == org.admin.id))
    assert (
        before + timedelta(hours=2) <= stored.expires_at <= datetime.now(UTC) + timedelta(hours=2)
    )


def test_cookie_is_secure_behind_an_https_public_url(make_client, org):
    client = make_client(public_url="https://rolecall.example.com")

    response = client.post(LOGIN, json={"email": org.admin.email, "password": PASSWORD})

    assert "secure" in {p.strip().lower() for p in response.headers["set-cookie"].split(";")}


def test_the_session_cookie_authenticates(client, org):
    sign_in(client, org)

    response = client.get("/api/v1/viewer")

    assert response.status_code == 200
    assert response.json()["credential"] == "session"
    assert response.json()["id"] == org.admin.id


@pytest.mark.parametrize(
    ("email", "password"),
    [("{admin}", "Tr0ub4dor&3"), ("nobody@example.com", PASSWORD), ("not an email", "x")],
)
def test_wrong_password_and_unknown_email_get_the_same_answer(client, db, org, email, password):
    email = email.format(admin=org.admin.email)

    response = client.post(LOGIN, json={"email": email, "password": password})

    assert response.status_code == 401
    assert response.json()["error"]["message"] == SIGN_IN_FAILED
    assert SESSION_COOKIE not in response.cookies
    assert db.scalar(select(func.count()).select_from(BrowserSession)) == 0
    # The failed attempt is recorded although the request failed, without the password.
    [event] = audit_events(db, "auth.login_failed")
    assert event.org_id == org.org.id and event.actor_type == "anonymous"
    assert password not in repr((event.before, event.after, event.detail, event.object_name))
    assert audit_events(db, "auth.login") == []


def test_a_user_without_a_password_cannot_sign_in_with_one(client, db, org):
    user = factories.user(db, org.org, email="sso-only@example.com")
    assert user.password_hash is None

    response = client.post(LOGIN, json={"email": "sso-only@example.com", "password": "anything"})

    assert response.status_code == 401
    assert response.json()["error"]["message"] == SIGN_IN_FAILED


def test_a_deactivated_user_cannot_sign_in(client, db, org):
    user = factories.user(db, org.org, email="gone@example.com", active=False)
    user.password_hash = hash_password("secret password")
    db.flush()

    response = client.post(LOGIN, json={"email": "gone@example.com", "password": "secret password"})

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "user_deactivated"
    assert db.scalar(select(func.count()).select_from(BrowserSession)) == 0
    assert len(audit_events(db, "auth.login_failed")) == 1


@pytest.mark.parametrize(
    "body",
    [
        {"email": "a@example.com"},
        {"password": "x"},
        {"email": "a@example.com", "password": "x", "remember": True},
        {"email": "a@example.com", "password": ""},
        {"email": "a@example.com", "password": "x" * 1025},
        {"email": 5, "password": "x"},
    ],
)
def test_malformed_sign_in_requests_are_422(client, db, org, body):
    response = client.post(LOGIN, json=body)

    assert response.status_code == 422
    assert audit_events(db, "auth.login_failed") == []


def test_unsafe_requests_with_the_cookie_need_the_csrf_token(client, db, org):
    csrf = sign_in(client, org)
    keys_before = db.scalar(select(func.count()).select_from(ApiKey))

    refused = client.post("/api/v1/api-keys", json={"description": "from the browser"})
    wrong = client.post("/api/v1/api-keys", json={}, headers={CSRF_HEADER: "guess"})

    for response in (refused, wrong):
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "csrf_failed"
    assert audit_events(db, "api_key.create") == []
    assert db.scalar(select(func.count()).select_from(ApiKey)) == keys_before

    accepted = client.post(
        "/api/v1/api-keys", json={"description": "from the browser"}, headers={CSRF_HEADER: csrf}
    )

    assert accepted.status_code == 201
    assert db.scalar(select(func.count()).select_from(ApiKey)) == keys_before + 1


def test_sign_out_revokes_the_session_and_clears_the_cookie(client, db, org):
    csrf = sign_in(client, org)
    cookie = client.cookies[SESSION_COOKIE]

    without_csrf = client.post(LOGOUT)
    assert without_csrf.status_code == 401 and without_csrf.json()["error"]["code"] == "csrf_failed"

    response = client.post(LOGOUT, headers={CSRF_HEADER: csrf})

    assert response.status_code == 204
    set_cookie = response.headers["set-cookie"].lower()
    assert set_cookie.startswith(f"{SESSION_COOKIE}=") and "max-age=0" in set_cookie
    db.expire_all()
    stored = db.scalar(select(BrowserSession).where(BrowserSession.digest == digest(cookie)))
    assert stored.revoked_at is not None
    # The old cookie, replayed, no longer works.
    client.cookies.set(SESSION_COOKIE, cookie)
    assert client.get("/api/v1/viewer").status_code == 401
    [event] = audit_events(db, "auth.logout")
    assert event.actor_id == org.admin.id and event.org_id == org.org.id


def test_an_expired_session_is_refused(client, db, org):
    sign_in(client, org)
    stored = db.scalar(select(BrowserSession).where(BrowserSession.user_id == org.admin.id))
    stored.expires_at = datetime.now(UTC) - timedelta(seconds=1)
    db.flush()

    response = client.get("/api/v1/viewer")

    assert response.status_code == 401
    assert "expired" in response.json()["error"]["message"]


def test_sign_out_with_an_api_key_changes_nothing(client, db, org):
    response = client.post(LOGOUT, headers=org.admin_headers)

    assert response.status_code == 204
    assert audit_events(db, "auth.logout") == []


def test_sign_out_needs_a_credential(client, org):
    assert client.post(LOGOUT).status_code == 401
