"""Starting and stopping onboarding bots, and taking in their updates.

A bot runs in one of two modes:
- ``webhook``: Telegram POSTs updates to ``/api/telegram/webhook/<path>``,
  where the path is random per start and the ``secret_token`` Telegram sends
  back is checked against its stored SHA-256 in constant time.
- ``polling``: the webhook is deleted at Telegram, then a worker long-polls
  getUpdates and stores what it gets.
Either way an update is stored once, keyed by (bot, update id), and handled
later by the update worker, so Telegram gets its answer at once and a retry
of the same update is a no-op.
"""

import asyncio
import hashlib
import hmac
import logging
import secrets
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import BotUpdate, TelegramBot
from domain.billing import ServiceUnavailable
from domain.bots import get_bot
from domain.conversations import update_chat_id
from domain.errors import InvalidInput
from domain.secrets import decrypt
from domain.telegram import (
    BotApi,
    TelegramError,
    TelegramRejected,
    TelegramUnavailable,
)

logger = logging.getLogger(__name__)

MODES = ("webhook", "polling")
WEBHOOK_PREFIX = "/api/telegram/webhook/"
RUNNING, STOPPED, ERROR = "running", "stopped", "error"


def webhook_url(public_url: str, path: str) -> str:
    return f"{public_url.rstrip('/')}{WEBHOOK_PREFIX}{path}"


async def start_bot(
    session: AsyncSession,
    reader: AsyncSession,
    api: BotApi,
    bot_id: uuid.UUID,
    mode: str,
    *,
    public_url: str,
    secret_key: bytes,
    now: datetime,
) -> TelegramBot:
    """Start the bot in ``mode``; starting again, or in the other mode, switches.

    ``reader`` is a read-only session of the same workspace. The token is read
    through it, so that ``session`` takes no lock while Telegram is called.
    """
    if mode not in MODES:
        raise InvalidInput("mode must be webhook or polling", field="mode")
    token = decrypt(secret_key, (await get_bot(reader, bot_id)).token_encrypted)
    path = secret = None
    async with _switching(session, bot_id):
        try:
            if mode == "webhook":
                path = secrets.token_urlsafe(32)
                secret = secrets.token_urlsafe(32)
                await api.set_webhook(token, webhook_url(public_url, path), secret)
            else:
                await api.delete_webhook(token)
        except TelegramUnavailable:
            raise ServiceUnavailable(
                "Telegram could not be reached to start the bot; try again shortly"
            ) from None
        except TelegramError as error:
            raise InvalidInput(
                f"Telegram rejected starting the bot in {mode} mode: "
                f"{error.description}",
                field="mode",
            ) from None
        bot = await get_bot(session, bot_id)
        bot.mode = mode
        bot.status = RUNNING
        bot.last_error = None
        bot.webhook_path = path
        bot.webhook_secret_hash = _digest(secret) if secret else None
        # A poller of an earlier start lets go; the next one starts afresh.
        bot.poller_lease_until = None
        bot.updated_at = now
        await session.flush()
    return bot


async def stop_bot(
    session: AsyncSession,
    reader: AsyncSession,
    api: BotApi,
    bot_id: uuid.UUID,
    *,
    secret_key: bytes,
    now: datetime,
) -> TelegramBot:
    """Stop the bot, even when the webhook cannot be deleted at Telegram."""
    current = await get_bot(reader, bot_id)
    token = decrypt(secret_key, current.token_encrypted)
    error_text = None
    async with _switching(session, bot_id):
        if current.mode == "webhook" and current.status == RUNNING:
            try:
                await api.delete_webhook(token)
            except TelegramError as error:
                # The endpoint acknowledges and drops updates that still arrive.
                logger.warning("deleteWebhook failed on stop: %s", error.description)
                error_text = (
                    "The webhook could not be removed at Telegram "
                    f"({error.description}); it is removed on the next start"
                )[:500]
        bot = await get_bot(session, bot_id)
        if error_text is not None:
            bot.last_error = error_text
        bot.status = STOPPED
        bot.poller_lease_until = None
        bot.updated_at = now
        await session.flush()
    return bot


# One lock per bot for starts and stops within this process, used on SQLite.
_SWITCH_LOCKS: dict[uuid.UUID, asyncio.Lock] = {}


