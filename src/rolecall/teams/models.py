"""Teams (and personal entities, which behave like a team of one) and their memberships."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, String, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column

from rolecall.db.base import Base, CreatedMixin, IdMixin, utcnow


class Team(IdMixin, CreatedMixin, Base):
    """An entity that owns projects: ``kind`` is ``team`` or ``personal``."""

    __tablename__ = "teams"
    __table_args__ = (
        # An org's teams, apart from its users' personal entities (one per user, so a large
        # company's org holds a hundred thousand of them beside its few hundred teams), in id
        # order: a list and its count read the teams alone, a page comes in order unsorted.
        Index("ix_teams_org_kind_id", "org_id", "kind", "id"),
        # SCIM's ``externalId eq`` on Groups, ending with the page's order (by id) like the
        # index above, which SQLite (planning without statistics) would otherwise prefer.
        Index("ix_teams_org_external_id", "org_id", "kind", "external_id", "id"),
    )

    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(128))
    #: Entity names share one namespace (team names and usernames), case-insensitively.
    name_key: Mapped[str] = mapped_column(String(128), unique=True)
    kind: Mapped[str] = mapped_column(String(16), default="team")
    personal_owner_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=True, unique=True
    )
    private_only: Mapped[bool] = mapped_column(Boolean, default=False)
    domain_matching: Mapped[bool] = mapped_column(Boolean, default=False)
    storage_type: Mapped[str] = mapped_column(String(32), default="default")
    #: SCIM ``displayName`` when it differs from ``name`` (a group name that is no valid entity
    #: name, such as one with spaces); ``None`` means "the name".
    display_name: Mapped[str | None] = mapped_column(String(256), nullable=True)
    display_name_key: Mapped[str | None] = mapped_column(String(256), nullable=True)
    #: The identity provider's id for this group (SCIM ``externalId``).
    external_id: Mapped[str | None] = mapped_column(String(256), nullable=True)
    updated_at: Mapped[datetime | None] = mapped_column(
        nullable=True, default=utcnow, onupdate=utcnow
    )


#: SCIM ``displayName`` lookups (``displayName eq``): one expression, one index, which ends
#: with the page's order (by id) for the reason given for the external ids'.
Index(
    "ix_teams_org_scim_display_name",
    Team.org_id,
    Team.kind,
    func.coalesce(Team.display_name_key, Team.name_key),
    Team.id,
)


class TeamMembership(IdMixin, CreatedMixin, Base):
    """A user's or team-scoped service account's place in a team.

    ``role`` is a predefined role (admin, member, viewer, service) or ``custom`` with
    ``custom_role_id`` set.
    """

    __tablename__ = "team_memberships"
    __table_args__ = (
        UniqueConstraint("team_id", "user_id"),
        UniqueConstraint("team_id", "service_account_id"),
        CheckConstraint("(user_id IS NULL) <> (service_account_id IS NULL)", name="one_principal"),
    )

    team_id: Mapped[str] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=True, index=True
    )
    service_account_id: Mapped[str | None] = mapped_column(
        ForeignKey("service_accounts.id", ondelete="CASCADE"), nullable=True, index=True
    )
    role: Mapped[str] = mapped_column(String(16))
    custom_role_id: Mapped[str | None] = mapped_column(
        ForeignKey("custom_roles.id", ondelete="RESTRICT"), nullable=True, index=True
    )
