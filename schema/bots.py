"""Onboarding bot types."""

from datetime import datetime
from enum import Enum
from typing import Self

import strawberry

from domain.bots import BotView
from schema.scalars import BigInt


@strawberry.enum
class BotStatus(Enum):
    stopped = "stopped"
    running = "running"
    error = "error"


@strawberry.type(description="A Telegram bot connected to the workspace.")
class Bot:
    id: strawberry.ID
    telegram_id: BigInt
    username: str
    name: str
    mode: str | None = strawberry.field(description="webhook or polling once started.")
    status: BotStatus
    last_error: str | None
    token_hint: str = strawberry.field(
        description="The bot id and the token's last characters; the token itself "
        "is never returned."
    )
    leads_count: int
    created_at: datetime

    @classmethod
    def from_view(cls, view: BotView) -> Self:
        row = view.row
        return cls(
            id=strawberry.ID(str(row.id)),
            telegram_id=BigInt(row.telegram_id),
            username=row.username,
            name=row.name,
            mode=row.mode,
            status=BotStatus(row.status),
            last_error=row.last_error,
            token_hint=row.token_hint,
            leads_count=view.leads_count,
            created_at=row.created_at,
        )


@strawberry.input
class ConnectBotInput:
    bot_token: str
