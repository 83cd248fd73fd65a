"""The Bot API port, implemented with aiogram against IBHQ_TELEGRAM_API_URL."""

import logging

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramNetworkError,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.utils.token import TokenValidationError

from domain.telegram import BotIdentity, TelegramRejected, TelegramUnavailable

logger = logging.getLogger(__name__)

DEFAULT_API_URL = "https://api.telegram.org"
REQUEST_TIMEOUT_SECONDS = 15


class AiogramBotApi:
    def __init__(self, base_url: str = DEFAULT_API_URL) -> None:
        self._server = TelegramAPIServer.from_base(base_url.rstrip("/"))

    async def get_me(self, token: str) -> BotIdentity:
        session = AiohttpSession(api=self._server, timeout=REQUEST_TIMEOUT_SECONDS)
        try:
            bot = Bot(token, session=session)
            user = await bot.get_me()
        except (TokenValidationError, TelegramUnauthorizedError) as error:
            raise TelegramRejected(str(error)) from None
        except (TelegramNetworkError, TelegramServerError) as error:
            logger.warning("Telegram getMe failed: %s", type(error).__name__)
            raise TelegramUnavailable(type(error).__name__) from None
        except TelegramAPIError as error:
            # Other refusals (404 for a deleted bot, 400) mean the same to a user.
            raise TelegramRejected(str(error)) from None
        finally:
            await session.close()
        return BotIdentity(
            telegram_id=user.id,
            username=user.username or "",
            name=user.full_name,
        )
