"""The browser-session cookie, set the same way by every sign-in (password, LDAP, OIDC)."""

from __future__ import annotations

from starlette.responses import Response

from rolecall.identity.sessions import SignIn
from rolecall.settings import Settings
from rolecall.web.deps import SESSION_COOKIE


def set_session_cookie(response: Response, signed: SignIn, settings: Settings) -> None:
    """HttpOnly (scripts cannot read it), SameSite=Lax (not sent on cross-site posts, but sent
    on the top-level redirect back from an identity provider), Secure behind an https public
    URL, and no longer lived than the session itself."""
    response.set_cookie(
        SESSION_COOKIE,
        signed.cookie_secret,
        max_age=int(signed.lifetime.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=settings.base_url.startswith("https"),
    )


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, httponly=True, samesite="lax")
