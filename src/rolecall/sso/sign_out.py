"""Signing a browser out: its rolecall session ends, then, for a session that came through
OIDC, the browser goes to the provider's end-session endpoint (OpenID Connect RP-Initiated
Logout 1.0) so it is signed out there too.

The caller has checked that the browser meant it (the console's sign-out form carries the
session's CSRF token): a sign-out another site can trigger would let it end sessions at will and
sign the user out at the provider.
"""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import quote, urlencode

from sqlalchemy.orm import Session

from rolecall.federation.jwks import JwksCache
from rolecall.identity.models import BrowserSession
from rolecall.identity.principal import Principal
from rolecall.identity.sessions import home_org_id, sign_out
from rolecall.orgs.models import Organization
from rolecall.settings import Settings
from rolecall.sso import oidc_protocol as protocol
from rolecall.sso.config import oidc_config
from rolecall.sso.oidc_protocol import IdpUnavailable


def sign_out_browser(
    session: Session,
    *,
    actor: Principal,
    row: BrowserSession,
    settings: Settings,
    keys: JwksCache,
) -> str:
    """End the browser session ``row`` (``actor`` signed in with it) and say where to go next:
    the provider's end-session URL when the session came through OIDC and the provider has
    one, else the host root."""
    org_id = home_org_id(session, row.user_id)
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
        metadata = protocol.metadata(keys, config)
        endpoint = protocol.endpoint(metadata, "end_session_endpoint")
    except IdpUnavailable:
        return None
    params = {"post_logout_redirect_uri": settings.base_url + "/", "client_id": config.client_id}
    if id_token:
        params["id_token_hint"] = id_token
    return endpoint + ("&" if "?" in endpoint else "?") + urlencode(params, quote_via=quote)
