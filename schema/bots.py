"""Onboarding bot types."""

from datetime import datetime
from enum import Enum
from typing import Self

import strawberry

from db.models import BotConversation, Job
from domain.bots import BotView
from domain.conversations import CapturedPage
from domain.flows import Button, Step
from domain.outbox import JobPage
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


@strawberry.enum
class StepType(Enum):
    message = "message"
    question = "question"
    choice = "choice"
    contact = "contact"
    link = "link"
    subscribe = "subscribe"
    end = "end"


@strawberry.enum
class AnswerCheck(Enum):
    email = "email"
    phone = "phone"
    number = "number"
    text = "text"
    regex = "regex"


@strawberry.type(description="A button: a link, or an answer to a choice.")
class BotButton:
    text: str
    url: str | None
    value: str | None
    next: str | None


@strawberry.type(description="One step of an onboarding flow.")
class BotStep:
    key: str
    type: StepType
    text: str | None
    buttons: list[BotButton]
    field: str | None
    check: AnswerCheck | None
    pattern: str | None
    retry_text: str | None
    url: str | None
    next: str | None
    plan: str | None

    @classmethod
    def from_step(cls, step: Step) -> Self:
        return cls(
            key=step.key,
            type=StepType(step.type),
            text=step.text,
            buttons=[
                BotButton(text=b.text, url=b.url, value=b.value, next=b.next)
                for b in step.buttons
            ],
            field=step.field,
            check=AnswerCheck(step.check) if step.check else None,
            pattern=step.pattern,
            retry_text=step.retry_text,
            url=step.url,
            next=step.next,
            plan=step.plan,
        )


@strawberry.input
class BotButtonInput:
    text: str
    url: str | None = None
    value: str | None = None
    next: str | None = None


@strawberry.input(
    description="A step. message: text and link buttons; question: text, field, "
    "check (regex needs pattern) and retryText; choice: text and answer buttons, "
    "each may jump to a step; contact: text; link: text and a url that may use "
    "{partnerCode} and captured fields; subscribe: text, a plan, and two "
    "optional button labels, adding the person to the copy-trading subscribers; "
    "end: optional text."
)
class BotStepInput:
    key: str
    type: StepType
    text: str | None = None
    buttons: list[BotButtonInput] | None = None
    field: str | None = None
    check: AnswerCheck | None = None
    pattern: str | None = None
    retry_text: str | None = None
    url: str | None = None
    next: str | None = None
    plan: str | None = None

    def to_step(self) -> Step:
        return Step(
            key=self.key,
            type=self.type.value,
            text=self.text,
            buttons=tuple(
                Button(text=b.text, url=b.url, value=b.value, next=b.next)
                for b in self.buttons or ()
            ),
            field=self.field,
            check=self.check.value if self.check else None,
            pattern=self.pattern,
            retry_text=self.retry_text,
            url=self.url,
            next=self.next,
            plan=self.plan,
        )


@strawberry.enum
class BotMode(Enum):
    webhook = "webhook"
    polling = "polling"


@strawberry.type(description="One answer a person gave: the field and its value.")
class CapturedAnswer:
    field: str
    value: str


@strawberry.type(description="A person an onboarding bot has talked to.")
class CapturedLead:
    id: strawberry.ID
    lead_id: strawberry.ID | None
    telegram_user_id: BigInt
    username: str | None
    first_name: str | None
    status: str = strawberry.field(description="active, or completed.")
    current_step: str | None = strawberry.field(
        description="The step waiting for an answer; null once completed."
    )
    answers: list[CapturedAnswer]
    attribution: str | None = strawberry.field(
        description="The /start payload the person came with."
    )
    started_at: datetime
    updated_at: datetime
    completed_at: datetime | None

    @classmethod
    def from_row(cls, row: BotConversation) -> Self:
        return cls(
            id=strawberry.ID(str(row.id)),
            lead_id=strawberry.ID(str(row.lead_id)) if row.lead_id else None,
            telegram_user_id=BigInt(row.telegram_user_id),
            username=row.username,
            first_name=row.first_name,
            status=row.status,
            current_step=row.step_key,
            answers=[
                CapturedAnswer(field=name, value=value)
                for name, value in row.answers.items()
            ],
            attribution=row.attribution,
            started_at=row.started_at,
            updated_at=row.updated_at,
            completed_at=row.completed_at,
        )


@strawberry.type
class CapturedLeadPage:
    items: list[CapturedLead]
    page: int
    page_size: int
    total: int

    @classmethod
    def from_page(cls, page: CapturedPage) -> Self:
        return cls(
            items=[CapturedLead.from_row(row) for row in page.items],
            page=page.page,
            page_size=page.page_size,
            total=page.total,
        )


@strawberry.type(description="A message queued for Telegram, and what became of it.")
class BotMessage:
    id: strawberry.ID
    chat_id: BigInt
    status: str = strawberry.field(description="pending, running, done or failed.")
    attempts: int
    last_error: str | None = strawberry.field(
        description="Telegram's reason for the last failure, if any."
    )
    text: str = strawberry.field(description="The message as queued (its first part).")
    created_at: datetime
    finished_at: datetime | None

    @classmethod
    def from_row(cls, row: Job) -> Self:
        parts = row.payload.get("parts") or [""]
        return cls(
            id=strawberry.ID(str(row.id)),
            chat_id=BigInt(row.chat_id),
            status=row.status,
            attempts=row.attempts,
            last_error=row.last_error,
            text=str(parts[0]),
            created_at=row.created_at,
            finished_at=row.finished_at,
        )


@strawberry.type
class BotMessagePage:
    items: list[BotMessage]
    page: int
    page_size: int
    total: int

    @classmethod
    def from_page(cls, page: JobPage) -> Self:
        return cls(
            items=[BotMessage.from_row(row) for row in page.items],
            page=page.page,
            page_size=page.page_size,
            total=page.total,
        )
