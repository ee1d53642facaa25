"""The operator's endpoints: liveness, readiness and the Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text

from rolecall.web import metrics
from rolecall.web.errors import ERROR_RESPONSES

router = APIRouter(tags=["operations"], responses=ERROR_RESPONSES)


@router.get("/healthz", operation_id="operations-healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", operation_id="operations-readyz")
def readyz(request: Request, response: Response) -> dict[str, str]:
    """The database answers."""
    try:
        with request.app.state.session_factory() as session:
            session.execute(text("SELECT 1"))
    except Exception:
        response.status_code = 503
        return {"status": "database unreachable"}
    return {"status": "ok"}


@router.get("/metrics", include_in_schema=False)
def prometheus() -> Response:
    return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
