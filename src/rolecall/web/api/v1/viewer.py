"""REST routes: the viewer (who the caller is)."""

from __future__ import annotations

from fastapi import Response

from rolecall.orgs import service
from rolecall.orgs.schemas import ViewerRead
from rolecall.users import service as users_service
from rolecall.web.api.v1._router import make_router
from rolecall.web.deps import ContextDep

router = make_router("viewer")


@router.get("/viewer", operation_id="viewer-get", response_model=ViewerRead)
def get_viewer(ctx: ContextDep) -> ViewerRead:
    """The caller (user or service account) and its credential; any credential may ask."""
    view = service.describe_viewer(ctx.session, actor=ctx.actor, org=ctx.org)
    return ViewerRead.model_validate(view)


@router.put("/viewer/scim-org", operation_id="viewer-set-scim-org", status_code=204)
def set_scim_org(ctx: ContextDep) -> Response:
    """Make the request's organization (``X-Rolecall-Org``) the caller's SCIM organization:
    in multi-org mode, SCIM requests that name no organization go there (org admins)."""
    users_service.choose_scim_org(ctx.session, actor=ctx.actor, org=ctx.org)
    return Response(status_code=204)
