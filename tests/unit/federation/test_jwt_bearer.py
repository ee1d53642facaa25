"""Each check of ``jwt_bearer`` on its own, and ``evaluate``'s rules ("no checks means fail")."""

from __future__ import annotations

import base64
import time
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, OKPKey, RSAKey

from rolecall.federation import jwt_bearer as jb
from rolecall.federation.jwks import FetchFailed, UnknownKey

ISS = "https://idp.example"
NOW = 1_800_000_000.0
KEY = RSAKey.generate_key(2048, parameters={"kid": "k1"})
OTHER = RSAKey.generate_key(2048, parameters={"kid": "k1"})
ALICE = jb.Subject("user", "u1", "alice")


def token(header: dict[str, Any] | None = None, key: Any = KEY, **claims: Any) -> str:
    base = {"iss": ISS, "sub": "alice@example.org", "aud": "acme", "exp": NOW + 300}
    payload = {k: v for k, v in {**base, **claims}.items() if v is not None}
    head = {"alg": "RS256", "kid": "k1", **(header or {})}
    return jwt.encode(head, payload, key, algorithms=[head["alg"]])


def with_header(raw: str, header: dict[str, Any]) -> str:
    """``raw`` with its header replaced (the signature no longer matches: for checks that
    come before the signature's)."""
    import base64
    import json

    _, claims, sig = raw.split(".")
    head = base64.urlsafe_b64encode(json.dumps(header).encode()).decode().rstrip("=")
    return f"{head}.{claims}.{sig}"


def key_lookup(issuer: str, kid: str | None, alg: str) -> Any:
    if kid == "gone":
        raise UnknownKey("kid 'gone' is not in the issuer's JWKS")
    if kid == "down":
        raise FetchFailed("idp down")
    return KEY


def expect(**over: Any) -> jb.Expectations:
    values: dict[str, Any] = {
        "issuer": ISS,
        "audiences": frozenset({"acme", "wandb"}),
        "now": NOW,
        "key": key_lookup,
        "subject": lambda sub: ALICE if sub == "alice@example.org" else "nobody has it",
    }
    return jb.Expectations(**{**values, **over})


def failed(raw: str, **over: Any) -> jb.CheckResult:
    report = jb.evaluate(raw, expect(**over))
    assert not report.ok and report.subject is None
    assert report.failure is not None
    return report.failure


def test_a_good_assertion_passes_every_check():
    report = jb.evaluate(token(), expect())
    assert report.ok and report.failure is None and report.subject == ALICE
    assert [r.check for r in report.results] == ["format", *jb.CHECKS]
    assert all(r.as_dict()["ok"] for r in report.results)


def test_no_checks_means_fail():
    report = jb.evaluate(token(), expect(), checks={})
    assert not report.ok and report.failure.check == "checks"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("x" * (jb.MAX_ASSERTION_LENGTH + 1), "longer than"),
        ("a.b.c.d.e", "encrypted"),
        ("a.b", "not a JWT"),
        (".b.c", "not a JWT"),
        ("!!.b.c", "not base64url-encoded JSON"),
        ("WzFd.WzFd.c", "not a JSON object"),  # [1]
        (_b64url(b"[" * 9_000) + ".e30.c", "nests arrays and objects too deeply"),
        ("e30." + _b64url(b'{"sub": "\\ud800"}') + ".c", "unpaired UTF-16 surrogate"),
        # Not JSON numbers (RFC 8259 §6): NaN passed every "too late?" comparison as false.
        ("e30." + _b64url(b'{"exp": NaN}') + ".c", "NaN is not a JSON number"),
        ("e30." + _b64url(b'{"nbf": -Infinity}') + ".c", "-Infinity is not a JSON number"),
        ("e30." + _b64url(b'{"exp": 1e400}') + ".c", "beyond the range"),
    ],
)
def test_malformed(raw, message):
    result = failed(raw)
    assert result.check == "format" and message in result.detail
    assert jb.unverified_claims(raw) is None


@pytest.mark.parametrize(
    ("header", "why"),
    [
        ({"alg": "none"}, "unsigned"),
        ({"alg": "HS256"}, "HMAC"),
        ({"alg": "XYZ"}, "'XYZ' is not accepted"),
        ({"alg": None}, "unsigned"),
    ],
)
def test_alg(header, why):
    result = failed(with_header(token(), {**header, "kid": "k1"}))
    assert result.check == "alg" and why in result.detail


def test_crit_is_refused():
    head = {"alg": "RS256", "kid": "k1", "crit": ["x"], "x": 1}
    report = jb.evaluate(with_header(token(), head), expect())
    checks = {r.check: r for r in report.results}
    assert "crit" in checks["alg"].detail and "not checked" in checks["signature"].detail


def test_iss():
    assert "no iss" in failed(token(iss=None)).detail
    assert "not the registered" in failed(token(iss="https://evil.example")).detail
    assert "no JWT issuer registered" in failed(token(), issuer=None).detail


