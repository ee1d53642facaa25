"""The OpenID Connect relying party: sign-in through an organization's identity provider.

Two flows (``OIDC_AUTH_METHOD``):

- ``pkce``: the authorization code flow with PKCE (OpenID Connect Core 1.0 §3.1, RFC 7636, S256
  only). The code is exchanged at the token endpoint; with a client secret the client
  authenticates by ``client_secret_basic``, or by ``client_secret_post`` when the provider's
  metadata offers only that (RFC 6749 §2.3.1).
- ``implicit``: ``response_type=id_token`` with ``response_mode=form_post`` (Core §3.2, OAuth 2.0
  Form Post Response Mode): the provider POSTs the ID token to the callback.

The login state is kept server-side (``sso_login_states``), one row per attempt holding only the
SHA-256 of the ``state`` value, with the nonce, the PKCE verifier and where to return: a state is
used once and expires after ``STATE_LIFETIME``. The provider's metadata comes from
``${ISSUER}/.well-known/openid-configuration`` and its keys from ``jwks_uri``, both through the
process's ``JwksCache`` (refetched on an unknown ``kid``).

Every ID token check is in ``validate_id_token`` (Core §3.1.3.7): an asymmetric ``alg`` only,
the signature, ``iss``, ``aud`` holding the client id, ``azp``, ``exp`` and ``iat`` within
``LEEWAY``, the nonce. The RFC 9207 ``iss`` parameter of the authorization response is checked
when present, and required when the provider says it sends one and no ID token came with it.

No transport here: the web layer passes the request's parameters in and renders the errors.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

import httpx
from joserfc import jws
from joserfc.errors import JoseError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from rolecall.errors import AuthenticationFailed, RolecallError
from rolecall.federation.jwks import (
    ASYMMETRIC_ALGORITHMS,
    MAX_DOCUMENT_BYTES,
    FetchFailed,
    JwksCache,
    UnknownKey,
    check_issuer_url,
    http_client,
)
from rolecall.federation.jwt_bearer import MalformedAssertion, parse
from rolecall.identity.authenticate import authenticate_session
from rolecall.identity.sessions import SignIn, record_sign_in_failure, sign_out
from rolecall.orgs.models import Organization, OrgMembership
from rolecall.orgs.settings import effective_settings
from rolecall.settings import Settings
from rolecall.sso.config import OidcConfig, oidc_config
from rolecall.sso.models import SsoLoginState
from rolecall.sso.provisioning import ExternalIdentity, sign_in_external

CALLBACK_PATH = "/oidc/callback"
#: How long a started sign-in may take at the provider.
STATE_LIFETIME = timedelta(minutes=10)
#: Seconds of clock difference tolerated on ``exp`` and ``iat``.
LEEWAY = 60
#: Longest ``return_to`` kept, and longest parameter read from the provider.
MAX_RETURN_TO = 2000
MAX_PARAMETER = 16 * 1024


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


class IdpUnavailable(RolecallError):
    """The identity provider could not be reached or answered nonsense (try again later)."""

    code = "idp_unavailable"


@dataclass(frozen=True)
class Completed:
    """A finished sign-in: the new session and the same-origin path to return to."""

    sign_in: SignIn
    return_to: str


# --- small helpers ------------------------------------------------------------------------------


def _digest(state: str) -> str:
    return hashlib.sha256(state.encode("utf-8")).hexdigest()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def code_challenge(verifier: str) -> str:
    """RFC 7636 §4.2: ``BASE64URL(SHA256(ASCII(code_verifier)))``."""
    return _b64url(hashlib.sha256(verifier.encode("ascii")).digest())


def safe_return_to(value: str | None) -> str:
    """``value`` when it is a path on this server (``/...``, not ``//host`` or ``/\\host``),
    else ``/``: a sign-in never sends the browser to another site."""
    if not value or len(value) > MAX_RETURN_TO or not value.startswith("/"):
        return "/"
    if value.startswith(("//", "/\\")) or any(ord(c) < 0x21 or c == "\\" for c in value):
        return "/"
    return value


def redirect_uri(settings: Settings) -> str:
    """Where the provider sends the browser back: ``<public URL>/oidc/callback``."""
    return settings.base_url + CALLBACK_PATH


def _metadata(keys: JwksCache, config: OidcConfig) -> dict[str, Any]:
    assert config.issuer is not None
    try:
        return keys.metadata(config.issuer)
    except FetchFailed as exc:
        raise IdpUnavailable(f"the identity provider cannot be reached: {exc}") from exc


def _endpoint(metadata: dict[str, Any], name: str) -> str:
    url = metadata.get(name)
    if not isinstance(url, str) or check_issuer_url(url.split("?")[0]) is not None:
        raise IdpUnavailable(f"the identity provider's metadata has no usable {name}")
    return url


def _require_configured(config: OidcConfig, settings: Settings) -> None:
    if not settings.sso_enabled:
        raise AuthenticationFailed(
            "single sign-on is off (LOCAL_RESTORE): sign in with a local password",
            code="sso_disabled",
        )
    if not config.configured:
        raise OidcFailed(
            "OIDC sign-in is not configured for this organization (set OIDC_ISSUER and "
            "OIDC_CLIENT_ID)",
            code="oidc_not_configured",
        )


# --- starting a sign-in -------------------------------------------------------------------------


def start_sign_in(
    session: Session,
    *,
    org: Organization,
    settings: Settings,
    keys: JwksCache,
    return_to: str | None = None,
    login_hint: str | None = None,
    now: datetime | None = None,
) -> str:
    """Record a new login state and return the provider's authorization URL to redirect to.

    Raises ``AuthenticationFailed`` (``sso_disabled``), ``OidcFailed`` (``oidc_not_configured``)
    or ``IdpUnavailable``.
    """
    now = now or datetime.now(UTC)
    config = oidc_config(org, settings)
    _require_configured(config, settings)
    endpoint = _endpoint(_metadata(keys, config), "authorization_endpoint")
    state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    verifier = secrets.token_urlsafe(64) if config.auth_method == "pkce" else None
    session.add(
        SsoLoginState(
            digest=_digest(state),
            org_id=org.id,
            nonce=nonce,
            code_verifier=verifier,
            return_to=safe_return_to(return_to),
            created_at=now,
            expires_at=now + STATE_LIFETIME,
        )
    )
    session.flush()
    params = {
        "client_id": config.client_id,
        "redirect_uri": redirect_uri(settings),
        "scope": " ".join(config.scopes),
        "state": state,
        "nonce": nonce,
    }
    if verifier is not None:
        params |= {
            "response_type": "code",
            "code_challenge": code_challenge(verifier),
            "code_challenge_method": "S256",
        }
    else:
        params |= {"response_type": "id_token", "response_mode": "form_post"}
    if login_hint and len(login_hint) <= 320:
        params["login_hint"] = login_hint
    return endpoint + ("&" if "?" in endpoint else "?") + urlencode(params, quote_via=quote)


# --- completing it ------------------------------------------------------------------------------


def _claim_state(session: Session, state: str | None, now: datetime) -> SsoLoginState:
    """The pending login ``state`` names. Raises ``OidcFailed`` (``invalid_state``)."""
    if not state or len(state) > 512:
        raise OidcFailed(
            "the sign-in response has no state: start again from the sign-in page",
            code="invalid_state",
        )
    row = session.scalar(select(SsoLoginState).where(SsoLoginState.digest == _digest(state)))
    if row is None:
        why = "is unknown"
    elif row.used_at is not None:
        why = "was already used (a replayed response)"
    elif _aware(row.expires_at) <= now:
        why = "has expired"
    else:
        return row
    raise OidcFailed(
        f"the sign-in state {why}: start again from the sign-in page", code="invalid_state"
    )


def _use_state(session: Session, row: SsoLoginState, now: datetime) -> None:
    """Mark the state used, once: of two responses racing with one state, one loses."""
    result = session.execute(
        update(SsoLoginState)
        .where(SsoLoginState.id == row.id, SsoLoginState.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise OidcFailed(
            "the sign-in state was already used (a replayed response)", code="invalid_state"
        )


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _check_iss_parameter(params: dict[str, str], metadata: dict[str, Any]) -> None:
    """RFC 9207 §2.4: the authorization response's ``iss`` names our provider."""
    issuer = metadata["issuer"]
    sent = params.get("iss")
    if sent is None:
        if metadata.get("authorization_response_iss_parameter_supported") is True and (
            "id_token" not in params
        ):
            raise OidcFailed(
                "the sign-in response has no iss parameter although the provider sends one "
                "(RFC 9207)",
                code="iss_mismatch",
            )
        return
    if not hmac.compare_digest(sent.encode(), issuer.encode()):
        raise OidcFailed(
            f"the sign-in response comes from another issuer ({sent[:200]!r}, expected "
            f"{issuer!r}): a mix-up attack or a misconfiguration (RFC 9207)",
            code="iss_mismatch",
        )


def complete_sign_in(
    session: Session,
    *,
    params: dict[str, str],
    settings: Settings,
    keys: JwksCache,
    now: datetime | None = None,
) -> Completed:
    """Check the provider's response to ``/oidc/callback`` and sign its user in.

    ``params`` are the query (code flow) or form (form_post) parameters. The login state is
    marked used whatever happens next; the caller must commit even when this raises, so that it
    stays used and the failure stays audited.

    Raises ``OidcFailed`` (state, ``iss``, the provider's own error, the ID token), the
    ``AuthenticationFailed`` of provisioning, or ``IdpUnavailable``.
    """
    now = now or datetime.now(UTC)
    row: SsoLoginState | None = None
    try:
        row = _claim_state(session, params.get("state"), now)
        org = session.get(Organization, row.org_id)
        if org is None:
            raise OidcFailed("the organization of this sign-in is gone", code="invalid_state")
        config = oidc_config(org, settings)
        _require_configured(config, settings)
        metadata = _metadata(keys, config)
        _check_iss_parameter(params, metadata)
        _use_state(session, row, now)
        claims, id_token = _verified_claims(params, row, config, metadata, settings, keys, now)
        identity = _identity(claims, org, settings)
    except (OidcFailed, IdpUnavailable) as exc:
        record_sign_in_failure(
            session,
            user=None,
            email="",
            reason=exc.message,
            surface="oidc",
            method="oidc",
            org_id=row.org_id if row is not None else None,
        )
        raise
    signed = sign_in_external(
        session,
        org=org,
        identity=identity,
        settings=settings,
        now=now,
        id_token=id_token,
    )
    return Completed(signed, row.return_to or "/")


def _verified_claims(
    params: dict[str, str],
    row: SsoLoginState,
    config: OidcConfig,
    metadata: dict[str, Any],
    settings: Settings,
    keys: JwksCache,
    now: datetime,
) -> tuple[dict[str, Any], str]:
    """The checked ID token's claims (with userinfo's for what the token lacks) and the token."""
    if "error" in params:
        error = params["error"][:200]
        description = params.get("error_description", "")[:500] or None
        raise OidcFailed(
            f"the identity provider refused the sign-in: {error}"
            + (f" ({description})" if description else ""),
            code="idp_refused",
            oauth_error=error,
            oauth_description=description,
        )
    access_token: str | None = None
    if config.auth_method == "pkce":
        tokens = _exchange_code(params.get("code"), row.code_verifier, config, metadata, settings)
        id_token = tokens.get("id_token")
        access = tokens.get("access_token")
        access_token = access if isinstance(access, str) else None
    else:
        id_token = params.get("id_token")
    if not isinstance(id_token, str) or not id_token:
        raise OidcFailed("the identity provider sent no ID token", code="invalid_id_token")
    claims = validate_id_token(
        id_token,
        issuer=metadata["issuer"],
        client_id=config.client_id or "",
        nonce=row.nonce,
        keys=keys,
        now=now.timestamp(),
    )
    if "email" not in claims and access_token is not None:
        claims = {**_userinfo(access_token, metadata, claims["sub"]), **claims}
    return claims, id_token


def _identity(claims: dict[str, Any], org: Organization, settings: Settings) -> ExternalIdentity:
    """What provisioning gets: the email always, groups and identifier claims when the
    organization's settings say so."""
    email = claims.get("email")
    if not isinstance(email, str) or not email.strip():
        raise OidcFailed(
            "the identity provider sent no email address: grant the email scope to this client",
            code="email_missing",
        )
    if claims.get("email_verified") is False:
        raise OidcFailed(
            "the identity provider says this email address is not verified", code="email_unverified"
        )
    switches = effective_settings(org, settings)
    groups: tuple[str, ...] | None = None
    raw_groups = claims.get("groups")
    if switches.enable_sso_group_claims and isinstance(raw_groups, list):
        groups = tuple(g for g in raw_groups if isinstance(g, str))
    username = full_name = None
    if switches.use_identifier_claims:
        username = _text_claim(claims, "preferred_username")
        full_name = _text_claim(claims, "name")
    return ExternalIdentity(
        method="oidc",
        email=email.strip(),
        subject=str(claims["sub"]),
        username=username,
        full_name=full_name,
        groups=groups,
    )


def _text_claim(claims: dict[str, Any], name: str) -> str | None:
    value = claims.get(name)
    return value if isinstance(value, str) and value else None


# --- talking to the provider --------------------------------------------------------------------


def _read_json(response: httpx.Response, what: str) -> dict[str, Any]:
    if len(response.content) > MAX_DOCUMENT_BYTES:
        raise IdpUnavailable(f"the identity provider's {what} answer is too large")
    try:
        data = response.json()
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


def _exchange_code(
    code: str | None,
    verifier: str | None,
    config: OidcConfig,
    metadata: dict[str, Any],
    settings: Settings,
) -> dict[str, Any]:
    """The token endpoint's answer for ``code`` (Core §3.1.3.1, RFC 7636 §4.5)."""
    if not code or len(code) > MAX_PARAMETER:
        raise OidcFailed("the sign-in response has no authorization code", code="invalid_response")
    endpoint = _endpoint(metadata, "token_endpoint")
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri(settings),
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
    try:
        with http_client() as client:
            response = client.post(
                endpoint, data=form, auth=auth, headers={"Accept": "application/json"}
            )
    except httpx.HTTPError as exc:
        raise IdpUnavailable(
            f"the identity provider's token endpoint cannot be reached: {type(exc).__name__}"
        ) from exc
    if response.status_code >= 500:
        raise IdpUnavailable(
            f"the identity provider's token endpoint answered {response.status_code}"
        )
    body = _read_json(response, "token endpoint")
    if response.status_code != 200:
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


def _userinfo(access_token: str, metadata: dict[str, Any], subject: str) -> dict[str, Any]:
    """The userinfo claims (Core §5.3), for a provider keeping the email out of the ID token."""
    endpoint = metadata.get("userinfo_endpoint")
    if not isinstance(endpoint, str) or check_issuer_url(endpoint.split("?")[0]) is not None:
        return {}
    try:
        with http_client() as client:
            response = client.get(endpoint, headers={"Authorization": f"Bearer {access_token}"})
    except httpx.HTTPError as exc:
        raise IdpUnavailable(
            f"the identity provider's userinfo endpoint cannot be reached: {type(exc).__name__}"
        ) from exc
    if response.status_code != 200:
        return {}
    info = _read_json(response, "userinfo endpoint")
    # Core §5.3.2: the userinfo sub must be the ID token's, or the answer is not about our user.
    return info if info.get("sub") == subject else {}


# --- the ID token -------------------------------------------------------------------------------


def _refuse(message: str) -> OidcFailed:
    return OidcFailed(f"the ID token is not valid: {message}", code="invalid_id_token")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def validate_id_token(
    raw: str,
    *,
    issuer: str,
    client_id: str,
    nonce: str,
    keys: JwksCache,
    now: float | None = None,
) -> dict[str, Any]:
    """The claims of an ID token that passes every check of Core §3.1.3.7 (and §3.2.2.11).

    Raises ``OidcFailed`` (``invalid_id_token``) naming the failed check, or ``IdpUnavailable``
    when the provider's keys cannot be fetched.
    """
    now = time.time() if now is None else now
    try:
        token = parse(raw)
    except MalformedAssertion as exc:
        raise _refuse(str(exc)) from exc
    alg = token.header.get("alg")
    if alg not in ASYMMETRIC_ALGORITHMS:
        raise _refuse(f"alg {alg!r} is refused (asymmetric signatures only)")
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
    if claims.get("iss") != issuer:
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
    if not _is_number(exp) or exp <= now - LEEWAY:
        raise _refuse("it has expired" if _is_number(exp) else "it has no exp")
    if not _is_number(iat) or iat > now + LEEWAY:
        raise _refuse("it is issued in the future" if _is_number(iat) else "it has no iat")
    sent = claims.get("nonce")
    if not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), nonce.encode()):
        raise _refuse("the nonce is not the one of this sign-in (a replayed token?)")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub or len(sub) > 255:
        raise _refuse("it has no usable sub")
    return claims


