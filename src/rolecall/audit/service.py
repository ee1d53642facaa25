"""Recording and reading the audit log."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, Required, TypedDict, Unpack

from sqlalchemy import select
from sqlalchemy.orm import Session

from rolecall import authz
from rolecall.audit.models import AuditEvent
from rolecall.authz.permissions import Permission
from rolecall.db.rows import insert_now, insert_rows
from rolecall.identity.principal import Principal
from rolecall.orgs.models import Organization

#: Keys that never enter the log, whatever a caller passes in ``before``/``after``.
_SECRET_KEYS = frozenset({"password", "password_hash", "api_key", "secret", "digest", "token"})


def _scrub(values: dict[str, Any] | None) -> dict[str, Any] | None:
    if values is None:
        return None
    return {k: ("[redacted]" if k in _SECRET_KEYS else v) for k, v in values.items()}


class EventFields(TypedDict, total=False):
    """What an event records besides who made the change: the change itself."""

    action: Required[str]
    object_type: Required[str]
    object_id: Required[str | None]
    object_name: str | None
    #: The organization the event belongs to; the actor's when left out.
    org_id: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    detail: str | None


def _columns(actor: Principal, event: EventFields) -> dict[str, Any]:
    """An event's columns: the change as given (secrets scrubbed), by whom and through what."""
    return {
        "org_id": event.get("org_id") or actor.org_id,
        "actor_type": actor.kind.value,
        "actor_id": actor.id,
        "actor_name": actor.name,
        "credential": actor.credential_label,
        "surface": actor.surface,
        "action": event["action"],
        "object_type": event["object_type"],
        "object_id": event["object_id"],
        "object_name": event.get("object_name"),
        "before": _scrub(event.get("before")),
        "after": _scrub(event.get("after")),
        "detail": event.get("detail"),
    }


def record(session: Session, *, actor: Principal, **event: Unpack[EventFields]) -> AuditEvent:
    """Append an event in the caller's transaction (it commits or rolls back with the change).

    The change made so far is flushed and the event inserted at once (one ``INSERT``: the log
    is append-only, nothing about an event changes later)."""
    row = AuditEvent(**_columns(actor, event))
    insert_now(session, row)
    return row


def record_many(session: Session, *, actor: Principal, events: Sequence[EventFields]) -> None:
    """Append several events, in this order, in one statement (``db.rows.insert_rows``): for a
    change made to many rows at once, which the log still records one event per row."""
    insert_rows(session, AuditEvent, [_columns(actor, event) for event in events])


def _filtered(
    org_id: str,
    *,
    actor: str | None,
    object_type: str | None,
    object_id: str | None,
    action: str | None,
    since: datetime | None,
    until: datetime | None,
):  # type: ignore[no-untyped-def]
    query = select(AuditEvent).where(AuditEvent.org_id == org_id)
    if actor:
        query = query.where((AuditEvent.actor_id == actor) | (AuditEvent.actor_name == actor))
    if object_type:
        query = query.where(AuditEvent.object_type == object_type)
    if object_id:
        query = query.where(AuditEvent.object_id == object_id)
    if action:
        query = query.where(AuditEvent.action == action)
    if since:
        query = query.where(AuditEvent.at >= since)
    if until:
        query = query.where(AuditEvent.at < until)
    return query


def list_events(
    session: Session,
    *,
    actor: Principal,
    org: Organization,
    actor_filter: str | None = None,
    object_type: str | None = None,
    object_id: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    after_seq: int | None = None,
    limit: int = 100,
) -> list[AuditEvent]:
    """Events of ``org`` in order; requires ``org:read_audit``."""
    authz.require(session, actor, Permission.ORG_READ_AUDIT, org)
    query = _filtered(
        org.id,
        actor=actor_filter,
        object_type=object_type,
        object_id=object_id,
        action=action,
        since=since,
        until=until,
    )
    if after_seq is not None:
        query = query.where(AuditEvent.seq > after_seq)
    return list(session.scalars(query.order_by(AuditEvent.seq).limit(limit)))


def iter_events(
    session: Session, *, actor: Principal, org: Organization, **filters: Any
) -> Iterator[AuditEvent]:
    """Every matching event, in order, fetched in pages (for JSON-lines export)."""
    after_seq: int | None = None
    while True:
        page = list_events(session, actor=actor, org=org, after_seq=after_seq, limit=500, **filters)
        yield from page
        if len(page) < 500:
            return
        after_seq = page[-1].seq


def event_dict(event: AuditEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "seq": event.seq,
        "at": event.at.isoformat(),
        "org_id": event.org_id,
        "actor": {
            "type": event.actor_type,
            "id": event.actor_id,
            "name": event.actor_name,
            "credential": event.credential,
        },
        "surface": event.surface,
        "action": event.action,
        "object": {"type": event.object_type, "id": event.object_id, "name": event.object_name},
        "before": event.before,
        "after": event.after,
        "detail": event.detail,
    }