@asynccontextmanager
async def _switching(session: AsyncSession, bot_id: uuid.UUID) -> AsyncIterator[None]:
    """Let one start or stop of a bot run at a time, Telegram call included.

    Without it, two starts could leave Telegram with one webhook secret and
    the database with the other. PostgreSQL locks the bot's row, which holds
    up no other bot. On SQLite any write would hold the one database-wide
    lock through the Telegram call, so a lock in this process is used instead;
    SQLite serves one process.
    """
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(
            select(TelegramBot.id).where(TelegramBot.id == bot_id).with_for_update()
        )
        yield
        return
    lock = _SWITCH_LOCKS.setdefault(bot_id, asyncio.Lock())
    async with lock:
        yield


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


async def bot_for_webhook(
    session: AsyncSession, path: str, secret_header: str | None
) -> TelegramBot | None:
    """Return the bot a webhook call is for, or None for a wrong path or secret."""
    if not path or len(path) > 64:
        return None
    bot = (
        await session.execute(
            select(TelegramBot).where(TelegramBot.webhook_path == path)
        )
    ).scalar_one_or_none()
    expected = bot.webhook_secret_hash if bot is not None else None
    given = _digest(secret_header or "")
    # Compare even for an unknown path, so that timing reveals no valid path.
    matches = hmac.compare_digest(given, expected or _digest(secrets.token_hex(8)))
    if bot is None or expected is None or secret_header is None or not matches:
        return None
    return bot


class MalformedUpdate(ValueError):
    pass


async def store_update(
    session: AsyncSession,
    bot: TelegramBot,
    update: Any,
    *,
    now: datetime,
) -> bool:
    """Store an update once; return False when it was stored before.

    Raises MalformedUpdate for a body that is not a Telegram update.
    """
    if not isinstance(update, Mapping) or not _is_id(update.get("update_id")):
        raise MalformedUpdate("an update is a JSON object with an integer update_id")
    _check_shape(update)
    chat_id = update_chat_id(update)
    insert = (
        pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    )
    statement = (
        insert(BotUpdate)
        .values(
            tenant_id=bot.tenant_id,
            bot_id=bot.id,
            update_id=update["update_id"],
            chat_id=chat_id,
            payload=dict(update),
            status="pending",
            received_at=now,
        )
        .on_conflict_do_nothing(index_elements=[BotUpdate.bot_id, BotUpdate.update_id])
    )
    result = await session.execute(statement)
    return bool(result.rowcount)  # type: ignore[attr-defined]


def _is_id(value: object) -> bool:
    """Tell whether ``value`` is a Telegram id: an integer that fits 64 bits."""
    return (
        isinstance(value, int)
        and not isinstance(value, bool)
        and -(2**63) <= value < 2**63
    )


def _check_shape(update: Mapping[str, Any]) -> None:
    """Check the parts of an update that the conversation reads.

    Raises MalformedUpdate, so that a body Telegram would never send is a 400
    at the webhook and not a failure in the worker.
    """
    message = update.get("message")
    callback = update.get("callback_query")
    if message is not None:
        _check_message(message)
    if callback is not None:
        if not isinstance(callback, Mapping) or not isinstance(callback.get("id"), str):
            raise MalformedUpdate("callback_query needs a string id")
        _check_user(callback.get("from"), "callback_query.from")
        if not isinstance(callback.get("data", ""), str):
            raise MalformedUpdate("callback_query.data must be a string")
        if callback.get("message") is not None:
            _check_message(callback["message"])


def _check_message(message: object) -> None:
    if not isinstance(message, Mapping):
        raise MalformedUpdate("message must be an object")
    chat = message.get("chat")
    if not isinstance(chat, Mapping) or not _is_id(chat.get("id")):
        raise MalformedUpdate("message.chat needs an integer id")
    if message.get("from") is not None:
        _check_user(message["from"], "message.from")
    if not isinstance(message.get("text", ""), str):
        raise MalformedUpdate("message.text must be a string")
    if not isinstance(message.get("contact", {}), Mapping):
        raise MalformedUpdate("message.contact must be an object")


def _check_user(user: object, where: str) -> None:
    if not isinstance(user, Mapping) or not _is_id(user.get("id")):
        raise MalformedUpdate(f"{where} needs an integer id")


async def mark_error(
    session: AsyncSession, bot: TelegramBot, reason: str, *, now: datetime
) -> None:
    bot.status = ERROR
    bot.last_error = reason[:500]
    bot.poller_lease_until = None
    bot.updated_at = now
    await session.flush()


def rejected_reason(error: TelegramRejected) -> str:
    if "Unauthorized" in error.description:
        return (
            "Telegram no longer accepts this bot's token; connect the bot again "
            "with the token @BotFather gives now"
        )
    return f"Telegram refused the bot: {error.description}"
