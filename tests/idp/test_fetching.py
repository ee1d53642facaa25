"""Fetching discovery documents and key sets over real HTTP: every failure is a clear
refusal (422 when registering, 503 ``temporarily_unavailable`` when exchanging), never a 500."""

from __future__ import annotations

import json
import time

import pytest

from rolecall.federation import jwks
from rolecall.federation.jwks import MAX_DOCUMENT_BYTES, FetchFailed, fetch_json
from tests.idp.conftest import LOOPBACK, exchange, register
from tests.idp.jwt_issuer import JWKS_PATH, OPENID_PATH


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (500, b"{}", "answered HTTP 500"),
        (200, b"x" * (MAX_DOCUMENT_BYTES + 1), "more than"),
        (200, b"<html>", "did not send JSON"),
        (200, b"[1, 2]", "not send a JSON object"),
    ],
)
def test_fetch_failures_say_what_went_wrong(issuer, status, body, message):
    issuer.overrides[JWKS_PATH] = (status, body)
    with pytest.raises(FetchFailed, match=message):
        fetch_json(issuer.issuer + JWKS_PATH)


def test_an_answer_sent_a_byte_at_a_time_is_cut_off_at_the_deadline(issuer, monkeypatch):
    """Each read has ``TIMEOUT``; the whole exchange, headers and body, has ``DEADLINE``.
    Before, a server sending a byte every few seconds held the request (and a worker thread)
    as long as it went on: 90 s in a fuzzing run, and six such requests stopped the server
    answering. A deadline on the body alone still let the status line and headers drip."""
    monkeypatch.setattr(jwks, "DEADLINE", 0.3)
    issuer.overrides[JWKS_PATH] = (200, b"x" * 400)
    issuer.dripping[JWKS_PATH] = 0.05  # 22 s in all, the headers 2 s of it

    started = time.monotonic()
    with pytest.raises(FetchFailed, match=r"ReadTimeout: the whole exchange took more than 0\.3 s"):
        fetch_json(issuer.issuer + JWKS_PATH)
    assert time.monotonic() - started < 2


def test_registering_fails_when_the_jwks_uri_is_absurd(client, org, issuer):
    document = {"issuer": issuer.issuer, "jwks_uri": issuer.issuer + "/" + "k" * 3000}
    issuer.overrides[OPENID_PATH] = (200, json.dumps(document).encode())
    response = register(client, org.admin_headers, issuer.issuer)
    assert response.status_code == 422
    assert "jwks_uri is too long" in response.json()["error"]["message"]


def test_registering_the_same_issuer_again_keeps_tokens(client, db, org, issuer):
    from tests import factories

    factories.user(db, org.org, username="alice", email="alice@example.org")
    assert register(client, org.admin_headers, issuer.issuer).status_code == 200
    token = exchange(client, issuer.mint(sub="alice@example.org", aud="wandb")).json()
    assert register(client, org.admin_headers, issuer.issuer).status_code == 200
    viewer = client.get(
        "/api/v1/viewer", headers={"Authorization": f"Bearer {token['access_token']}"}
    )
    assert viewer.status_code == 200


def test_a_broken_jwks_at_exchange_time_is_temporarily_unavailable(client, db, org, issuer):
    from tests import factories

    factories.user(db, org.org, username="alice", email="alice@example.org")
    assert register(client, org.admin_headers, issuer.issuer).status_code == 200
    issuer.overrides[JWKS_PATH] = (502, b"bad gateway")
    response = exchange(client, issuer.mint(sub="alice@example.org", aud="wandb"))
    assert response.status_code == 503
    assert "answered HTTP 502" in response.json()["error_description"]


def test_multi_mode_malformed_requests_are_refused_without_an_org(make_client, org, exchanges):
    client = make_client(mode="multi")
    response = exchange(client, "a.b.c", grant_type=None)
    assert response.json()["error"] == "invalid_request"
    [event] = exchanges()
    assert event.org_id is None and event.after["check"] == "grant_type"


def test_multi_mode_aud_list_picks_the_org(make_client, db, org, shared_issuer):
    from tests import factories

    client = make_client(mode="multi", outbound_allow=LOOPBACK)
    other = factories.bootstrap(db)
    factories.user(db, other.org, username="dan", email="dan@example.org")
    for world in (org, other):
        headers = {**world.admin_headers, "X-Rolecall-Org": world.org.name}
        assert register(client, headers, shared_issuer.issuer).status_code == 200
    jwt = shared_issuer.mint(sub="dan@example.org", aud=["unrelated", other.org.name])
    assert exchange(client, jwt).status_code == 200


def test_before_initialisation_every_exchange_is_refused(client, shared_issuer, exchanges):
    response = exchange(client, shared_issuer.mint(sub="a@example.org", aud="wandb"))
    assert response.status_code == 400
    assert "no organization yet" in response.json()["error_description"]
    assert exchanges()[0].after["check"] == "organization"


# --- where issuers may be (federation.destinations) -----------------------------------------


def test_multi_org_mode_refuses_to_register_an_issuer_on_a_private_address(
    make_client, org, db, issuer
):
    """Organization admins of a multi-org server are tenants: an issuer URL must not make the
    server fetch from its own network (server-side request forgery)."""
    from rolecall.federation.models import JwtIssuer as Registered

    headers = {**org.admin_headers, "X-Rolecall-Org": org.org.name}
    response = register(make_client(mode="multi"), headers, issuer.issuer)
    assert response.status_code == 422, response.text
    message = response.json()["error"]["message"]
    assert "not a public address (multi-org mode)" in message
    assert "ROLECALL_OUTBOUND_ALLOW" in message
    assert db.query(Registered).count() == 0
    assert issuer.requests == []  # refused before a single request went out
    allowed = make_client(mode="multi", outbound_allow=LOOPBACK)
    assert register(allowed, headers, issuer.issuer).status_code == 200
