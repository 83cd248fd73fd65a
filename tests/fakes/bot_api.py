"""A loopback fake of the Telegram Bot API, in its real HTTP wire format.

getMe returns the bot for a token the test registered; any other token gets
Telegram's 401. Every call is recorded, so tests can check what was sent.
"""

import itertools
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


@dataclass
class FakeBotApi:
    bots: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    fail_next: int = 0
    url: str = ""
    _ids: "itertools.count[int]" = field(
        default_factory=lambda: itertools.count(7_000_000_001)
    )

    def add_bot(self, username: str, name: str = "Onboarding Bot") -> str:
        """Register a bot and return a token that Telegram would accept for it."""
        bot_id = next(self._ids)
        token = f"{bot_id}:AAH{username.replace('_', 'x')}{'k' * 30}"[:60]
        self.bots[token] = {
            "id": bot_id,
            "is_bot": True,
            "first_name": name,
            "username": username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }
        return token

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
        if self.fail_next > 0:
            self.fail_next -= 1
            return _error(500, "Internal Server Error")
        bot = self.bots.get(token)
        if bot is None:
            return _error(401, "Unauthorized")
        if method == "getMe":
            return JSONResponse({"ok": True, "result": bot})
        return _error(404, "Not Found")


def _error(code: int, description: str) -> JSONResponse:
    return JSONResponse(
        {"ok": False, "error_code": code, "description": description}, status_code=code
    )
