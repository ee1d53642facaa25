"""REST routes: the organization's JWT issuer, and explaining a JWT's refusal (org admins)."""

from __future__ import annotations

from rolecall.federation import service
from rolecall.federation.schemas import IssuerRead, IssuerUpdate, VerifyReport, VerifyRequest
from rolecall.web.api.v1._router import make_router
from rolecall.web.deps import ContextDep, JwksDep, ReadOnly

router = make_router("federation")


@router.get("/federation/issuer", operation_id="federation-get-issuer", response_model=IssuerRead)
def get_issuer(ctx: ContextDep) -> IssuerRead:
    """The JWT issuer the organization trusts (``issuer`` null: none)."""
    return IssuerRead.of(service.read_issuer(ctx.session, actor=ctx.actor, org=ctx.org))


@router.put("/federation/issuer", operation_id="federation-set-issuer", response_model=IssuerRead)
def set_issuer(body: IssuerUpdate, ctx: ContextDep, keys: JwksDep) -> IssuerRead:
    """Register the JWT issuer (found through discovery first); null removes it."""
    row = service.set_issuer(
        ctx.session, actor=ctx.actor, org=ctx.org, issuer=body.issuer, keys=keys
    )
    return IssuerRead.of(row)


@router.post(
    "/federation/verify",
    operation_id="federation-verify",
    response_model=VerifyReport,
    dependencies=[ReadOnly],
)
def verify(body: VerifyRequest, ctx: ContextDep, keys: JwksDep) -> VerifyReport:
    """Run every check of the token exchange on a JWT, issuing nothing: expected vs found."""
    report = service.verify_assertion(
        ctx.session,
        actor=ctx.actor,
        org=ctx.org,
        settings=ctx.settings,
        keys=keys,
        assertion=body.assertion,
    )
    return VerifyReport.of(report)
