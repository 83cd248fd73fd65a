"""add billing: entitlements, payments, transfers

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04 16:51:42.210539
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "monitor_cursors",
        sa.Column("wallet", sa.String(length=64), nullable=False),
        sa.Column("last_timestamp_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("wallet", name=op.f("pk_monitor_cursors")),
    )
    op.create_table(
        "module_entitlements",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("module", sa.String(length=32), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("trial_ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("paid_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_module_entitlements_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_module_entitlements")),
        sa.UniqueConstraint(
            "tenant_id", "module", name=op.f("uq_module_entitlements_tenant_id_module")
        ),
    )
    with op.batch_alter_table("module_entitlements", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_module_entitlements_tenant_id"), ["tenant_id"], unique=False
        )

    op.create_table(
        "payments",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("module", sa.String(length=32), nullable=False),
        sa.Column("months", sa.Integer(), nullable=False),
        sa.Column("amount_units", sa.BigInteger(), nullable=False),
        sa.Column("wallet", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reserved", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reserved_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("txid", sa.String(length=64), nullable=True),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_payments_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments")),
    )
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_payments_reserved_until"), ["reserved_until"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_payments_tenant_id"), ["tenant_id"], unique=False
        )
        batch_op.create_index(
            "uq_payments_reserved_amount",
            ["wallet", "amount_units"],
            unique=True,
            sqlite_where=sa.text("reserved"),
            postgresql_where=sa.text("reserved"),
        )

    op.create_table(
        "tron_transfers",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("txid", sa.String(length=64), nullable=False),
        sa.Column("contract", sa.String(length=64), nullable=False),
        sa.Column("from_address", sa.String(length=64), nullable=False),
        sa.Column("to_address", sa.String(length=64), nullable=False),
        sa.Column("amount_units", sa.BigInteger(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("block_timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.String(length=200), nullable=True),
        sa.Column("payment_id", sa.Uuid(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["payment_id"],
            ["payments.id"],
            name=op.f("fk_tron_transfers_payment_id_payments"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tron_transfers")),
        sa.UniqueConstraint("txid", name=op.f("uq_tron_transfers_txid")),
    )
    with op.batch_alter_table("tron_transfers", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_tron_transfers_status"), ["status"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("tron_transfers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tron_transfers_status"))

    op.drop_table("tron_transfers")
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_payments_reserved_amount",
            sqlite_where=sa.text("reserved"),
            postgresql_where=sa.text("reserved"),
        )
        batch_op.drop_index(batch_op.f("ix_payments_tenant_id"))
        batch_op.drop_index(batch_op.f("ix_payments_reserved_until"))

    op.drop_table("payments")
    with op.batch_alter_table("module_entitlements", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_module_entitlements_tenant_id"))

    op.drop_table("module_entitlements")
    op.drop_table("monitor_cursors")
