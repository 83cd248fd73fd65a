"""Copy trading types: destinations, signals and their lifecycle, subscribers."""

from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any, Self

import strawberry

from db.models import SignalDestination as DestinationRow
from domain.outbox import DONE, FAILED, first_message_id
from domain.signal_results import SignalStats as StatsResult
from domain.signal_results import Tally, r_multiple_of, result_of, result_unit
from domain.signal_text import post_text
from domain.signals import Delivery, SignalDraft, SignalView
from domain.signals import SignalPage as SignalPageResult
from domain.subscribers import SubscriberPage as SubscriberPageResult
from domain.subscribers import SubscriberView, status_of
from schema.scalars import BigInt
from schema.types import Lead

RULES = (
    "Pips are 0.01 for two fiat currencies quoted in JPY, 0.1 for XAUUSD and "
    "0.0001 for other pairs of two fiat currencies; other pairs are measured "
    "in percent of the entry."
)


@strawberry.enum
class SignalDirection(Enum):
    long = "long"
    short = "short"


@strawberry.enum
class SignalStatus(Enum):
    pending = "pending"
    open = "open"
    closed = "closed"
    cancelled = "cancelled"


@strawberry.enum
class SignalOutcome(Enum):
    win = "win"
    loss = "loss"
    breakeven = "breakeven"


@strawberry.enum
class SignalEventType(Enum):
    activate = "activate"
    tp_hit = "tp_hit"
    sl_hit = "sl_hit"
    breakeven = "breakeven"
    close = "close"
    cancel = "cancel"


@strawberry.enum
class ResultUnit(Enum):
    pips = "pips"
    percent = "percent"


@strawberry.enum
class DeliveryStatus(Enum):
    pending = "pending"
    sent = "sent"
    failed = "failed"


@strawberry.enum
class SubscriberStatus(Enum):
    active = "active"
    expired = "expired"


@strawberry.type(description="A Telegram channel or group where signals are posted.")
class SignalDestination:
    id: strawberry.ID
    bot_id: strawberry.ID
    chat_id: BigInt
    chat_type: str = strawberry.field(description="channel, group or supergroup.")
    title: str
    created_at: datetime

    @classmethod
    def from_row(cls, row: DestinationRow) -> Self:
        return cls(
            id=strawberry.ID(str(row.id)),
            bot_id=strawberry.ID(str(row.bot_id)),
            chat_id=BigInt(row.chat_id),
            chat_type=row.chat_type,
            title=row.title,
            created_at=row.created_at,
        )


@strawberry.type(description="A message about a signal in one destination.")
class SignalDelivery:
    destination_id: strawberry.ID | None = strawberry.field(
        description="null once the destination has been deleted."
    )
    chat_id: BigInt
    title: str
    status: DeliveryStatus
    message_id: BigInt | None = strawberry.field(
        description="The Telegram message id once sent."
    )
    error: str | None = strawberry.field(
        description="Telegram's reason when the message could not be sent."
    )
    sent_at: datetime | None

    @classmethod
    def from_delivery(cls, delivery: Delivery) -> Self:
        row, job = delivery.row, delivery.job
        status, message_id, error, sent_at = DeliveryStatus.pending, None, None, None
        if job is None:
            status = DeliveryStatus.failed
            error = "The message was never sent: its bot was removed"
        elif job.status == DONE:
            status = DeliveryStatus.sent
            sent_id = first_message_id(job)
            message_id = BigInt(sent_id) if sent_id is not None else None
            sent_at = job.finished_at
        elif job.status == FAILED:
            status = DeliveryStatus.failed
            error = job.last_error
        return cls(
            destination_id=(
                strawberry.ID(str(row.destination_id)) if row.destination_id else None
            ),
            chat_id=BigInt(row.chat_id),
            title=row.title,
            status=status,
            message_id=message_id,
            error=error,
            sent_at=sent_at,
        )


@strawberry.type(description="One recorded step of a signal's lifecycle.")
class SignalEvent:
    id: strawberry.ID
    type: SignalEventType
    level: int | None = strawberry.field(description="The take profit, for tp_hit.")
    price: Decimal | None = strawberry.field(
        description="The close price for close, the stop's price for sl_hit."
    )
    occurred_at: datetime
    deliveries: list[SignalDelivery] = strawberry.field(
        description="The replies under the post, one per destination."
    )


