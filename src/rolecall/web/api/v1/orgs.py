"""REST routes: the organization (``/org``)."""

from __future__ import annotations

from rolecall.orgs import service
from rolecall.orgs.schemas import OrgRead, OrgUpdate
from rolecall.web.api.v1._router import make_router
from rolecall.web.deps import ContextDep

router = make_router("orgs")


@router.get("/org", operation_id="orgs-get", response_model=OrgRead)
def get_org(ctx: ContextDep) -> OrgRead:
    """The organization, its settings and which of them the environment fixes."""
    view = service.read_org(ctx.session, actor=ctx.actor, org=ctx.org)
    return OrgRead.model_validate(view)


@router.patch("/org", operation_id="orgs-update", response_model=OrgRead)
def update_org(body: OrgUpdate, ctx: ContextDep) -> OrgRead:
    """Rename the organization, set its default team or store settings (org admins)."""
    given = body.model_fields_set
    view = service.update_org(
        ctx.session,
        actor=ctx.actor,
        org=ctx.org,
        name=body.name,
        default_team=body.default_team if "default_team" in given else service.UNSET,
        settings=body.settings.model_dump(exclude_none=True) if body.settings else None,
    )
    return OrgRead.model_validate(view)
