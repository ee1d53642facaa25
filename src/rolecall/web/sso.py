"""Browser routes of single sign-on: ``/oidc/login``, ``/oidc/callback``, ``/logout``, and the
clear refusal of SAML.

Adapters over ``rolecall.sso.oidc`` and ``rolecall.sso.sign_out``. They answer browsers, so an
error is a small page (HTML when the browser asks for it, else JSON ``{"error": {...}}``) with
the reason and what the identity provider said (``oauth_error``, ``oauth_error_description``),
never a 500: an unreachable provider is a 503 ``idp_unavailable`` and local password sign-in is
untouched.

Signing out is a form: ``GET /logout`` asks for confirmation, ``POST /logout`` ends the session
only when the form carries the session's CSRF token (as the home page's sign-out button does),
so another site cannot sign a user out here or at the identity provider. A refusal is a 403
``csrf_failed`` and the session stays.
"""

from __future__ import annotations

from html import escape
from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from rolecall.errors import RolecallError
from rolecall.identity.models import BrowserSession
from rolecall.identity.principal import Principal
from rolecall.identity.secrets import same_digest
from rolecall.settings import Settings
from rolecall.sso import oidc, sign_out
from rolecall.sso.oidc import CALLBACK_PATH
from rolecall.web.console.routes import sign_in_url, signed_in, templates
from rolecall.web.cookies import clear_session_cookie, set_session_cookie
from rolecall.web.deps import (
    CSRF_HEADER,
    SESSION_COOKIE,
    CsrfRefused,
    JwksDep,
    SessionDep,
    SettingsDep,
    TransactionalRoute,
    Writes,
    sign_in_org,
)
from rolecall.web.errors import status_for
from rolecall.web.forms import read_form, single

router = APIRouter(route_class=TransactionalRoute, tags=["sso"], include_in_schema=False)

#: Statuses that differ from the REST mapping of the error classes.
STATUS_BY_CODE = {
    "idp_unavailable": 503,
    "sso_disabled": 403,
    "oidc_not_configured": 404,
    "saml_not_supported": 404,
}
#: Largest form body read on the callback (an ID token is a few KB).
MAX_BODY = 64 * 1024
NO_STORE = {"Cache-Control": "no-store"}
SAML_MESSAGE = "SAML is not supported; use OIDC or LDAP"
LOGOUT_REFUSED = (
    "sign-out refused: the request did not carry this session's CSRF token (an expired page, "
    "or a request from another site); confirm on this page to sign out"
)


def error_page(request: Request, error: RolecallError) -> Response:
    """The error as a page a person can read, or as JSON for a program."""
    status = STATUS_BY_CODE.get(error.code) or status_for(error)
    body = error.as_dict()
    if "text/html" not in request.headers.get("accept", ""):
        return JSONResponse({"error": body}, status_code=status, headers=NO_STORE)
    said = ""
    if "oauth_error" in body:
        said = f"<code id='oauth-error'>{escape(body['oauth_error'])}</code>"
        if "oauth_error_description" in body:
            said += (
                f" <span id='oauth-description'>{escape(body['oauth_error_description'])}</span>"
            )
        said = f"<p>The identity provider said: {said}</p>"
    code = escape(error.code)
    back = escape(sign_in_url(request.query_params.get("org")))  # multi-org: its organization's
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>Sign-in failed - rolecall"
        "</title></head><body><h1>Sign-in failed</h1>"
        f"<p id='error' data-code='{code}'>{escape(error.message)}</p>{said}"
        f"<p><a href='{back}'>Back to sign-in</a></p></body></html>"
    )
    return HTMLResponse(page, status_code=status, headers=NO_STORE)


async def callback_params(request: Request) -> dict[str, str] | RolecallError:
    """The authorization response: the query (code flow) or the form (``form_post``).

    RFC 6749 §3.1: a parameter sent twice makes the response unusable.
    """
    if request.method == "POST":
        body = await request.body()
        if len(body) > MAX_BODY:
            return oidc.OidcFailed("the sign-in response is too large", code="invalid_response")
        pairs = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
    else:
        pairs = list(request.query_params.multi_items())
    params = dict(pairs)
    if len(params) != len(pairs):
        return oidc.OidcFailed("the sign-in response repeats a parameter", code="invalid_response")
    return params


CallbackParams = Annotated[dict[str, str] | RolecallError, Depends(callback_params)]


@router.get("/oidc/login", dependencies=[Writes])
def oidc_login(
    request: Request,
    db: SessionDep,
    settings: SettingsDep,
    keys: JwksDep,
    org: str | None = None,
    return_to: str | None = None,
    login_hint: str | None = None,
) -> Response:
    """Start signing in at the organization's identity provider."""
    try:
        target = sign_in_org(db, settings, org)
        started = oidc.start_sign_in(
            db, org=target, settings=settings, keys=keys, return_to=return_to, login_hint=login_hint
        )
    except RolecallError as exc:
        return error_page(request, exc)
    response = RedirectResponse(started.url, status_code=302, headers=NO_STORE)
    _bind_browser(response, started.state, settings)
    return response


