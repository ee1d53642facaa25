"""RFC 7523 JWT bearer assertions: every check an assertion must pass, declared as data.

``CHECKS`` maps each check's name to a function of the parsed assertion and the expectations;
``evaluate`` runs them all, in order, and keeps every result, so the same code refuses an
exchange (naming the first failed check) and explains a refusal to an admin (every check,
expected against found). An empty set of checks never passes.

What is checked (RFC 7523 §3, RFC 8725 §3): a compact JWS of bounded size; an asymmetric ``alg``
whatever the header claims (``none`` and HMAC refused, RFC 8725 §3.1-3.2); ``iss`` equal to the
registered issuer; the signature with the issuer's key for the header's ``kid``; ``exp`` in the
future and ``nbf``/``iat`` not in it, within ``LEEWAY``; ``aud`` the organization's name or
``wandb`` (unless audience validation is skipped); ``sub`` a known principal.

Nothing here does I/O: keys and subjects come through the callables in ``Expectations``.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from joserfc import jws
from joserfc.errors import JoseError

from rolecall import strict_json
from rolecall.federation.jwks import ASYMMETRIC_ALGORITHMS, FetchFailed, PublicKey, UnknownKey

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
#: Largest assertion accepted (characters); real IdP tokens are a few KB.
MAX_ASSERTION_LENGTH = 16 * 1024
#: The largest NumericDate taken (9999-12-31T23:59:59Z), so far beyond any token's life.
MAX_NUMERIC_DATE = 253_402_300_799
#: Seconds of clock difference tolerated on ``exp``, ``nbf`` and ``iat``.
LEEWAY = 60
#: The audience every organization accepts (the seeds: "or use wandb as the audience").
WANDB_AUDIENCE = "wandb"

# RFC 6749 §5.2 error codes.
INVALID_REQUEST = "invalid_request"
INVALID_GRANT = "invalid_grant"
UNSUPPORTED_GRANT_TYPE = "unsupported_grant_type"
#: The issuer's keys could not be fetched: a passing outage, worth a retry (HTTP 503).
TEMPORARILY_UNAVAILABLE = "temporarily_unavailable"


class MalformedAssertion(ValueError):
    """The assertion is not a compact JWS with JSON header and claims."""


@dataclass(frozen=True, slots=True)
class Assertion:
    """A JWT split into its parts; nothing in it is trusted until ``signature`` passes."""

    raw: str
    header: Mapping[str, Any]
    claims: Mapping[str, Any]


def _b64_json(part: str, what: str) -> dict[str, Any]:
    try:
        padded = part + "=" * (-len(part) % 4)
        data = strict_json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except strict_json.Refused as exc:
        raise MalformedAssertion(f"the JWT's {what} is refused: {exc}") from exc
    except (binascii.Error, ValueError, UnicodeError) as exc:
        raise MalformedAssertion(f"the JWT's {what} is not base64url-encoded JSON") from exc
    if not isinstance(data, dict):
        raise MalformedAssertion(f"the JWT's {what} is not a JSON object")
    return data


def parse(raw: str) -> Assertion:
    """Split a compact JWS. Raises ``MalformedAssertion``."""
    raw = raw.strip()
    if len(raw) > MAX_ASSERTION_LENGTH:
        raise MalformedAssertion(f"the assertion is longer than {MAX_ASSERTION_LENGTH} characters")
    parts = raw.split(".")
    if len(parts) == 5:
        raise MalformedAssertion("encrypted JWTs (JWE) are not accepted: send a signed JWT")
    if len(parts) != 3 or not parts[0] or not parts[1]:
        raise MalformedAssertion("the assertion is not a JWT (header.claims.signature)")
    return Assertion(raw, _b64_json(parts[0], "header"), _b64_json(parts[1], "claims"))


@dataclass(frozen=True, slots=True)
class Subject:
    """Whom a ``sub`` names: a user (``kind`` ``user``) or an external service account."""

    kind: str
    id: str
    name: str


KeyLookup = Callable[[str, str | None, str], PublicKey]
SubjectLookup = Callable[[str], "Subject | str"]


@dataclass(frozen=True)
class Expectations:
    """What an assertion must match, and where its key and subject are found."""

    #: The registered issuer (None: the organization has none).
    issuer: str | None
    #: Accepted audiences; None: any (``SKIP_AUDIENCE_VALIDATION``).
    audiences: frozenset[str] | None
    now: float
    #: ``(issuer, kid, alg) -> key``; raises ``UnknownKey`` or ``FetchFailed``.
    key: KeyLookup
    #: ``sub -> Subject``, or a string saying why nobody matches.
    subject: SubjectLookup
    leeway: int = LEEWAY


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check's outcome, with what it expected and what the assertion holds."""

    check: str
    ok: bool
    expected: str
    found: str | None
    detail: str
    error: str = INVALID_GRANT
    #: What a passing check found worth keeping (``sub``: the ``Subject``).
    value: Any = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "ok": self.ok,
            "expected": self.expected,
            "found": self.found,
            "detail": self.detail,
        }


