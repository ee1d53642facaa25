"""REST routes: email-and-password sign-in (local or LDAP) and sign-out (browser sessions)."""

from __future__ import annotations

from fastapi import Query, Request, Response

from rolecall.errors import AuthenticationFailed, Unavailable
from rolecall.identity import sessions
from rolecall.settings import OrgMode
from rolecall.sso.sign_in import sign_in_with_email_password
from rolecall.users import service as users_service
from rolecall.users.schemas import SignInRead, SignInRequest, UserRead
from rolecall.web.api.v1._router import make_router
from rolecall.web.cookies import clear_session_cookie, set_session_cookie
from rolecall.web.deps import PrincipalDep, SessionDep, SettingsDep, sign_in_org
from rolecall.web.errors import UNAVAILABLE_RESPONSE

router = make_router("auth")


@router.post(
    "/auth/login",
    operation_id="auth-login",
    response_model=SignInRead,
    responses=UNAVAILABLE_RESPONSE,  # type: ignore[arg-type]
)
def login(
    body: SignInRequest,
    request: Request,
    response: Response,
    db: SessionDep,
    settings: SettingsDep,
    org: str | None = Query(default=None, description="multi-org mode: the org signed in to"),
) -> SignInRead:
    """Sign in with email and password (local, or through LDAP when LDAP login is on); sets
    the ``rolecall_session`` cookie."""
    # Multi-org mode without ?org=: local passwords only (no organization's LDAP applies).
    target = sign_in_org(db, settings, org) if settings.mode is OrgMode.SINGLE or org else None
    try:
        signed = sign_in_with_email_password(
            db, org=target, email=body.email, password=body.password, settings=settings
        )
    except (AuthenticationFailed, Unavailable):
        # Keep the auth.login_failed audit event: an error response rolls the transaction back.
        db.commit()
        raise
    set_session_cookie(response, signed, settings, db=db, request=request)
    user = users_service.signed_in_user(db, user_id=signed.browser_session.user_id)
    return SignInRead(user=UserRead.of(user), csrf_token=signed.csrf_token)


@router.post("/auth/logout", operation_id="auth-logout", status_code=204)
def logout(principal: PrincipalDep, db: SessionDep, response: Response) -> None:
    """End the browser session (the cookie and CSRF token stop working) and clear the cookie."""
    sessions.sign_out(db, actor=principal)
    clear_session_cookie(response)
