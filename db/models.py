"""SQLAlchemy models.

Every table a workspace owns inherits ``TenantScoped``: its ``tenant_id`` is
never null, and the scoped session in ``db.tenancy`` filters and stamps it.
"""

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from db.types import DecimalText, UTCDateTime

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: dict[Any, Any] = {datetime: UTCDateTime, uuid.UUID: Uuid}


class TenantScoped:
    """Mixin for rows that belong to one workspace."""

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), index=True
    )


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(100))
    slug: Mapped[str] = mapped_column(String(40), unique=True)
    created_at: Mapped[datetime]


class User(TenantScoped, Base):
    """A person who signs in; each user is a member of exactly one workspace."""

    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("tenant_id", "id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime]
    removed_at: Mapped[datetime | None]


class AuthSession(TenantScoped, Base):
    """A signed-in browser or script; only the SHA-256 of its token is stored."""

    __tablename__ = "auth_sessions"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)


class LoginThrottle(Base):
    """Failed sign-in counters per key (an email or a client address)."""

    __tablename__ = "login_throttle"

    key: Mapped[str] = mapped_column(String(400), primary_key=True)
    window_started_at: Mapped[datetime]
    failures: Mapped[int] = mapped_column(Integer)
    blocked_until: Mapped[datetime | None]


