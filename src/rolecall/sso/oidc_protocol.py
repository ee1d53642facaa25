"""The protocol side of OpenID Connect sign-in, without the database: the provider's metadata
and endpoints, the code exchange, userinfo, and every check an ID token must pass.

- Metadata: ``${ISSUER}/.well-known/openid-configuration`` (OpenID Connect Discovery 1.0 §4),
  cached with the provider's keys in the process's ``JwksCache``; an endpoint must be https
  (plain http only on loopback).
- Code exchange (Core §3.1.3): the PKCE verifier (RFC 7636 §4.5) and, with a client secret,
  ``client_secret_basic``, or ``client_secret_post`` when the provider lists post and not basic
  (RFC 6749 §2.3.1, RFC 8414 §2).
- ``validate_id_token`` (Core §3.1.3.7, §3.2.2.11): an asymmetric ``alg`` only (RFC 8725 §3.1),
  the signature with the key for its ``kid`` (an unknown ``kid`` refetches the key set), ``iss``,
  ``aud`` holding the client id, ``azp``, ``exp`` and ``iat`` within ``LEEWAY``, the nonce;
  ``at_hash`` against the access token that came with it (Core §3.1.3.8, §3.2.2.9), required
  when the caller says so (an access token from the authorization endpoint, §3.2.2.10); and,
  with a ``max_age``, ``auth_time`` (required, no older than ``max_age`` + ``LEEWAY``).

Failures are ``OidcFailed`` (refused: the response or token is wrong) or ``IdpUnavailable``
(the provider cannot be reached or answers nonsense: try again later).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any
from urllib.parse import quote

import httpx
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import OKPKey

from rolecall import strict_json
from rolecall.errors import AuthenticationFailed, Unavailable
from rolecall.federation.destinations import DestinationRefused, Destinations
from rolecall.federation.jwks import (
    FetchFailed,
    JwksCache,
    UnknownKey,
    check_issuer_url,
    http_client,
    read_capped,
)
from rolecall.federation.jwt_bearer import (
    MalformedAssertion,
    is_asymmetric_alg,
    is_numeric_date,
    parse,
)
from rolecall.sso.config import OidcConfig

#: Seconds of clock difference tolerated on ``exp``, ``iat`` and ``auth_time``.
LEEWAY = 60
#: Other ``iss`` values a provider is documented to put in its ID tokens: Google's tokens may
#: carry the issuer without its scheme ("Validate an ID token", Google Identity docs).
ISSUER_ALIASES: dict[str, tuple[str, ...]] = {
    "https://accounts.google.com": ("accounts.google.com",),
}
#: Longest authorization code read from the provider.
MAX_CODE = 16 * 1024


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def code_challenge(verifier: str) -> str:
    """RFC 7636 §4.2: ``BASE64URL(SHA256(ASCII(code_verifier)))``."""
    return _b64url(hashlib.sha256(verifier.encode("ascii")).digest())


class OidcFailed(AuthenticationFailed):
    """A sign-in through the identity provider was refused.

    ``oauth_error`` and ``oauth_description`` carry what the provider said (RFC 6749 §4.1.2.1,
    §5.2), when it said something.
    """

    code = "oidc_failed"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        oauth_error: str | None = None,
        oauth_description: str | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.oauth_error = oauth_error
        self.oauth_description = oauth_description

    def as_dict(self) -> dict[str, Any]:
        body = super().as_dict()
        if self.oauth_error:
            body["oauth_error"] = self.oauth_error
        if self.oauth_description:
            body["oauth_error_description"] = self.oauth_description
        return body


class IdpUnavailable(Unavailable):
    """The identity provider could not be reached or answered nonsense (try again later)."""

    code = "idp_unavailable"


def metadata(keys: JwksCache, config: OidcConfig) -> dict[str, Any]:
    """The provider's metadata. Raises ``IdpUnavailable``."""
    assert config.issuer is not None
    try:
        return keys.metadata(config.issuer)
    except FetchFailed as exc:
        raise IdpUnavailable(f"the identity provider cannot be reached: {exc}") from exc


def endpoint(metadata: dict[str, Any], name: str) -> str:
    """The URL of the provider's endpoint ``name``. Raises ``IdpUnavailable``."""
    url = metadata.get(name)
    if not isinstance(url, str) or check_issuer_url(url.split("?")[0]) is not None:
        raise IdpUnavailable(f"the identity provider's metadata has no usable {name}")
    return url


def _call(
    destinations: Destinations, what: str, method: str, url: str, **request: Any
) -> tuple[int, bytes | None]:
    """One request to the provider's ``what`` (its token or userinfo endpoint): the status and
    the body, None past ``MAX_DOCUMENT_BYTES`` (``read_capped``). Raises ``IdpUnavailable``."""
    try:
        with (
            http_client(destinations) as client,
            client.stream(method, url, **request) as response,
        ):
            return response.status_code, read_capped(response)
    except DestinationRefused as exc:
        raise IdpUnavailable(f"the identity provider's {what} is refused: {exc}") from exc
    except httpx.HTTPError as exc:
        raise IdpUnavailable(
            f"the identity provider's {what} cannot be reached: {type(exc).__name__}"
        ) from exc


