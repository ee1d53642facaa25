"""Lists and lookups at a large company's scale: indexes that give a page its order.

- ``ix_teams_org_kind_id`` (organization, kind, id) in place of ``ix_teams_org_id``: a list
  of an organization's teams (SCIM ``/Groups``, ``GET /api/v1/teams``) and its count read
  every personal entity of the organization (one per user) to count and sort its few teams.
- The lookups identity providers make end with the page's order too, so that SQLite (which
  plans without statistics) never prefers walking a whole index in order to a lookup:
  ``ix_org_memberships_org_external_id`` (organization, external id, user) for a User's
  ``externalId eq``, which read every member of the organization; ``ix_teams_org_external_id``
  (organization, kind, external id, id) and ``ix_teams_org_scim_display_name`` (organization,
  kind, display name, id) for a Group's ``externalId eq`` and ``displayName eq``, which the
  teams' list index above would otherwise win against.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

DISPLAY_NAME = sa.text("coalesce(display_name_key, name_key)")


def upgrade() -> None:
    with op.batch_alter_table("org_memberships", schema=None) as batch_op:
        batch_op.drop_index("ix_org_memberships_org_external_id")
        batch_op.create_index(
            "ix_org_memberships_org_external_id", ["org_id", "external_id", "user_id"]
        )
    with op.batch_alter_table("teams", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_teams_org_id"))
        batch_op.create_index("ix_teams_org_kind_id", ["org_id", "kind", "id"])
        batch_op.drop_index("ix_teams_org_external_id")
        batch_op.create_index("ix_teams_org_external_id", ["org_id", "kind", "external_id", "id"])
    op.drop_index("ix_teams_org_scim_display_name", table_name="teams")
    op.create_index(
        "ix_teams_org_scim_display_name", "teams", ["org_id", "kind", DISPLAY_NAME, "id"]
    )


def downgrade() -> None:
    op.drop_index("ix_teams_org_scim_display_name", table_name="teams")
    op.create_index("ix_teams_org_scim_display_name", "teams", ["org_id", DISPLAY_NAME])
    with op.batch_alter_table("teams", schema=None) as batch_op:
        batch_op.drop_index("ix_teams_org_external_id")
        batch_op.create_index("ix_teams_org_external_id", ["org_id", "external_id"])
        batch_op.drop_index("ix_teams_org_kind_id")
        batch_op.create_index(batch_op.f("ix_teams_org_id"), ["org_id"])
    with op.batch_alter_table("org_memberships", schema=None) as batch_op:
        batch_op.drop_index("ix_org_memberships_org_external_id")
        batch_op.create_index("ix_org_memberships_org_external_id", ["org_id", "external_id"])
