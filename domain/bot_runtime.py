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

import hashlib
import hmac
import logging
import secrets
import uuid
from collections.abc import Mapping
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
    api: BotApi,
    bot_id: uuid.UUID,
    mode: str,
    *,
    public_url: str,
    secret_key: bytes,
    now: datetime,
) -> TelegramBot:
    """Start the bot in ``mode``; starting again, or in the other mode, switches."""
    if mode not in MODES:
        raise InvalidInput("mode must be webhook or polling", field="mode")
    bot = await get_bot(session, bot_id)
    token = decrypt(secret_key, bot.token_encrypted)
    path = secret = None
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
            f"Telegram rejected starting the bot in {mode} mode: {error.description}",
            field="mode",
        ) from None
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
    api: BotApi,
    bot_id: uuid.UUID,
    *,
    secret_key: bytes,
    now: datetime,
) -> TelegramBot:
    """Stop the bot, even when the webhook cannot be deleted at Telegram."""
    bot = await get_bot(session, bot_id)
    if bot.mode == "webhook" and bot.status == RUNNING:
        try:
            await api.delete_webhook(decrypt(secret_key, bot.token_encrypted))
        except TelegramError as error:
            # The endpoint acknowledges and drops updates that still arrive.
            logger.warning("deleteWebhook failed on stop: %s", error.description)
            bot.last_error = (
                "The webhook could not be removed at Telegram "
                f"({error.description}); it is removed on the next start"
            )[:500]
    bot.status = STOPPED
    bot.poller_lease_until = None
    bot.updated_at = now
    await session.flush()
    return bot


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
    if not isinstance(update, Mapping) or not isinstance(update.get("update_id"), int):
        raise MalformedUpdate("an update is a JSON object with an integer update_id")
    try:
        chat_id = update_chat_id(update)
    except (KeyError, TypeError, ValueError):
        raise MalformedUpdate("the update's chat could not be read") from None
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
