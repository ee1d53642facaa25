"""The ASGI application: ``create_app(settings)``."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, FastAPI
from sqlalchemy.orm import Session, sessionmaker

from rolecall import __version__
from rolecall.authz import load as authz_load
from rolecall.authz.cache import AccessCache
from rolecall.db import changes
from rolecall.db.engine import for_reading, make_engine, make_sessionmaker
from rolecall.federation.destinations import Destinations
from rolecall.federation.jwks import JwksCache, fetcher
from rolecall.identity.principal import operator
from rolecall.orgs.bootstrap import restore_admin_password
from rolecall.settings import Settings, get_settings
from rolecall.web import api_docs, errors, graphql, metrics, oidc, operations, scim, sso
from rolecall.web.api.v1 import ROUTERS
from rolecall.web.body_limit import LimitRequestBodies
from rolecall.web.console import routes as console
from rolecall.web.fast_path import AccessCacheFastPath
from rolecall.web.head import HeadAsGet

OPENAPI_URL = "/api/v1/openapi.json"

#: The server log. Warnings reach stderr even when only uvicorn's loggers are configured.
log = logging.getLogger("rolecall.server")


def _count_decision(decision: Any) -> None:
    metrics.DECISIONS.labels(outcome="allow" if decision.allowed else "deny").inc()


def restore_on_start_up(session_factory: sessionmaker[Session]) -> None:
    """``LOCAL_RESTORE``: set a temporary admin password and print it to the server log, once.

    Logged at WARNING (it is an operator action that must be seen) and nowhere else: not in the
    audit log, not in any response. The admin's own password keeps working; the temporary one
    works only while the server runs with ``LOCAL_RESTORE``, until the time it names.
    """
    with session_factory() as session:
        restored = restore_admin_password(session, actor=operator("server"))
        session.commit()
    if restored is None:
        log.warning("LOCAL_RESTORE is on, but there is no active admin yet: run `rolecall init`.")
        return
    log.warning(
        "LOCAL_RESTORE is on: SSO is off. Temporary password for %s (organization %r): %s\n"
        "It signs in until %s and only while LOCAL_RESTORE is set (the admin's own password "
        "works too). Remove LOCAL_RESTORE to turn SSO back on and the temporary password off.",
        restored.admin,
        restored.org,
        restored.password,
        restored.expires_at.isoformat(timespec="seconds"),
    )


#: What each process of ``rolecall serve --workers N`` imports and calls to build its app.
WORKER_APP = "rolecall.web.app:create_worker_app"


def restore_before_workers(settings: Settings) -> None:
    """``LOCAL_RESTORE`` with several workers: done once, before they start."""
    if settings.local_restore:
        engine = make_engine(settings.database_url)
        try:
            restore_on_start_up(make_sessionmaker(engine))
        finally:
            engine.dispose()


def create_worker_app() -> FastAPI:
    """One worker's app, from the environment's settings (``LOCAL_RESTORE`` was done already)."""
    return create_app(Settings(), restore=False)


def create_app(
    settings: Settings | None = None,
    *,
    session_factory: sessionmaker[Session] | None = None,
    restore: bool = True,
) -> FastAPI:
    """Build the app. Tests pass their own ``session_factory`` (bound to a rolled-back
    transaction); otherwise an engine is made from ``settings.database_url``. ``restore``:
    apply ``LOCAL_RESTORE`` at start-up (a multi-process server does it once, before)."""
    settings = settings or get_settings()
    engine = None
    read_session_factory = session_factory
    feed: changes.SqliteChanges | changes.PostgresChanges | None = None
    if session_factory is None:
        engine = make_engine(settings.database_url)
        session_factory = make_sessionmaker(engine)
        read_session_factory = make_sessionmaker(for_reading(engine))
        # The access cache needs to learn of every write, so only an app owning its engine
        # has one (tests' apps share a rolled-back transaction instead).
        if settings.access_cache_size:
            feed = changes.watch(engine)

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
        # Every plain endpoint runs in this pool. Python runs one thread at a time, so a pool
        # much larger than the database can keep busy only adds lock hand-offs (measured with
        # bench/server_bench.py: 4 threads served about 1.6x the requests of anyio's 40).
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.worker_threads
        if settings.local_restore and restore:
            restore_on_start_up(session_factory)
        if isinstance(feed, changes.PostgresChanges):
            feed.start()
        yield
        if feed is not None:
            feed.stop() if isinstance(feed, changes.PostgresChanges) else feed.close()
        if engine is not None:
            engine.dispose()

    app = FastAPI(
        title="rolecall",
        version=__version__,
        description="Identity and access management for machine-learning teams.",
        openapi_url=OPENAPI_URL,
        docs_url=None,  # ``web.api_docs`` serves the page, with its assets
        redoc_url=None,
        lifespan=lifespan,
        # A path with a slash too many or too few is 404, not a redirect: Starlette builds the
        # redirect's Location from the request's Host header, so any Host sent came back as
        # the place to go (and no route or client of rolecall's needs it).
        redirect_slashes=False,
    )
    app.state.settings = settings
    app.state.session_factory = session_factory
    app.state.read_session_factory = read_session_factory
    app.state.change_feed = feed
    app.state.access_cache = (
        AccessCache(feed, size=settings.access_cache_size, lifetime=settings.access_cache_seconds)
        if feed is not None
        else None
    )
    #: JWT issuers' keys (identity federation): a cache this process may lose at any time.
    #: Every fetch goes where ``federation.destinations`` permits in this mode.
    app.state.jwks = JwksCache(fetch=fetcher(Destinations.of(settings)))
    errors.install(app)
    if _count_decision not in authz_load.decision_observers:
        authz_load.decision_observers.append(_count_decision)

    # The last added is the outermost. The metrics count every answer, the fast lane's and the
    # body limit's too, and see HEAD as HEAD (run as GET inside); the limit comes before
    # anything reads a body (the fast lane does).
    app.add_middleware(AccessCacheFastPath)
    app.add_middleware(LimitRequestBodies)
    app.add_middleware(HeadAsGet)
    app.add_middleware(metrics.MeasureRequests)

    _add_routes(app, operations.router)
    scim_routes = scim.build_router()
    scim_routes.redirect_slashes = False  # as the app's (above)
    for prefix in scim.PREFIXES:  # the longer first: "/scim" would take "/scim/v2/..." too
        app.mount(prefix, scim_routes)
    for router in (*ROUTERS, oidc.router, sso.router, graphql.router, console.router):
        _add_routes(app, router)
    _add_routes(app, api_docs.router)
    api_docs.mount_assets(app)
    return app


def _add_routes(app: FastAPI, router: APIRouter) -> None:
    """The router's routes join the app's own list as they are.

    Not ``include_router``: FastAPI wraps an included router in a copy of each route that it
    builds again, for each app, on the app's first requests, analysing every endpoint's
    parameters a second time (about 1 ms a route). A server paid it in the first requests'
    latency; the tests, which build an app per test, paid it in every test. The routes read
    everything per request from ``request.app.state``, so apps may share them. Routers declare
    their prefix, tags and route class themselves; nothing is added at inclusion."""
    app.router.routes.extend(router.routes)
