"""Users: global identities; an org membership ties a user to an org."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, func
from sqlalchemy.orm import Mapped, mapped_column

from rolecall.db.base import Base, CreatedMixin, IdMixin


class User(IdMixin, CreatedMixin, Base):
    __tablename__ = "users"

    email: Mapped[str] = mapped_column(String(320))
    #: Lower-cased email: uniqueness and lookups are case-insensitive.
    email_key: Mapped[str] = mapped_column(String(320), unique=True)
    username: Mapped[str] = mapped_column(String(64))
    username_key: Mapped[str] = mapped_column(String(64), unique=True)
    full_name: Mapped[str | None] = mapped_column(String(256), nullable=True)
    password_hash: Mapped[str | None] = mapped_column(String(256), nullable=True)
    #: ``LOCAL_RESTORE``'s temporary password (argon2id), apart from the user's own: it signs
    #: in only while the server runs with ``LOCAL_RESTORE`` and for a bounded time after
    #: ``restore_password_set_at`` (``identity.passwords.RESTORE_PASSWORD_LIFETIME``).
    restore_password_hash: Mapped[str | None] = mapped_column(String(256), nullable=True)
    restore_password_set_at: Mapped[datetime | None] = mapped_column(nullable=True)
    #: SCIM ``userName`` when it differs from ``username`` (an IdP's login name such as an
    #: email, which is no valid entity name); ``None`` means "the username".
    user_name: Mapped[str | None] = mapped_column(String(320), nullable=True)
    user_name_key: Mapped[str | None] = mapped_column(String(320), nullable=True)
    given_name: Mapped[str | None] = mapped_column(String(128), nullable=True)
    family_name: Mapped[str | None] = mapped_column(String(128), nullable=True)
    #: The organization the user's SCIM requests go to in multi-org mode (its own choice).
    scim_org_id: Mapped[str | None] = mapped_column(
        ForeignKey("organizations.id", ondelete="SET NULL"), nullable=True
    )


#: SCIM ``userName`` lookups (``userName eq``) and its uniqueness: one expression, one index.
Index(
    "uq_users_scim_user_name",
    func.coalesce(User.user_name_key, User.username_key),
    unique=True,
)
