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

With ``ROLECALL_OIDC_MAX_AGE`` the authorization request carries ``max_age`` and the ID token
must say, in ``auth_time``, that the user authenticated recently enough. An access token that
comes with the ID token in the implicit flow is used (for userinfo) only when the ID token's
``at_hash`` binds it; in the code flow ``at_hash`` is checked when the ID token has one.

The ID token's checks, the code exchange and userinfo are in ``sso.oidc_protocol``. The RFC 9207
``iss`` parameter of the authorization response is checked here: when present, and required
when the provider says it sends one and no ID token came with it.

No transport here: the web layer passes the request's parameters in and renders the errors.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from rolecall.db.session import commit_before_calling_out
from rolecall.errors import AuthenticationFailed
from rolecall.federation.destinations import Destinations
from rolecall.federation.jwks import JwksCache
from rolecall.identity.sessions import SignIn, record_sign_in_failure
from rolecall.orgs.models import Organization
from rolecall.orgs.settings import effective_settings
from rolecall.settings import Settings
from rolecall.sso import oidc_protocol as protocol
from rolecall.sso.config import OidcConfig, oidc_config
from rolecall.sso.models import SsoLoginState
from rolecall.sso.oidc_protocol import IdpUnavailable, OidcFailed
from rolecall.sso.provisioning import ExternalIdentity, sign_in_external

__all__ = [
    "Completed",
    "IdpUnavailable",
    "OidcFailed",
    "Started",
    "binding_name",
    "complete_sign_in",
    "start_sign_in",
]

CALLBACK_PATH = "/oidc/callback"
#: How long a started sign-in may take at the provider.
STATE_LIFETIME = timedelta(minutes=10)
#: Longest ``state`` looked up: rolecall's own are 43 characters; a longer one is no sign-in's.
MAX_STATE_LENGTH = 512
#: Longest ``return_to`` kept.
MAX_RETURN_TO = 2000


@dataclass(frozen=True)
class Started:
    """A started sign-in: where to send the browser, and the ``state`` the browser must also
    keep (in a cookie) so that the callback can tell it is the same browser."""

    url: str
    state: str


@dataclass(frozen=True)
class Completed:
    """A finished sign-in: the new session and the same-origin path to return to."""

    sign_in: SignIn
    return_to: str


# --- small helpers ------------------------------------------------------------------------------


def _digest(state: str) -> str:
    return hashlib.sha256(state.encode("utf-8")).hexdigest()


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
) -> Started:
    """Record a new login state; returns the provider's authorization URL to redirect to.

    Raises ``AuthenticationFailed`` (``sso_disabled``), ``OidcFailed`` (``oidc_not_configured``)
    or ``IdpUnavailable``.
    """
    now = now or datetime.now(UTC)
    config = oidc_config(org, settings)
    _require_configured(config, settings)
    commit_before_calling_out(session)  # the metadata may be fetched
    endpoint = protocol.endpoint(protocol.metadata(keys, config), "authorization_endpoint")
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
            "code_challenge": protocol.code_challenge(verifier),
            "code_challenge_method": "S256",
        }
    else:
        params |= {"response_type": "id_token", "response_mode": "form_post"}
    if login_hint and len(login_hint) <= 320:
        params["login_hint"] = login_hint
    if settings.oidc_max_age is not None:
        params["max_age"] = str(settings.oidc_max_age)
    url = endpoint + ("&" if "?" in endpoint else "?") + urlencode(params, quote_via=quote)
    return Started(url, state)


def binding_name(state: str) -> str:
    """The name of the cookie binding ``state`` to the browser that started the sign-in (one
    per sign-in, so sign-ins started in two tabs both finish)."""
    return "rolecall_oidc_" + _digest(state)[:16]


# --- completing it ------------------------------------------------------------------------------


def _claim_state(session: Session, state: str | None, now: datetime) -> SsoLoginState:
    """The pending login ``state`` names. Raises ``OidcFailed`` (``invalid_state``)."""
    if not state:
        raise OidcFailed(
            "the sign-in response has no state: start again from the sign-in page",
            code="invalid_state",
        )
    if len(state) > MAX_STATE_LENGTH:
        raise OidcFailed(
            f"the sign-in response's state is longer than {MAX_STATE_LENGTH} characters, so"
            " not one rolecall made: start again from the sign-in page",
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


def _check_browser(state: str, kept: str | None, required: bool) -> None:
    if kept is None and not required:
        return
    if not hmac.compare_digest((kept or "").encode(), state.encode()):
        raise OidcFailed(
            "this sign-in was started in another browser: start again from the sign-in page",
            code="invalid_state",
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
    browser_state: str | None,
    browser_state_required: bool = True,
    now: datetime | None = None,
) -> Completed:
    """Check the provider's response to ``/oidc/callback`` and sign its user in.

    ``browser_state`` is the state the browser kept when it started the sign-in (its binding
    cookie): a response carried to another browser is refused (RFC 6749 §10.12, login CSRF).
    ``browser_state_required=False`` lets a browser without it through, for a cross-site form
    post over plain http, where no cookie can come along.

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
        commit_before_calling_out(session)  # reads only so far; the metadata may be fetched
        metadata = protocol.metadata(keys, config)
        _check_iss_parameter(params, metadata)
        _use_state(session, row, now)
        _check_browser(params["state"], browser_state, browser_state_required)
        # The state stays used whatever the provider's endpoints answer (or how long they take).
        commit_before_calling_out(session)
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
    if config.auth_method == "pkce":
        tokens = protocol.exchange_code(
            params.get("code"),
            row.code_verifier,
            config,
            metadata,
            redirect_uri(settings),
            Destinations.of(settings),
        )
        id_token = tokens.get("id_token")
        access = tokens.get("access_token")
    else:
        # Core §3.2.2.10: an access token from the authorization endpoint (``id_token token``)
        # is bound to the ID token by its required at_hash, or it is not used.
        id_token = params.get("id_token")
        access = params.get("access_token")
    access_token = access if isinstance(access, str) and access else None
    if not isinstance(id_token, str) or not id_token:
        raise OidcFailed("the identity provider sent no ID token", code="invalid_id_token")
    claims = protocol.validate_id_token(
        id_token,
        issuer=metadata["issuer"],
        client_id=config.client_id or "",
        nonce=row.nonce,
        keys=keys,
        now=now.timestamp(),
        access_token=access_token,
        at_hash_required=config.auth_method == "implicit",
        max_age=settings.oidc_max_age,
    )
    if "email" not in claims and access_token is not None:
        found = protocol.userinfo(access_token, metadata, claims["sub"], Destinations.of(settings))
        claims = {**found, **claims}
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
    verified = claims.get("email_verified")
    # Some providers send the boolean as a string ("false" is no verified address).
    if verified is False or (isinstance(verified, str) and verified.strip().lower() == "false"):
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
