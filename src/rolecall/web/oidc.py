"""``POST /oidc/token``: the RFC 7523 JWT bearer grant, an adapter over ``federation.service``.

Form body (RFC 6749 §4.5, RFC 7523 §2.1)::

    grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<JWT>

Success: ``{"access_token", "token_type": "Bearer", "expires_in"}`` (RFC 6749 §5.1). Refusal:
``{"error", "error_description"}`` (RFC 6749 §5.2) with HTTP 400, or 503
``temporarily_unavailable`` when the issuer's keys cannot be fetched (clients retry those).
Every exchange, accepted or refused, is audited with the check that decided it.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from rolecall.federation import service
from rolecall.federation.jwks import JwksCache
from rolecall.federation.jwt_bearer import (
    GRANT_TYPE,
    INVALID_REQUEST,
    TEMPORARILY_UNAVAILABLE,
    UNSUPPORTED_GRANT_TYPE,
)
from rolecall.settings import Settings
from rolecall.web import metrics
from rolecall.web.errors import (
    ERROR_RESPONSES,
    NO_STORE,
    OAUTH_TOKEN_PATH,
    oauth_error_response,
)
from rolecall.web.forms import read_form

router = APIRouter(tags=["oidc"], responses=ERROR_RESPONSES)


class TokenResponse(BaseModel):
    """RFC 6749 §5.1."""

    access_token: str
    token_type: str = Field(description="always Bearer")
    expires_in: int = Field(description="seconds the access token is valid")


class OAuthError(BaseModel):
    """RFC 6749 §5.2; ``error_description`` names the check that failed."""

    error: str = Field(
        description="invalid_request, invalid_grant, unsupported_grant_type or "
        "temporarily_unavailable (503: the issuer's keys could not be fetched)"
    )
    error_description: str


FORM_SCHEMA = {
    "type": "object",
    "required": ["grant_type", "assertion"],
    "properties": {
        "grant_type": {"type": "string", "enum": ["urn:ietf:params:oauth:grant-type:jwt-bearer"]},
        "assertion": {"type": "string", "description": "the JWT from the organization's issuer"},
    },
}


def _oauth_error(error: str, description: str) -> JSONResponse:
    status = 503 if error == TEMPORARILY_UNAVAILABLE else 400
    return oauth_error_response(status, error, description)


Problem = tuple[str, str, str]


def _form_problem(form: dict[str, list[str]]) -> Problem | None:
    """RFC 6749 §3.2 and §5.2: (error, description, check) for a malformed grant, or None."""
    repeated = sorted(name for name, values in form.items() if len(values) > 1)
    if repeated:
        listed = ", ".join(repeated)[:100]
        return INVALID_REQUEST, f"parameters sent more than once: {listed}", "request"
    grant_type = form.get("grant_type", [""])[0]
    if not grant_type:
        return INVALID_REQUEST, f"grant_type is missing: send {GRANT_TYPE}", "grant_type"
    if grant_type != GRANT_TYPE:
        described = f"only the grant type {GRANT_TYPE} is supported"
        return UNSUPPORTED_GRANT_TYPE, described, "grant_type"
    if not form.get("assertion", [""])[0].strip():
        return INVALID_REQUEST, "assertion is missing: send the JWT as assertion", "assertion"
    return None


def _exchange(
    read_factory: sessionmaker[Session],
    write_factory: sessionmaker[Session],
    settings: Settings,
    keys: JwksCache,
    form: dict[str, list[str]] | None,
    problem: Problem | None,
) -> service.Grant | service.Assessment:
    """In a worker thread: assess in a read transaction, then record (and issue) in a short
    write transaction, so no write lock is held while the issuer's keys are fetched."""
    with read_factory() as session:
        if problem is not None or form is None:
            error, description, check = problem or (INVALID_REQUEST, "no form", "request")
            assessment = service.refusal(
                service.single_org_id(session, settings), error, description, check
            )
        else:
            assessment = service.assess_exchange(
                session, settings=settings, keys=keys, assertion=form["assertion"][0]
            )
        session.rollback()
    with write_factory() as session:
        grant = service.complete_exchange(session, assessment, settings=settings)
        session.commit()
    return grant if grant is not None else assessment


@router.post(
    OAUTH_TOKEN_PATH,
    operation_id="oidc-token",
    response_model=TokenResponse,
    responses={
        400: {"model": OAuthError, "description": "Refused (RFC 6749 §5.2)"},
        503: {"model": OAuthError, "description": "The issuer's keys could not be fetched"},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/x-www-form-urlencoded": {"schema": FORM_SCHEMA}},
        }
    },
)
async def token(request: Request) -> JSONResponse:
    """Exchange a JWT from the organization's issuer for an access token (RFC 7523)."""
    form = await read_form(request)
    problem = (INVALID_REQUEST, form, "request") if isinstance(form, str) else _form_problem(form)
    state = request.app.state
    outcome = await run_in_threadpool(
        _exchange,
        state.read_session_factory,
        state.session_factory,
        state.settings,
        state.jwks,
        form if isinstance(form, dict) else None,
        problem,
    )
    if isinstance(outcome, service.Grant):
        metrics.TOKEN_EXCHANGES.labels(outcome="accepted").inc()
        body = {
            "access_token": outcome.access_token,
            "token_type": "Bearer",
            "expires_in": outcome.expires_in,
        }
        return JSONResponse(body, headers=NO_STORE)
    metrics.TOKEN_EXCHANGES.labels(outcome=outcome.check or "refused").inc()
    return _oauth_error(outcome.error or INVALID_REQUEST, outcome.description or "refused")
