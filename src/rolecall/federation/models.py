"""The JWT issuer an organization trusts for identity federation."""

from __future__ import annotations

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from rolecall.db.base import Base, CreatedMixin, IdMixin


class JwtIssuer(IdMixin, CreatedMixin, Base):
    """One registered issuer per organization (the seeds: "set up JWT issuer")."""

    __tablename__ = "jwt_issuers"

    org_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), unique=True
    )
    #: Exactly as registered; a JWT's ``iss`` must equal it (RFC 7523 §3, item 1).
    issuer: Mapped[str] = mapped_column(String(2048), index=True)
    #: Where discovery found the keys when the issuer was registered (for display).
    jwks_uri: Mapped[str] = mapped_column(String(2048))
    created_by_user_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
