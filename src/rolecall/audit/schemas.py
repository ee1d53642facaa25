"""REST shapes of the audit log (docs/rest-api.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from rolecall.audit.models import AuditEvent
from rolecall.audit.service import event_dict
from rolecall.db.types import as_stored

FilterText = Annotated[str, Field(min_length=1, max_length=320)]


class AuditFilters(BaseModel):
    """Query filters shared by the list and the export; unknown parameters are refused."""

    model_config = ConfigDict(extra="forbid")

    #: An actor's id or name.
    actor: FilterText | None = None
    object_type: FilterText | None = None
    object_id: FilterText | None = None
    action: FilterText | None = None
    #: ISO 8601; a time without offset is UTC.
    since: datetime | None = None
    until: datetime | None = None

    @field_validator("since", "until")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return as_stored(value)

    def service_filters(self) -> dict[str, Any]:
        """Keyword arguments for ``audit.service.list_events``/``iter_events``."""
        return {
            "actor_filter": self.actor,
            "object_type": self.object_type,
            "object_id": self.object_id,
            "action": self.action,
            "since": self.since,
            "until": self.until,
        }


class AuditQuery(AuditFilters):
    #: The ``next_cursor`` of the previous page (an event ``seq``).
    cursor: int | None = Field(default=None, ge=0, le=2**62)
    limit: int = Field(default=100, ge=1, le=1000)


class AuditActor(BaseModel):
    type: str
    id: str | None
    name: str | None
    credential: str | None


class AuditObject(BaseModel):
    type: str
    id: str | None
    name: str | None


class AuditEventRead(BaseModel):
    id: str
    seq: int
    at: datetime
    org_id: str | None
    actor: AuditActor
    surface: str
    action: str
    object: AuditObject
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    detail: str | None

    @classmethod
    def from_event(cls, event: AuditEvent) -> AuditEventRead:
        return cls.model_validate(event_dict(event))


class AuditPage(BaseModel):
    items: list[AuditEventRead]
    #: Pass as ``cursor`` for the next page; ``null`` when this page was the last.
    next_cursor: int | None

    @classmethod
    def from_events(cls, events: list[AuditEvent], *, limit: int) -> AuditPage:
        next_cursor = events[-1].seq if len(events) == limit else None
        return cls(items=[AuditEventRead.from_event(e) for e in events], next_cursor=next_cursor)
