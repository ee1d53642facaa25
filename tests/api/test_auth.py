"""Password sign-in, browser sessions, CSRF and sign-out through /api/v1/auth."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from rolecall.api_keys.models import ApiKey
from rolecall.audit.models import AuditEvent
from rolecall.identity.models import BrowserSession
from rolecall.identity.passwords import hash_password
from rolecall.identity.secrets import digest
from rolecall.identity.sessions import SIGN_IN_FAILED
from rolecall.orgs.models import OrgMembership
from rolecall.teams.models import Team
from rolecall.web.deps import ATTRIBUTION_RESULT_HEADER, CSRF_HEADER, RULE_CSRF, SESSION_COOKIE
from tests import factories

LOGIN = "/api/v1/auth/login"
LOGOUT = "/api/v1/auth/logout"
PASSWORD = factories.ADMIN_PASSWORD


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


def test_a_session_length_stored_on_the_org_bounds_the_session(client, db, org):
    stored_setting = {"settings": {"session_length_hours": 3}}
    assert client.patch("/api/v1/org", headers=org.admin_headers, json=stored_setting).is_success
    before = datetime.now(UTC)

    response = client.post(LOGIN, json={"email": org.admin.email, "password": PASSWORD})

    assert f"max-age={3 * 3600}" in response.headers["set-cookie"].lower()
    stored = db.scalar(select(BrowserSession).where(BrowserSession.user_id == org.admin.id))
    assert (
        before + timedelta(hours=3) <= stored.expires_at <= datetime.now(UTC) + timedelta(hours=3)
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


def test_a_session_stops_working_when_its_user_is_deactivated(client, db, org):
    sign_in(client, org)
    assert client.get("/api/v1/viewer").status_code == 200
    # Deactivated behind the API's back (the API also revokes the user's sessions): the check at
    # authentication is what refuses the cookie.
    membership = db.scalar(select(OrgMembership).where(OrgMembership.user_id == org.admin.id))
    membership.active = False
    db.flush()

    response = client.get("/api/v1/viewer")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_session"


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
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "csrf_failed"
        assert response.json()["error"]["rule"] == RULE_CSRF
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
    assert without_csrf.status_code == 403 and without_csrf.json()["error"]["rule"] == RULE_CSRF

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


def test_local_passwords_are_stored_as_argon2id(db, org):
    db.refresh(org.admin)

    assert org.admin.password_hash.startswith("$argon2id$")
    assert PASSWORD not in org.admin.password_hash


def test_a_cookie_post_without_the_csrf_token_writes_nothing_anywhere(client, db, org):
    sign_in(client, org)
    teams_before = db.scalar(select(func.count()).select_from(Team))

    refused = client.post("/api/v1/teams", json={"name": "from-a-forged-form"})
    deleted = client.delete(f"/api/v1/users/{org.admin.username}")

    for response in (refused, deleted):
        assert response.status_code == 403
        assert response.json()["error"]["rule"] == RULE_CSRF
    assert db.scalar(select(func.count()).select_from(Team)) == teams_before
    # Safe methods need no token.
    assert client.get("/api/v1/viewer").status_code == 200


def test_an_api_key_request_needs_no_csrf_token_even_with_a_cookie(client, org):
    sign_in(client, org)

    response = client.post("/api/v1/teams", json={"name": "by-key"}, headers=org.admin_headers)

    assert response.status_code == 201


# --- LOCAL_RESTORE -----------------------------------------------------------------------------

RESTORE_LINE = re.compile(r"Temporary password for (\S+) \(organization '([^']+)'\): (\S+)")


def restore_password(client, caplog) -> str:
    """Run the app's start-up (LOCAL_RESTORE) and return the temporary password it logged."""
    with client:
        [(_email, _org, password)] = RESTORE_LINE.findall(caplog.text)
    caplog.clear()
    return password


