"""add telegram bots

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 17:51:53.241600
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "telegram_bots",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("telegram_id", sa.BigInteger(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("token_encrypted", sa.Text(), nullable=False),
        sa.Column("token_hint", sa.String(length=40), nullable=False),
        sa.Column("steps", sa.JSON(), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_telegram_bots_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_telegram_bots")),
        sa.UniqueConstraint("telegram_id", name=op.f("uq_telegram_bots_telegram_id")),
    )
    with op.batch_alter_table("telegram_bots", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_telegram_bots_tenant_id"), ["tenant_id"], unique=False
        )

    # As for partner_id: a plain ADD COLUMN with its reference on SQLite,
    # instead of a batch operation that would recreate the leads table.
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            "ALTER TABLE leads ADD COLUMN bot_id CHAR(32) "
            "REFERENCES telegram_bots (id) ON DELETE SET NULL"
        )
    else:
        op.add_column("leads", sa.Column("bot_id", sa.Uuid(), nullable=True))
        op.create_foreign_key(
            op.f("fk_leads_bot_id_telegram_bots"),
            "leads",
            "telegram_bots",
            ["bot_id"],
            ["id"],
            ondelete="SET NULL",
        )
    op.create_index(op.f("ix_leads_bot_id"), "leads", ["bot_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_leads_bot_id"), table_name="leads")
    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.drop_column("bot_id")

    with op.batch_alter_table("telegram_bots", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_telegram_bots_tenant_id"))

    op.drop_table("telegram_bots")