class PipelineStage(TenantScoped, Base):
    __tablename__ = "pipeline_stages"
    __table_args__ = (UniqueConstraint("tenant_id", "key"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    key: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(60))
    position: Mapped[int] = mapped_column(Integer)


class Lead(TenantScoped, Base):
    __tablename__ = "leads"
    __table_args__ = (
        Index(
            "uq_leads_tenant_telegram_user",
            "tenant_id",
            "telegram_user_id",
            unique=True,
            sqlite_where=text("telegram_user_id IS NOT NULL"),
            postgresql_where=text("telegram_user_id IS NOT NULL"),
        ),
        ForeignKeyConstraint(
            ["tenant_id", "pipeline_stage"],
            ["pipeline_stages.tenant_id", "pipeline_stages.key"],
            name="fk_leads_pipeline_stage",
        ),
        ForeignKeyConstraint(
            ["tenant_id", "owner_id"],
            ["users.tenant_id", "users.id"],
            name="fk_leads_owner",
        ),
        Index("ix_leads_tenant_created", "tenant_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    full_name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(40))
    telegram: Mapped[str | None] = mapped_column(String(40))
    pipeline_stage: Mapped[str] = mapped_column(String(40))
    source: Mapped[str] = mapped_column(String(32))
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    notes: Mapped[str | None] = mapped_column(Text)
    lost_reason: Mapped[str | None] = mapped_column(String(500))
    owner_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    # The referral partner the lead came through, if any.
    partner_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("partners.id", ondelete="SET NULL"), index=True
    )
    # The onboarding bot that captured the lead, if any.
    bot_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("telegram_bots.id", ondelete="SET NULL"), index=True
    )
    # The Telegram user behind the lead: one lead per user and workspace.
    telegram_user_id: Mapped[int | None] = mapped_column(BigInteger)
    # Where the lead came from: the /start payload of a deep link, for example.
    attribution: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Activity(TenantScoped, Base):
    """One entry of a lead's timeline."""

    __tablename__ = "activities"
    __table_args__ = (Index("ix_activities_lead_occurred", "lead_id", "occurred_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    lead_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("leads.id", ondelete="CASCADE")
    )
    type: Mapped[str] = mapped_column(String(16))
    body: Mapped[str] = mapped_column(Text)
    occurred_at: Mapped[datetime]
    author_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime]


class ModuleEntitlement(TenantScoped, Base):
    """Whether a workspace has an add-on module on, and what it has paid for."""

    __tablename__ = "module_entitlements"
    __table_args__ = (UniqueConstraint("tenant_id", "module"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    module: Mapped[str] = mapped_column(String(32))
    enabled: Mapped[bool]
    trial_ends_at: Mapped[datetime]
    paid_until: Mapped[datetime | None]
    updated_at: Mapped[datetime]


class Payment(TenantScoped, Base):
    """A quoted USDT payment for months of a module.

    While ``reserved`` is true no other payment to the same wallet may quote
    the same amount; a partial unique index enforces it.
    """

    __tablename__ = "payments"
    __table_args__ = (
        Index(
            "uq_payments_reserved_amount",
            "wallet",
            "amount_units",
            unique=True,
            sqlite_where=text("reserved"),
            postgresql_where=text("reserved"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    module: Mapped[str] = mapped_column(String(32))
    months: Mapped[int] = mapped_column(Integer)
    # USDT in base units: 1 USDT is 1,000,000 units.
    amount_units: Mapped[int] = mapped_column(BigInteger)
    wallet: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    reserved: Mapped[bool]
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    reserved_until: Mapped[datetime] = mapped_column(index=True)
    paid_at: Mapped[datetime | None]
    txid: Mapped[str | None] = mapped_column(String(64))


class TronTransfer(Base):
    """An incoming TRC-20 transfer reported by the payment monitor.

    Not tenant-scoped: an unmatched transfer belongs to no workspace until an
    operator resolves it. The transaction id is unique, so a transfer is
    recorded, and credited, once.
    """

    __tablename__ = "tron_transfers"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    txid: Mapped[str] = mapped_column(String(64), unique=True)
    contract: Mapped[str] = mapped_column(String(64))
    from_address: Mapped[str] = mapped_column(String(64))
    to_address: Mapped[str] = mapped_column(String(64))
    amount_units: Mapped[int] = mapped_column(BigInteger)
    block_number: Mapped[int] = mapped_column(BigInteger)
    block_timestamp: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16), index=True)
    detail: Mapped[str | None] = mapped_column(String(200))
    payment_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("payments.id", ondelete="SET NULL")
    )
    received_at: Mapped[datetime]


class MonitorCursor(Base):
    """How far the payment monitor has read the transfers of one wallet."""

    __tablename__ = "monitor_cursors"

    wallet: Mapped[str] = mapped_column(String(64), primary_key=True)
    # Block timestamp in milliseconds of the last transfer fully handled.
    last_timestamp_ms: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime]


class Partner(TenantScoped, Base):
    """A referral partner (sub-IB); ``parent_id`` is the partner above it."""

    __tablename__ = "partners"
    __table_args__ = (
        UniqueConstraint("tenant_id", "code"),
        UniqueConstraint("tenant_id", "id"),
        ForeignKeyConstraint(
            ["tenant_id", "parent_id"],
            ["partners.tenant_id", "partners.id"],
            name="fk_partners_parent",
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    code: Mapped[str] = mapped_column(String(32))
    parent_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    status: Mapped[str] = mapped_column(String(16))
    # A level-1 rate in percent that replaces the plan's for this partner.
    rate_override: Mapped[Decimal | None] = mapped_column(DecimalText)
    created_at: Mapped[datetime]


class ReferralSettings(TenantScoped, Base):
    """A workspace's commission plan and the origins its landing pages use."""

    __tablename__ = "referral_settings"
    __table_args__ = (UniqueConstraint("tenant_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    # Level rates in percent, as decimal strings; level 1 first.
    rates: Mapped[list[str]] = mapped_column(JSON)
    allowed_origins: Mapped[list[str]] = mapped_column(JSON)
    updated_at: Mapped[datetime]


class Conversion(TenantScoped, Base):
    """A client a partner brought; commissions are computed from its value."""

    __tablename__ = "conversions"
    __table_args__ = (UniqueConstraint("tenant_id", "external_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    partner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("partners.id"), index=True)
    converted_name: Mapped[str] = mapped_column(String(200))
    value: Mapped[Decimal | None] = mapped_column(DecimalText)
    currency: Mapped[str] = mapped_column(String(10))
    external_id: Mapped[str | None] = mapped_column(String(200))
    lead_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("leads.id", ondelete="SET NULL")
    )
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Commission(TenantScoped, Base):
    """One partner's share of a conversion at one level of the chain.

    A reversal is a negative entry written when a paid commission's conversion
    is voided; nothing is deleted.
    """

    __tablename__ = "commissions"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    conversion_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("conversions.id"), index=True
    )
    partner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("partners.id"), index=True)
    level: Mapped[int] = mapped_column(Integer)
    rate: Mapped[Decimal] = mapped_column(DecimalText)
    amount: Mapped[Decimal] = mapped_column(DecimalText)
    currency: Mapped[str] = mapped_column(String(10))
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    paid_at: Mapped[datetime | None]


class RateCounter(Base):
    """Requests counted per key (a client address, a workspace) in a fixed window."""

    __tablename__ = "rate_counters"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    window_started_at: Mapped[datetime]
    count: Mapped[int] = mapped_column(Integer)


class TelegramBot(TenantScoped, Base):
    """A workspace's Telegram bot; its token is stored encrypted, never in clear.

    A Telegram bot can be connected to one workspace only: ``telegram_id`` is
    unique across the product.
    """

    __tablename__ = "telegram_bots"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    telegram_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    username: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(128))
    token_encrypted: Mapped[str] = mapped_column(Text)
    # The bot id and the token's last characters, safe to show.
    token_hint: Mapped[str] = mapped_column(String(40))
    # The onboarding flow: a list of steps, replaced as a whole.
    steps: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    mode: Mapped[str | None] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    last_error: Mapped[str | None] = mapped_column(String(500))
    # The unguessable last part of the webhook's path, while in webhook mode.
    webhook_path: Mapped[str | None] = mapped_column(String(64), unique=True)
    # SHA-256 of the secret_token Telegram sends with each webhook call.
    webhook_secret_hash: Mapped[str | None] = mapped_column(String(64))
    # The next update id to ask getUpdates for, while polling.
    polling_offset: Mapped[int | None] = mapped_column(BigInteger)
    # While a worker long-polls for this bot: when its claim lapses.
    poller_lease_until: Mapped[datetime | None]
    # While a start or stop calls Telegram: when that claim lapses.
    switching_until: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


# An integer key that counts up on both databases; SQLite needs INTEGER for that.
SERIAL = BigInteger().with_variant(Integer, "sqlite")


class BotUpdate(TenantScoped, Base):
    """An update Telegram delivered to a bot, kept once by its update id.

    Updates are stored as they arrive and handled afterwards, in arrival
    order per chat; a repeat of the same update id is not stored again.
    """

    __tablename__ = "bot_updates"
    __table_args__ = (
        UniqueConstraint("bot_id", "update_id"),
        Index("ix_bot_updates_pending", "status", "id"),
        # Ids are never reused after a purge: job keys are made from them.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(SERIAL, primary_key=True, autoincrement=True)
    bot_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("telegram_bots.id", ondelete="CASCADE")
    )
    update_id: Mapped[int] = mapped_column(BigInteger)
    chat_id: Mapped[int | None] = mapped_column(BigInteger)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    # pending, done, failed, or skipped (the onboarding module was off).
    status: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(String(500))
    received_at: Mapped[datetime]
    handled_at: Mapped[datetime | None]


class BotConversation(TenantScoped, Base):
    """One person's progress through a bot's onboarding flow, with their answers."""

    __tablename__ = "bot_conversations"
    __table_args__ = (
        UniqueConstraint("bot_id", "chat_id"),
        Index("ix_bot_conversations_bot_started", "bot_id", "started_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    bot_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("telegram_bots.id", ondelete="CASCADE")
    )
    chat_id: Mapped[int] = mapped_column(BigInteger)
    telegram_user_id: Mapped[int] = mapped_column(BigInteger)
    username: Mapped[str | None] = mapped_column(String(64))
    first_name: Mapped[str | None] = mapped_column(String(128))
    # The step that waits for the person's reply. None once the flow is finished.
    step_key: Mapped[str | None] = mapped_column(String(40))
    answers: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    attribution: Mapped[str | None] = mapped_column(String(64))
    # active or completed.
    status: Mapped[str] = mapped_column(String(16))
    lead_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("leads.id", ondelete="SET NULL")
    )
    started_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    completed_at: Mapped[datetime | None]


class Job(TenantScoped, Base):
    """A side effect to carry out outside the request: the transactional outbox.

    A job is written in the same transaction as the change that causes it and
    carried out by the worker. ``key`` is unique, so the same effect is never
    queued twice. Jobs to the same chat run in the order they were queued.
    """

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_due", "status", "run_after"),
        Index("ix_jobs_chat", "bot_id", "chat_id", "id"),
        # Ids are never reused after a purge: replies and deliveries name them.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(SERIAL, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    # send_message or answer_callback.
    kind: Mapped[str] = mapped_column(String(32))
    bot_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("telegram_bots.id", ondelete="CASCADE")
    )
    chat_id: Mapped[int] = mapped_column(BigInteger)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    # pending, running, done or failed.
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    run_after: Mapped[datetime]
    # While running: when the claim lapses and another worker may take it.
    lease_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(500))
    # Telegram's result, such as the ids of the messages sent.
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]


class SendPacing(Base):
    """The earliest time the next message may go to a chat, or from a bot.

    The row with ``chat_id`` 0 is the bot's own pace across all its chats.
    """

    __tablename__ = "send_pacing"

    bot_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("telegram_bots.id", ondelete="CASCADE"), primary_key=True
    )
    chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    next_at: Mapped[datetime]