@strawberry.type(
    description="A trade idea. Prices keep exactly the digits they were given."
)
class Signal:
    id: strawberry.ID
    pair: str
    direction: SignalDirection
    entry: Decimal
    entry_high: Decimal | None = strawberry.field(
        description="The top of an entry zone that starts at entry."
    )
    stop_loss: Decimal = strawberry.field(
        description="The current stop; a breakeven event moves it to the entry."
    )
    initial_stop_loss: Decimal
    take_profits: list[Decimal]
    note: str | None
    status: SignalStatus
    outcome: SignalOutcome | None = strawberry.field(
        description="Set once closed; null for open, pending and cancelled ones."
    )
    tp_hit_level: int | None = strawberry.field(
        description="The highest take profit hit so far."
    )
    exit_price: Decimal | None = strawberry.field(
        description="The price the result is measured to."
    )
    result: Decimal | None = strawberry.field(
        description=f"The result in resultUnit, positive for a profit. {RULES}"
    )
    result_unit: ResultUnit
    r_multiple: Decimal | None = strawberry.field(
        description="The result over the initial risk (entry to first stop loss)."
    )
    text: str = strawberry.field(description="The post, as Telegram HTML.")
    deliveries: list[SignalDelivery] = strawberry.field(
        description="The post's delivery in each destination."
    )
    events: list[SignalEvent]
    created_at: datetime
    opened_at: datetime | None
    closed_at: datetime | None
    updated_at: datetime

    @classmethod
    def from_view(cls, view: SignalView) -> Self:
        row = view.row
        return cls(
            id=strawberry.ID(str(row.id)),
            pair=row.pair,
            direction=SignalDirection(row.direction),
            entry=row.entry,
            entry_high=row.entry_high,
            stop_loss=row.stop_loss,
            initial_stop_loss=row.initial_stop_loss,
            take_profits=[Decimal(price) for price in row.take_profits],
            note=row.note,
            status=SignalStatus(row.status),
            outcome=SignalOutcome(row.outcome) if row.outcome else None,
            tp_hit_level=row.tp_hit_level,
            exit_price=row.exit_price,
            result=result_of(row),
            result_unit=ResultUnit(result_unit(row.pair)),
            r_multiple=r_multiple_of(row),
            text=post_text(row),
            deliveries=[SignalDelivery.from_delivery(d) for d in view.deliveries],
            events=[
                SignalEvent(
                    id=strawberry.ID(str(event.id)),
                    type=SignalEventType(event.type),
                    level=event.level,
                    price=event.price,
                    occurred_at=event.occurred_at,
                    deliveries=[
                        SignalDelivery.from_delivery(d)
                        for d in view.replies.get(event.id, [])
                    ],
                )
                for event in view.events
            ],
            created_at=row.created_at,
            opened_at=row.opened_at,
            closed_at=row.closed_at,
            updated_at=row.updated_at,
        )


@strawberry.type
class SignalPage:
    items: list[Signal]
    page: int
    page_size: int
    total: int

    @classmethod
    def from_result(cls, result: SignalPageResult) -> Self:
        return cls(
            items=[Signal.from_view(view) for view in result.items],
            page=result.page,
            page_size=result.page_size,
            total=result.total,
        )


def _tally_fields(tally: Tally) -> dict[str, Any]:
    return {
        "total": tally.total,
        "open": tally.open,
        "closed": tally.closed,
        "wins": tally.wins,
        "losses": tally.losses,
        "breakeven": tally.breakeven,
        "win_rate": tally.win_rate,
        "total_pips": tally.total_pips,
        "total_percent": tally.total_percent,
        "average_r": tally.average_r,
    }


@strawberry.type(description="Counts and results of the signals of one pair.")
class PairStats:
    pair: str
    result_unit: ResultUnit
    total: int
    open: int = strawberry.field(description="Pending or open signals.")
    closed: int
    wins: int
    losses: int
    breakeven: int
    win_rate: Decimal | None = strawberry.field(
        description="Wins in percent of closed signals, two decimals; null when "
        "none is closed."
    )
    total_pips: Decimal
    total_percent: Decimal
    average_r: Decimal | None


