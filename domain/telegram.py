"""The port to the Telegram Bot API, and what the domain needs from it."""

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class BotIdentity:
    telegram_id: int
    username: str
    name: str


class TelegramRejected(Exception):
    """Telegram refused the request, for example an invalid bot token."""


class TelegramUnavailable(Exception):
    """Telegram could not be reached or returned a server error."""


class BotApi(Protocol):
    async def get_me(self, token: str) -> BotIdentity:
        """Return the bot a token belongs to.

        Raises TelegramRejected for a token Telegram does not accept and
        TelegramUnavailable when Telegram cannot be reached.
        """
        ...
