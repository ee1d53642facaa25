"""The browser-session cookie, set the same way by every sign-in (password, LDAP, OIDC)."""

from __future__ import annotations

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response

from rolecall.errors import AuthenticationFailed
from rolecall.identity.authenticate import authenticate_session
from rolecall.identity.sessions import SignIn, sign_out
from rolecall.settings import Settings
from rolecall.web.deps import SESSION_COOKIE


def set_session_cookie(
    response: Response, signed: SignIn, settings: Settings, *, db: Session, request: Request
) -> None:
    """Give the browser ``signed``'s session cookie, ending the session it had (``request``'s
    cookie), if any: the browser keeps only the new cookie, and the old one must not go on
    working for whoever else holds it (audited as a sign-out).

    HttpOnly (scripts cannot read it), SameSite=Lax (not sent on cross-site posts, but sent on
    the top-level redirect back from an identity provider), Secure behind an https public URL,
    and no longer lived than the session itself."""
    _end_replaced_session(db, request)
    response.set_cookie(
        SESSION_COOKIE,
        signed.cookie_secret,
        max_age=int(signed.lifetime.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=settings.base_url.startswith("https"),
    )


def _end_replaced_session(db: Session, request: Request) -> None:
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return
    try:
        principal, _ = authenticate_session(db, cookie)
    except AuthenticationFailed:
        return  # expired or revoked already
    sign_out(db, actor=principal)


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, httponly=True, samesite="lax")
