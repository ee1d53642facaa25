"""The OIDC provider's token and userinfo endpoints answering badly, over real HTTP
(``sso.oidc_protocol``): an answer that drips is cut off at ``jwks.DEADLINE`` and one too
large is not read past ``MAX_DOCUMENT_BYTES``; both are ``IdpUnavailable`` (503), never a
worker thread held or a body held in memory whole."""

from __future__ import annotations

import json
import time

import pytest

from rolecall.federation import jwks
from rolecall.federation.destinations import SINGLE_ORG
from rolecall.federation.jwks import MAX_DOCUMENT_BYTES
from rolecall.sso.config import OidcConfig
from rolecall.sso.oidc_protocol import IdpUnavailable, exchange_code, userinfo
from tests.idp.jwt_issuer import JwtIssuer

TOKEN_PATH = "/token"
USERINFO_PATH = "/userinfo"


def metadata(issuer: JwtIssuer) -> dict[str, str]:
    return {
        "token_endpoint": issuer.issuer + TOKEN_PATH,
        "userinfo_endpoint": issuer.issuer + USERINFO_PATH,
    }


def exchange(issuer: JwtIssuer) -> dict[str, object]:
    config = OidcConfig(issuer=issuer.issuer, client_id="rolecall")
    return exchange_code(
        "a-code", "a-verifier", config, metadata(issuer), "http://rp/cb", SINGLE_ORG
    )


def test_the_token_endpoint_answers_through_the_capped_stream(issuer: JwtIssuer):
    issuer.overrides[TOKEN_PATH] = (200, json.dumps({"id_token": "x.y.z"}).encode())
    assert exchange(issuer) == {"id_token": "x.y.z"}
    assert issuer.requests == [f"POST {TOKEN_PATH}"]


def test_a_token_answer_sent_a_byte_at_a_time_is_cut_off_at_the_deadline(issuer, monkeypatch):
    monkeypatch.setattr(jwks, "DEADLINE", 0.3)
    issuer.overrides[TOKEN_PATH] = (200, json.dumps({"id_token": "x" * 200}).encode())
    issuer.dripping[TOKEN_PATH] = 0.05
    started = time.monotonic()
    with pytest.raises(IdpUnavailable, match="token endpoint cannot be reached: ReadTimeout"):
        exchange(issuer)
    assert time.monotonic() - started < 2


def test_a_token_answer_too_large_is_refused(issuer: JwtIssuer):
    issuer.overrides[TOKEN_PATH] = (200, b" " * (MAX_DOCUMENT_BYTES + 1) + b"{}")
    with pytest.raises(IdpUnavailable, match="token endpoint answer is too large"):
        exchange(issuer)


def test_a_userinfo_answer_too_large_or_dripping_is_refused(issuer, monkeypatch):
    issuer.overrides[USERINFO_PATH] = (200, b" " * (MAX_DOCUMENT_BYTES + 1) + b"{}")
    with pytest.raises(IdpUnavailable, match="userinfo endpoint answer is too large"):
        userinfo("an-access-token", metadata(issuer), "u-1", SINGLE_ORG)
    monkeypatch.setattr(jwks, "DEADLINE", 0.3)
    issuer.overrides[USERINFO_PATH] = (200, json.dumps({"sub": "u-1"}).encode())
    issuer.dripping[USERINFO_PATH] = 0.05
    with pytest.raises(IdpUnavailable, match="userinfo endpoint cannot be reached: ReadTimeout"):
        userinfo("an-access-token", metadata(issuer), "u-1", SINGLE_ORG)
    del issuer.dripping[USERINFO_PATH]
    assert userinfo("an-access-token", metadata(issuer), "u-1", SINGLE_ORG) == {"sub": "u-1"}
