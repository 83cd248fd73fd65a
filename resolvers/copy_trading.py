"""Resolvers of copy trading: destinations, signals, statistics and subscribers."""

import uuid
from dataclasses import replace
from datetime import datetime
from decimal import Decimal

from db.models import SignalDestination
from domain import destinations, signal_lifecycle, signals, subscribers
from domain.errors import NotFound
from domain.signal_results import SignalStats
from domain.signals import SignalDraft, SignalPage, SignalView
from domain.subscribers import SubscriberPage, SubscriberView
from resolvers.bots import read_bot
from resolvers.context import Context
from resolvers.ids import parse_id


async def list_destinations(ctx: Context) -> list[SignalDestination]:
    return await destinations.list_destinations(ctx.db)


async def create_destination(
    ctx: Context, *, bot_id: str, chat_id: int, title: str | None
) -> SignalDestination:
    await ctx.before_slow_call()
    bot = await read_bot(ctx, bot_id)
    return await destinations.create_destination(
        ctx.db,
        ctx.bot_api,
        bot=bot,
        chat_id=chat_id,
        title=title,
        secret_key=ctx.settings.signing_key,
        now=ctx.now(),
    )


async def delete_destination(ctx: Context, destination_id: str) -> str:
    parsed = parse_id(destination_id, "Signal destination")
    await destinations.delete_destination(ctx.db, parsed)
    return str(parsed)


async def create_signal(
    ctx: Context, draft: SignalDraft, destination_ids: list[str]
) -> SignalView:
    ids = tuple(_destination_id(value) for value in destination_ids)
    draft = replace(draft, destination_ids=ids)
    row = await signals.create_signal(ctx.db, draft, now=ctx.now())
    return (await signals.signal_views(ctx.db, [row]))[0]


async def record_event(
    ctx: Context,
    signal_id: str,
    *,
    event: str,
    level: int | None,
    price: Decimal | None,
) -> SignalView:
    row = await signal_lifecycle.record_event(
        ctx.db,
        parse_id(signal_id, "Signal"),
        event=event,
        level=level,
        price=price,
        now=ctx.now(),
    )
    return (await signals.signal_views(ctx.db, [row]))[0]


async def signal(ctx: Context, signal_id: str) -> SignalView:
    row = await signals.get_signal(ctx.db, parse_id(signal_id, "Signal"))
    return (await signals.signal_views(ctx.db, [row]))[0]


async def signal_page(
    ctx: Context,
    *,
    status: str | None,
    pair: str | None,
    period_start: datetime | None,
    period_end: datetime | None,
    page: int,
    page_size: int,
) -> SignalPage:
    return await signals.list_signals(
        ctx.db,
        status=status,
        pair=pair,
        period_start=period_start,
        period_end=period_end,
        page=page,
        page_size=page_size,
    )


async def stats(
    ctx: Context,
    *,
    pair: str | None,
    period_start: datetime | None,
    period_end: datetime | None,
) -> SignalStats:
    return await signals.signal_stats(
        ctx.db, pair=pair, period_start=period_start, period_end=period_end
    )


async def subscriber_page(
    ctx: Context, *, status: str | None, page: int, page_size: int
) -> SubscriberPage:
    return await subscribers.list_subscribers(
        ctx.db, status=status, page=page, page_size=page_size, now=ctx.now()
    )


async def add_subscriber(
    ctx: Context,
    *,
    telegram_user_id: int,
    username: str | None,
    plan: str,
    expires_at: datetime | None,
) -> SubscriberView:
    row = await subscribers.add_subscriber(
        ctx.db,
        telegram_user_id=telegram_user_id,
        username=username,
        plan=plan,
        expires_at=expires_at,
        now=ctx.now(),
    )
    return await subscribers.view_of(ctx.db, row)


def _destination_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise NotFound("Signal destination") from None
