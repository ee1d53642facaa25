"""Schemathesis against the served OpenAPI document: no 5xx, responses match the schema.

Runs as the org admin (so requests reach the services, not only the authentication layer) and
as an anonymous caller. The app is built once at import (schemathesis needs the schema at
collection); each test points it at its own rolled-back transaction.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy.orm import Session

from rolecall.settings import Settings
from rolecall.web.app import create_app

CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
    content_type_conformance,
]

_current: dict[str, Callable[[], Session]] = {}


def _session() -> Session:
    return _current["factory"]()


APP = create_app(Settings(host="testserver", port=80), session_factory=_session)  # type: ignore[arg-type]
schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", APP)


@pytest.fixture(autouse=True)
def _bind_app_to_test_transaction(session_factory):
    _current["factory"] = session_factory
    yield
    _current.clear()


SETTINGS = dict(deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


@schema.parametrize()
@settings(max_examples=25, **SETTINGS)
def test_api_as_admin(case, org):
    case.call_and_validate(headers=org.admin_headers, checks=CHECKS)


@schema.parametrize()
@settings(max_examples=8, **SETTINGS)
def test_api_anonymous(case, org):
    case.call_and_validate(checks=CHECKS)
