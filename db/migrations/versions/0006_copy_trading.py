"""add copy trading: signal destinations, signals, events, deliveries, subscribers

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 18:59:40.142474
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "signals",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("pair", sa.String(length=20), nullable=False),
        sa.Column("direction", sa.String(length=8), nullable=False),
        sa.Column("entry", sa.String(length=60), nullable=False),
        sa.Column("entry_high", sa.String(length=60), nullable=True),
        sa.Column("stop_loss", sa.String(length=60), nullable=False),
        sa.Column("initial_stop_loss", sa.String(length=60), nullable=False),
        sa.Column("take_profits", sa.JSON(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("tp_hit_level", sa.Integer(), nullable=True),
        sa.Column("exit_price", sa.String(length=60), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_signals_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signals")),
    )
    with op.batch_alter_table("signals", schema=None) as batch_op:
        batch_op.create_index(
            "ix_signals_tenant_created", ["tenant_id", "created_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_signals_tenant_id"), ["tenant_id"], unique=False
        )
        batch_op.create_index(
            "ix_signals_tenant_pair", ["tenant_id", "pair"], unique=False
        )

    op.create_table(
        "signal_destinations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("bot_id", sa.Uuid(), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("chat_type", sa.String(length=16), nullable=False),
        sa.Column("title", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["bot_id"],
            ["telegram_bots.id"],
            name=op.f("fk_signal_destinations_bot_id_telegram_bots"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_signal_destinations_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signal_destinations")),
        sa.UniqueConstraint(
            "tenant_id",
            "chat_id",
            name=op.f("uq_signal_destinations_tenant_id_chat_id"),
        ),
    )
    with op.batch_alter_table("signal_destinations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_signal_destinations_bot_id"), ["bot_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_signal_destinations_tenant_id"), ["tenant_id"], unique=False
        )

    op.create_table(
        "signal_events",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("signal_id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("level", sa.Integer(), nullable=True),
        sa.Column("price", sa.String(length=60), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["signal_id"],
            ["signals.id"],
            name=op.f("fk_signal_events_signal_id_signals"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_signal_events_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signal_events")),
    )
    with op.batch_alter_table("signal_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_signal_events_signal", ["signal_id", "occurred_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_signal_events_tenant_id"), ["tenant_id"], unique=False
        )

    op.create_table(
        "signal_deliveries",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("signal_id", sa.Uuid(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=True),
        sa.Column("destination_id", sa.Uuid(), nullable=True),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("title", sa.String(length=255), nullable=False),
        sa.Column("job_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["destination_id"],
            ["signal_destinations.id"],
            name=op.f("fk_signal_deliveries_destination_id_signal_destinations"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["signal_events.id"],
            name=op.f("fk_signal_deliveries_event_id_signal_events"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["jobs.id"],
            name=op.f("fk_signal_deliveries_job_id_jobs"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["signal_id"],
            ["signals.id"],
            name=op.f("fk_signal_deliveries_signal_id_signals"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_signal_deliveries_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signal_deliveries")),
    )
    with op.batch_alter_table("signal_deliveries", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_signal_deliveries_destination_id"),
            ["destination_id"],
            unique=False,
        )
        batch_op.create_index(
            "ix_signal_deliveries_signal", ["signal_id", "event_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_signal_deliveries_tenant_id"), ["tenant_id"], unique=False
        )

    op.create_table(
        "subscribers",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("telegram_user_id", sa.BigInteger(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=True),
        sa.Column("plan", sa.String(length=64), nullable=False),
        sa.Column("lead_id", sa.Uuid(), nullable=True),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["lead_id"],
            ["leads.id"],
            name=op.f("fk_subscribers_lead_id_leads"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_subscribers_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscribers")),
        sa.UniqueConstraint(
            "tenant_id",
            "telegram_user_id",
            name=op.f("uq_subscribers_tenant_id_telegram_user_id"),
        ),
    )
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_subscribers_tenant_id"), ["tenant_id"], unique=False
        )
        batch_op.create_index(
            "ix_subscribers_tenant_since", ["tenant_id", "since"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.drop_index("ix_subscribers_tenant_since")
        batch_op.drop_index(batch_op.f("ix_subscribers_tenant_id"))

    op.drop_table("subscribers")
    with op.batch_alter_table("signal_deliveries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_signal_deliveries_tenant_id"))
        batch_op.drop_index("ix_signal_deliveries_signal")
        batch_op.drop_index(batch_op.f("ix_signal_deliveries_destination_id"))

    op.drop_table("signal_deliveries")
    with op.batch_alter_table("signal_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_signal_events_tenant_id"))
        batch_op.drop_index("ix_signal_events_signal")

    op.drop_table("signal_events")
    with op.batch_alter_table("signal_destinations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_signal_destinations_tenant_id"))
        batch_op.drop_index(batch_op.f("ix_signal_destinations_bot_id"))

    op.drop_table("signal_destinations")
    with op.batch_alter_table("signals", schema=None) as batch_op:
        batch_op.drop_index("ix_signals_tenant_pair")
        batch_op.drop_index(batch_op.f("ix_signals_tenant_id"))
        batch_op.drop_index("ix_signals_tenant_created")

    op.drop_table("signals")
