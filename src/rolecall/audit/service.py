"""Recording and reading the audit log."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

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


def _columns(
    actor: Principal,
    *,
    action: str,
    object_type: str,
    object_id: str | None,
    object_name: str | None = None,
    org_id: str | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    detail: str | None = None,
) -> dict[str, Any]:
    """An event's columns: the change as given (secrets scrubbed), by whom and through what."""
    return {
        "org_id": org_id or actor.org_id,
        "actor_type": actor.kind.value,
        "actor_id": actor.id,
        "actor_name": actor.name,
        "credential": actor.credential_label,
        "surface": actor.surface,
        "action": action,
        "object_type": object_type,
        "object_id": object_id,
        "object_name": object_name,
        "before": _scrub(before),
        "after": _scrub(after),
        "detail": detail,
    }


def record(
    session: Session,
    *,
    actor: Principal,
    action: str,
    object_type: str,
    object_id: str | None,
    object_name: str | None = None,
    org_id: str | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    detail: str | None = None,
) -> AuditEvent:
    """Append an event in the caller's transaction (it commits or rolls back with the change).

    The change made so far is flushed and the event inserted at once (one ``INSERT``: the log
    is append-only, nothing about an event changes later)."""
    event = AuditEvent(
        **_columns(
            actor,
            action=action,
            object_type=object_type,
            object_id=object_id,
            object_name=object_name,
            org_id=org_id,
            before=before,
            after=after,
            detail=detail,
        )
    )
    insert_now(session, event)
    return event


def record_many(session: Session, *, actor: Principal, events: Sequence[dict[str, Any]]) -> None:
    """Append several events, in this order, in one statement (``db.rows.insert_rows``); each
    is what ``record`` takes besides the session and actor (``action``, ``object_type``,
    ``object_id``, ...). For a change made to many rows at once, which the log still records
    one event per row."""
    insert_rows(session, AuditEvent, [_columns(actor, **event) for event in events])


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
