"""Onboarding bots: Telegram bots that a workspace connects by their token.

Invariants:
- A token is checked with Telegram (getMe) before anything is stored, and is
  stored only encrypted; responses show a hint of it, never the token.
- A Telegram bot is connected to one workspace at most. Connecting it again
  in the same workspace replaces its token, for a token that was regenerated.
"""

import re
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import BotConversation, TelegramBot
from domain.billing import ServiceUnavailable
from domain.errors import InvalidInput, NotFound
from domain.secrets import encrypt
from domain.telegram import BotApi, TelegramRejected, TelegramUnavailable

TOKEN_PATTERN = re.compile(r"[0-9]{1,20}:[A-Za-z0-9_-]{20,100}")
REJECTED = "Telegram rejected this bot token"


@dataclass(frozen=True, slots=True)
class BotView:
    row: TelegramBot
    leads_count: int


def token_hint(token: str) -> str:
    """Return the bot id and the token's last four characters, safe to show."""
    bot_id, _, secret = token.partition(":")
    return f"{bot_id}:…{secret[-4:]}"


async def connect_bot(
    session: AsyncSession,
    api: BotApi,
    token: str,
    *,
    secret_key: bytes,
    now: datetime,
) -> TelegramBot:
    token = token.strip()
    if not TOKEN_PATTERN.fullmatch(token):
        raise InvalidInput(
            "botToken must look like 123456789:AA... as @BotFather gives it",
            field="botToken",
        )
    try:
        identity = await api.get_me(token)
    except TelegramRejected:
        raise InvalidInput(REJECTED, field="botToken") from None
    except TelegramUnavailable:
        raise ServiceUnavailable(
            "Telegram could not be reached to check the token; try again shortly"
        ) from None

    existing = (
        await session.execute(
            select(TelegramBot).where(TelegramBot.telegram_id == identity.telegram_id)
        )
    ).scalar_one_or_none()
    bot = existing or TelegramBot(
        telegram_id=identity.telegram_id, status="stopped", created_at=now
    )
    bot.username = identity.username
    bot.name = identity.name
    bot.token_encrypted = encrypt(secret_key, token)
    bot.token_hint = token_hint(token)
    bot.updated_at = now
    if existing is None:
        session.add(bot)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:
        # The unique telegram_id belongs to another workspace's bot.
        raise InvalidInput(
            "This bot is already connected to another workspace", field="botToken"
        ) from None
    return bot


async def list_bots(session: AsyncSession) -> list[BotView]:
    bots = list(
        (
            await session.execute(
                select(TelegramBot).order_by(TelegramBot.created_at, TelegramBot.id)
            )
        ).scalars()
    )
    counts = await _lead_counts(session, [bot.id for bot in bots])
    return [BotView(bot, counts.get(bot.id, 0)) for bot in bots]


async def view_of(session: AsyncSession, bot: TelegramBot) -> BotView:
    """Return one bot with its leads count."""
    counts = await _lead_counts(session, [bot.id])
    return BotView(bot, counts.get(bot.id, 0))


async def _lead_counts(
    session: AsyncSession, bot_ids: list[uuid.UUID]
) -> dict[uuid.UUID, int]:
    """Count the people each bot brought in as leads.

    A person who talked to two bots of the workspace is one lead, counted
    for both.
    """
    rows = await session.execute(
        select(BotConversation.bot_id, func.count())
        .where(
            BotConversation.bot_id.in_(bot_ids),
            BotConversation.lead_id.is_not(None),
        )
        .group_by(BotConversation.bot_id)
    )
    return dict(rows.all())


async def get_bot(session: AsyncSession, bot_id: uuid.UUID) -> TelegramBot:
    bot = await session.get(TelegramBot, bot_id)
    if bot is None:
        raise NotFound("Bot")
    return bot
