"""Pending OIDC sign-ins: the server side of ``state`` (one-time, short-lived)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from rolecall.db.base import Base, CreatedMixin, IdMixin


class SsoLoginState(IdMixin, CreatedMixin, Base):
    """One authorization request in flight. The browser holds ``state``; the row holds its
    digest and what the callback must check (nonce) or send (PKCE verifier). ``used_at`` makes
    a state good for one callback only (a replayed state is refused)."""

    __tablename__ = "sso_login_states"

    digest: Mapped[str] = mapped_column(String(64), unique=True)
    org_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    nonce: Mapped[str] = mapped_column(String(128))
    code_verifier: Mapped[str | None] = mapped_column(String(128), nullable=True)
    #: Where to go after signing in: a same-origin path, checked when stored.
    return_to: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None] = mapped_column(nullable=True)
