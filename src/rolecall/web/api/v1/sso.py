"""REST routes: the organization's SSO configuration (OIDC and LDAP), org admins only."""

from __future__ import annotations

from rolecall.sso import service
from rolecall.sso.schemas import LdapSettingsUpdate, OidcSettingsUpdate, SsoRead
from rolecall.web.api.v1._router import make_router
from rolecall.web.deps import ContextDep

router = make_router("sso")


@router.get("/sso", operation_id="sso-get", response_model=SsoRead)
def get_sso(ctx: ContextDep) -> SsoRead:
    """The OIDC and LDAP settings in force; secrets are only said to be set or not."""
    view = service.read_sso(ctx.session, actor=ctx.actor, org=ctx.org, settings=ctx.settings)
    return SsoRead.of(view)


@router.patch("/sso/oidc", operation_id="sso-update-oidc", response_model=SsoRead)
def update_oidc(body: OidcSettingsUpdate, ctx: ContextDep) -> SsoRead:
    """Store OIDC settings (an environment variable, when set, wins: 409)."""
    view = service.update_sso(
        ctx.session,
        actor=ctx.actor,
        org=ctx.org,
        settings=ctx.settings,
        section="oidc",
        changes=body.model_dump(exclude_unset=True),
    )
    return SsoRead.of(view)


@router.patch("/sso/ldap", operation_id="sso-update-ldap", response_model=SsoRead)
def update_ldap(body: LdapSettingsUpdate, ctx: ContextDep) -> SsoRead:
    """Store LDAP settings (an environment variable, when set, wins: 409)."""
    view = service.update_sso(
        ctx.session,
        actor=ctx.actor,
        org=ctx.org,
        settings=ctx.settings,
        section="ldap",
        changes=body.model_dump(exclude_unset=True),
    )
    return SsoRead.of(view)
