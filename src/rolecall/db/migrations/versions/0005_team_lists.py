"""Team lists: an index of an organization's entities by kind, then id, in place of the one by
organization alone (which it starts with); the index of external ids takes the kind too.

A list of an organization's teams (SCIM ``/Groups``, ``GET /api/v1/teams``) read every
personal entity of the organization, one per user, to count and sort its few teams. With the
kind in both, a Group's ``externalId eq`` still prefers its own index (three columns to two).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("teams", schema=None) as batch_op:
        batch_op.create_index("ix_teams_org_kind_id", ["org_id", "kind", "id"], unique=False)
        batch_op.drop_index(batch_op.f("ix_teams_org_id"))
        batch_op.drop_index("ix_teams_org_external_id")
        batch_op.create_index(
            "ix_teams_org_external_id", ["org_id", "kind", "external_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("teams", schema=None) as batch_op:
        batch_op.drop_index("ix_teams_org_external_id")
        batch_op.create_index("ix_teams_org_external_id", ["org_id", "external_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_teams_org_id"), ["org_id"], unique=False)
        batch_op.drop_index("ix_teams_org_kind_id")
