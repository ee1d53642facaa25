"""SCIM: userName, name parts and the chosen SCIM organization on users; externalId and
lastModified on org memberships and teams; group display names; externalId on custom roles.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import rolecall.db.types

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("user_name", sa.String(length=320), nullable=True))
        batch_op.add_column(sa.Column("user_name_key", sa.String(length=320), nullable=True))
        batch_op.add_column(sa.Column("given_name", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("family_name", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("scim_org_id", sa.String(length=36), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_users_scim_org_id_organizations"),
            "organizations",
            ["scim_org_id"],
            ["id"],
            ondelete="SET NULL",
        )
    with op.batch_alter_table("org_memberships", schema=None) as batch_op:
        batch_op.add_column(sa.Column("external_id", sa.String(length=256), nullable=True))
        batch_op.add_column(
            sa.Column("updated_at", rolecall.db.types.UtcDateTime(timezone=True), nullable=True)
        )
        batch_op.create_index(
            "ix_org_memberships_org_external_id", ["org_id", "external_id"], unique=False
        )
    with op.batch_alter_table("teams", schema=None) as batch_op:
        batch_op.add_column(sa.Column("display_name", sa.String(length=256), nullable=True))
        batch_op.add_column(sa.Column("display_name_key", sa.String(length=256), nullable=True))
        batch_op.add_column(sa.Column("external_id", sa.String(length=256), nullable=True))
        batch_op.add_column(
            sa.Column("updated_at", rolecall.db.types.UtcDateTime(timezone=True), nullable=True)
        )
        batch_op.create_index("ix_teams_org_external_id", ["org_id", "external_id"], unique=False)

    with op.batch_alter_table("custom_roles", schema=None) as batch_op:
        batch_op.add_column(sa.Column("external_id", sa.String(length=256), nullable=True))
    # SCIM userName / displayName: one indexed expression each (``userName eq`` is an index
    # lookup on every backend, statistics or not); the first also makes userName unique.
    op.create_index(
        "uq_users_scim_user_name",
        "users",
        [sa.text("coalesce(user_name_key, username_key)")],
        unique=True,
    )
    op.create_index(
        "ix_teams_org_scim_display_name",
        "teams",
        ["org_id", sa.text("coalesce(display_name_key, name_key)")],
    )


def downgrade() -> None:
    op.drop_index("ix_teams_org_scim_display_name", table_name="teams")
    op.drop_index("uq_users_scim_user_name", table_name="users")
    with op.batch_alter_table("custom_roles", schema=None) as batch_op:
        batch_op.drop_column("external_id")
    with op.batch_alter_table("teams", schema=None) as batch_op:
        batch_op.drop_index("ix_teams_org_external_id")
        batch_op.drop_column("updated_at")
        batch_op.drop_column("external_id")
        batch_op.drop_column("display_name_key")
        batch_op.drop_column("display_name")
    with op.batch_alter_table("org_memberships", schema=None) as batch_op:
        batch_op.drop_index("ix_org_memberships_org_external_id")
        batch_op.drop_column("updated_at")
        batch_op.drop_column("external_id")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_users_scim_org_id_organizations"), type_="foreignkey"
        )
        batch_op.drop_column("scim_org_id")
        batch_op.drop_column("family_name")
        batch_op.drop_column("given_name")
        batch_op.drop_column("user_name_key")
        batch_op.drop_column("user_name")