class SignalDestination(TenantScoped, Base):
    """A Telegram channel or group where one of the workspace's bots posts signals."""

    __tablename__ = "signal_destinations"
    __table_args__ = (UniqueConstraint("tenant_id", "chat_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    bot_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("telegram_bots.id", ondelete="CASCADE"), index=True
    )
    chat_id: Mapped[int] = mapped_column(BigInteger)
    # channel, group or supergroup, as getChat returned it.
    chat_type: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime]


class Signal(TenantScoped, Base):
    """A trade idea and where it is in its lifecycle.

    Prices are exact decimals. ``stop_loss`` is the current stop, which a
    breakeven event moves to the entry; ``initial_stop_loss`` keeps the first
    one, the risk that R multiples are measured against.
    """

    __tablename__ = "signals"
    __table_args__ = (
        Index("ix_signals_tenant_created", "tenant_id", "created_at"),
        Index("ix_signals_tenant_pair", "tenant_id", "pair"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    pair: Mapped[str] = mapped_column(String(20))
    # long or short.
    direction: Mapped[str] = mapped_column(String(8))
    entry: Mapped[Decimal] = mapped_column(DecimalText)
    # The upper bound of an entry zone that starts at ``entry``.
    entry_high: Mapped[Decimal | None] = mapped_column(DecimalText)
    stop_loss: Mapped[Decimal] = mapped_column(DecimalText)
    initial_stop_loss: Mapped[Decimal] = mapped_column(DecimalText)
    # Take profit prices as decimal strings, nearest first.
    take_profits: Mapped[list[str]] = mapped_column(JSON)
    note: Mapped[str | None] = mapped_column(Text)
    # pending, open, closed or cancelled.
    status: Mapped[str] = mapped_column(String(16))
    # win, loss or breakeven once closed; None otherwise.
    outcome: Mapped[str | None] = mapped_column(String(16))
    # The highest take profit level hit so far, 1 for the first.
    tp_hit_level: Mapped[int | None] = mapped_column(Integer)
    # The price the result is measured to, set when the signal closes.
    exit_price: Mapped[Decimal | None] = mapped_column(DecimalText)
    created_at: Mapped[datetime]
    opened_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]


class SignalEvent(TenantScoped, Base):
    """One step of a signal's lifecycle, in the order it was recorded."""

    __tablename__ = "signal_events"
    __table_args__ = (Index("ix_signal_events_signal", "signal_id", "occurred_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    signal_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("signals.id", ondelete="CASCADE")
    )
    # activate, tp_hit, sl_hit, breakeven, close or cancel.
    type: Mapped[str] = mapped_column(String(16))
    level: Mapped[int | None] = mapped_column(Integer)
    price: Mapped[Decimal | None] = mapped_column(DecimalText)
    occurred_at: Mapped[datetime]


class SignalDelivery(TenantScoped, Base):
    """A message about a signal queued for one destination: the post or a reply.

    The message's state is read from its outbox job. ``event_id`` is None for
    the post itself and names the lifecycle event for a reply.
    """

    __tablename__ = "signal_deliveries"
    __table_args__ = (Index("ix_signal_deliveries_signal", "signal_id", "event_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    signal_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("signals.id", ondelete="CASCADE")
    )
    event_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("signal_events.id", ondelete="CASCADE")
    )
    destination_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("signal_destinations.id", ondelete="SET NULL"), index=True
    )
    # Copied from the destination, so that the record outlives it.
    chat_id: Mapped[int] = mapped_column(BigInteger)
    title: Mapped[str] = mapped_column(String(255))
    job_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("jobs.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime]


class Subscriber(TenantScoped, Base):
    """A Telegram user who follows the workspace's signals: one row per user."""

    __tablename__ = "subscribers"
    __table_args__ = (
        UniqueConstraint("tenant_id", "telegram_user_id"),
        Index("ix_subscribers_tenant_since", "tenant_id", "since"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    telegram_user_id: Mapped[int] = mapped_column(BigInteger)
    username: Mapped[str | None] = mapped_column(String(64))
    plan: Mapped[str] = mapped_column(String(64))
    lead_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("leads.id", ondelete="SET NULL")
    )
    # When the user first subscribed; a renewal keeps it.
    since: Mapped[datetime]
    # None for a subscription without an end.
    expires_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]