def _read_json(content: bytes | None, what: str) -> dict[str, Any]:
    if content is None:
        raise IdpUnavailable(f"the identity provider's {what} answer is too large")
    try:
        data = strict_json.loads(content)
    except ValueError as exc:
        raise IdpUnavailable(f"the identity provider's {what} did not answer JSON") from exc
    if not isinstance(data, dict):
        raise IdpUnavailable(f"the identity provider's {what} did not answer a JSON object")
    return data


def _token_auth(config: OidcConfig, metadata: dict[str, Any]) -> str:
    """``none`` (no secret), ``client_secret_basic``, or ``client_secret_post`` when the provider
    lists it and not basic (RFC 8414 §2: basic is the default when the list is absent)."""
    if not config.secret:
        return "none"
    offered = metadata.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
    if "client_secret_basic" not in offered and "client_secret_post" in offered:
        return "client_secret_post"
    return "client_secret_basic"


def exchange_code(
    code: str | None,
    verifier: str | None,
    config: OidcConfig,
    metadata: dict[str, Any],
    redirect_uri: str,
    destinations: Destinations,
) -> dict[str, Any]:
    """The token endpoint's answer for ``code`` (Core §3.1.3.1, RFC 7636 §4.5).

    Raises ``OidcFailed`` (no code, the provider refused it) or ``IdpUnavailable``.
    """
    if not code or len(code) > MAX_CODE:
        raise OidcFailed("the sign-in response has no authorization code", code="invalid_response")
    url = endpoint(metadata, "token_endpoint")
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
    }
    if verifier:
        form["code_verifier"] = verifier
    auth: tuple[str, str] | None = None
    method = _token_auth(config, metadata)
    client_id = config.client_id or ""
    if method == "client_secret_basic":
        # RFC 6749 §2.3.1: the id and secret are form-encoded before Basic encoding.
        auth = (quote(client_id, safe=""), quote(config.secret or "", safe=""))
    else:
        form["client_id"] = client_id
        if method == "client_secret_post":
            form["client_secret"] = config.secret or ""
    headers = {"Accept": "application/json"}
    status, content = _call(
        destinations, "token endpoint", "POST", url, data=form, auth=auth, headers=headers
    )
    if status >= 500:
        raise IdpUnavailable(f"the identity provider's token endpoint answered {status}")
    body = _read_json(content, "token endpoint")
    if status != 200:
        error = str(body.get("error", "error"))[:200]
        description = str(body.get("error_description", ""))[:500] or None
        raise OidcFailed(
            f"the identity provider refused the authorization code: {error}"
            + (f" ({description})" if description else ""),
            code="token_refused",
            oauth_error=error,
            oauth_description=description,
        )
    return body


def userinfo(
    access_token: str, metadata: dict[str, Any], subject: str, destinations: Destinations
) -> dict[str, Any]:
    """The userinfo claims (Core §5.3), for a provider keeping the email out of the ID token."""
    url = metadata.get("userinfo_endpoint")
    if not isinstance(url, str) or check_issuer_url(url.split("?")[0]) is not None:
        return {}
    headers = {"Authorization": f"Bearer {access_token}"}
    status, content = _call(destinations, "userinfo endpoint", "GET", url, headers=headers)
    if status != 200:
        return {}
    info = _read_json(content, "userinfo endpoint")
    # Core §5.3.2: the userinfo sub must be the ID token's, or the answer is not about our user.
    return info if info.get("sub") == subject else {}


# --- the ID token -------------------------------------------------------------------------------


def _refuse(message: str) -> OidcFailed:
    return OidcFailed(f"the ID token is not valid: {message}", code="invalid_id_token")