@dataclass
class Report:
    """Every check's result; ``ok`` only when there were checks and all passed."""

    results: list[CheckResult] = field(default_factory=list)
    subject: Subject | None = None

    @property
    def ok(self) -> bool:
        return bool(self.results) and all(result.ok for result in self.results)

    @property
    def failure(self) -> CheckResult | None:
        return next((result for result in self.results if not result.ok), None)


def _shown(value: Any, limit: int = 200) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= limit else text[:limit] + "..."


def is_numeric_date(value: Any) -> TypeGuard[int | float]:
    """A NumericDate (RFC 7519 §2): a number of seconds, here finite and within the years 1 to
    9999, so that arithmetic on it stays exact and no ``NaN`` (which every comparison calls
    false) can pass a time check."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    # A huge int is compared as it is (math.isfinite would convert it to a float, and overflow).
    return abs(value) <= MAX_NUMERIC_DATE and (isinstance(value, int) or math.isfinite(value))


def _not_a_date(value: Any) -> str:
    """Why ``value`` (not ``is_numeric_date``) is no NumericDate, as a check's detail says it."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "not a time within the years 1 to 9999"
    return "not a number"


def is_asymmetric_alg(alg: Any) -> TypeGuard[str]:
    """``alg`` names an accepted asymmetric algorithm (a header may hold any JSON value)."""
    return isinstance(alg, str) and alg in ASYMMETRIC_ALGORITHMS


# --- the checks ---------------------------------------------------------------------------------


def check_alg(assertion: Assertion, expect: Expectations) -> CheckResult:
    alg = assertion.header.get("alg")
    expected = "an asymmetric algorithm (" + ", ".join(sorted(ASYMMETRIC_ALGORITHMS)) + ")"
    if not is_asymmetric_alg(alg):
        why = "unsigned JWTs are refused" if alg in ("none", None) else f"{alg!r} is not accepted"
        if isinstance(alg, str) and alg.upper().startswith("HS"):
            why = "HMAC (shared-secret) signatures are refused"
        return CheckResult("alg", False, expected, _shown(alg), f"alg: {why}")
    if "crit" in assertion.header:
        return CheckResult(
            "alg", False, "no crit header", _shown(assertion.header["crit"]),
            "alg: the JWT has critical header parameters we do not understand (RFC 7515 §4.1.11)",
        )  # fmt: skip
    return CheckResult("alg", True, expected, alg, "alg: asymmetric")


def check_iss(assertion: Assertion, expect: Expectations) -> CheckResult:
    iss = assertion.claims.get("iss")
    if expect.issuer is None:
        return CheckResult(
            "iss", False, "a registered JWT issuer", _shown(iss),
            "iss: the organization has no JWT issuer registered",
        )  # fmt: skip
    if iss != expect.issuer:
        why = "the JWT has no iss" if iss is None else "iss is not the registered issuer"
        return CheckResult("iss", False, expect.issuer, _shown(iss), f"iss: {why}")
    return CheckResult("iss", True, expect.issuer, iss, "iss: the registered issuer")


def check_signature(assertion: Assertion, expect: Expectations) -> CheckResult:
    expected = "a signature by a key of the issuer's JWKS"
    alg = assertion.header.get("alg")
    kid = assertion.header.get("kid")
    found = f"kid {kid!r}" if kid is not None else "no kid"
    if expect.issuer is None or not is_asymmetric_alg(alg) or "crit" in assertion.header:
        return CheckResult("signature", False, expected, found, "signature: not checked (see alg)")
    if kid is not None and not isinstance(kid, str):
        return CheckResult("signature", False, expected, _shown(kid), "signature: kid is no string")
    try:
        key = expect.key(expect.issuer, kid, alg)
    except UnknownKey as exc:
        return CheckResult("signature", False, expected, found, f"signature: {exc}")
    except FetchFailed as exc:
        detail = f"signature: the issuer's keys could not be fetched: {exc}"
        return CheckResult("signature", False, expected, found, detail, TEMPORARILY_UNAVAILABLE)
    try:
        jws.deserialize_compact(assertion.raw, key, algorithms=[alg])
    except (JoseError, ValueError) as exc:
        why = "does not verify" if exc.__class__.__name__ == "BadSignatureError" else str(exc)
        return CheckResult("signature", False, expected, found, f"signature: {why}")
    return CheckResult("signature", True, expected, found, f"signature: verified ({alg})")