def test_local_restore_logs_a_temporary_password_that_signs_the_admin_in(
    make_client, db, org, caplog
):
    caplog.set_level(logging.INFO)
    client = make_client(local_restore=True)
    assert client.app.state.settings.sso_enabled is False

    with client:  # runs the app's start-up
        [(email, org_name, password)] = RESTORE_LINE.findall(caplog.text)
        assert (email, org_name) == (org.admin.email, org.org.name)
        assert "SSO is off" in caplog.text
        signed_in = client.post(LOGIN, json={"email": email, "password": password})
        own = client.post(LOGIN, json={"email": email, "password": PASSWORD})

    assert signed_in.status_code == 200, signed_in.text
    assert signed_in.json()["user"]["id"] == org.admin.id
    assert password not in signed_in.text
    # The admin's own password is kept: the temporary one is a second way in, not a new password.
    assert own.status_code == 200, own.text
    # Logged once, at start-up, and nowhere else: not in the audit log.
    assert caplog.text.count(password) == 1
    [event] = audit_events(db, "user.password.restore")
    assert event.object_id == org.admin.id and event.actor_type == "operator"
    everything = [
        repr((e.before, e.after, e.detail, e.object_name)) for e in db.scalars(select(AuditEvent))
    ]
    assert not any(password in text for text in everything)
    db.refresh(org.admin)
    assert org.admin.restore_password_hash.startswith("$argon2id$")
    assert org.admin.password_hash != org.admin.restore_password_hash
    # Each sign-in is audited with the credential it used.
    logins = audit_events(db, "auth.login")
    assert [e.after["method"] for e in logins] == ["local_restore", "password"]
    assert "LOCAL_RESTORE temporary password" in logins[0].detail


def test_the_restore_password_stops_working_once_local_restore_is_removed(
    make_client, db, org, caplog
):
    caplog.set_level(logging.INFO)
    password = restore_password(make_client(local_restore=True), caplog)

    with make_client() as client:  # restarted without LOCAL_RESTORE
        temporary = client.post(LOGIN, json={"email": org.admin.email, "password": password})
        own = client.post(LOGIN, json={"email": org.admin.email, "password": PASSWORD})

    assert temporary.status_code == 401
    assert temporary.json()["error"]["message"] == SIGN_IN_FAILED
    assert own.status_code == 200, own.text


def test_a_new_start_with_local_restore_replaces_the_temporary_password(make_client, org, caplog):
    caplog.set_level(logging.INFO)
    first = restore_password(make_client(local_restore=True), caplog)

    with make_client(local_restore=True) as client:  # started again: a new password
        [(_email, _org, second)] = RESTORE_LINE.findall(caplog.text)
        old = client.post(LOGIN, json={"email": org.admin.email, "password": first})
        new = client.post(LOGIN, json={"email": org.admin.email, "password": second})

    assert first != second
    assert old.status_code == 401 and new.status_code == 200


def test_the_restore_password_signs_in_no_other_user(make_client, db, org, caplog):
    caplog.set_level(logging.INFO)
    factories.user(db, org.org, username="bob", email="bob@example.com")

    with make_client(local_restore=True) as client:
        [(_email, _org, password)] = RESTORE_LINE.findall(caplog.text)
        other = client.post(LOGIN, json={"email": "bob@example.com", "password": password})

    assert other.status_code == 401


def test_without_local_restore_start_up_sets_no_password(make_client, db, org, caplog):
    caplog.set_level(logging.INFO)
    client = make_client()
    assert client.app.state.settings.sso_enabled is True

    with client:
        assert client.post(LOGIN, json={"email": org.admin.email, "password": PASSWORD}).is_success

    assert "LOCAL_RESTORE" not in caplog.text
    assert audit_events(db, "user.password.restore") == []


def test_local_restore_before_init_says_there_is_no_admin(make_client, db, caplog):
    caplog.set_level(logging.INFO)

    with make_client(local_restore=True) as client:
        assert client.get("/healthz").status_code == 200

    assert "no active admin yet" in caplog.text
    assert not RESTORE_LINE.search(caplog.text)


# --- service-account attribution ----------------------------------------------------------------


@pytest.fixture
def vision(db, org):
    team = factories.team(db, org.org, name="vision")
    factories.project(db, team, name="p")
    return team


