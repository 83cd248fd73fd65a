"""The port to the Telegram Bot API, and what the domain needs from it.

Updates travel as Telegram's own JSON objects (dicts), so a stored update can
be handled again after a restart exactly as it arrived.
"""

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class BotIdentity:
    telegram_id: int
    username: str
    name: str


@dataclass(frozen=True, slots=True)
class ChatInfo:
    chat_id: int
    type: str
    title: str


class TelegramError(Exception):
    """A Bot API call failed; ``description`` is Telegram's reason."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


class TelegramRejected(TelegramError):
    """Telegram refused the request for good: a bad token, a blocked bot, a bad chat."""


class TelegramBadFormatting(TelegramRejected):
    """Telegram could not parse the message's HTML entities."""


class TelegramConflict(TelegramError):
    """getUpdates while a webhook is set, or while another poller runs."""


class TelegramRetryAfter(TelegramError):
    """Flood control: nothing was done; try again after ``seconds``."""

    def __init__(self, description: str, seconds: int) -> None:
        super().__init__(description)
        self.seconds = seconds


class TelegramUnavailable(TelegramError):
    """Telegram could not be reached or returned a server error."""


class BotApi(Protocol):
    async def get_me(self, token: str) -> BotIdentity:
        """Return the bot a token belongs to.

        Raises TelegramRejected for a token Telegram does not accept and
        TelegramUnavailable when Telegram cannot be reached.
        """
        ...

    async def set_webhook(self, token: str, url: str, secret_token: str) -> None: ...

    async def delete_webhook(self, token: str) -> None: ...

    async def get_updates(
        self, token: str, offset: int | None, wait_seconds: int
    ) -> list[dict[str, Any]]:
        """Long-poll for updates; each is Telegram's JSON object."""
        ...

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
        """Send a text and return the message id Telegram gave it."""
        ...

    async def answer_callback_query(
        self, token: str, callback_query_id: str
    ) -> None: ...

    async def get_chat(self, token: str, chat_id: int) -> ChatInfo: ...

    async def get_chat_member_status(
        self, token: str, chat_id: int, user_id: int
    ) -> tuple[str, bool]:
        """Return a member's status and whether it may post messages."""
        ...