def check_exp(assertion: Assertion, expect: Expectations) -> CheckResult:
    exp = assertion.claims.get("exp")
    expected = f"a time after {int(expect.now) - expect.leeway}"
    if not is_numeric_date(exp):
        why = "the JWT has no exp" if exp is None else f"exp is {_not_a_date(exp)}"
        return CheckResult("exp", False, expected, _shown(exp), f"exp: {why}")
    if exp <= expect.now - expect.leeway:
        ago = int(expect.now - exp)
        return CheckResult("exp", False, expected, str(exp), f"exp: expired {ago} s ago")
    return CheckResult("exp", True, expected, str(exp), "exp: in the future")


def check_nbf(assertion: Assertion, expect: Expectations) -> CheckResult:
    nbf = assertion.claims.get("nbf")
    expected = f"absent, or a time before {int(expect.now) + expect.leeway}"
    if nbf is None:
        return CheckResult("nbf", True, expected, None, "nbf: absent")
    if not is_numeric_date(nbf):
        return CheckResult("nbf", False, expected, _shown(nbf), f"nbf: {_not_a_date(nbf)}")
    if nbf > expect.now + expect.leeway:
        ahead = int(nbf - expect.now)
        return CheckResult("nbf", False, expected, str(nbf), f"nbf: not valid for {ahead} s yet")
    return CheckResult("nbf", True, expected, str(nbf), "nbf: already valid")


def check_iat(assertion: Assertion, expect: Expectations) -> CheckResult:
    iat = assertion.claims.get("iat")
    expected = f"absent, or a time before {int(expect.now) + expect.leeway}"
    if iat is None:
        return CheckResult("iat", True, expected, None, "iat: absent")
    if not is_numeric_date(iat):
        return CheckResult("iat", False, expected, _shown(iat), f"iat: {_not_a_date(iat)}")
    if iat > expect.now + expect.leeway:
        return CheckResult("iat", False, expected, str(iat), "iat: issued in the future")
    return CheckResult("iat", True, expected, str(iat), "iat: in the past")


def check_aud(assertion: Assertion, expect: Expectations) -> CheckResult:
    aud = assertion.claims.get("aud")
    if expect.audiences is None:
        return CheckResult(
            "aud", True, "any (audience validation skipped)", _shown(aud), "aud: skipped"
        )
    expected = " or ".join(repr(a) for a in sorted(expect.audiences))
    values = [aud] if isinstance(aud, str) else aud
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        why = "the JWT has no aud" if aud is None else "aud is not a string or list of strings"
        return CheckResult("aud", False, expected, _shown(aud), f"aud: {why}")
    if not any(value in expect.audiences for value in values):
        return CheckResult("aud", False, expected, _shown(aud), "aud: not this organization")
    return CheckResult("aud", True, expected, _shown(aud), "aud: this organization")


def check_sub(assertion: Assertion, expect: Expectations) -> CheckResult:
    sub = assertion.claims.get("sub")
    expected = "the email of an active user, or an external service account's subject"
    # No NUL: no subject holds one, and PostgreSQL cannot even be asked for it.
    if not isinstance(sub, str) or not sub.strip() or len(sub) > 512 or "\x00" in sub:
        why = "the JWT has no sub" if sub is None else "sub is not a usable string"
        return CheckResult("sub", False, expected, _shown(sub), f"sub: {why}")
    match = expect.subject(sub)
    if isinstance(match, str):
        return CheckResult("sub", False, expected, _shown(sub), f"sub: {match}")
    detail = f"sub: {match.kind.replace('_', ' ')} {match.name}"
    return CheckResult("sub", True, expected, sub, detail, value=match)


#: Every check, in the order they run. Each is ``(assertion, expectations) -> CheckResult``.
CHECKS: dict[str, Callable[[Assertion, Expectations], CheckResult]] = {
    "alg": check_alg,
    "iss": check_iss,
    "signature": check_signature,
    "exp": check_exp,
    "nbf": check_nbf,
    "iat": check_iat,
    "aud": check_aud,
    "sub": check_sub,
}


def evaluate(
    raw: str,
    expect: Expectations,
    checks: Mapping[str, Callable[[Assertion, Expectations], CheckResult]] = CHECKS,
) -> Report:
    """Run every check on the assertion ``raw``; the report says which passed and why."""
    try:
        assertion = parse(raw)
    except MalformedAssertion as exc:
        expected = f"a signed JWT of at most {MAX_ASSERTION_LENGTH} characters"
        return Report([CheckResult("format", False, expected, None, f"format: {exc}")])
    report = Report([CheckResult("format", True, "a signed JWT", "a JWT", "format: a JWT")])
    for check in checks.values():
        report.results.append(check(assertion, expect))
    if len(report.results) == 1:  # only the format: no checks means fail
        report.results.append(CheckResult("checks", False, "checks", None, "no checks ran"))
    if report.ok:
        report.subject = next((r.value for r in report.results if r.check == "sub"), None)
    return report


def unverified_claims(raw: str) -> Mapping[str, Any] | None:
    """The claims of ``raw`` before any check (to find the organization), or None."""
    try:
        return parse(raw).claims
    except MalformedAssertion:
        return None
