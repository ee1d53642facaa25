"""Browser sessions: server-side, revocable, stored as digests of the cookie value."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from rolecall.db.base import Base, CreatedMixin, IdMixin


class BrowserSession(IdMixin, CreatedMixin, Base):
    __tablename__ = "browser_sessions"

    digest: Mapped[str] = mapped_column(String(64), unique=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None] = mapped_column(nullable=True)
    #: How the user signed in: password, ldap, oidc.
    method: Mapped[str] = mapped_column(String(16), default="password")
