"""Organizations and org memberships."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from rolecall.db.base import Base, CreatedMixin, IdMixin, utcnow


class Organization(IdMixin, CreatedMixin, Base):
    __tablename__ = "organizations"

    name: Mapped[str] = mapped_column(String(128))
    name_key: Mapped[str] = mapped_column(String(128), unique=True)
    #: Settings stored through the API; environment variables win over them (settings resolution).
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    default_team_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("teams.id", use_alter=True, ondelete="SET NULL"), nullable=True
    )


class OrgMembership(IdMixin, CreatedMixin, Base):
    __tablename__ = "org_memberships"
    __table_args__ = (
        UniqueConstraint("org_id", "user_id"),
        # SCIM's ``externalId eq``, ending with the page's order (by user): SQLite, planning
        # without statistics, would rather walk the (org, user) index than sort one match.
        Index("ix_org_memberships_org_external_id", "org_id", "external_id", "user_id"),
        # The REST list of an organization's users, in the order they joined it.
        Index("ix_org_memberships_org_created", "org_id", "created_at", "user_id"),
    )

    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    models_seat: Mapped[str] = mapped_column(String(16), default="full")
    weave_seat: Mapped[str] = mapped_column(String(16), default="full")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    deactivated_at: Mapped[datetime | None] = mapped_column(nullable=True)
    #: The identity provider's id for this user (SCIM ``externalId``), per organization.
    external_id: Mapped[str | None] = mapped_column(String(256), nullable=True)
    updated_at: Mapped[datetime | None] = mapped_column(
        nullable=True, default=utcnow, onupdate=utcnow
    )
