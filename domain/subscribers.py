"""Subscribers: Telegram users who follow the workspace's signals.

Invariants:
- One subscriber per Telegram user and workspace (a unique index). Adding a
  user who is already a subscriber renews that row: the plan, the expiry and
  the username change, and ``since`` keeps the first subscription's time.
- A subscriber is active while it has no expiry or its expiry is later than
  now, and expired afterwards.
"""

import re
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Lead, Subscriber
from domain.errors import InvalidInput
from domain.leads import lead_of_telegram_user
from domain.paging import check_paging, count_rows, one_page
from domain.validation import clean_text

USERNAME_PATTERN = re.compile(r"@?([A-Za-z0-9_]{1,32})")
MAX_TELEGRAM_USER_ID = 2**63 - 1
MAX_PLAN_LENGTH = 64
STATUSES = ("active", "expired")


@dataclass(frozen=True, slots=True)
class SubscriberView:
    row: Subscriber
    lead: Lead | None


@dataclass(frozen=True, slots=True)
class SubscriberPage:
    items: list[SubscriberView]
    page: int
    page_size: int
    total: int


def status_of(subscriber: Subscriber, now: datetime) -> str:
    if subscriber.expires_at is None or subscriber.expires_at > now:
        return "active"
    return "expired"


async def subscribe_from_bot(
    session: AsyncSession,
    *,
    telegram_user_id: int,
    username: str | None,
    lead_id: uuid.UUID | None,
    plan: str,
    now: datetime,
) -> Subscriber:
    """Create or renew the subscriber of an onboarding flow's subscribe step.

    The subscription has no expiry; calling this again for the same user
    renews the same row.
    """
    return await _upsert(
        session,
        telegram_user_id=telegram_user_id,
        username=username,
        lead_id=lead_id,
        plan=plan,
        expires_at=None,
        now=now,
    )


async def add_subscriber(
    session: AsyncSession,
    *,
    telegram_user_id: int,
    username: str | None,
    plan: str,
    expires_at: datetime | None,
    now: datetime,
) -> Subscriber:
    """Add a subscriber by hand, or renew the user's existing subscription."""
    if expires_at is not None and expires_at <= now:
        raise InvalidInput("expiresAt must be in the future", field="expiresAt")
    return await _upsert(
        session,
        telegram_user_id=telegram_user_id,
        username=username,
        lead_id=None,
        plan=plan,
        expires_at=expires_at,
        now=now,
    )


async def _upsert(
    session: AsyncSession,
    *,
    telegram_user_id: int,
    username: str | None,
    lead_id: uuid.UUID | None,
    plan: str,
    expires_at: datetime | None,
    now: datetime,
) -> Subscriber:
    if not 0 < telegram_user_id <= MAX_TELEGRAM_USER_ID:
        raise InvalidInput(
            "telegramUserId must be a positive Telegram user id",
            field="telegramUserId",
        )
    plan = clean_text(plan, field="plan", max_length=MAX_PLAN_LENGTH)
    handle = _check_username(username)
    if lead_id is None:
        lead = await lead_of_telegram_user(session, telegram_user_id)
        lead_id = lead.id if lead is not None else None

    subscriber = await _find(session, telegram_user_id)
    if subscriber is None:
        subscriber = Subscriber(telegram_user_id=telegram_user_id, since=now)
        try:
            async with session.begin_nested():
                _renew(subscriber, handle, lead_id, plan, expires_at, now)
                session.add(subscriber)
                await session.flush()
            return subscriber
        except IntegrityError:
            # Another request added the same user first; renew its row.
            found = await _find(session, telegram_user_id)
            assert found is not None
            subscriber = found
    _renew(subscriber, handle, lead_id, plan, expires_at, now)
    await session.flush()
    return subscriber


def _renew(
    subscriber: Subscriber,
    username: str | None,
    lead_id: uuid.UUID | None,
    plan: str,
    expires_at: datetime | None,
    now: datetime,
) -> None:
    if username is not None:
        subscriber.username = username
    if lead_id is not None:
        subscriber.lead_id = lead_id
    subscriber.plan = plan
    subscriber.expires_at = expires_at
    subscriber.updated_at = now


def _check_username(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    match = USERNAME_PATTERN.fullmatch(value.strip())
    if match is None:
        raise InvalidInput(
            "username must be a Telegram username: letters, digits and _, at most 32",
            field="username",
        )
    return match.group(1)


async def _find(session: AsyncSession, telegram_user_id: int) -> Subscriber | None:
    result = await session.execute(
        select(Subscriber).where(Subscriber.telegram_user_id == telegram_user_id)
    )
    return result.scalar_one_or_none()


async def list_subscribers(
    session: AsyncSession,
    *,
    status: str | None,
    page: int,
    page_size: int,
    now: datetime,
) -> SubscriberPage:
    """List subscribers, newest first, with their linked leads."""
    check_paging(page, page_size)
    conditions = []
    if status == "active":
        conditions.append(
            or_(Subscriber.expires_at.is_(None), Subscriber.expires_at > now)
        )
    elif status == "expired":
        conditions.append(Subscriber.expires_at <= now)
    elif status is not None:
        raise InvalidInput("status must be active or expired", field="status")
    total = await count_rows(session, Subscriber, conditions)
    rows = await session.execute(
        one_page(
            select(Subscriber, Lead)
            .outerjoin(Lead, Lead.id == Subscriber.lead_id)
            .where(*conditions)
            .order_by(Subscriber.since.desc(), Subscriber.id.desc()),
            page,
            page_size,
        )
    )
    items = [SubscriberView(row, lead) for row, lead in rows.all()]
    return SubscriberPage(items, page=page, page_size=page_size, total=total)


async def view_of(session: AsyncSession, subscriber: Subscriber) -> SubscriberView:
    lead = None
    if subscriber.lead_id is not None:
        lead = await session.get(Lead, subscriber.lead_id)
    return SubscriberView(subscriber, lead)
