"""Projects and project memberships (restricted invitations and project-role overrides)."""

from __future__ import annotations

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from rolecall.db.base import Base, CreatedMixin, IdMixin


class Project(IdMixin, CreatedMixin, Base):
    __tablename__ = "projects"
    __table_args__ = (UniqueConstraint("team_id", "name_key"),)

    team_id: Mapped[str] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    name_key: Mapped[str] = mapped_column(String(128))
    visibility: Mapped[str] = mapped_column(String(16))
    owner_user_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    #: Set when a restricted project's owner left the team; a team admin must pick a new owner.
    owner_needed: Mapped[bool] = mapped_column(Boolean, default=False)
    description: Mapped[str | None] = mapped_column(String(1024), nullable=True)


class ProjectMembership(IdMixin, CreatedMixin, Base):
    """One row per principal with a project-level relationship.

    ``invited``: an explicit member (what a restricted project requires).
    ``role``/``custom_role_id``: a project-role override; ``None`` tracks the team role.
    """

    __tablename__ = "project_memberships"
    __table_args__ = (
        UniqueConstraint("project_id", "user_id"),
        UniqueConstraint("project_id", "service_account_id"),
        CheckConstraint("(user_id IS NULL) <> (service_account_id IS NULL)", name="one_principal"),
    )

    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=True, index=True
    )
    service_account_id: Mapped[str | None] = mapped_column(
        ForeignKey("service_accounts.id", ondelete="CASCADE"), nullable=True, index=True
    )
    invited: Mapped[bool] = mapped_column(Boolean, default=False)
    role: Mapped[str | None] = mapped_column(String(16), nullable=True)
    custom_role_id: Mapped[str | None] = mapped_column(
        ForeignKey("custom_roles.id", ondelete="RESTRICT"), nullable=True, index=True
    )
