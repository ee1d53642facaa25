"""Browser sessions and federated access tokens: server-side, revocable, stored as digests."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String, Text
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
    #: OIDC sign-ins: the ID token, sent back as ``id_token_hint`` when signing out at the IdP.
    id_token: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: The one organization the session works in: the one whose single sign-on (OIDC or LDAP)
    #: opened it. ``None`` (a local password): every organization of the user.
    org_id: Mapped[str | None] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), nullable=True
    )


class AccessToken(IdMixin, CreatedMixin, Base):
    """An access token issued for a federated JWT (``POST /oidc/token``), stored as a digest.

    Persisted, so it survives a restart and works on every replica; it belongs to one
    organization and to a user or an external service account of it.
    """

    __tablename__ = "access_tokens"
    __table_args__ = (
        CheckConstraint("(user_id IS NULL) <> (service_account_id IS NULL)", name="one_owner"),
    )

    digest: Mapped[str] = mapped_column(String(64), unique=True)
    org_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=True, index=True
    )
    service_account_id: Mapped[str | None] = mapped_column(
        ForeignKey("service_accounts.id", ondelete="CASCADE"), nullable=True, index=True
    )
    #: The JWT's ``sub`` the token was issued for (an identifier, not a secret).
    subject: Mapped[str] = mapped_column(String(512))
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None] = mapped_column(nullable=True)