@strawberry.type(
    description="Counts and results of signals. Closed signals count in the rates; "
    "cancelled ones count only in total. " + RULES
)
class SignalStats:
    total: int
    open: int = strawberry.field(description="Pending or open signals.")
    closed: int
    wins: int
    losses: int
    breakeven: int
    win_rate: Decimal | None = strawberry.field(
        description="Wins in percent of closed signals (breakeven included), two "
        "decimals rounded half up; null when none is closed."
    )
    total_pips: Decimal = strawberry.field(
        description="The sum of the results of pairs measured in pips."
    )
    total_percent: Decimal = strawberry.field(
        description="The sum of the results of pairs measured in percent."
    )
    average_r: Decimal | None = strawberry.field(
        description="The mean R multiple of closed signals; null when none is closed."
    )
    by_pair: list[PairStats]

    @classmethod
    def from_stats(cls, stats: StatsResult) -> Self:
        return cls(
            **_tally_fields(stats.overall),
            by_pair=[
                PairStats(
                    pair=pair,
                    result_unit=ResultUnit(result_unit(pair)),
                    **_tally_fields(tally),
                )
                for pair, tally in stats.by_pair.items()
            ],
        )


@strawberry.type(description="A Telegram user who follows the signals.")
class Subscriber:
    id: strawberry.ID
    telegram_user_id: BigInt
    username: str | None
    plan: str
    since: datetime
    expires_at: datetime | None
    status: SubscriberStatus
    lead: Lead | None

    @classmethod
    def from_view(cls, view: SubscriberView, now: datetime) -> Self:
        row = view.row
        return cls(
            id=strawberry.ID(str(row.id)),
            telegram_user_id=BigInt(row.telegram_user_id),
            username=row.username,
            plan=row.plan,
            since=row.since,
            expires_at=row.expires_at,
            status=SubscriberStatus(status_of(row, now)),
            lead=Lead.from_row(view.lead) if view.lead else None,
        )


@strawberry.type
class SubscriberPage:
    items: list[Subscriber]
    page: int
    page_size: int
    total: int

    @classmethod
    def from_result(cls, result: SubscriberPageResult, now: datetime) -> Self:
        return cls(
            items=[Subscriber.from_view(view, now) for view in result.items],
            page=result.page,
            page_size=result.page_size,
            total=result.total,
        )


@strawberry.input
class SignalDestinationInput:
    bot_id: strawberry.ID
    chat_id: BigInt = strawberry.field(
        description="The channel or group id, such as -1001234567890."
    )
    title: str | None = strawberry.field(
        default=None, description="Defaults to the chat's title on Telegram."
    )


@strawberry.input(
    description="A new signal. For long, stopLoss is below entry and takeProfits "
    "ascend above it; for short, the reverse."
)
class SignalInput:
    pair: str = strawberry.field(description="EURUSD; eurusd and EUR/USD work too.")
    direction: str = strawberry.field(description="long or short (or buy, sell).")
    entry: Decimal
    stop_loss: Decimal
    take_profits: list[Decimal] = strawberry.field(description="1 to 10 prices.")
    entry_high: Decimal | None = strawberry.field(
        default=None, description="The top of an entry zone that starts at entry."
    )
    note: str | None = None
    destinations: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Destination ids; each gets the post."
    )

    def to_draft(self) -> SignalDraft:
        return SignalDraft(
            pair=self.pair,
            direction=self.direction,
            entry=self.entry,
            stop_loss=self.stop_loss,
            take_profits=list(self.take_profits),
            entry_high=self.entry_high,
            note=self.note,
        )


@strawberry.input(
    description="A lifecycle event: level for tp_hit, price for close, nothing else."
)
class SignalEventInput:
    event: SignalEventType
    level: int | None = None
    price: Decimal | None = None


@strawberry.input
class AddSubscriberInput:
    telegram_user_id: BigInt
    plan: str
    username: str | None = None
    expires_at: datetime | None = strawberry.field(
        default=None, description="null for a subscription without an end."
    )
