"""The console's sign-in page and home page (HTML through the app; the browser test drives
them in Chromium)."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from rolecall.audit.models import AuditEvent
from rolecall.identity.models import BrowserSession
from rolecall.settings import OrgMode
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


# --- forms sent from elsewhere, and what a form keeps -------------------------------------------


@pytest.mark.parametrize(
    "origin", ["http://testserver:8081", "http://evil.testserver", "https://evil.example", "null"]
)
def test_a_form_another_origin_sent_is_refused_even_with_a_matching_token(client, org, db, origin):
    # A page on another port or a sibling host can set the token cookie itself, then post the
    # matching token: the browser's Origin header gives it away.
    page = client.get("/login")
    data = {"email": org.admin.email, "password": PASSWORD, "csrf_token": form_token(page.text)}

    response = client.post("/login", data=data, headers={"Origin": origin}, follow_redirects=False)

    assert response.status_code == 403
    assert "sent from another site" in response.text
    assert "rolecall_session" not in response.cookies
    assert db.scalar(select(BrowserSession).where(BrowserSession.user_id == org.admin.id)) is None


@pytest.mark.parametrize("origin", ["http://testserver", "https://testserver"])
def test_a_form_this_site_sent_is_taken(client, org, origin):
    page = client.get("/login")
    data = {"email": org.admin.email, "password": PASSWORD, "csrf_token": form_token(page.text)}

    response = client.post("/login", data=data, headers={"Origin": origin}, follow_redirects=False)

    assert response.status_code == 303 and "rolecall_session" in response.cookies


def test_the_public_urls_origin_is_this_site(make_client, org):
    # Behind a proxy the Host the app sees is not the one the browser used.
    client = make_client(public_url="https://iam.example.com")
    client.base_url = "https://testserver"  # the cookies are Secure behind an https URL
    page = client.get("/login")
    data = {"email": org.admin.email, "password": PASSWORD, "csrf_token": form_token(page.text)}
    origin = {"Origin": "https://iam.example.com"}

    response = client.post("/login", data=data, headers=origin, follow_redirects=False)

    assert response.status_code == 303


def test_a_failed_attempt_keeps_where_the_form_leads(client, org):
    page = client.get("/login?return_to=/api/v1/viewer")
    data = {"email": org.admin.email, "password": "wrong", "return_to": "/api/v1/viewer"}
    data["csrf_token"] = form_token(page.text)

    failed = client.post("/login", data=data, follow_redirects=False)
    data |= {"password": PASSWORD, "csrf_token": form_token(failed.text)}
    retried = client.post("/login", data=data, follow_redirects=False)

    assert failed.status_code == 401
    assert 'name="return_to" value="/api/v1/viewer"' in failed.text
    assert retried.status_code == 303 and retried.headers["location"] == "/api/v1/viewer"


def test_in_multi_org_mode_the_form_posts_to_its_organization(make_client, org):
    client = make_client(mode=OrgMode.MULTI)

    page = client.get(f"/login?org={org.org.name}")

    assert f"Sign in to {org.org.name}" in page.text
    assert f'action="/login?org={org.org.name}"' in page.text


def test_signing_in_again_ends_the_session_the_browser_had(make_client, org, db):
    bob = factories.user(db, org.org, username="bob", email="bob@example.com")
    bob.password_hash = factories.admin_password_hash()
    db.flush()
    admins = make_client()
    assert submit(admins, org.admin.email, PASSWORD).status_code == 303
    first = admins.cookies["rolecall_session"]
    # The same browser, still carrying the admin's cookie, signs in as bob.
    browser = make_client()
    page = browser.get("/login")
    browser.cookies.set("rolecall_session", first)
    data = {"email": bob.email, "password": PASSWORD, "csrf_token": form_token(page.text)}

    again = browser.post("/login", data=data, follow_redirects=False)

    assert again.status_code == 303
    assert again.cookies["rolecall_session"] != first
    as_bob = make_client()
    as_bob.cookies.set("rolecall_session", again.cookies["rolecall_session"])
    assert as_bob.get("/api/v1/viewer").json()["username"] == "bob"
    # The admin's cookie, wherever else it went, no longer works.
    assert admins.get("/api/v1/viewer").status_code == 401
    db.expire_all()
    [ended] = db.scalars(select(BrowserSession).where(BrowserSession.user_id == org.admin.id))
    assert ended.revoked_at is not None
    logouts = db.scalars(select(AuditEvent).where(AuditEvent.action == "auth.logout")).all()
    assert [event.object_id for event in logouts] == [org.admin.id]
