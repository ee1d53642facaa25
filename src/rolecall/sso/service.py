"""Reading and storing an organization's SSO configuration (org admins)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from rolecall import authz
from rolecall.audit.service import record
from rolecall.authz.permissions import Permission
from rolecall.identity.principal import Principal
from rolecall.orgs.models import Organization
from rolecall.settings import Settings
from rolecall.sso.config import LdapConfig, OidcConfig, ldap_config, oidc_config, store_section


@dataclass(frozen=True, slots=True)
class SsoView:
    oidc: OidcConfig
    ldap: LdapConfig
    sso_enabled: bool
    redirect_uri: str


def read_sso(
    session: Session, *, actor: Principal, org: Organization, settings: Settings
) -> SsoView:
    """The SSO configuration in force. Raises ``PermissionDenied`` without ``org:manage_auth``."""
    authz.require(session, actor, Permission.ORG_MANAGE_AUTH, org)
    return SsoView(
        oidc=oidc_config(org, settings),
        ldap=ldap_config(org, settings),
        sso_enabled=settings.sso_enabled,
        redirect_uri=f"{settings.base_url}/oidc/callback",
    )


def update_sso(
    session: Session,
    *,
    actor: Principal,
    org: Organization,
    settings: Settings,
    section: str,
    changes: dict[str, Any],
) -> SsoView:
    """Store OIDC (``section="oidc"``) or LDAP settings; ``None`` clears a value.

    Raises ``PermissionDenied`` without ``org:manage_auth``; ``InvalidInput`` for a bad value;
    ``Conflict`` for a setting the environment fixes, or a secret without ROLECALL_SECRET_KEY.
    """
    authz.require(session, actor, Permission.ORG_MANAGE_AUTH, org)
    before, after = store_section(org, settings, section, changes)
    if after:
        record(
            session,
            actor=actor,
            action=f"sso.{section}.update",
            object_type="org",
            object_id=org.id,
            object_name=org.name,
            org_id=org.id,
            before=before,
            after=after,
        )
        session.flush()
    return read_sso(session, actor=actor, org=org, settings=settings)
