"""``LOCAL_RESTORE``'s temporary password kept apart from the admin's own:
``users.restore_password_hash`` and ``users.restore_password_set_at``. Start-up with
``LOCAL_RESTORE`` wrote the temporary password over ``users.password_hash``, so the admin's own
password stopped working and the temporary one kept working after the variable was removed.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import rolecall.db.types

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("restore_password_hash", sa.String(length=256), nullable=True)
        )
        batch_op.add_column(
            sa.Column(
                "restore_password_set_at",
                rolecall.db.types.UtcDateTime(timezone=True),
                nullable=True,
            )
        )


def downgrade() -> None:
    # On SQLite dropping a column rebuilds the table with the indexes SQLAlchemy can reflect,
    # which leaves out the SCIM userName expression index (0003): dropped and made again here.
    op.drop_index("uq_users_scim_user_name", table_name="users")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("restore_password_set_at")
        batch_op.drop_column("restore_password_hash")
    op.create_index(
        "uq_users_scim_user_name",
        "users",
        [sa.text("coalesce(user_name_key, username_key)")],
        unique=True,
    )