def _sa_headers(db, org, team, scope="team", name="robot"):
    account = factories.service_account(db, org.org, team, scope=scope, name=name)
    return factories.headers(factories.api_key(db, account))


def _submit(client, headers):
    response = client.post("/api/v1/projects/vision/p/runs", json={}, headers=headers)
    assert response.status_code == 201, response.text
    return response


@pytest.mark.parametrize(
    ("header", "value"),
    [("X-Wandb-Username", "alice"), ("X-Wandb-User-Email", "ALICE@example.com")],
)
def test_attribution_to_an_active_team_member_is_honoured(client, db, org, vision, header, value):
    factories.member(
        db, vision, factories.user(db, org.org, username="alice", email="alice@example.com")
    )
    headers = _sa_headers(db, org, vision)

    response = _submit(client, {**headers, header: value})

    assert response.json()["attributed_to"] == "alice"
    assert response.headers[ATTRIBUTION_RESULT_HEADER] == "allow: attributed to " + value


@pytest.mark.parametrize("who", ["outsider", "gone", "nobody", "stranger"])
def test_attribution_outside_the_accounts_team_stays_with_the_account(client, db, org, vision, who):
    factories.user(db, org.org, username="outsider")  # in the org, not in the team
    factories.member(db, vision, factories.user(db, org.org, username="gone", active=False))
    # Another organization's user only: answered as nobody, so nothing is learnt of it.
    factories.user(db, factories.bootstrap(db).org, username="stranger")
    headers = _sa_headers(db, org, vision)

    response = _submit(client, {**headers, "X-Wandb-Username": who})

    assert response.json()["attributed_to"] == "robot"
    said = response.headers[ATTRIBUTION_RESULT_HEADER]
    assert said.startswith("deny: ") and "attributed to the account" in said
    nobody = who in ("nobody", "stranger")
    reason = f"no user {who!r}" if nobody else f"{who} is not an active member"
    assert reason in said and reason in response.json()["attribution_note"]


def test_an_org_scoped_account_attributes_to_any_active_org_member(client, db, org, vision):
    factories.user(db, org.org, username="outsider")
    headers = _sa_headers(db, org, vision, scope="org", name="org-robot")

    response = _submit(client, {**headers, "X-Wandb-Username": "outsider"})

    assert response.json()["attributed_to"] == "outsider"
    assert response.headers[ATTRIBUTION_RESULT_HEADER].startswith("allow: ")


def test_empty_attribution_headers_mean_unset(client, db, org, vision):
    factories.member(
        db, vision, factories.user(db, org.org, username="alice", email="alice@example.com")
    )
    headers = _sa_headers(db, org, vision)

    unset = _submit(client, {**headers, "X-Wandb-Username": "", "X-Wandb-User-Email": "  "})
    email_only = _submit(
        client, {**headers, "X-Wandb-Username": "", "X-Wandb-User-Email": "alice@example.com"}
    )

    assert unset.json()["attributed_to"] == "robot"
    assert unset.json()["attribution_note"] is None
    assert ATTRIBUTION_RESULT_HEADER not in unset.headers
    assert email_only.json()["attributed_to"] == "alice"


def test_an_absurd_attribution_value_is_refused_not_an_error(client, db, org, vision):
    headers = _sa_headers(db, org, vision)

    response = _submit(client, {**headers, "X-Wandb-Username": "x" * 5000})

    assert response.json()["attributed_to"] == "robot"
    assert response.json()["attribution_note"].startswith("no user 'xxx")
    assert len(response.json()["attribution_note"]) <= 256
    assert response.headers[ATTRIBUTION_RESULT_HEADER].startswith("deny: no user")


def test_users_cannot_attribute_their_work_to_others(client, db, org, vision):
    factories.member(db, vision, org.admin, role="admin")
    factories.member(db, vision, factories.user(db, org.org, username="bob"))

    response = _submit(client, {**org.admin_headers, "X-Wandb-Username": "bob"})

    assert response.json()["attributed_to"] == org.admin.username
    assert ATTRIBUTION_RESULT_HEADER not in response.headers
