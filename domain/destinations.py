"""Signal destinations: channels and groups where a workspace's bot posts signals.

A destination is saved only after Telegram confirms, with getChat and
getChatMember, that the bot can post there. In a channel the bot must be an
administrator (or the creator) with the right to post. In a group it must be
a member that may send messages.
"""

import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import SignalDestination, TelegramBot
from domain.billing import ServiceUnavailable
from domain.errors import InvalidInput, NotFound
from domain.secrets import SecretUnreadable, decrypt
from domain.telegram import BotApi, ChatInfo, TelegramError, TelegramRejected
from domain.validation import clean_text

CHAT_TYPES = ("channel", "group", "supergroup")
CHANNEL_POSTERS = ("creator", "administrator")
MAX_TITLE_LENGTH = 255


async def create_destination(
    session: AsyncSession,
    api: BotApi,
    *,
    bot: TelegramBot,
    chat_id: int,
    title: str | None,
    secret_key: bytes,
    now: datetime,
) -> SignalDestination:
    """Add a chat where the bot can post, checked with Telegram first.

    ``bot`` was read beforehand by the caller, so that no session holds a
    connection or lock while Telegram is asked.
    """
    name = None
    if title is not None and title.strip():
        name = clean_text(title, field="title", max_length=MAX_TITLE_LENGTH)
    chat = await _check_bot_can_post(api, bot, chat_id, secret_key=secret_key)
    destination = SignalDestination(
        bot_id=bot.id,
        chat_id=chat.chat_id,
        chat_type=chat.type,
        title=name or chat.title[:MAX_TITLE_LENGTH],
        created_at=now,
    )
    session.add(destination)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:
        raise InvalidInput(
            f"chatId {chat_id} is already a destination of this workspace",
            field="chatId",
        ) from None
    return destination


async def _check_bot_can_post(
    api: BotApi, bot: TelegramBot, chat_id: int, *, secret_key: bytes
) -> ChatInfo:
    """Ask Telegram about the chat and the bot's rights in it."""
    try:
        token = decrypt(secret_key, bot.token_encrypted)
    except SecretUnreadable:
        raise InvalidInput(
            "The bot's stored token cannot be read; connect the bot again",
            field="botId",
        ) from None
    try:
        chat = await api.get_chat(token, chat_id)
        status, can_post = await api.get_chat_member_status(
            token, chat_id, bot.telegram_id
        )
    except TelegramRejected as error:
        raise InvalidInput(
            f"Telegram rejected chatId {chat_id} for @{bot.username}: "
            f"{error.description}. Add the bot to the chat first",
            field="chatId",
        ) from None
    except TelegramError:
        raise ServiceUnavailable(
            "Telegram could not be reached to check the chat; try again shortly"
        ) from None
    if chat.type not in CHAT_TYPES:
        raise InvalidInput(
            f"chatId {chat_id} is a {chat.type} chat; use a channel or a group",
            field="chatId",
        )
    if chat.type == "channel" and (status not in CHANNEL_POSTERS or not can_post):
        raise InvalidInput(
            f"@{bot.username} cannot post in this channel: make it an "
            "administrator with the right to post messages",
            field="chatId",
        )
    if not can_post:
        raise InvalidInput(
            f"@{bot.username} cannot send messages in this group "
            f"(its status there is {status}); add it as a member that may write",
            field="chatId",
        )
    return chat


async def list_destinations(session: AsyncSession) -> list[SignalDestination]:
    result = await session.execute(
        select(SignalDestination).order_by(
            SignalDestination.created_at, SignalDestination.id
        )
    )
    return list(result.scalars())


async def get_destination(
    session: AsyncSession, destination_id: uuid.UUID
) -> SignalDestination:
    """Fetch a destination of the session's workspace; another tenant's is NOT_FOUND."""
    destination = await session.get(SignalDestination, destination_id)
    if destination is None:
        raise NotFound("Signal destination")
    return destination


async def delete_destination(session: AsyncSession, destination_id: uuid.UUID) -> None:
    """Delete a destination; the signals it received keep their delivery records."""
    destination = await get_destination(session, destination_id)
    await session.delete(destination)
    await session.flush()
