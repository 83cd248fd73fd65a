"""add referrals: partners, conversions, commissions

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04 17:16:23.549090
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rate_counters",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("window_started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_rate_counters")),
    )
    op.create_table(
        "partners",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("parent_id", sa.Uuid(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("rate_override", sa.String(length=60), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "parent_id"],
            ["partners.tenant_id", "partners.id"],
            name="fk_partners_parent",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_partners_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_partners")),
        sa.UniqueConstraint(
            "tenant_id", "code", name=op.f("uq_partners_tenant_id_code")
        ),
        sa.UniqueConstraint("tenant_id", "id", name=op.f("uq_partners_tenant_id_id")),
    )
    with op.batch_alter_table("partners", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_partners_parent_id"), ["parent_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_partners_tenant_id"), ["tenant_id"], unique=False
        )

    op.create_table(
        "referral_settings",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("rates", sa.JSON(), nullable=False),
        sa.Column("allowed_origins", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_referral_settings_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_referral_settings")),
        sa.UniqueConstraint("tenant_id", name=op.f("uq_referral_settings_tenant_id")),
    )
    with op.batch_alter_table("referral_settings", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_referral_settings_tenant_id"), ["tenant_id"], unique=False
        )

    op.create_table(
        "conversions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("partner_id", sa.Uuid(), nullable=False),
        sa.Column("converted_name", sa.String(length=200), nullable=False),
        sa.Column("value", sa.String(length=60), nullable=True),
        sa.Column("currency", sa.String(length=10), nullable=False),
        sa.Column("external_id", sa.String(length=200), nullable=True),
        sa.Column("lead_id", sa.Uuid(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["lead_id"],
            ["leads.id"],
            name=op.f("fk_conversions_lead_id_leads"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["partner_id"],
            ["partners.id"],
            name=op.f("fk_conversions_partner_id_partners"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_conversions_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversions")),
        sa.UniqueConstraint(
            "tenant_id",
            "external_id",
            name=op.f("uq_conversions_tenant_id_external_id"),
        ),
    )
    with op.batch_alter_table("conversions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_conversions_partner_id"), ["partner_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_conversions_tenant_id"), ["tenant_id"], unique=False
        )

    op.create_table(
        "commissions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("conversion_id", sa.Uuid(), nullable=False),
        sa.Column("partner_id", sa.Uuid(), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("rate", sa.String(length=60), nullable=False),
        sa.Column("amount", sa.String(length=60), nullable=False),
        sa.Column("currency", sa.String(length=10), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversion_id"],
            ["conversions.id"],
            name=op.f("fk_commissions_conversion_id_conversions"),
        ),
        sa.ForeignKeyConstraint(
            ["partner_id"],
            ["partners.id"],
            name=op.f("fk_commissions_partner_id_partners"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_commissions_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_commissions")),
    )
    with op.batch_alter_table("commissions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_commissions_conversion_id"), ["conversion_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_commissions_partner_id"), ["partner_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_commissions_tenant_id"), ["tenant_id"], unique=False
        )

    # A plain ADD COLUMN with its reference, which SQLite supports, instead of
    # a batch operation that would copy and recreate the leads table.
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            "ALTER TABLE leads ADD COLUMN partner_id CHAR(32) "
            "REFERENCES partners (id) ON DELETE SET NULL"
        )
    else:
        op.add_column("leads", sa.Column("partner_id", sa.Uuid(), nullable=True))
        op.create_foreign_key(
            op.f("fk_leads_partner_id_partners"),
            "leads",
            "partners",
            ["partner_id"],
            ["id"],
            ondelete="SET NULL",
        )
    op.create_index(op.f("ix_leads_partner_id"), "leads", ["partner_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_leads_partner_id"), table_name="leads")
    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.drop_column("partner_id")

    with op.batch_alter_table("commissions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_commissions_tenant_id"))
        batch_op.drop_index(batch_op.f("ix_commissions_partner_id"))
        batch_op.drop_index(batch_op.f("ix_commissions_conversion_id"))

    op.drop_table("commissions")
    with op.batch_alter_table("conversions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_conversions_tenant_id"))
        batch_op.drop_index(batch_op.f("ix_conversions_partner_id"))

    op.drop_table("conversions")
    with op.batch_alter_table("referral_settings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_referral_settings_tenant_id"))

    op.drop_table("referral_settings")
    with op.batch_alter_table("partners", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_partners_tenant_id"))
        batch_op.drop_index(batch_op.f("ix_partners_parent_id"))

    op.drop_table("partners")
    op.drop_table("rate_counters")
