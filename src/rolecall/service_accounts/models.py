"""Service accounts: org-scoped (with a default team) or team-scoped; built-in or external."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from rolecall.db.base import Base, CreatedMixin, IdMixin


class ServiceAccount(IdMixin, CreatedMixin, Base):
    __tablename__ = "service_accounts"
    __table_args__ = (UniqueConstraint("org_id", "name_key"),)

    org_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(128))
    name_key: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(String(1024), default="")
    #: ``org`` or ``team``.
    scope: Mapped[str] = mapped_column(String(8))
    #: Team-scoped: the parent team. Org-scoped: the default team.
    team_id: Mapped[str] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), index=True)
    #: ``builtin`` (API key) or ``external`` (federated JWT with ``subject``).
    kind: Mapped[str] = mapped_column(String(16), default="builtin")
    subject: Mapped[str | None] = mapped_column(String(512), nullable=True)
    created_by_user_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    #: A deleted service account keeps its row (runs stay attributed) but holds no permission.
    deleted_at: Mapped[datetime | None] = mapped_column(nullable=True)
