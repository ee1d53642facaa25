"""Custom roles: an inherited predefined role plus extra permissions, per org."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from rolecall.db.base import Base, CreatedMixin, IdMixin, utcnow


class CustomRole(IdMixin, CreatedMixin, Base):
    __tablename__ = "custom_roles"
    #: Custom role names are case-sensitive, so uniqueness is on the name as written.
    __table_args__ = (UniqueConstraint("org_id", "name"),)

    org_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(String(1024), default="")
    inherited_from: Mapped[str] = mapped_column(String(16))
    #: The custom (non-inherited) permissions, sorted permission values.
    permissions: Mapped[list[str]] = mapped_column(JSON, default=list)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    #: An identity provider's id for the role (SCIM ``externalId``).
    external_id: Mapped[str | None] = mapped_column(String(256), nullable=True)
