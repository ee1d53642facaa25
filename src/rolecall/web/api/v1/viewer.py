"""REST routes: the viewer (who the caller is)."""

from __future__ import annotations

from rolecall.orgs import service
from rolecall.orgs.schemas import ViewerRead
from rolecall.web.api.v1._router import make_router
from rolecall.web.deps import ContextDep

router = make_router("viewer")


@router.get("/viewer", operation_id="viewer-get", response_model=ViewerRead)
def get_viewer(ctx: ContextDep) -> ViewerRead:
    """The caller (user or service account) and its credential; any credential may ask."""
    view = service.describe_viewer(ctx.session, actor=ctx.actor, org=ctx.org)
    return ViewerRead.model_validate(view)
