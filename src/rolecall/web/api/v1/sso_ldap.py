"""REST route: test LDAP settings before (or while) using them to sign in (org admins)."""

from __future__ import annotations

from rolecall.sso.ldap_check import check_ldap_settings
from rolecall.sso.ldap_schemas import LdapTestRead, LdapTestRequest
from rolecall.web.api.v1._router import make_router
from rolecall.web.deps import ContextDep

router = make_router("sso")


@router.post("/sso/ldap/test", operation_id="sso-test-ldap", response_model=LdapTestRead)
def check_ldap(body: LdapTestRequest, ctx: ContextDep) -> LdapTestRead:
    """Connect, bind and search with the stored LDAP settings and the changes given; each step
    says what it did or precisely what failed. Nothing is stored."""
    check = check_ldap_settings(
        ctx.session,
        actor=ctx.actor,
        org=ctx.org,
        settings=ctx.settings,
        changes=body.changes(),
        email=body.email,
        password=body.password,
    )
    return LdapTestRead.of(check)
