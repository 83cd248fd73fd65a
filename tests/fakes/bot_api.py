"""A loopback fake of the Telegram Bot API, in its real HTTP wire format.

It accepts the tokens of the bots a test registers, and any other token
gets Telegram's 401.
It keeps each bot's webhook, queues updates for getUpdates, delivers them to
a webhook the way Telegram does (with the secret token header), records every
message sent, and responds to getChat and getChatMember for the chats a test
adds.
A test can script errors for the next calls of a method: 429 with
retry_after, 400 for bad entities, 403 for a blocked bot, 409, 500.
"""

import asyncio
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

CAN_NOT_PARSE = "Bad Request: can't parse entities: Unsupported start tag"
WEBHOOK_CONFLICT = (
    "Conflict: can't use getUpdates method while webhook is active; "
    "use deleteWebhook to delete the webhook first"
)
ADMIN_RIGHTS = {
    "can_be_edited": False,
    "is_anonymous": False,
    "can_manage_chat": True,
    "can_delete_messages": True,
    "can_manage_video_chats": False,
    "can_restrict_members": False,
    "can_promote_members": False,
    "can_change_info": False,
    "can_invite_users": True,
    "can_post_stories": False,
    "can_edit_stories": False,
    "can_delete_stories": False,
    "can_send_welcome_messages": False,
}


@dataclass
class ScriptedError:
    method: str
    status: int
    description: str
    retry_after: int | None = None
    chat_id: int | None = None


@dataclass
class SentMessage:
    token: str
    chat_id: int
    text: str
    parse_mode: str | None
    reply_markup: dict[str, Any] | None
    reply_to_message_id: int | None
    message_id: int


