"""Signing out in the console: ``GET /logout`` asks for confirmation, ``POST /logout`` needs the
session's CSRF token (logout CSRF: another site must not end a session), as the home page's
button and the confirmation page's form send it."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from rolecall.audit.models import AuditEvent
from rolecall.identity.models import BrowserSession
from tests.console.test_login_page import PASSWORD, form_token, submit

HTML = {"Accept": "text/html"}


@pytest.fixture
def signed(client, org):  # type: ignore[no-untyped-def]
    """The client signed in through the console's form."""
    assert submit(client, org.admin.email, PASSWORD).status_code == 303
    return client


def session_row(db, org) -> BrowserSession:  # type: ignore[no-untyped-def]
    db.expire_all()
    row = db.scalar(select(BrowserSession).where(BrowserSession.user_id == org.admin.id))
    assert row is not None
    return row


def logouts(db) -> list[AuditEvent]:  # type: ignore[no-untyped-def]
    db.expire_all()
    return list(db.scalars(select(AuditEvent).where(AuditEvent.action == "auth.logout")))


def test_the_home_pages_sign_out_form_carries_the_sessions_token(signed, db, org):
    home = signed.get("/")

    assert re.search(r'<form id="logout" method="post" action="/logout">', home.text)
    assert form_token(home.text) == session_row(db, org).csrf_token


def test_get_logout_asks_for_confirmation_and_signs_nobody_out(signed, db, org):
    page = signed.get("/logout")

    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    assert page.headers["content-type"].startswith("text/html")
    assert re.search(r'<form id="logout" method="post" action="/logout">', page.text)
    assert re.search(rf'id="viewer">{org.admin.username}<', page.text)
    assert form_token(page.text) == session_row(db, org).csrf_token
    assert signed.get("/api/v1/viewer").status_code == 200
    assert session_row(db, org).revoked_at is None and logouts(db) == []


def test_get_logout_without_a_session_goes_home(client):
    response = client.get("/logout", follow_redirects=False)

    assert (response.status_code, response.headers["location"]) == (303, "/")


@pytest.mark.parametrize("token", [None, "", "forged-token"])
def test_a_post_without_the_sessions_token_is_refused(signed, db, org, token):
    data = {} if token is None else {"csrf_token": token}
    refused = signed.post("/logout", data=data, follow_redirects=False)

    assert refused.status_code == 403
    error = refused.json()["error"]
    assert (error["code"], error["rule"]) == ("csrf_failed", "csrf")
    assert "did not carry this session's CSRF token" in error["message"]
    assert "set-cookie" not in refused.headers
    assert signed.get("/api/v1/viewer").status_code == 200
    assert session_row(db, org).revoked_at is None and logouts(db) == []


def test_another_sessions_token_is_refused(make_client, signed, db, org):
    other = make_client()
    assert submit(other, org.admin.email, PASSWORD).status_code == 303
    others_token = form_token(other.get("/").text)

    refused = signed.post("/logout", data={"csrf_token": others_token}, follow_redirects=False)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "csrf_failed"
    assert signed.get("/api/v1/viewer").status_code == 200


def test_a_browser_refused_gets_the_confirmation_page_with_the_reason(signed, db, org):
    refused = signed.post("/logout", data={"csrf_token": "x"}, headers=HTML)

    assert refused.status_code == 403 and refused.headers["content-type"].startswith("text/html")
    assert re.search(r'id="error"[^>]*data-code="csrf_failed"[^>]*>sign-out refused', refused.text)
    assert form_token(refused.text) == session_row(db, org).csrf_token  # confirm to sign out
    assert signed.get("/api/v1/viewer").status_code == 200


def test_the_confirmation_form_signs_out(signed, db, org):
    token = form_token(signed.get("/logout").text)

    out = signed.post("/logout", data={"csrf_token": token}, follow_redirects=False)
    assert (out.status_code, out.headers["location"]) == (303, "/")
    assert 'rolecall_session=""' in out.headers["set-cookie"]
    assert signed.get("/api/v1/viewer").status_code == 401
    assert session_row(db, org).revoked_at is not None
    assert len(logouts(db)) == 1


def test_the_csrf_header_does_it_too(signed, db, org):
    token = session_row(db, org).csrf_token

    out = signed.post("/logout", headers={"X-CSRF-Token": token}, follow_redirects=False)
    assert out.status_code == 303 and signed.get("/api/v1/viewer").status_code == 401


def test_a_cross_site_post_without_the_cookie_changes_nothing(signed, db, org):
    """A SameSite=Lax cookie does not come with another site's form post: the answer must not
    clear it either."""
    cookie = signed.cookies.get("rolecall_session")
    signed.cookies.clear()

    response = signed.post("/logout", follow_redirects=False)
    assert (response.status_code, response.headers["location"]) == (303, "/")
    assert "set-cookie" not in response.headers
    signed.cookies.set("rolecall_session", cookie)
    assert signed.get("/api/v1/viewer").status_code == 200
    assert logouts(db) == []
