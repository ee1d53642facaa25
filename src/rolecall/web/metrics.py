"""Prometheus metrics: requests, latency, authentication failures, decisions by outcome."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

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
DECISIONS = Counter(
    "rolecall_authz_decisions_total",
    "Policy decisions by outcome",
    ["outcome"],
    registry=REGISTRY,
)
