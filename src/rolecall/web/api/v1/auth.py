"""REST routes: password sign-in and sign-out (browser sessions)."""

from __future__ import annotations

from fastapi import Response

from rolecall.errors import AuthenticationFailed
from rolecall.identity import sessions
from rolecall.settings import Settings
from rolecall.users import service as users_service
from rolecall.users.schemas import SignInRead, SignInRequest, UserRead
from rolecall.web.api.v1._router import make_router
from rolecall.web.deps import SESSION_COOKIE, PrincipalDep, SessionDep, SettingsDep

router = make_router("auth")


@router.post("/auth/login", operation_id="auth-login", response_model=SignInRead)
def login(
    body: SignInRequest, response: Response, db: SessionDep, settings: SettingsDep
) -> SignInRead:
    """Sign in with email and password; sets the ``rolecall_session`` cookie."""
    try:
        signed = sessions.sign_in_with_password(
            db, email=body.email, password=body.password, settings=settings
        )
    except AuthenticationFailed:
        # Keep the auth.login_failed audit event: an error response rolls the transaction back.
        db.commit()
        raise
    _set_session_cookie(response, signed, settings)
    user = users_service.signed_in_user(db, user_id=signed.browser_session.user_id)
    return SignInRead(user=UserRead.of(user), csrf_token=signed.csrf_token)


@router.post("/auth/logout", operation_id="auth-logout", status_code=204)
def logout(principal: PrincipalDep, db: SessionDep, response: Response) -> None:
    """End the browser session (the cookie and CSRF token stop working) and clear the cookie."""
    sessions.sign_out(db, actor=principal)
    response.delete_cookie(SESSION_COOKIE, httponly=True, samesite="lax")


def _set_session_cookie(response: Response, signed: sessions.SignIn, settings: Settings) -> None:
    """HttpOnly (scripts cannot read it), SameSite=Lax (not sent on cross-site posts), Secure
    behind an https public URL, and no longer lived than the session itself."""
    response.set_cookie(
        SESSION_COOKIE,
        signed.cookie_secret,
        max_age=int(signed.lifetime.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=settings.base_url.startswith("https"),
    )
