"""Helpers to reach per-session context (the settings the session was opened with)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from rolecall.settings import Settings, get_settings


def session_settings(session: Session) -> Settings:
    """The settings the session's creator attached, else the process settings."""
    settings = session.info.get("settings")
    return settings if isinstance(settings, Settings) else get_settings()
