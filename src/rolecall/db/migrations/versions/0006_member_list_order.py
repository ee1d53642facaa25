"""The REST list of an organization's users, in the order they joined it: an index that
holds that order, ``ix_org_memberships_org_created`` (organization, created, user). The list
sorted every member across the users' table for each page (184 ms on SQLite with 100,000
users) and, at an offset of 50,000, joined the 50,000 rows it skipped (340 ms).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_org_memberships_org_created", "org_memberships", ["org_id", "created_at", "user_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_org_memberships_org_created", table_name="org_memberships")
