"""Runs, kept minimal: enough to make view, submit, stop, delete and move real."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from rolecall.db.base import Base, CreatedMixin, IdMixin


class Run(IdMixin, CreatedMixin, Base):
    __tablename__ = "runs"

    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(128))
    #: running, stopped, finished.
    state: Mapped[str] = mapped_column(String(16), default="running")
    #: Creators survive the creator's removal from a team or org (the runs stay).
    created_by_user_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    created_by_service_account_id: Mapped[str | None] = mapped_column(
        ForeignKey("service_accounts.id", ondelete="SET NULL"), nullable=True
    )
    attributed_to_user_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    #: Why attribution fell back to the service account, when it did.
    attribution_note: Mapped[str | None] = mapped_column(String(256), nullable=True)
    stopped_at: Mapped[datetime | None] = mapped_column(nullable=True)