# --- signing out --------------------------------------------------------------------------------


def sign_out_browser(
    session: Session, *, cookie: str | None, settings: Settings, keys: JwksCache
) -> str:
    """End the session of a browser's cookie (if it is still valid) and say where to go next:
    the provider's end-session endpoint when the session came through OIDC and the provider has
    one, else the host root."""
    if not cookie:
        return "/"
    try:
        actor, row = authenticate_session(session, cookie)
    except AuthenticationFailed:
        return "/"  # already ended, expired or unknown: nothing to revoke
    org_id = session.scalar(
        select(OrgMembership.org_id)
        .where(OrgMembership.user_id == row.user_id, OrgMembership.active.is_(True))
        .order_by(OrgMembership.created_at, OrgMembership.id)
        .limit(1)
    )
    org = session.get(Organization, org_id) if org_id else None
    sign_out(session, actor=replace(actor, org_id=org_id))
    if row.method != "oidc":
        return "/"
    url = end_session_url(org=org, settings=settings, keys=keys, id_token=row.id_token)
    return url or "/"


def end_session_url(
    *, org: Organization | None, settings: Settings, keys: JwksCache, id_token: str | None
) -> str | None:
    """The provider's end-session URL (RP-Initiated Logout 1.0 §2), returning to the host root,
    or None when there is none (no OIDC, no ``end_session_endpoint``, or it cannot be reached:
    signing out here must not depend on the provider)."""
    if org is None or not settings.sso_enabled:
        return None
    config = oidc_config(org, settings)
    if not config.configured:
        return None
    try:
        metadata = _metadata(keys, config)
        endpoint = _endpoint(metadata, "end_session_endpoint")
    except IdpUnavailable:
        return None
    params = {"post_logout_redirect_uri": settings.base_url + "/", "client_id": config.client_id}
    if id_token:
        params["id_token_hint"] = id_token
    return endpoint + ("&" if "?" in endpoint else "?") + urlencode(params, quote_via=quote)
