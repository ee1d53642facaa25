"""Console pages: sign-in (local password, or LDAP when it is on; a link to OIDC when it is
configured) and the signed-in home page.

The sign-in form is protected by a double-submit token: ``GET /login`` sets it in a cookie and
in the form, and ``POST /login`` refuses a form whose token does not match, so another site
cannot sign a browser in to an account of its choosing (login CSRF). A page on another port of
this host or on a sibling host can set that cookie itself, so a form a browser says came from
another origin (``Origin``) is refused too.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session

from rolecall.errors import AuthenticationFailed, RolecallError
from rolecall.identity import sessions
from rolecall.identity.authenticate import authenticate_session
from rolecall.identity.models import BrowserSession
from rolecall.identity.principal import Principal
from rolecall.identity.secrets import same_digest
from rolecall.orgs.models import Organization
from rolecall.settings import Settings
from rolecall.sso.config import ldap_config, oidc_config
from rolecall.sso.oidc import safe_return_to
from rolecall.sso.sign_in import sign_in_with_email_password
from rolecall.users.models import User
from rolecall.web.cookies import set_session_cookie
from rolecall.web.deps import SESSION_COOKIE, SessionDep, SettingsDep, TransactionalRoute
from rolecall.web.deps import sign_in_org as find_sign_in_org
from rolecall.web.errors import status_for
from rolecall.web.forms import from_another_origin, read_form, single

router = APIRouter(route_class=TransactionalRoute, include_in_schema=False)
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))

LOGIN_CSRF_COOKIE = "rolecall_login_csrf"
NO_STORE = {"Cache-Control": "no-store"}


def signed_in(db: Session, request: Request) -> tuple[Principal, BrowserSession] | None:
    """The session the browser's cookie names, or ``None`` (no cookie, expired, revoked)."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    try:
        return authenticate_session(db, cookie)
    except AuthenticationFailed:
        return None


async def login_form(request: Request) -> dict[str, list[str]] | str:
    return await read_form(request, max_bytes=16 * 1024, max_fields=10)


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, db: SessionDep, settings: SettingsDep) -> Response:
    """The sign-in form."""
    if signed_in(db, request) is not None:
        return RedirectResponse(safe_return_to(request.query_params.get("return_to")), 303)
    return _login_page(db, request, settings, status=200)


@router.post("/login", response_class=HTMLResponse)
def login_submit(
    request: Request,
    db: SessionDep,
    settings: SettingsDep,
    form: Annotated[dict[str, list[str]] | str, Depends(login_form)],
) -> Response:
    """Check the form's token and the credentials; on success set the session cookie."""
    if isinstance(form, str):
        return _login_page(db, request, settings, status=400, error=form)
    email = single(form, "email")
    # The destination survives a failed attempt: the form posts it, not the URL.
    page = {"email": email, "return_to": single(form, "return_to")}
    if from_another_origin(request, settings.base_url):
        error = "this sign-in form was sent from another site; sign in from this site's own page"
        return _login_page(db, request, settings, status=403, error=error, **page)
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    sent = single(form, "csrf_token")
    if not expected or not sent or not same_digest(expected, sent):
        error = "the sign-in form expired; please try again"
        return _login_page(db, request, settings, status=400, error=error, **page)
    try:
        signed = sign_in_with_email_password(
            db,
            org=_sign_in_org(db, request, settings),
            email=email,
            password=single(form, "password"),
            settings=settings,
            surface="console",
        )
    except RolecallError as exc:
        db.commit()  # keep the auth.login_failed audit event
        status = status_for(exc)
        return _login_page(db, request, settings, status=status, error=exc.message, **page)
    response = RedirectResponse(safe_return_to(page["return_to"]), 303)
    set_session_cookie(response, signed, settings, db=db, request=request)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.get("/", response_class=HTMLResponse)
def home(request: Request, db: SessionDep) -> Response:
    """The signed-in user's home page; the sign-in form for everyone else."""
    found = signed_in(db, request)
    if found is None:
        return RedirectResponse("/login", 303)
    principal, row = found
    user = db.get(User, principal.user_id)
    org_name = _org_name(db, row)
    context = {
        "username": principal.name,
        "email": user.email if user else "",
        "org_name": org_name,
        "csrf_token": row.csrf_token,
    }
    return templates.TemplateResponse(request, "home.html", context, headers=NO_STORE)


def _org_name(db: Session, row: BrowserSession) -> str:
    org_id = sessions.home_org_id(db, row.user_id)
    org = db.get(Organization, org_id) if org_id else None
    return org.name if org else ""


def _login_page(
    db: Session,
    request: Request,
    settings: Settings,
    *,
    status: int,
    error: str | None = None,
    email: str = "",
    return_to: str | None = None,
) -> Response:
    """The form; ``return_to`` (a POST's own field) or else the URL's says where it leads."""
    org = _sign_in_org(db, request, settings)
    return_to = safe_return_to(return_to or request.query_params.get("return_to"))
    token = secrets.token_urlsafe(32)
    context: dict[str, Any] = {
        "org_name": org.name if org else "rolecall",
        "action": _form_action(org, settings),
        "error": error,
        "email": email,
        "csrf_token": token,
        "return_to": return_to,
        "sso_link": _sso_link(org, settings, return_to),
        "ldap_login": bool(org and settings.sso_enabled and _ldap_login_on(org, settings)),
        "local_restore": settings.local_restore,
    }
    response = templates.TemplateResponse(
        request, "login.html", context, status_code=status, headers=NO_STORE
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        max_age=3600,
        path="/login",
        httponly=True,
        samesite="lax",
        secure=settings.base_url.startswith("https"),
    )
    return response


def _sign_in_org(db: Session, request: Request, settings: Settings) -> Organization | None:
    """The organization the form signs in to (``?org=`` in multi-org mode), if any."""
    try:
        return find_sign_in_org(db, settings, request.query_params.get("org"))
    except RolecallError:
        return None


def sign_in_url(org_name: str | None) -> str:
    """The sign-in page, of one organization (``?org=``) when named: in multi-org mode it
    decides whose LDAP directory checks the password."""
    return f"/login?org={quote(org_name, safe='')}" if org_name else "/login"


def _form_action(org: Organization | None, settings: Settings) -> str:
    """Where the form posts: in multi-org mode, its organization's sign-in."""
    if org is None or settings.mode.value != "multi":
        return sign_in_url(None)
    return sign_in_url(org.name)


def _sso_link(org: Organization | None, settings: Settings, return_to: str) -> str | None:
    if org is None or not settings.sso_enabled or not oidc_config(org, settings).configured:
        return None
    link = f"/oidc/login?return_to={quote(return_to, safe='')}"
    return f"{link}&org={quote(org.name, safe='')}" if settings.mode.value == "multi" else link


def _ldap_login_on(org: Organization, settings: Settings) -> bool:
    ldap = ldap_config(org, settings)
    return ldap.configured and ldap.login
