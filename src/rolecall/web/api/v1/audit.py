"""REST routes: the audit log, paged and exported as JSON lines."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Annotated

from fastapi import Query
from fastapi.responses import StreamingResponse

from rolecall.audit import service
from rolecall.audit.models import AuditEvent
from rolecall.audit.schemas import AuditFilters, AuditPage, AuditQuery
from rolecall.web.api.v1._router import make_router
from rolecall.web.deps import ContextDep

router = make_router("audit")

NDJSON = "application/x-ndjson"


@router.get("/audit", operation_id="audit-list", response_model=AuditPage)
def list_events(query: Annotated[AuditQuery, Query()], ctx: ContextDep) -> AuditPage:
    """Events in order; pass ``next_cursor`` back as ``cursor`` for the next page."""
    events = service.list_events(
        ctx.session,
        actor=ctx.actor,
        org=ctx.org,
        after_seq=query.cursor,
        limit=query.limit,
        **query.service_filters(),
    )
    return AuditPage.from_events(events, limit=query.limit)


def _lines(first: AuditEvent | None, rest: Iterator[AuditEvent]) -> Iterator[bytes]:
    if first is None:
        return
    yield _line(first)
    for event in rest:
        yield _line(event)


def _line(event: AuditEvent) -> bytes:
    return (json.dumps(service.event_dict(event), separators=(",", ":")) + "\n").encode()


@router.get(
    "/audit/export",
    operation_id="audit-export",
    response_class=StreamingResponse,
    responses={200: {"content": {NDJSON: {}}, "description": "One event per line"}},
)
def export_events(filters: Annotated[AuditFilters, Query()], ctx: ContextDep) -> StreamingResponse:
    """Every matching event as JSON lines (``application/x-ndjson``), oldest first."""
    events = service.iter_events(
        ctx.session, actor=ctx.actor, org=ctx.org, **filters.service_filters()
    )
    # Fetching the first page runs the permission check: a refusal is still a 403, not a
    # stream cut short.
    first = next(events, None)
    return StreamingResponse(_lines(first, events), media_type=NDJSON)
