"""SSO: pending OIDC sign-ins (one-time state) and the ID token kept on a browser session.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import rolecall.db.types

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sso_login_states",
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("nonce", sa.String(length=128), nullable=False),
        sa.Column("code_verifier", sa.String(length=128), nullable=True),
        sa.Column("return_to", sa.String(length=2048), nullable=True),
        sa.Column("expires_at", rolecall.db.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("used_at", rolecall.db.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("created_at", rolecall.db.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_sso_login_states_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sso_login_states")),
        sa.UniqueConstraint("digest", name=op.f("uq_sso_login_states_digest")),
    )
    with op.batch_alter_table("sso_login_states", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sso_login_states_org_id"), ["org_id"], unique=False)
    with op.batch_alter_table("browser_sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("id_token", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("browser_sessions", schema=None) as batch_op:
        batch_op.drop_column("id_token")
    with op.batch_alter_table("sso_login_states", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sso_login_states_org_id"))
    op.drop_table("sso_login_states")
