"""Request dependencies: the transaction, the caller, the organization."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, replace
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from fastapi.routing import APIRoute
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from rolecall.authz.facts import PrincipalKind
from rolecall.errors import AuthenticationFailed, InvalidInput, NotFound, PermissionDenied
from rolecall.identity.attribution import clean_requested, resolve_attribution
from rolecall.identity.authenticate import (
    authenticate_api_key,
    authenticate_session,
    record_key_use,
    secret_from_authorization,
)
from rolecall.identity.principal import ANONYMOUS, Principal
from rolecall.identity.secrets import same_digest
from rolecall.orgs.models import Organization, OrgMembership
from rolecall.settings import OrgMode, Settings

log = logging.getLogger("rolecall.web")

SESSION_COOKIE = "rolecall_session"
CSRF_HEADER = "X-CSRF-Token"
ORG_HEADER = "X-Rolecall-Org"
ATTRIBUTION_HEADERS = ("X-Wandb-Username", "X-Wandb-User-Email")
#: On a service account's response when it named a human: whether the work counts for that
#: human (``allow: ...``) or stays the account's, and why (``deny: ...``).
ATTRIBUTION_RESULT_HEADER = "X-Rolecall-Attribution"
#: The rule a CSRF refusal names.
RULE_CSRF = "csrf"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def get_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


async def read_only_transaction(request: Request) -> None:
    """Marks a request that writes nothing although its method is not safe (a POST that only
    asks a question): its transaction may run beside others (see ``db.engine.for_reading``).
    Async, so it runs on the event loop before the (threaded) session dependency."""
    request.state.read_only = True


#: Route dependency for ``read_only_transaction``.
ReadOnly = Depends(read_only_transaction)


def get_session(request: Request) -> Iterator[Session]:
    """One session (one transaction) per request; ``TransactionalRoute`` commits it."""
    reads_only = request.method in SAFE_METHODS or getattr(request.state, "read_only", False)
    state = request.app.state
    factory = state.read_session_factory if reads_only else state.session_factory
    session: Session = factory()
    session.info["settings"] = request.app.state.settings
    request.state.db = session
    try:
        yield session
    finally:
        session.close()


class TransactionalRoute(APIRoute):
    """Commits the request's transaction before the response leaves, rolls back on error.

    Committing here (not in the dependency's teardown) means a failed commit becomes an error
    response instead of a success the database never saw.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def run(request: Request) -> Response:
            try:
                response = await handler(request)
            except BaseException:
                db = getattr(request.state, "db", None)
                if db is not None:
                    await run_in_threadpool(_finish, db, commit=False)
                raise
            db = getattr(request.state, "db", None)
            if db is not None:
                # In the thread pool: a commit may wait for the database's write lock, and the
                # event loop must keep serving other requests meanwhile.
                await run_in_threadpool(_finish, db, commit=response.status_code < 400)
            return response

        return run


def _finish(db: Session, *, commit: bool) -> None:
    """End the request's transaction, then record the API key's use in a short one of its own."""
    if commit:
        db.commit()
    else:
        db.rollback()
    try:
        if record_key_use(db):
            db.commit()
    except SQLAlchemyError:
        # Only bookkeeping: the next use records it again.
        db.rollback()
        log.warning("could not record an API key's last use", exc_info=False)


SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


class CsrfRefused(PermissionDenied):
    """A cookie-authenticated unsafe request without the session's CSRF token (403)."""

    code = "csrf_failed"

    def as_dict(self) -> dict[str, Any]:
        return {**super().as_dict(), "rule": RULE_CSRF}


def _attribution(request: Request) -> str | None:
    for header in ATTRIBUTION_HEADERS:
        value = clean_requested(request.headers.get(header))
        if value:  # empty values mean unset
            return value
    return None


def _say_attribution(session: Session, principal: Principal, response: Response) -> None:
    attribution = resolve_attribution(session, actor=principal)
    if attribution is not None:
        step = attribution.step
        said = f"{step.outcome}: {step.detail}"[:512]
        response.headers[ATTRIBUTION_RESULT_HEADER] = said.encode("latin-1", "replace").decode(
            "latin-1"
        )


def get_optional_principal(request: Request, response: Response, session: SessionDep) -> Principal:
    """The caller, or ``ANONYMOUS`` when no credential was presented."""
    secret = secret_from_authorization(request.headers.get("Authorization"))
    if secret is not None:
        principal = authenticate_api_key(session, secret)
    elif cookie := request.cookies.get(SESSION_COOKIE):
        principal, row = authenticate_session(session, cookie)
        if request.method not in SAFE_METHODS:
            sent = request.headers.get(CSRF_HEADER, "")
            if not sent or not same_digest(sent, row.csrf_token):
                raise CsrfRefused(
                    f"missing or wrong CSRF token: send the sign-in's csrf_token in {CSRF_HEADER}"
                )
    else:
        return ANONYMOUS
    if principal.kind is PrincipalKind.SERVICE_ACCOUNT:
        attribution = _attribution(request)
        if attribution:
            principal = replace(principal, attribution=attribution)
            _say_attribution(session, principal, response)
    request.state.principal = principal
    return principal


def get_principal(principal: Annotated[Principal, Depends(get_optional_principal)]) -> Principal:
    """The authenticated caller; 401 when the request carried no credential."""
    if principal.kind is PrincipalKind.ANONYMOUS:
        raise AuthenticationFailed(
            "authentication required: send an API key", code="credentials_required"
        )
    return principal


OptionalPrincipalDep = Annotated[Principal, Depends(get_optional_principal)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]


def get_org(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    principal: OptionalPrincipalDep,
) -> Organization:
    """The organization a request is about.

    Single mode: the one org. Multi mode: the ``X-Rolecall-Org`` header (or ``?org=``), else the
    caller's only org.
    """
    if settings.mode is OrgMode.SINGLE:
        org = session.scalar(select(Organization).order_by(Organization.created_at).limit(1))
        if org is None:
            raise NotFound("no organization yet: run `rolecall init`")
        return org
    name = request.headers.get(ORG_HEADER) or request.query_params.get("org")
    if name:
        # PostgreSQL refuses NUL in text, and no organization has such a name.
        usable = len(name) <= 128 and name.isprintable()
        org = (
            session.scalar(select(Organization).where(Organization.name_key == name.lower()))
            if usable
            else None
        )
        if org is None:
            raise NotFound(f"no organization {name[:64]!r}", field=ORG_HEADER)
        return org
    if principal.org_id:
        org = session.get(Organization, principal.org_id)
        if org is not None:
            return org
    if principal.user_id:
        orgs = list(
            session.scalars(
                select(Organization)
                .join(OrgMembership, OrgMembership.org_id == Organization.id)
                .where(OrgMembership.user_id == principal.user_id)
                .limit(2)
            )
        )
        if len(orgs) == 1:
            return orgs[0]
    raise InvalidInput(f"name the organization with the {ORG_HEADER} header", field=ORG_HEADER)


OrgDep = Annotated[Organization, Depends(get_org)]


@dataclass(frozen=True, slots=True)
class Context:
    """What a route hands to a service: the transaction, the caller (tagged with the
    organization the request is about, for the audit log), the organization, the settings."""

    session: Session
    actor: Principal
    org: Organization
    settings: Settings


def _context(
    session: Session, principal: Principal, org: Organization, settings: Settings
) -> Context:
    actor = principal if principal.org_id == org.id else replace(principal, org_id=org.id)
    return Context(session, actor, org, settings)


def get_context(
    session: SessionDep, principal: PrincipalDep, org: OrgDep, settings: SettingsDep
) -> Context:
    return _context(session, principal, org, settings)


def get_optional_context(
    session: SessionDep, principal: OptionalPrincipalDep, org: OrgDep, settings: SettingsDep
) -> Context:
    return _context(session, principal, org, settings)


#: An authenticated request about an organization.
ContextDep = Annotated[Context, Depends(get_context)]
#: The same, anonymous callers allowed (open and public projects).
OptionalContextDep = Annotated[Context, Depends(get_optional_context)]