@router.api_route("/oidc/callback", methods=["GET", "POST"], dependencies=[Writes])
def oidc_callback(
    request: Request, params: CallbackParams, db: SessionDep, settings: SettingsDep, keys: JwksDep
) -> Response:
    """Finish signing in: check the provider's answer, open the session, go back."""
    binding = _binding_of(params)
    try:
        if isinstance(params, RolecallError):
            raise params
        done = oidc.complete_sign_in(
            db, params=params, settings=settings, keys=keys,
            browser_state=request.cookies.get(binding) if binding else None,
            browser_state_required=_binding_expected(request, settings),
        )  # fmt: skip
    except RolecallError as exc:
        db.commit()  # the used login state and the audited failure stay
        return _unbind_browser(error_page(request, exc), binding)
    response = RedirectResponse(done.return_to, status_code=303, headers=NO_STORE)
    set_session_cookie(response, done.sign_in, settings, db=db, request=request)
    return _unbind_browser(response, binding)


def _bind_browser(response: Response, state: str, settings: Settings) -> None:
    """The browser keeps the state too, for the callback only, as long as the state lives.

    The provider brings the browser back by a top-level GET (code flow: SameSite=Lax cookies
    come along) or a cross-site form POST (form_post: only a SameSite=None cookie comes, and
    browsers take one only with Secure, so only behind https)."""
    secure = settings.base_url.startswith("https")
    response.set_cookie(
        oidc.binding_name(state), state,
        max_age=int(oidc.STATE_LIFETIME.total_seconds()), path=CALLBACK_PATH,
        httponly=True, secure=secure, samesite="none" if secure else "lax",
    )  # fmt: skip


def _binding_of(params: dict[str, str] | RolecallError) -> str | None:
    state = params.get("state") if isinstance(params, dict) else None
    return oidc.binding_name(state) if state else None


def _unbind_browser(response: Response, binding: str | None) -> Response:
    if binding:
        response.delete_cookie(binding, path=CALLBACK_PATH)
    return response


def _binding_expected(request: Request, settings: Settings) -> bool:
    """Whether the browser's binding cookie must have come: always, except for a form post
    over plain http (no SameSite=None cookie without Secure)."""
    return request.method == "GET" or settings.base_url.startswith("https")


async def logout_form(request: Request) -> dict[str, list[str]]:
    """The sign-out form's fields; a body that is no form has none (so no token)."""
    form = await read_form(request, max_bytes=4 * 1024, max_fields=5)
    return form if isinstance(form, dict) else {}


LogoutForm = Annotated[dict[str, list[str]], Depends(logout_form)]


@router.get("/logout")
def logout_page(request: Request, db: SessionDep) -> Response:
    """Ask the signed-in browser to confirm; anyone else has nothing to sign out of."""
    found = signed_in(db, request)
    if found is None:
        return RedirectResponse("/", status_code=303, headers=NO_STORE)
    return _logout_page(request, found, status=200)


@router.post("/logout", dependencies=[Writes])
def logout(
    request: Request, form: LogoutForm, db: SessionDep, settings: SettingsDep, keys: JwksDep
) -> Response:
    """End the browser's session, then sign out at the identity provider when it offers it."""
    found = signed_in(db, request)
    if found is None:
        # Nothing to end. No cookie to clear either when none came: a cross-site post brings
        # no SameSite=Lax cookie, and clearing it would sign the browser out after all.
        response = RedirectResponse("/", status_code=303, headers=NO_STORE)
        return _clear(response) if SESSION_COOKIE in request.cookies else response
    sent = single(form, "csrf_token") or request.headers.get(CSRF_HEADER, "")
    if not sent or not same_digest(sent, found[1].csrf_token):
        return _logout_refused(request, found)
    actor, row = found
    target = sign_out.sign_out_browser(db, actor=actor, row=row, settings=settings, keys=keys)
    return _clear(RedirectResponse(target, status_code=303, headers=NO_STORE))


def _clear(response: Response) -> Response:
    clear_session_cookie(response)
    return response


def _logout_page(
    request: Request,
    found: tuple[Principal, BrowserSession],
    *,
    status: int,
    error: RolecallError | None = None,
) -> Response:
    principal, row = found
    context = {
        "username": principal.name,
        "csrf_token": row.csrf_token,
        "sso": row.method == "oidc",
        "error": error.message if error else None,
        "error_code": error.code if error else None,
    }
    return templates.TemplateResponse(
        request, "logout.html", context, status_code=status, headers=NO_STORE
    )


def _logout_refused(request: Request, found: tuple[Principal, BrowserSession]) -> Response:
    """403 ``csrf_failed``; a person gets the confirmation page again, with the reason."""
    error = CsrfRefused(LOGOUT_REFUSED)
    if "text/html" not in request.headers.get("accept", ""):
        return JSONResponse({"error": error.as_dict()}, status_code=403, headers=NO_STORE)
    return _logout_page(request, found, status=403, error=error)


@router.api_route("/saml", methods=["GET", "POST"])
@router.api_route("/saml/{anything:path}", methods=["GET", "POST"])
def saml(request: Request) -> Response:
    """SAML: a clear refusal (rolecall signs in with OIDC or LDAP only)."""
    return error_page(request, RolecallError(SAML_MESSAGE, code="saml_not_supported"))
