"""The console's sign-in page and home page (HTML through the app; the browser test drives
them in Chromium)."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from rolecall.audit.models import AuditEvent
from rolecall.identity.models import BrowserSession
from rolecall.sso.oidc import safe_return_to
from rolecall.web.console.routes import LOGIN_CSRF_COOKIE
from tests import factories

PASSWORD = factories.ADMIN_PASSWORD


def form_token(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, page
    return match.group(1)


def submit(client, email, password, *, token=None, return_to="/"):
    page = client.get("/login")
    assert page.status_code == 200
    data = {"email": email, "password": password, "return_to": return_to}
    data["csrf_token"] = form_token(page.text) if token is None else token
    return client.post("/login", data=data, follow_redirects=False)


def test_the_form_carries_a_token_that_matches_its_cookie(client, org):
    page = client.get("/login")

    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    assert f"Sign in to {org.org.name}" in page.text
    assert client.cookies[LOGIN_CSRF_COOKIE] == form_token(page.text)
    assert 'id="sso"' not in page.text  # no OIDC configured


def test_signing_in_sets_the_session_and_the_home_page_names_the_user(client, org):
    response = submit(client, org.admin.email, PASSWORD)

    assert response.status_code == 303 and response.headers["location"] == "/"
    assert "rolecall_session" in response.cookies
    home = client.get("/")
    assert re.search(rf'id="viewer">{org.admin.username}<', home.text)
    assert client.get("/api/v1/viewer").json()["username"] == org.admin.username
    assert client.get("/login", follow_redirects=False).status_code == 303  # already in


def test_a_wrong_password_shows_the_error_and_is_audited(client, org, db):
    response = submit(client, org.admin.email, "wrong")

    assert response.status_code == 401
    assert re.search(r'id="error"[^>]*>wrong email or password<', response.text)
    assert "rolecall_session" not in response.cookies
    db.expire_all()
    failed = db.scalars(select(AuditEvent).where(AuditEvent.action == "auth.login_failed")).all()
    assert failed and failed[-1].actor_type == "anonymous"


@pytest.mark.parametrize("token", ["", "forged-token"])
def test_a_form_without_its_token_is_refused(client, org, db, token):
    response = submit(client, org.admin.email, PASSWORD, token=token)

    assert response.status_code == 400
    assert "sign-in form expired" in response.text
    assert db.scalar(select(BrowserSession).where(BrowserSession.user_id == org.admin.id)) is None


def test_a_body_that_is_no_form_is_refused(client, org):
    response = client.post("/login", json={"email": org.admin.email})

    assert response.status_code == 400 and 'id="error"' in response.text


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("/projects/x?y=1", "/projects/x?y=1"),
        ("//evil.example.com/", "/"),
        ("/\\evil.example.com", "/"),
        ("https://evil.example.com/", "/"),
        ("javascript:alert(1)", "/"),
        ("/ok\r\nSet-Cookie: x=y", "/"),
        (None, "/"),
    ],
)
def test_only_same_origin_paths_are_followed_after_sign_in(given, kept):
    assert safe_return_to(given) == kept


def test_return_to_is_followed(client, org):
    response = submit(client, org.admin.email, PASSWORD, return_to="//evil.example.com")
    assert response.headers["location"] == "/"


def test_the_home_page_sends_strangers_to_the_sign_in_page(client, org):
    response = client.get("/", follow_redirects=False)

    assert response.status_code == 303 and response.headers["location"] == "/login"


def test_the_sso_link_shows_when_oidc_is_configured_and_sso_is_on(make_client, org):
    configured = {"oidc_issuer": "https://idp.example.com", "oidc_client_id": "rolecall"}

    page = make_client(**configured).get("/login?return_to=/x").text
    assert re.search(r'id="sso"[^>]*href="/oidc/login\?return_to=%2Fx"', page)

    restore = make_client(**configured, local_restore=True).get("/login").text
    assert 'id="sso"' not in restore and "LOCAL_RESTORE" in restore
