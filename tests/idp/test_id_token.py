"""Each ID token check of ``sso.oidc.validate_id_token`` (OpenID Connect Core §3.1.3.7), with
tokens from a real JWT issuer on loopback whose keys are fetched over HTTP."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from typing import Any

import pytest

from rolecall.federation.jwks import JwksCache
from rolecall.sso.oidc import safe_return_to
from rolecall.sso.oidc_protocol import (
    IdpUnavailable,
    OidcFailed,
    code_challenge,
    token_hash,
    validate_id_token,
)
from tests.idp.jwt_issuer import JwtIssuer, new_key, unsigned
from tests.idp.oidc_op import free_port

CLIENT = "rolecall"
NONCE = "n-0S6_WzA2Mj"
#: The access token of OpenID Connect Core 1.0 Appendix A.3 (its ID token: at_hash
#: "77QmUPtjPfzWtF2AnpK9RQ", RS256).
ACCESS_TOKEN = "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"
OPTIONS = ("access_token", "at_hash_required", "max_age")


def check(issuer: JwtIssuer, token: str, keys: JwksCache | None = None, **expect: Any):  # type: ignore[no-untyped-def]
    return validate_id_token(
        token,
        issuer=expect.get("issuer", issuer.issuer),
        client_id=expect.get("client_id", CLIENT),
        nonce=expect.get("nonce", NONCE),
        keys=keys or JwksCache(),
        **{name: expect[name] for name in OPTIONS if name in expect},
    )


def refused(issuer: JwtIssuer, token: str, **expect: Any) -> str:
    with pytest.raises(OidcFailed) as caught:
        check(issuer, token, **expect)
    assert caught.value.code == "invalid_id_token"
    return caught.value.message


def good(issuer: JwtIssuer, **claims: object) -> str:
    base = {"sub": "u-1", "aud": CLIENT, "nonce": NONCE, "email": "a@example.org"}
    return issuer.mint(**{**base, **claims})


def test_a_good_token_gives_its_claims(shared_issuer):
    claims = check(shared_issuer, good(shared_issuer))
    assert claims["sub"] == "u-1" and claims["email"] == "a@example.org"


def test_iss_must_be_the_issuer(shared_issuer):
    assert "iss" in refused(shared_issuer, good(shared_issuer, iss="https://evil.example"))
    bare = shared_issuer.issuer.removeprefix("http://")
    assert "iss" in refused(shared_issuer, good(shared_issuer, iss=bare))


@pytest.mark.parametrize("aud", ["someone-else", ["someone-else"], None, 7])
def test_aud_must_name_the_client(shared_issuer, aud):
    assert "aud" in refused(shared_issuer, good(shared_issuer, aud=aud))


def test_several_audiences_need_azp_naming_the_client(shared_issuer):
    both = [CLIENT, "other"]
    assert "azp" in refused(shared_issuer, good(shared_issuer, aud=both))
    assert "azp" in refused(shared_issuer, good(shared_issuer, aud=both, azp="other"))
    assert check(shared_issuer, good(shared_issuer, aud=both, azp=CLIENT))["azp"] == CLIENT
    assert "azp" in refused(shared_issuer, good(shared_issuer, azp="other"))


def test_exp_and_iat(shared_issuer):
    assert "expired" in refused(shared_issuer, good(shared_issuer, ttl=-120))
    assert check(shared_issuer, good(shared_issuer, ttl=-30))  # within the leeway
    future = int(time.time()) + 600
    assert "future" in refused(shared_issuer, good(shared_issuer, iat=future))
    assert "no iat" in refused(shared_issuer, good(shared_issuer, iat=None))
    assert "no exp" in refused(shared_issuer, good(shared_issuer, exp="soon"))


def test_the_nonce_must_be_the_sign_ins(shared_issuer):
    assert "nonce" in refused(shared_issuer, good(shared_issuer, nonce="other"))
    assert "nonce" in refused(shared_issuer, good(shared_issuer, nonce=None))


@pytest.mark.parametrize("sub", ["", "x" * 256, "u\x00-1", 5])
def test_sub_must_be_a_usable_string(shared_issuer, sub):
    assert "sub" in refused(shared_issuer, good(shared_issuer, sub=sub))


def test_only_asymmetric_signatures_by_the_issuers_keys(shared_issuer):
    claims = {"sub": "u-1", "aud": CLIENT, "nonce": NONCE}
    assert "asymmetric" in refused(shared_issuer, unsigned(shared_issuer.claims(**claims)))
    # An alg of another JSON type (it made a 500 of the sign-in callback: unhashable).
    for alg in (["RS256"], {"RS256": 1}):
        body = unsigned(shared_issuer.claims(**claims)).split(".")[1]
        other = base64.urlsafe_b64encode(json.dumps({"alg": alg}).encode()).decode().rstrip("=")
        assert "asymmetric" in refused(shared_issuer, f"{other}.{body}.c2ln")
    assert "asymmetric" in refused(
        shared_issuer, shared_issuer.mint_hs256_with_public_key(**claims)
    )
    rogue = good(shared_issuer, header={"kid": shared_issuer.signing_key.kid}, key=new_key())
    assert "signature does not verify" in refused(shared_issuer, rogue)
    assert "not in the issuer's JWKS" in refused(shared_issuer, good(shared_issuer, key=new_key()))
    crit = shared_issuer.mint_by_hand({"crit": ["exp"]}, **claims)
    assert "critical" in refused(shared_issuer, crit)
    assert "not a JWT" in refused(shared_issuer, "nonsense")


def test_a_rotated_key_is_fetched_on_its_first_use(issuer):
    keys = JwksCache()
    assert check(issuer, good(issuer), keys)
    issuer.rotate()
    assert check(issuer, good(issuer), keys)["sub"] == "u-1"
    assert keys.fetches[issuer.issuer] == 2


def test_unreachable_keys_are_an_unavailable_provider():
    gone = f"http://127.0.0.1:{free_port()}"
    token = JwtIssuer().mint(sub="u-1", aud=CLIENT, nonce=NONCE)  # never served
    with pytest.raises(IdpUnavailable):
        validate_id_token(token, issuer=gone, client_id=CLIENT, nonce=NONCE, keys=JwksCache())


def _half(digest: bytes) -> str:
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode()


def test_at_hash_is_the_left_half_of_the_hash_of_the_tokens_alg():
    assert token_hash(ACCESS_TOKEN, "RS256") == "77QmUPtjPfzWtF2AnpK9RQ"  # Core Appendix A.3
    data = ACCESS_TOKEN.encode()
    assert token_hash(ACCESS_TOKEN, "PS256") == token_hash(ACCESS_TOKEN, "ES256")
    assert token_hash(ACCESS_TOKEN, "ES384") == _half(hashlib.sha384(data).digest())
    assert token_hash(ACCESS_TOKEN, "RS512") == _half(hashlib.sha512(data).digest())
    assert token_hash(ACCESS_TOKEN, "EdDSA", "Ed25519") == _half(hashlib.sha512(data).digest())
    assert token_hash(ACCESS_TOKEN, "EdDSA", "Ed448") == _half(hashlib.shake_256(data).digest(114))
    assert token_hash(ACCESS_TOKEN, "Ed25519") == token_hash(ACCESS_TOKEN, "EdDSA", "Ed25519")
    assert token_hash(ACCESS_TOKEN, "Ed448") == token_hash(ACCESS_TOKEN, "EdDSA", "Ed448")


def test_at_hash_binds_the_access_token(shared_issuer):
    token = good(shared_issuer, at_hash=token_hash(ACCESS_TOKEN, "RS256"))
    assert check(shared_issuer, token, access_token=ACCESS_TOKEN)["at_hash"]
    assert check(shared_issuer, token, access_token=ACCESS_TOKEN, at_hash_required=True)
    assert "at_hash does not match" in refused(
        shared_issuer, token, access_token=ACCESS_TOKEN + "x"
    )
    assert "at_hash does not match" in refused(
        shared_issuer, good(shared_issuer, at_hash=7), access_token=ACCESS_TOKEN
    )
    assert check(shared_issuer, token)  # no access token came: nothing to bind


def test_at_hash_is_required_only_when_asked_and_an_access_token_came(shared_issuer):
    plain = good(shared_issuer)
    assert "no at_hash" in refused(
        shared_issuer, plain, access_token=ACCESS_TOKEN, at_hash_required=True
    )
    assert check(shared_issuer, plain, access_token=ACCESS_TOKEN)  # the code flow's case
    assert check(shared_issuer, plain, at_hash_required=True)  # implicit, ID token only


def test_with_max_age_auth_time_is_required_and_recent(shared_issuer):
    now = int(time.time())
    assert check(shared_issuer, good(shared_issuer, auth_time=now - 100), max_age=300)
    assert check(shared_issuer, good(shared_issuer, auth_time=now - 330), max_age=300)  # leeway
    assert "longer than max_age=300" in refused(
        shared_issuer, good(shared_issuer, auth_time=now - 400), max_age=300
    )
    assert "no auth_time" in refused(shared_issuer, good(shared_issuer), max_age=300)
    assert "no auth_time" in refused(
        shared_issuer, good(shared_issuer, auth_time="today"), max_age=300
    )
    assert "future" in refused(shared_issuer, good(shared_issuer, auth_time=now + 600), max_age=0)
    assert check(shared_issuer, good(shared_issuer, auth_time=now - 86_400))  # no max_age


def test_pkce_challenge_is_rfc_7636s():
    # RFC 7636 Appendix B.
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert code_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


@pytest.mark.parametrize(
    ("asked", "kept"),
    [
        (None, "/"),
        ("", "/"),
        ("/", "/"),
        ("/acme/projects?tab=runs#top", "/acme/projects?tab=runs#top"),
        ("//evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("https://evil.example/", "/"),
        ("javascript:alert(1)", "/"),
        ("/ok\r\nSet-Cookie: x=1", "/"),
        ("/" + "a" * 3000, "/"),
    ],
)
def test_return_to_is_a_path_on_this_site(asked, kept):
    assert safe_return_to(asked) == kept
