"""Prometheus metrics: requests, latency, authentication failures, decisions by outcome,
requests run again after losing to a concurrent writer.

With several server processes (``rolecall serve --workers``) each counts in files of the
directory ``PROMETHEUS_MULTIPROC_DIR`` names (prometheus_client's multiprocess mode, which
``serve`` turns on), and ``/metrics`` adds up every process's counts, whichever answers.
"""

from __future__ import annotations

import os
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

#: prometheus_client's own variable: the directory of the processes' counts.
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"

REGISTRY = CollectorRegistry(auto_describe=True)

REQUESTS = Counter(
    "rolecall_http_requests_total",
    "HTTP requests by method, route and status",
    ["method", "route", "status"],
    registry=REGISTRY,
)
LATENCY = Histogram(
    "rolecall_http_request_duration_seconds",
    "HTTP request latency by route",
    ["route"],
    registry=REGISTRY,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
AUTH_FAILURES = Counter(
    "rolecall_authentication_failures_total",
    "Refused credentials by reason",
    ["reason"],
    registry=REGISTRY,
)
TOKEN_EXCHANGES = Counter(
    "rolecall_token_exchanges_total",
    "JWT bearer exchanges at /oidc/token: accepted, or the check that refused",
    ["outcome"],
    registry=REGISTRY,
)
FAST_ANSWERS = Counter(
    "rolecall_access_cache_fast_answers_total",
    "Requests answered from the access cache in front of the router, by route",
    ["route"],
    registry=REGISTRY,
)
RUN_AGAIN = Counter(
    "rolecall_transactions_run_again_total",
    "Requests run again from their start after a concurrent writer failed their transaction "
    "(PostgreSQL), by what failed it: DeadlockDetected, UniqueViolation, ...",
    ["cause"],
    registry=REGISTRY,
)
DECISIONS = Counter(
    "rolecall_authz_decisions_total",
    "Policy decisions by outcome",
    ["outcome"],
    registry=REGISTRY,
)


#: The methods a request is labelled with as they are (RFC 9110 §9.3 defines them); any other
#: token a client sends is labelled ``other``, so that made-up methods cannot add series
#: without bound.
KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
)
OTHER_METHOD = "other"


def method_label(method: str) -> str:
    """``method`` when it is a standard one, else ``other``."""
    return method if method in KNOWN_METHODS else OTHER_METHOD


class MeasureRequests:
    """ASGI middleware counting requests and timing them, labelled by route template (never the
    raw path, which would make a label per project) and method (``method_label``). Plain ASGI
    rather than Starlette's ``BaseHTTPMiddleware``, which costs an extra task and stream per
    request."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client sees if the app fails before answering

        async def send_and_note_status(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            path = route_template(scope)
            REQUESTS.labels(method_label(scope["method"]), path, str(status)).inc()
            LATENCY.labels(path).observe(time.perf_counter() - started)


def exposition() -> bytes:
    """The text ``/metrics`` answers: this process's counts, or every worker's added up."""
    if os.environ.get(MULTIPROCESS_DIR):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)


def route_template(scope: dict[str, Any]) -> str:
    """The matched route's template, with the prefix of the mount it is under (SCIM's routes
    are mounted at ``/scim`` and ``/scim/v2``), or ``unmatched``. The router records the route
    in the (shared) scope; a mount adds its prefix to ``root_path``."""
    route = scope.get("route") or _plain_route(scope)
    if route is None:
        return "unmatched"
    root_path = scope.get("root_path", "")
    mounted_at = root_path[len(scope.get("app_root_path", root_path)) :]
    return f"{mounted_at}{getattr(route, 'path', '')}"


def _plain_route(scope: dict[str, Any]) -> Any:
    """The plain Starlette route that answered (FastAPI's own OpenAPI document and docs page):
    FastAPI's router records only its API routes in the scope, but every route records its
    endpoint. ``None`` when nothing matched."""
    endpoint = scope.get("endpoint")
    if endpoint is None:
        return None
    routes = getattr(scope.get("app"), "routes", ())
    return next((r for r in routes if getattr(r, "endpoint", None) is endpoint), None)
