"""Request dependencies: the transaction, the caller, the organization."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import replace
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request, Response
from fastapi.routing import APIRoute
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from rolecall.authz.cache import AccessCache
from rolecall.authz.facts import CredentialKind, DecisionFacts, PrincipalKind
from rolecall.authz.load import FACTS_SEEN
from rolecall.db.session import COMMITTED, RUNS_AGAIN, lost_to_contention
from rolecall.errors import AuthenticationFailed, InvalidInput, NotFound, PermissionDenied
from rolecall.federation.jwks import JwksCache
from rolecall.identity.attribution import clean_requested, resolve_attribution
from rolecall.identity.authenticate import (
    MAX_SECRET_LENGTH,
    PENDING_KEY_USE,
    QUIET_WRITER,
    KeyGrant,
    authenticate_access_token,
    authenticate_session,
    grant_for_api_key,
    record_key_use,
    secret_from_authorization,
)
from rolecall.identity.principal import ANONYMOUS, Principal
from rolecall.identity.secrets import ACCESS_TOKEN_PREFIX, digest, same_digest
from rolecall.orgs.models import Organization, OrgMembership
from rolecall.settings import OrgMode, Settings
from rolecall.web import metrics

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
#: ``session.info`` key: the request's transaction has been ended.
FINISHED = "rolecall.finished"
#: ``request.state`` attribute: the API key grant the request authenticated with.
KEY_GRANT = "key_grant"
#: How often one request's transaction is run again after a concurrent writer failed it.
CONTENTION_RETRIES = 8
#: Access-cache key of the organization's id (single mode).
_ORG_ENTRY = ("org",)

T = TypeVar("T")


# Dependencies that do no I/O are ``async``: FastAPI then runs them on the event loop instead of
# handing each to the thread pool.


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


async def read_only_transaction(request: Request) -> None:
    """Marks a request that writes nothing although its method is not safe (a POST that only
    asks a question): its transaction may run beside others (see ``db.engine.for_reading``).
    Async, so it runs on the event loop before the (threaded) session dependency."""
    request.state.read_only = True


#: Route dependency for ``read_only_transaction``.
ReadOnly = Depends(read_only_transaction)


async def writing_transaction(request: Request) -> None:
    """Marks a request that writes although its method is safe (a browser route reached by a
    redirect, such as an SSO sign-in): its transaction is a writer's from the start, so SQLite
    never has to upgrade a read snapshot."""
    request.state.writes = True


#: Route dependency for ``writing_transaction``.
Writes = Depends(writing_transaction)


def _open_session(request: Request) -> Session:
    """The request's session (its transaction begins with the first query)."""
    safe = request.method in SAFE_METHODS and not getattr(request.state, "writes", False)
    reads_only = safe or getattr(request.state, "read_only", False)
    state = request.app.state
    factory = state.read_session_factory if reads_only else state.session_factory
    session: Session = factory()
    session.info["settings"] = state.settings
    quiet = getattr(state.change_feed, "write_quietly", None)
    if quiet is not None:
        session.info[QUIET_WRITER] = quiet
    request.state.db = session
    return session


async def get_session(request: Request) -> AsyncIterator[Session]:
    """One session (one transaction) per request; ``TransactionalRoute`` ends it.

    Async: making a session does no I/O (the connection comes with the first query, in the
    thread that runs it), so this needs no trip through the thread pool."""
    session = _open_session(request)
    try:
        yield session
    finally:
        # Normally ``_finish`` closed it already (then this does no I/O).
        session.close()


class TransactionalRoute(APIRoute):
    """Ends the request's transaction before the response leaves: commit on success, rollback
    on error. A failed commit becomes an error response, never a success the database never saw.

    A plain (``def``) endpoint is wrapped so that finding the caller, the work and the commit all
    happen in the one thread-pool trip FastAPI makes for it: each trip costs more than the
    queries a typical request carries (see ``Context``).
    """

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        if not inspect.iscoroutinefunction(endpoint):
            endpoint = _in_one_transaction(endpoint)
        super().__init__(path, endpoint, **kwargs)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def run(request: Request) -> Response:
            try:
                response = await handler(request)
            except BaseException:
                await _finish_unless_done(request, commit=False)
                raise
            await _finish_unless_done(request, commit=response.status_code < 400)
            return response

        return run


