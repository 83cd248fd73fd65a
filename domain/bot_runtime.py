"""Starting and stopping onboarding bots, and taking in their updates.

A bot runs in one of two modes:
- ``webhook``: Telegram POSTs updates to ``/api/telegram/webhook/<path>``,
  where the path is random per start and the ``secret_token`` Telegram sends
  back is checked against its stored SHA-256 in constant time.
- ``polling``: the webhook is deleted at Telegram, then a worker long-polls
  getUpdates and stores what it gets.
Either way an update is stored once, keyed by (bot, update id), and handled
later by the update worker, so Telegram gets its response at once and a retry
of the same update is a no-op.
"""

import hashlib
import hmac
import logging
import secrets
import uuid
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.engine import RequestSession
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


SessionOpener = Callable[[], AbstractAsyncContextManager[RequestSession]]
# How long a start or stop may hold the bot: more than Telegram's timeout.
SWITCH_CLAIM = timedelta(seconds=60)
BUSY = "This bot is being started or stopped by another request; try again shortly"
UNKNOWN_STATE = (
    "Telegram did not answer while the bot was being {action}; whether it took "
    "effect is unknown, so start or stop the bot again"
)


async def start_bot(
    session: AsyncSession,
    side: SessionOpener,
    api: BotApi,
    bot_id: uuid.UUID,
    mode: str,
    *,
    public_url: str,
    secret_key: bytes,
    now: datetime,
) -> TelegramBot:
    """Start the bot in ``mode``; starting again, or in the other mode, switches.

    ``side`` opens short sessions of the same workspace. Through them the bot
    is claimed before Telegram is called and released when the call fails,
    so no connection or lock is held during the Telegram call. The result is
    written through ``session``.
    """
    if mode not in MODES:
        raise InvalidInput("mode must be webhook or polling", field="mode")
    token = await _claim(side, bot_id, secret_key=secret_key, now=now)
    path = secret = None
    try:
        if mode == "webhook":
            path = secrets.token_urlsafe(32)
            secret = secrets.token_urlsafe(32)
            await api.set_webhook(token, webhook_url(public_url, path), secret)
        else:
            await api.delete_webhook(token)
    except TelegramUnavailable:
        await _release(side, bot_id, now=now, unknown="started")
        raise ServiceUnavailable(
            "Telegram could not be reached to start the bot; try again shortly"
        ) from None
    except TelegramError as error:
        await _release(side, bot_id, now=now)
        raise InvalidInput(
            f"Telegram rejected starting the bot in {mode} mode: {error.description}",
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
    bot.switching_until = None
    bot.updated_at = now
    await session.flush()
    return bot


async def stop_bot(
    session: AsyncSession,
    side: SessionOpener,
    api: BotApi,
    bot_id: uuid.UUID,
    *,
    secret_key: bytes,
    now: datetime,
) -> TelegramBot:
    """Stop the bot, even when the webhook cannot be deleted at Telegram.

    The webhook is deleted whatever the recorded mode, because an earlier
    start that got no response from Telegram may still have set one.
    """
    token = await _claim(side, bot_id, secret_key=secret_key, now=now)
    error_text = None
    try:
        await api.delete_webhook(token)
    except TelegramError as error:
        # The endpoint acknowledges and drops updates that still arrive.
        logger.warning(
            "deleteWebhook failed on stop of bot %s: %s", bot_id, error.description
        )
        error_text = (
            "The webhook could not be removed at Telegram "
            f"({error.description}); it is removed on the next start"
        )[:500]
    bot = await get_bot(session, bot_id)
    bot.last_error = error_text
    bot.status = STOPPED
    bot.poller_lease_until = None
    bot.switching_until = None
    bot.updated_at = now
    await session.flush()
    return bot


async def _claim(
    side: SessionOpener, bot_id: uuid.UUID, *, secret_key: bytes, now: datetime
) -> str:
    """Claim the bot for one start or stop, and return its token.

    Two starts at once could otherwise leave Telegram with one webhook
    secret and the database with the other.
    """
    async with side() as db:
        await db.begin_writes()
        bot = await get_bot(db, bot_id)
        claimed = await db.execute(
            update(TelegramBot)
            .where(
                TelegramBot.id == bot_id,
                or_(
                    TelegramBot.switching_until.is_(None),
                    TelegramBot.switching_until < now,
                ),
            )
            .values(switching_until=now + SWITCH_CLAIM)
        )
        await db.commit()
    if not claimed.rowcount:
        raise InvalidInput(BUSY)
    return decrypt(secret_key, bot.token_encrypted)


async def _release(
    side: SessionOpener,
    bot_id: uuid.UUID,
    *,
    now: datetime,
    unknown: str | None = None,
) -> None:
    """Release the claim after a failed call; mark the bot when its state is unknown."""
    values: dict[str, Any] = {"switching_until": None}
    if unknown is not None:
        values |= {
            "status": ERROR,
            "last_error": UNKNOWN_STATE.format(action=unknown),
            "updated_at": now,
        }
    async with side() as db:
        await db.begin_writes()
        await db.execute(
            update(TelegramBot).where(TelegramBot.id == bot_id).values(**values)
        )
        await db.commit()


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
