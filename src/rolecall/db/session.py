"""Helpers to reach per-session context (the settings the session was opened with)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from rolecall.settings import Settings, get_settings


def session_settings(session: Session) -> Settings:
    """The settings the session's creator attached, else the process settings."""
    settings = session.info.get("settings")
    return settings if isinstance(settings, Settings) else get_settings()


def commit_before_calling_out(session: Session) -> None:
    """Commit what the request did so far, before a call to another server (an identity
    provider's endpoints, a directory): the one place a service ends a transaction.

    A writer's transaction holds SQLite's single write lock (on PostgreSQL, a connection and
    any row locks) from its first query. A call out may take its whole timeout, and no other
    request should wait for it. The work before the call must therefore stand on its own
    (a claimed sign-in state, an audited failure) or be reads only; the next query begins a
    new transaction, which the request's end commits or rolls back as usual.
    """
    if session.in_transaction():
        session.commit()