def _in_one_transaction(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(endpoint)
    def run(*args: Any, **kwargs: Any) -> Any:
        db = next((_session_of(value) for value in kwargs.values() if _session_of(value)), None)
        if db is None:
            return endpoint(*args, **kwargs)
        return _in_transaction(db, functools.partial(endpoint, *args, **kwargs))

    return run


def _in_transaction(db: Session, work: Callable[[], T]) -> T:
    """Run ``work``, then end ``db``'s transaction: commit on success, rollback on error.

    A transaction that failed because of others beside it (``db.session.lost_to_contention``)
    is rolled back and ``work`` run again from its start, up to ``CONTENTION_RETRIES`` times,
    instead of answering 500: PostgreSQL broke a deadlock by failing it (writers that take the
    same rows in different orders: a group's PATCH holds the group and then its new members, a
    member's own PATCH holds the member and then the groups it joins), or a membership it adds
    was added meanwhile, or a row it changes was deleted meanwhile. Run again, it sees what the
    others did and is answered as usual (a no-op, a 409, a 404). Not once ``work`` committed
    part of itself (``commit_before_calling_out``, an audited refusal kept): that part would be
    done twice."""
    retries = CONTENTION_RETRIES
    while True:
        db.info[RUNS_AGAIN] = retries > 0
        try:
            result = work()
            succeeded = getattr(result, "status_code", 200) < 400
            if succeeded:
                db.commit()  # a deadlock may show only here (rows the commit stamps)
            break
        except BaseException as error:
            if retries and lost_to_contention(error) and COMMITTED not in db.info:
                retries -= 1
                db.rollback()
                if FACTS_SEEN in db.info:
                    db.info[FACTS_SEEN] = []
                log.info(
                    "a concurrent writer failed the transaction (%s); running it again",
                    _kind(error),
                )
                metrics.RUN_AGAIN.labels(cause=_kind(error)).inc()
                continue
            _finish(db, commit=False)
            raise
    _finish(db, commit=succeeded)
    return result


def _kind(error: BaseException) -> str:
    """What failed a transaction, for the log: the driver's error class (no SQL, no values)."""
    return type(getattr(error, "orig", None) or error).__name__


def _session_of(value: Any) -> Session | None:
    if isinstance(value, Context):
        return value.session
    return value if isinstance(value, Session) else None


async def _finish_unless_done(request: Request, *, commit: bool) -> None:
    """End the transaction if the endpoint did not (it never ran, or it is ``async``)."""
    db = getattr(request.state, "db", None)
    if db is None or db.info.get(FINISHED):
        return
    if not db.in_transaction() and PENDING_KEY_USE not in db.info:
        # Nothing was read or written (an answer from the access cache): no trip needed.
        db.info[FINISHED] = True
        db.close()
        return
    # In the thread pool: a commit may wait for the database's write lock, and the event loop
    # must keep serving other requests meanwhile.
    await run_in_threadpool(_finish, db, commit=commit)


def _finish(db: Session, *, commit: bool) -> None:
    """End the request's transaction, then record the API key's use in a short one of its own."""
    db.info[FINISHED] = True
    if not commit:
        db.rollback()
    elif db.in_transaction():  # else committed already (``_in_transaction``)
        db.commit()
    try:
        if record_key_use(db):
            db.commit()
    except SQLAlchemyError:
        # Only bookkeeping: the next use records it again.
        db.rollback()
        log.warning("could not record an API key's last use", exc_info=False)
    finally:
        db.close()


async def get_jwks(request: Request) -> JwksCache:
    """The process's cache of JWT issuers' keys."""
    return request.app.state.jwks  # type: ignore[no-any-return]


SessionDep = Annotated[Session, Depends(get_session)]
JwksDep = Annotated[JwksCache, Depends(get_jwks)]
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
    return _caller(request, response, session)


def _caller(request: Request, response: Response, session: Session) -> Principal:
    secret = secret_from_authorization(request.headers.get("Authorization"))
    if secret is not None:
        if secret.startswith(ACCESS_TOKEN_PREFIX):
            # Federated access tokens are checked live each time (never in the access cache).
            principal = authenticate_access_token(session, secret)
        else:
            grant = grant_for_api_key(session, secret)
            setattr(request.state, KEY_GRANT, (digest(secret), grant))
            principal = grant.principal
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


async def get_principal(
    principal: Annotated[Principal, Depends(get_optional_principal)],
) -> Principal:
    """The authenticated caller; 401 when the request carried no credential."""
    return _authenticated(principal)


def _authenticated(principal: Principal) -> Principal:
    if principal.kind is PrincipalKind.ANONYMOUS:
        raise AuthenticationFailed(
            "authentication required: send an API key", code="credentials_required"
        )
    return principal


OptionalPrincipalDep = Annotated[Principal, Depends(get_optional_principal)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require_credential_works_in(principal: Principal, org: Organization) -> None:
    """``AuthenticationFailed`` for a credential bound to another organization
    (``Principal.bound_org_id``): a federated access token (issued for its JWT's ``aud``), a
    session a single sign-on opened (that organization's provider or directory vouched for the
    user there only), or a key such a session made."""
    if principal.bound_org_id is None or principal.bound_org_id == org.id:
        return
    if principal.credential is CredentialKind.ACCESS_TOKEN:
        raise AuthenticationFailed(
            "this access token belongs to another organization", code="invalid_access_token"
        )
    what = "session" if principal.credential is CredentialKind.SESSION else "API key"
    raise AuthenticationFailed(
        f"this {what} works in one other organization only: that organization's single "
        "sign-on vouched for it",
        code="other_organization",
    )


def _org_for(
    request: Request, session: Session, settings: Settings, principal: Principal
) -> Organization:
    """The organization a request is about.

    Single mode: the one org. Multi mode: the ``X-Rolecall-Org`` header (or ``?org=``), else the
    caller's only org.
    """
    if settings.mode is OrgMode.SINGLE:
        return _only_org(session)
    name = request.headers.get(ORG_HEADER) or request.query_params.get("org")
    if name:
        return _org_named(session, name, ORG_HEADER)
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


def sign_in_org(session: Session, settings: Settings, org_name: str | None) -> Organization:
    """The organization an unauthenticated sign-in (SSO, LDAP) is for: single mode, the one
    org; multi mode, the one ``org_name`` names (``?org=``).

    Raises ``NotFound`` (no such org, or none yet), ``InvalidInput`` (multi mode, no name).
    """
    if settings.mode is OrgMode.SINGLE:
        return _only_org(session)
    if org_name:
        return _org_named(session, org_name, "org")
    raise InvalidInput("name the organization to sign in to with ?org=", field="org")


#: Single mode's organization (the first made). Built once: every request asks.
_FIRST_ORG = select(Organization).order_by(Organization.created_at).limit(1)


def _only_org(session: Session) -> Organization:
    org = session.scalar(_FIRST_ORG)
    if org is None:
        raise NotFound("no organization yet: run `rolecall init`")
    return org


def _org_named(session: Session, name: str, field: str) -> Organization:
    # PostgreSQL refuses NUL in text, and no organization has such a name.
    usable = len(name) <= 128 and name.isprintable()
    org = (
        session.scalar(select(Organization).where(Organization.name_key == name.lower()))
        if usable
        else None
    )
    if org is None:
        raise NotFound(f"no organization {name[:64]!r}", field=field)
    return org


class Context:
    """What a route hands to a service: the transaction, the caller (tagged with the
    organization the request is about, for the audit log), the organization, the settings.

    The caller and the organization are found on first use, in the endpoint's own thread, so a
    request makes one trip through the thread pool instead of one per dependency.
    ``AuthenticationFailed`` and the organization's errors are raised then.

    ``async`` endpoints with a fast path first ask ``cached_facts`` (on the event loop, no
    database) and otherwise do their work through ``in_thread``, which leaves in the access
    cache what the next such request needs (``remember``).
    """

    __slots__ = (
        "_actor",
        "_anonymous_ok",
        "_epoch",
        "_org",
        "_request",
        "_response",
        "_session",
        "cache",
        "settings",
    )

    def __init__(
        self,
        settings: Settings,
        request: Request,
        response: Response,
        *,
        anonymous_ok: bool,
    ) -> None:
        self._session: Session | None = None
        self.settings = settings
        self._request = request
        self._response = response
        self._anonymous_ok = anonymous_ok
        self._actor: Principal | None = None
        self._org: Organization | None = None
        self.cache: AccessCache | None = getattr(request.app.state, "access_cache", None)
        self._epoch: int | None = None

    @property
    def session(self) -> Session:
        """The request's transaction, opened on first use (an answer from the access cache
        needs none); ``TransactionalRoute`` ends it."""
        if self._session is None:
            self._session = _open_session(self._request)
        return self._session

    @property
    def actor(self) -> Principal:
        if self._actor is None:
            self._resolve()
        return self._actor  # type: ignore[return-value]

    @property
    def org(self) -> Organization:
        if self._org is None:
            self._resolve()
        return self._org  # type: ignore[return-value]

    def _resolve(self) -> None:
        principal = _caller(self._request, self._response, self.session)
        if not self._anonymous_ok:
            principal = _authenticated(principal)
        org = _org_for(self._request, self.session, self.settings, principal)
        require_credential_works_in(principal, org)
        self._org = org
        self._actor = _in_org(principal, org.id)

    # --- the access cache's fast path -----------------------------------------------------

    def cached_facts(self, entity: str, name: str) -> tuple[Principal, DecisionFacts] | None:
        """The caller and the facts of its decision on project ``entity/name``, from the access
        cache alone (no database, no thread); None when any of it is not cached. Only for an
        API key's caller in single mode: anything else takes the normal path."""
        self._epoch, found = lookup_cached(
            self.cache,
            self.settings,
            self._request.headers.get("Authorization"),
            attributed=_attribution(self._request) is not None,
            entity=entity,
            name=name,
        )
        return found

    def cached(self, key: tuple[Any, ...]) -> Any | None:
        """Another entry of this request's organization (after ``cached_facts``)."""
        if self.cache is None or self._epoch is None:
            return None
        return cached_in_org(self.cache, key)

    async def in_thread(self, work: Callable[[], T]) -> T:
        """Run ``work`` (the endpoint's use of the session) in the thread pool, ending the
        transaction in the same trip, as a plain endpoint's one trip does."""
        if self._epoch is not None:
            self.session.info[FACTS_SEEN] = []
        return await run_in_threadpool(_in_transaction, self.session, work)

    def remember(self, entity: str, name: str, *extra: tuple[tuple[Any, ...], Any]) -> None:
        """After the normal path succeeded (in its thread): keep the caller's key, the
        organization and the facts decided on project ``entity/name``, with ``extra``
        ``(key, value)`` entries of the organization, for the next request's fast path."""
        cache, epoch = self.cache, self._epoch
        seen = self.session.info.pop(FACTS_SEEN, None)
        credential = getattr(self._request.state, KEY_GRANT, None)
        if cache is None or epoch is None or credential is None or self._actor is None:
            return
        org_id = self.org.id
        cache.put(("key", credential[0]), credential[1], epoch)
        cache.put(_ORG_ENTRY, org_id, epoch)
        wanted = _path_key(entity, name)
        for principal, _target, facts in seen or ():
            project, team = facts.project, facts.team
            path = (team.name.lower(), project.name.lower()) if project and team else None
            if principal == self._actor and path == wanted:
                cache.put(_facts_entry(principal, entity, name), facts, epoch)
        for key, value in extra:
            cache.put((*key, org_id), value, epoch)


def lookup_cached(
    cache: AccessCache | None,
    settings: Settings,
    authorization: str | None,
    *,
    attributed: bool,
    entity: str,
    name: str,
) -> tuple[int | None, tuple[Principal, DecisionFacts] | None]:
    """The access cache's answer for an API-key caller's decision on project ``entity/name``:
    (the cache's epoch, for later fills; the caller and its facts, or None when anything is
    not cached). Single mode only; ``attributed``: the request names a human (X-Wandb-*)."""
    if cache is None or settings.mode is not OrgMode.SINGLE:
        return None, None
    epoch = cache.begin()
    if epoch is None:
        return None, None
    principal = _cached_caller(cache, authorization, attributed)
    org_id = cache.get(_ORG_ENTRY) if principal is not None else None
    if principal is None or org_id is None:
        return epoch, None
    actor = _in_org(principal, org_id)
    facts = cache.get(_facts_entry(actor, entity, name))
    return epoch, None if facts is None else (actor, facts)


def cached_in_org(cache: AccessCache, key: tuple[Any, ...]) -> Any | None:
    """Another entry of the (single) organization, after ``lookup_cached``."""
    org_id = cache.get(_ORG_ENTRY)
    return None if org_id is None else cache.get((*key, org_id))


def _cached_caller(
    cache: AccessCache, authorization: str | None, attributed: bool
) -> Principal | None:
    try:
        secret = secret_from_authorization(authorization)
    except AuthenticationFailed:
        return None  # the normal path refuses it, with the same error as always
    if secret is None or len(secret) > MAX_SECRET_LENGTH:
        return None
    grant: KeyGrant | None = cache.get(("key", digest(secret)))
    if grant is None or not grant.usable_without_lookup(datetime.now(UTC)):
        return None  # expired (the normal path says so) or its use is due to be recorded
    if grant.principal.kind is PrincipalKind.SERVICE_ACCOUNT and attributed:
        return None  # attribution is decided (and said in a header) on the normal path
    return grant.principal


def _in_org(principal: Principal, org_id: str) -> Principal:
    """The caller, tagged with the organization the request is about."""
    return principal if principal.org_id == org_id else replace(principal, org_id=org_id)


def _path_key(entity: str, name: str) -> tuple[str, str]:
    """A project path as ``projects.queries.find_project`` matches it."""
    return entity.strip().lower(), name.strip().lower()


def _facts_entry(actor: Principal, entity: str, name: str) -> tuple[Any, ...]:
    return ("facts", actor, *_path_key(entity, name))


def project_entry(entity: str, name: str) -> tuple[str, ...]:
    """Access-cache key (within the organization) of a project's read body."""
    return ("project", *_path_key(entity, name))


async def get_context(request: Request, response: Response) -> Context:
    return Context(request.app.state.settings, request, response, anonymous_ok=False)


async def get_optional_context(request: Request, response: Response) -> Context:
    return Context(request.app.state.settings, request, response, anonymous_ok=True)


#: An authenticated request about an organization.
ContextDep = Annotated[Context, Depends(get_context)]
#: The same, anonymous callers allowed (open and public projects).
OptionalContextDep = Annotated[Context, Depends(get_optional_context)]