def test_signature():
    assert "does not verify" in failed(token(key=OTHER)).detail
    assert "not in the issuer's JWKS" in failed(token({"kid": "gone"})).detail
    down = failed(token({"kid": "down"}))
    assert down.error == jb.TEMPORARILY_UNAVAILABLE and "idp down" in down.detail
    assert "kid is no string" in failed(with_header(token(), {"alg": "RS256", "kid": 7})).detail
    ec = ECKey.generate_key("P-256")
    wrong_type = failed(jwt.encode({"alg": "ES256", "kid": "k1"}, {"iss": ISS}, ec))
    assert wrong_type.check == "signature"


@pytest.mark.parametrize(("alg", "curve"), [("Ed25519", "Ed25519"), ("Ed448", "Ed448")])
def test_rfc_9864_eddsa_names_verify(alg, curve):
    okp = OKPKey.generate_key(curve, parameters={"kid": "k1"})
    signed = token({"alg": alg}, key=okp)

    assert jb.evaluate(signed, expect(key=lambda issuer, kid, alg: okp)).ok
    forged = token({"alg": alg}, key=OKPKey.generate_key(curve, parameters={"kid": "k1"}))
    assert "does not verify" in failed(forged, key=lambda issuer, kid, alg: okp).detail


def test_exp():
    assert "no exp" in failed(token(exp=None)).detail
    assert "not a number" in failed(token(exp="soon")).detail
    assert "not a number" in failed(token(exp=True)).detail
    assert "expired 100 s ago" in failed(token(exp=NOW - 100)).detail
    assert jb.evaluate(token(exp=NOW - 30), expect()).ok  # within the leeway


def test_nbf_and_iat():
    assert "not valid for 3600 s yet" in failed(token(nbf=NOW + 3600)).detail
    assert "not a number" in failed(token(nbf="x")).detail
    assert jb.evaluate(token(nbf=NOW + 30, iat=NOW + 30), expect()).ok
    assert "issued in the future" in failed(token(iat=NOW + 3600)).detail
    assert "not a number" in failed(token(iat=[1])).detail
    assert jb.evaluate(token(nbf=NOW - 10, iat=NOW - 10), expect()).ok


def test_aud():
    assert "not this organization" in failed(token(aud="other")).detail
    assert "no aud" in failed(token(aud=None)).detail
    assert "not a string or list" in failed(token(aud=5)).detail
    assert "not a string or list" in failed(token(aud=["acme", 5])).detail
    assert jb.evaluate(token(aud=["x", "wandb"]), expect()).ok
    skipped = jb.evaluate(token(aud="anything"), expect(audiences=None))
    assert skipped.ok and "skipped" in skipped.results[-2].detail


def test_sub():
    assert "nobody has it" in failed(token(sub="mallory@example.org")).detail
    assert "no sub" in failed(token(sub=None)).detail
    assert "not a usable string" in failed(token(sub="  ")).detail
    assert "not a usable string" in failed(token(sub="x" * 513)).detail
    # PostgreSQL cannot be asked for it (the exchange answered 422 "cannot be stored").
    assert "not a usable string" in failed(token(sub="alice\x00@example.org")).detail


def test_long_values_are_shown_shortened():
    result = failed(token(iss="https://" + "x" * 500))
    assert result.found.endswith("...") and len(result.found) == 203


def test_unverified_claims():
    assert jb.unverified_claims(token())["iss"] == ISS


def test_current_time_is_used_by_callers():
    # The module takes the clock from its caller: nothing here reads time itself.
    assert abs(time.time() - NOW) > 0


def _unsigned(header: dict[str, Any], claims: str) -> str:
    import json

    return f"{_b64url(json.dumps(header).encode())}.{_b64url(claims.encode())}.c2ln"


@pytest.mark.parametrize("alg", [["RS256"], {"RS256": 1}, 5])
def test_an_alg_of_another_json_type_fails_the_alg_check(alg):
    """The header's alg may be any JSON value: a list or an object made a 500 (unhashable)."""
    report = jb.evaluate(_unsigned({"alg": alg}, "{}"), expect())

    assert not report.ok and report.failure is not None
    assert report.failure.check == "alg"


@pytest.mark.parametrize(
    ("claims", "check"),
    [
        ('{"exp": -%s}' % ("9" * 400), "exp"),
        ('{"exp": 1e300}', "exp"),
        ('{"nbf": %s}' % ("9" * 400), "nbf"),
        ('{"iat": -1e300}', "iat"),
    ],
)
def test_a_time_beyond_any_calendar_fails_its_check(claims, check):
    """A NumericDate is finite and within the years 1 to 9999 (``jb.MAX_NUMERIC_DATE``): larger
    ones made a 500 (overflow) when the report said how far off they were."""
    report = jb.evaluate(_unsigned({"alg": "RS256", "kid": "k1"}, claims), expect())

    results = {result.check: result for result in report.results}
    assert not report.ok and not results[check].ok
    # It is a number, only not a time: the detail says which.
    assert f"{check}: " in results[check].detail
    assert "not a time within the years 1 to 9999" in results[check].detail
    assert "not a number" not in results[check].detail