@dataclass
class FakeBot:
    user: dict[str, Any]
    webhook_url: str = ""
    webhook_secret: str = ""
    updates: list[dict[str, Any]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class FakeBotApi:
    bots: dict[str, FakeBot] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    sent: list[SentMessage] = field(default_factory=list)
    # When each message was sent, in time.time() seconds.
    sent_at: list[float] = field(default_factory=list)
    answered_callbacks: list[str] = field(default_factory=list)
    errors: list[ScriptedError] = field(default_factory=list)
    # chat id -> the chat's JSON; (chat id, user id) -> the member's status JSON.
    chats: dict[int, dict[str, Any]] = field(default_factory=dict)
    members: dict[tuple[int, int], dict[str, Any]] = field(default_factory=dict)
    fail_next: int = 0
    # Methods whose calls wait until the test sets the event.
    held: dict[str, asyncio.Event] = field(default_factory=dict)
    url: str = ""
    _ids: "itertools.count[int]" = field(
        default_factory=lambda: itertools.count(7_000_000_001)
    )
    _message_ids: "itertools.count[int]" = field(
        default_factory=lambda: itertools.count(101)
    )
    _update_ids: "itertools.count[int]" = field(
        default_factory=lambda: itertools.count(500_000_001)
    )

    def add_bot(self, username: str, name: str = "Onboarding Bot") -> str:
        """Register a bot and return a token that Telegram would accept for it."""
        bot_id = next(self._ids)
        token = f"{bot_id}:AAH{username.replace('_', 'x')}{'k' * 30}"[:60]
        self.bots[token] = FakeBot(
            user={
                "id": bot_id,
                "is_bot": True,
                "first_name": name,
                "username": username,
                "can_join_groups": True,
                "can_read_all_group_messages": False,
                "supports_inline_queries": False,
            }
        )
        return token

    def bot_user_id(self, token: str) -> int:
        return int(self.bots[token].user["id"])

    def add_chat(
        self,
        chat_id: int,
        title: str,
        *,
        type: str = "channel",
        bot_token: str | None = None,
        bot_status: str = "administrator",
        can_post: bool = True,
    ) -> None:
        """Add a chat; with ``bot_token``, that bot is a member with this status."""
        self.chats[chat_id] = {"id": chat_id, "type": type, "title": title}
        if bot_token is not None:
            self.set_member(chat_id, bot_token, bot_status, can_post=can_post)

    def set_member(
        self, chat_id: int, bot_token: str, status: str, *, can_post: bool = True
    ) -> None:
        user = self.bots[bot_token].user
        member: dict[str, Any] = {"status": status, "user": user}
        if status == "administrator":
            member |= ADMIN_RIGHTS
            if self.chats[chat_id]["type"] == "channel":
                member["can_post_messages"] = can_post
        self.members[(chat_id, int(user["id"]))] = member

    def fail(
        self,
        method: str,
        status: int,
        description: str,
        *,
        retry_after: int | None = None,
        chat_id: int | None = None,
    ) -> None:
        """Make the next matching call of ``method`` fail this way."""
        self.errors.append(
            ScriptedError(method, status, description, retry_after, chat_id)
        )

    def message_update(
        self,
        text: str | None,
        *,
        user_id: int = 42,
        username: str | None = "alex_trader",
        first_name: str = "Alex",
        contact: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A private-chat message update from a user, as Telegram sends it."""
        sender: dict[str, Any] = {
            "id": user_id,
            "is_bot": False,
            "first_name": first_name,
        }
        if username:
            sender["username"] = username
        message: dict[str, Any] = {
            "message_id": next(self._message_ids),
            "date": 1_764_800_000,
            "chat": {"id": user_id, "type": "private", "first_name": first_name},
            "from": sender,
        }
        if text is not None:
            message["text"] = text
        if contact is not None:
            message["contact"] = contact
        return {"update_id": next(self._update_ids), "message": message}

    def callback_update(
        self, data: str, *, user_id: int = 42, first_name: str = "Alex"
    ) -> dict[str, Any]:
        """A button press in a private chat, as Telegram sends it."""
        sender = {"id": user_id, "is_bot": False, "first_name": first_name}
        return {
            "update_id": next(self._update_ids),
            "callback_query": {
                "id": f"cb{next(self._message_ids)}",
                "from": sender,
                "chat_instance": "1",
                "data": data,
                "message": {
                    "message_id": next(self._message_ids),
                    "date": 1_764_800_000,
                    "chat": {"id": user_id, "type": "private"},
                    "from": {"id": 1, "is_bot": True, "first_name": "Bot"},
                    "text": "Pick one",
                },
            },
        }

    def queue_update(self, token: str, update: dict[str, Any]) -> None:
        """Queue an update for getUpdates, as for a bot that polls."""
        bot = self.bots[token]
        bot.updates.append(update)
        bot.arrived.set()

    async def deliver(self, token: str, update: dict[str, Any]) -> httpx.Response:
        """POST an update to the webhook with its secret token, as Telegram does."""
        bot = self.bots[token]
        assert bot.webhook_url, "the bot has no webhook"
        async with httpx.AsyncClient(timeout=10) as client:
            return await client.post(
                bot.webhook_url,
                json=update,
                headers={"X-Telegram-Bot-Api-Secret-Token": bot.webhook_secret},
            )

    def sent_to(self, chat_id: int) -> list[SentMessage]:
        return [message for message in self.sent if message.chat_id == chat_id]

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/bot{token}/{method}", self._handle, methods=["GET", "POST"])
            ]
        )

    async def _handle(self, request: Request) -> JSONResponse:
        token = request.path_params["token"]
        method = request.path_params["method"]
        self.calls.append((token, method))
        params = await _params(request)
        gate = self.held.get(method)
        if gate is not None:
            await gate.wait()
        if self.fail_next > 0:
            self.fail_next -= 1
            return _error(500, "Internal Server Error")
        bot = self.bots.get(token)
        if bot is None:
            return _error(401, "Unauthorized")
        scripted = self._scripted(method, params)
        if scripted is not None:
            return scripted
        handler = getattr(self, f"_{method}", None)
        if handler is None:
            return _error(404, "Not Found")
        result = await handler(bot, token, params)
        if isinstance(result, JSONResponse):
            return result
        return JSONResponse({"ok": True, "result": result})

    def _scripted(self, method: str, params: dict[str, Any]) -> JSONResponse | None:
        for error in self.errors:
            if error.method != method:
                continue
            if error.chat_id is not None and int(params.get("chat_id", 0)) != (
                error.chat_id
            ):
                continue
            self.errors.remove(error)
            extra = (
                {"parameters": {"retry_after": error.retry_after}}
                if error.retry_after is not None
                else {}
            )
            return _error(error.status, error.description, **extra)
        return None

    async def _getMe(self, bot: FakeBot, token: str, params: dict[str, Any]) -> Any:
        return bot.user

    async def _setWebhook(
        self, bot: FakeBot, token: str, params: dict[str, Any]
    ) -> Any:
        bot.webhook_url = params["url"]
        bot.webhook_secret = params.get("secret_token", "")
        return True

    async def _deleteWebhook(
        self, bot: FakeBot, token: str, params: dict[str, Any]
    ) -> Any:
        bot.webhook_url = ""
        bot.webhook_secret = ""
        return True

    async def _getUpdates(
        self, bot: FakeBot, token: str, params: dict[str, Any]
    ) -> Any:
        if bot.webhook_url:
            return _error(409, WEBHOOK_CONFLICT)
        offset = int(params.get("offset") or 0)
        bot.updates = [u for u in bot.updates if u["update_id"] >= offset]
        if not bot.updates:
            bot.arrived.clear()
            try:
                await asyncio.wait_for(
                    bot.arrived.wait(), timeout=float(params.get("timeout") or 0)
                )
            except TimeoutError:
                return []
        return list(bot.updates)

    async def _sendMessage(
        self, bot: FakeBot, token: str, params: dict[str, Any]
    ) -> Any:
        chat_id = int(params["chat_id"])
        refusal = self._posting_refusal(chat_id, int(bot.user["id"]))
        if refusal is not None:
            return refusal
        markup = params.get("reply_markup")
        reply = params.get("reply_parameters")
        reply_to = params.get("reply_to_message_id")
        if reply:
            reply_to = json.loads(reply)["message_id"]
        message_id = next(self._message_ids)
        self.sent_at.append(time.time())
        self.sent.append(
            SentMessage(
                token=token,
                chat_id=chat_id,
                text=params["text"],
                parse_mode=params.get("parse_mode"),
                reply_markup=json.loads(markup) if markup else None,
                reply_to_message_id=int(reply_to) if reply_to else None,
                message_id=message_id,
            )
        )
        chat = self.chats.get(chat_id, {"id": chat_id, "type": "private"})
        return {
            "message_id": message_id,
            "date": 1_764_800_000,
            "chat": chat,
            "text": params["text"],
        }

    def _posting_refusal(self, chat_id: int, bot_user_id: int) -> JSONResponse | None:
        """Telegram's refusal when the bot may not post in a chat the test added."""
        chat = self.chats.get(chat_id)
        if chat is None:
            return None
        member = self.members.get((chat_id, bot_user_id))
        if member is None or member["status"] in ("left", "kicked"):
            return _error(403, "Forbidden: bot is not a member of the channel chat")
        if chat["type"] == "channel" and (
            member["status"] != "administrator"
            or member.get("can_post_messages") is False
        ):
            return _error(
                400, "Bad Request: need administrator rights in the channel chat"
            )
        return None

    async def _answerCallbackQuery(
        self, bot: FakeBot, token: str, params: dict[str, Any]
    ) -> Any:
        self.answered_callbacks.append(params["callback_query_id"])
        return True

    async def _getChat(self, bot: FakeBot, token: str, params: dict[str, Any]) -> Any:
        chat = self.chats.get(int(params["chat_id"]))
        if chat is None:
            return _error(400, "Bad Request: chat not found")
        return chat | {
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": {
                "unlimited_gifts": False,
                "limited_gifts": False,
                "unique_gifts": False,
                "premium_subscription": False,
                "gifts_from_channels": False,
            },
        }

    async def _getChatMember(
        self, bot: FakeBot, token: str, params: dict[str, Any]
    ) -> Any:
        chat_id = int(params["chat_id"])
        if chat_id not in self.chats:
            return _error(400, "Bad Request: chat not found")
        member = self.members.get((chat_id, int(params["user_id"])))
        if member is None:
            return {"status": "left", "user": bot.user}
        return member


async def _params(request: Request) -> dict[str, Any]:
    if request.headers.get("content-type", "").startswith("application/json"):
        data = await request.json()
        return {
            name: json.dumps(value) if isinstance(value, dict | list) else value
            for name, value in data.items()
        }
    form = await request.form()
    return {name: value for name, value in form.items() if isinstance(value, str)}


def _error(code: int, description: str, **extra: Any) -> JSONResponse:
    return JSONResponse(
        {"ok": False, "error_code": code, "description": description, **extra},
        status_code=code,
    )
