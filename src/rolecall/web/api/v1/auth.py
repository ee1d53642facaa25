"""REST routes: password sign-in and sign-out (browser sessions)."""

from __future__ import annotations

from fastapi import Response

from rolecall.errors import AuthenticationFailed
from rolecall.identity import sessions
from rolecall.users import service as users_service
from rolecall.users.schemas import SignInRead, SignInRequest, UserRead
from rolecall.web.api.v1._router import make_router
from rolecall.web.cookies import clear_session_cookie, set_session_cookie
from rolecall.web.deps import PrincipalDep, SessionDep, SettingsDep

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
    set_session_cookie(response, signed, settings)
    user = users_service.signed_in_user(db, user_id=signed.browser_session.user_id)
    return SignInRead(user=UserRead.of(user), csrf_token=signed.csrf_token)


@router.post("/auth/logout", operation_id="auth-logout", status_code=204)
def logout(principal: PrincipalDep, db: SessionDep, response: Response) -> None:
    """End the browser session (the cookie and CSRF token stop working) and clear the cookie."""
    sessions.sign_out(db, actor=principal)
    clear_session_cookie(response)
