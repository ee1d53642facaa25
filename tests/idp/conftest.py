"""Federation fixtures: a real JWT issuer on loopback, registered for the test's organization."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from rolecall.audit.models import AuditEvent
from tests.idp.jwt_issuer import JwtIssuer

GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
API = "/api/v1"
#: ``ROLECALL_OUTBOUND_ALLOW`` for multi-org tests: their identity providers run on loopback,
#: which multi-org mode refuses otherwise (``federation.destinations``).
LOOPBACK = "127.0.0.0/8,::1"


@pytest.fixture(scope="session")
def shared_issuer() -> Iterator[JwtIssuer]:
    issuer = JwtIssuer().start()
    yield issuer
    issuer.stop()


@pytest.fixture
def issuer() -> Iterator[JwtIssuer]:
    """An issuer of the test's own (tests that rotate or retire keys change it)."""
    issuer = JwtIssuer().start()
    yield issuer
    issuer.stop()


def register(client: TestClient, headers: dict[str, str], url: str | None) -> Any:
    return client.put(f"{API}/federation/issuer", json={"issuer": url}, headers=headers)


@pytest.fixture
def federated(client, org, shared_issuer):  # type: ignore[no-untyped-def]
    """The org trusts ``shared_issuer``; returns the issuer."""
    response = register(client, org.admin_headers, shared_issuer.issuer)
    assert response.status_code == 200, response.text
    return shared_issuer


def exchange(client: TestClient, assertion: str | None, grant_type: str | None = GRANT) -> Any:
    form = {}
    if grant_type is not None:
        form["grant_type"] = grant_type
    if assertion is not None:
        form["assertion"] = assertion
    return client.post("/oidc/token", data=form)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def exchanges(db) -> Callable[[], list[AuditEvent]]:  # type: ignore[no-untyped-def]
    def events() -> list[AuditEvent]:
        db.expire_all()
        query = select(AuditEvent).where(AuditEvent.action == "federation.token_exchange")
        return list(db.scalars(query.order_by(AuditEvent.seq)))

    return events
