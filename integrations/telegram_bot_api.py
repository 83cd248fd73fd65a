"""The Bot API port, implemented with aiogram against IBHQ_TELEGRAM_API_URL.

One aiohttp session serves every bot; aiogram's typed errors are turned into
the port's, so the domain never imports aiogram.
"""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    ClientDecodeError,
    RestartingTelegram,
    TelegramAPIError,
    TelegramBadRequest,
    TelegramConflictError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.types import (
    ChatMemberAdministrator,
    ChatMemberMember,
    ChatMemberOwner,
    ChatMemberRestricted,
    InlineKeyboardMarkup,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
)
from aiogram.utils.token import TokenValidationError

from domain.telegram import (
    BotIdentity,
    ChatInfo,
    TelegramBadFormatting,
    TelegramConflict,
    TelegramRejected,
    TelegramUnavailable,
)
from domain.telegram import (
    TelegramRetryAfter as RetryAfter,
)

logger = logging.getLogger(__name__)

DEFAULT_API_URL = "https://api.telegram.org"
REQUEST_TIMEOUT_SECONDS = 15
ALLOWED_UPDATES = ["message", "callback_query"]

Markup = InlineKeyboardMarkup | ReplyKeyboardMarkup | ReplyKeyboardRemove


class AiogramBotApi:
    def __init__(self, base_url: str = DEFAULT_API_URL) -> None:
        self._server = TelegramAPIServer.from_base(base_url.rstrip("/"))
        self._session: AiohttpSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @asynccontextmanager
    async def _bot(self, token: str) -> AsyncIterator[Bot]:
        if self._session is None:
            self._session = AiohttpSession(
                api=self._server, timeout=REQUEST_TIMEOUT_SECONDS
            )
        try:
            yield Bot(token, session=self._session)
        except TokenValidationError as error:
            raise TelegramRejected(str(error)) from None
        except TelegramRetryAfter as error:
            raise RetryAfter(error.message, error.retry_after) from None
        except TelegramConflictError as error:
            raise TelegramConflict(error.message) from None
        except (TelegramNetworkError, TelegramServerError, RestartingTelegram) as error:
            logger.warning("Telegram call failed: %s", type(error).__name__)
            raise TelegramUnavailable(
                f"Telegram could not be reached ({type(error).__name__})"
            ) from None
        except ClientDecodeError:
            logger.warning("Telegram's response could not be read")
            raise TelegramUnavailable(
                "Telegram sent a response that could not be read"
            ) from None
        except TelegramBadRequest as error:
            if "can't parse entities" in error.message:
                raise TelegramBadFormatting(error.message) from None
            raise TelegramRejected(error.message) from None
        except TelegramAPIError as error:
            # 401, 403, 404 and the like: retrying will not help.
            raise TelegramRejected(error.message) from None

    async def get_me(self, token: str) -> BotIdentity:
        async with self._bot(token) as bot:
            user = await bot.get_me()
        return BotIdentity(
            telegram_id=user.id, username=user.username or "", name=user.full_name
        )

    async def set_webhook(self, token: str, url: str, secret_token: str) -> None:
        async with self._bot(token) as bot:
            await bot.set_webhook(
                url, secret_token=secret_token, allowed_updates=ALLOWED_UPDATES
            )

    async def delete_webhook(self, token: str) -> None:
        async with self._bot(token) as bot:
            await bot.delete_webhook()

    async def get_updates(
        self, token: str, offset: int | None, wait_seconds: int
    ) -> list[dict[str, Any]]:
        async with self._bot(token) as bot:
            updates = await bot.get_updates(
                offset=offset,
                timeout=wait_seconds,
                allowed_updates=ALLOWED_UPDATES,
                request_timeout=wait_seconds + REQUEST_TIMEOUT_SECONDS,
            )
        return [
            update.model_dump(mode="json", by_alias=True, exclude_none=True)
            for update in updates
        ]

    async def send_message(
        self,
        token: str,
        chat_id: int,
        text: str,
        *,
        html: bool,
        reply_markup: dict[str, Any] | None = None,
        reply_to_message_id: int | None = None,
    ) -> int:
        async with self._bot(token) as bot:
            message = await bot.send_message(
                chat_id,
                text,
                parse_mode="HTML" if html else None,
                reply_markup=_markup(reply_markup),
                reply_to_message_id=reply_to_message_id,
                allow_sending_without_reply=True,
            )
        return message.message_id

    async def answer_callback_query(self, token: str, callback_query_id: str) -> None:
        async with self._bot(token) as bot:
            await bot.answer_callback_query(callback_query_id)

    async def get_chat(self, token: str, chat_id: int) -> ChatInfo:
        async with self._bot(token) as bot:
            chat = await bot.get_chat(chat_id)
        title = chat.title or chat.full_name or chat.username or str(chat.id)
        return ChatInfo(chat_id=chat.id, type=chat.type, title=title)

    async def get_chat_member_status(
        self, token: str, chat_id: int, user_id: int
    ) -> tuple[str, bool]:
        async with self._bot(token) as bot:
            member = await bot.get_chat_member(chat_id, user_id)
        match member:
            case ChatMemberOwner():
                can_post = True
            case ChatMemberAdministrator():
                # Channels need the right to post; in groups an admin may write.
                can_post = member.can_post_messages is not False
            case ChatMemberMember():
                can_post = True
            case ChatMemberRestricted():
                can_post = member.can_send_messages
            case _:
                can_post = False
        return member.status, can_post


def _markup(data: dict[str, Any] | None) -> Markup | None:
    if data is None:
        return None
    if "inline_keyboard" in data:
        return InlineKeyboardMarkup.model_validate(data)
    if "keyboard" in data:
        return ReplyKeyboardMarkup.model_validate(data)
    return ReplyKeyboardRemove.model_validate(data)
