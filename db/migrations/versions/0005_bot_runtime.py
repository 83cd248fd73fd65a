"""add the bot runtime and the jobs outbox

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 18:54:02.996288
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "bot_updates",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("bot_id", sa.Uuid(), nullable=False),
        sa.Column("update_id", sa.BigInteger(), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("handled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["bot_id"],
            ["telegram_bots.id"],
            name=op.f("fk_bot_updates_bot_id_telegram_bots"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_bot_updates_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bot_updates")),
        sa.UniqueConstraint(
            "bot_id", "update_id", name=op.f("uq_bot_updates_bot_id_update_id")
        ),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("bot_updates", schema=None) as batch_op:
        batch_op.create_index("ix_bot_updates_pending", ["status", "id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_bot_updates_tenant_id"), ["tenant_id"], unique=False
        )

    op.create_table(
        "jobs",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("bot_id", sa.Uuid(), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("run_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["bot_id"],
            ["telegram_bots.id"],
            name=op.f("fk_jobs_bot_id_telegram_bots"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_jobs_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
        sa.UniqueConstraint("key", name=op.f("uq_jobs_key")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index("ix_jobs_chat", ["bot_id", "chat_id", "id"], unique=False)
        batch_op.create_index("ix_jobs_due", ["status", "run_after"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_jobs_tenant_id"), ["tenant_id"], unique=False
        )

    op.create_table(
        "send_pacing",
        sa.Column("bot_id", sa.Uuid(), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("next_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["bot_id"],
            ["telegram_bots.id"],
            name=op.f("fk_send_pacing_bot_id_telegram_bots"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("bot_id", "chat_id", name=op.f("pk_send_pacing")),
    )
    op.create_table(
        "bot_conversations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("bot_id", sa.Uuid(), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("telegram_user_id", sa.BigInteger(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=True),
        sa.Column("first_name", sa.String(length=128), nullable=True),
        sa.Column("step_key", sa.String(length=40), nullable=True),
        sa.Column("answers", sa.JSON(), nullable=False),
        sa.Column("attribution", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("lead_id", sa.Uuid(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["bot_id"],
            ["telegram_bots.id"],
            name=op.f("fk_bot_conversations_bot_id_telegram_bots"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["lead_id"],
            ["leads.id"],
            name=op.f("fk_bot_conversations_lead_id_leads"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_bot_conversations_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bot_conversations")),
        sa.UniqueConstraint(
            "bot_id", "chat_id", name=op.f("uq_bot_conversations_bot_id_chat_id")
        ),
    )
    with op.batch_alter_table("bot_conversations", schema=None) as batch_op:
        batch_op.create_index(
            "ix_bot_conversations_bot_started", ["bot_id", "started_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_bot_conversations_tenant_id"), ["tenant_id"], unique=False
        )

    # Plain ADD COLUMN on SQLite, as in 0003 and 0004, so that the leads
    # table is not recreated.
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE leads ADD COLUMN telegram_user_id BIGINT")
        op.execute("ALTER TABLE leads ADD COLUMN attribution VARCHAR(64)")
    else:
        op.add_column("leads", sa.Column("telegram_user_id", sa.BigInteger()))
        op.add_column("leads", sa.Column("attribution", sa.String(length=64)))
    op.create_index(
        "uq_leads_tenant_telegram_user",
        "leads",
        ["tenant_id", "telegram_user_id"],
        unique=True,
        sqlite_where=sa.text("telegram_user_id IS NOT NULL"),
        postgresql_where=sa.text("telegram_user_id IS NOT NULL"),
    )

    with op.batch_alter_table("telegram_bots", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("webhook_path", sa.String(length=64), nullable=True)
        )
        batch_op.add_column(
            sa.Column("webhook_secret_hash", sa.String(length=64), nullable=True)
        )
        batch_op.add_column(sa.Column("polling_offset", sa.BigInteger(), nullable=True))
        batch_op.add_column(
            sa.Column("poller_lease_until", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("switching_until", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.create_unique_constraint(
            batch_op.f("uq_telegram_bots_webhook_path"), ["webhook_path"]
        )


def downgrade() -> None:
    with op.batch_alter_table("telegram_bots", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("uq_telegram_bots_webhook_path"), type_="unique"
        )
        batch_op.drop_column("switching_until")
        batch_op.drop_column("poller_lease_until")
        batch_op.drop_column("polling_offset")
        batch_op.drop_column("webhook_secret_hash")
        batch_op.drop_column("webhook_path")

    op.drop_index("uq_leads_tenant_telegram_user", table_name="leads")
    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.drop_column("attribution")
        batch_op.drop_column("telegram_user_id")

    with op.batch_alter_table("bot_conversations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_bot_conversations_tenant_id"))
        batch_op.drop_index("ix_bot_conversations_bot_started")

    op.drop_table("bot_conversations")
    op.drop_table("send_pacing")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_jobs_tenant_id"))
        batch_op.drop_index("ix_jobs_due")
        batch_op.drop_index("ix_jobs_chat")

    op.drop_table("jobs")
    with op.batch_alter_table("bot_updates", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_bot_updates_tenant_id"))
        batch_op.drop_index("ix_bot_updates_pending")

    op.drop_table("bot_updates")