def token_hash(value: str, alg: str, curve: str | None = None) -> str:
    """Core §3.1.3.6 (``at_hash``): base64url of the left half of the hash of ``value``'s
    octets, the hash being the one of the ID token's ``alg`` (SHA-256 for ``RS256``...). For
    ``EdDSA`` the curve names it (RFC 9864's ``Ed25519`` and ``Ed448`` name it themselves):
    SHA-512 for Ed25519, SHAKE256 (114 octets) for Ed448."""
    data = value.encode("utf-8")
    if alg in ("EdDSA", "Ed25519", "Ed448"):
        ed448 = alg == "Ed448" or curve == "Ed448"
        full = hashlib.shake_256(data).digest(114) if ed448 else hashlib.sha512(data).digest()
    else:
        full = hashlib.new("sha" + alg[-3:], data).digest()
    return _b64url(full[: len(full) // 2])


def _check_at_hash(
    claims: dict[str, Any], alg: str, curve: str | None, access_token: str | None, required: bool
) -> None:
    """Core §3.1.3.8, §3.2.2.9: the access token is the one the ID token was issued with."""
    at_hash = claims.get("at_hash")
    if at_hash is None:
        if required and access_token is not None:
            raise _refuse("it has no at_hash although an access token came with it")
        return
    if access_token is None:
        return  # nothing came that the hash could bind
    expected = token_hash(access_token, alg, curve)
    if not isinstance(at_hash, str) or not hmac.compare_digest(at_hash.encode(), expected.encode()):
        raise _refuse("at_hash does not match the access token (a substituted token?)")


def _check_auth_time(claims: dict[str, Any], max_age: int | None, now: float) -> None:
    """Core §3.1.2.1, §3.1.3.7 step 13: with ``max_age`` asked for, ``auth_time`` is required
    and the user authenticated at most ``max_age`` seconds ago."""
    if max_age is None:
        return
    auth_time = claims.get("auth_time")
    if not is_numeric_date(auth_time):
        raise _refuse(f"it has no auth_time although max_age={max_age} was asked for")
    if auth_time > now + LEEWAY:
        raise _refuse("its auth_time is in the future")
    if auth_time < now - max_age - LEEWAY:
        age = int(now - auth_time)
        raise _refuse(
            f"the user authenticated at the provider {age} s ago, longer than max_age={max_age}: "
            "sign in again"
        )


def validate_id_token(
    raw: str,
    *,
    issuer: str,
    client_id: str,
    nonce: str,
    keys: JwksCache,
    now: float | None = None,
    access_token: str | None = None,
    at_hash_required: bool = False,
    max_age: int | None = None,
) -> dict[str, Any]:
    """The claims of an ID token that passes every check of Core §3.1.3.7 (and §3.2.2.11).

    ``access_token`` is the one that came with the token: its ``at_hash``, when present, must
    match it (required too with ``at_hash_required``, as in the implicit flow). With
    ``max_age`` (what the authorization request asked for), ``auth_time`` must be present and
    no older than ``max_age`` seconds, give or take ``LEEWAY``.

    Raises ``OidcFailed`` (``invalid_id_token``) naming the failed check, or ``IdpUnavailable``
    when the provider's keys cannot be fetched.
    """
    now = time.time() if now is None else now
    try:
        token = parse(raw)
    except MalformedAssertion as exc:
        raise _refuse(str(exc)) from exc
    alg = token.header.get("alg")
    if not is_asymmetric_alg(alg):
        raise _refuse(f"alg {str(alg)[:64]!r} is refused (asymmetric signatures only)")
    if "crit" in token.header:
        raise _refuse("it has critical header parameters (RFC 7515 §4.1.11)")
    kid = token.header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise _refuse("kid is not a string")
    try:
        key = keys.key_for(issuer, kid, alg)
    except UnknownKey as exc:
        raise _refuse(str(exc)) from exc
    except FetchFailed as exc:
        raise IdpUnavailable(f"the identity provider's keys cannot be fetched: {exc}") from exc
    try:
        jws.deserialize_compact(token.raw, key, algorithms=[alg])
    except (JoseError, ValueError) as exc:
        raise _refuse("the signature does not verify") from exc
    claims = dict(token.claims)
    if claims.get("iss") != issuer and claims.get("iss") not in ISSUER_ALIASES.get(issuer, ()):
        raise _refuse(f"iss {str(claims.get('iss'))[:200]!r} is not the issuer {issuer!r}")
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud
    if not isinstance(audiences, list) or client_id not in audiences:
        raise _refuse(f"aud does not name this client ({client_id!r})")
    azp = claims.get("azp")
    if azp is not None and azp != client_id:
        raise _refuse(f"azp {str(azp)[:200]!r} is not this client")
    if len(audiences) > 1 and azp is None:
        raise _refuse("it has several audiences but no azp")
    exp, iat = claims.get("exp"), claims.get("iat")
    if not is_numeric_date(exp) or exp <= now - LEEWAY:
        raise _refuse("it has expired" if is_numeric_date(exp) else "it has no exp")
    if not is_numeric_date(iat) or iat > now + LEEWAY:
        raise _refuse("it is issued in the future" if is_numeric_date(iat) else "it has no iat")
    sent = claims.get("nonce")
    if not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), nonce.encode()):
        raise _refuse("the nonce is not the one of this sign-in (a replayed token?)")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub or len(sub) > 255 or "\x00" in sub:
        raise _refuse("it has no usable sub")
    curve = key.curve_name if isinstance(key, OKPKey) else None
    _check_at_hash(claims, alg, curve, access_token, at_hash_required)
    _check_auth_time(claims, max_age, now)
    return claims
