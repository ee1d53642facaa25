"""Credentials that work in one organization only: ``browser_sessions.org_id`` (a session a
single sign-on of that organization opened: its OIDC provider or LDAP directory vouched for the
user there, and nowhere else) and ``api_keys.org_id`` (a key such a session made). ``NULL``:
the credential works in every organization of its user, as before.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TABLES = ("browser_sessions", "api_keys")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("org_id", sa.String(length=36), nullable=True))
            batch_op.create_foreign_key(
                op.f(f"fk_{table}_org_id_organizations"),
                "organizations",
                ["org_id"],
                ["id"],
                ondelete="CASCADE",
            )


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(op.f(f"fk_{table}_org_id_organizations"), type_="foreignkey")
            batch_op.drop_column("org_id")
