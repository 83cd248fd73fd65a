"""Signals: trade ideas posted to destinations, and their lifecycle.

Invariants:
- Prices are exact decimals, stored and shown with the digits given.
- A signal and the outbox jobs of its post commit together; every lifecycle
  event and the jobs of its replies commit together too.
- The lifecycle and its rules are in ``domain.signal_lifecycle``.
"""

import itertools
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Job, Signal, SignalDelivery, SignalEvent
from domain.destinations import get_destination
from domain.errors import InvalidInput, NotFound
from domain.outbox import enqueue_message
from domain.paging import check_paging, count_rows, one_page
from domain.signal_results import SignalStats, tally
from domain.signal_text import post_text, price_text
from domain.validation import optional_text

DIRECTIONS = {"long": "long", "buy": "long", "short": "short", "sell": "short"}
PAIR_PATTERN = re.compile(r"[A-Z0-9]{3,20}")
PAIR_SEPARATORS = re.compile(r"[/\-_\s]")
MAX_TAKE_PROFITS = 10
MAX_DESTINATIONS = 20
MAX_NOTE_LENGTH = 1000
MAX_SIGNIFICANT_DIGITS = 20
MAX_PRICE_LENGTH = 40
# Prices from 1e-12 (tiny tokens) up to, but not including, 1e13.
MIN_PRICE_EXPONENT = -12
MAX_PRICE_EXPONENT = 12
STATUS_FILTERS = {
    "open": ("pending", "open"),
    "pending": ("pending",),
    "closed": ("closed",),
    "cancelled": ("cancelled",),
}
EVENTS = ("activate", "tp_hit", "sl_hit", "breakeven", "close", "cancel")


@dataclass(frozen=True, slots=True)
class SignalDraft:
    pair: str
    direction: str
    entry: Decimal
    stop_loss: Decimal
    take_profits: list[Decimal]
    entry_high: Decimal | None = None
    note: str | None = None
    destination_ids: tuple[uuid.UUID, ...] = ()


@dataclass(frozen=True, slots=True)
class Delivery:
    """A queued message with its outbox job; the job is None once it is deleted."""

    row: SignalDelivery
    job: Job | None


@dataclass(frozen=True, slots=True)
class SignalView:
    row: Signal
    events: list[SignalEvent]
    # The post's deliveries, one per destination.
    deliveries: list[Delivery]
    # Reply deliveries by event id.
    replies: dict[uuid.UUID, list[Delivery]]


@dataclass(frozen=True, slots=True)
class SignalPage:
    items: list[SignalView]
    page: int
    page_size: int
    total: int


def normalize_pair(value: str) -> str:
    pair = PAIR_SEPARATORS.sub("", value)
    # Check before upper(), which turns some letters into ASCII ones: ß to SS.
    if not pair.isascii() or not PAIR_PATTERN.fullmatch(pair.upper()):
        raise InvalidInput(
            "pair must be 3 to 20 letters or digits, such as EURUSD or EUR/USD",
            field="pair",
        )
    return pair.upper()


def normalize_direction(value: str) -> str:
    direction = DIRECTIONS.get(value.strip().lower())
    if direction is None:
        raise InvalidInput(
            "direction must be long or short (buy and sell are accepted too)",
            field="direction",
        )
    return direction


def check_price(value: Decimal, *, field: str) -> Decimal:
    if not value.is_finite() or value <= 0:
        raise InvalidInput(f"{field} must be a positive price", field=field)
    # Bounds first: writing out 1e-999999999 would take a billion characters.
    if not MIN_PRICE_EXPONENT <= value.adjusted() <= MAX_PRICE_EXPONENT:
        raise InvalidInput(
            f"{field} must be between 1e{MIN_PRICE_EXPONENT} and "
            f"1e{MAX_PRICE_EXPONENT + 1}",
            field=field,
        )
    digits = len(value.as_tuple().digits)
    if digits > MAX_PRICE_LENGTH:
        raise InvalidInput(
            f"{field} must have at most {MAX_PRICE_LENGTH} digits", field=field
        )
    digits = len(value.normalize().as_tuple().digits)
    if digits > MAX_SIGNIFICANT_DIGITS or len(price_text(value)) > MAX_PRICE_LENGTH:
        raise InvalidInput(
            f"{field} must have at most {MAX_SIGNIFICANT_DIGITS} significant digits "
            f"and {MAX_PRICE_LENGTH} characters",
            field=field,
        )
    return value


def check_draft(draft: SignalDraft) -> SignalDraft:
    """Normalise and check a new signal; raise InvalidInput naming the field."""
    direction = normalize_direction(draft.direction)
    entry = check_price(draft.entry, field="entry")
    entry_high = None
    if draft.entry_high is not None:
        entry_high = check_price(draft.entry_high, field="entryHigh")
        if entry_high <= entry:
            raise InvalidInput(
                "entryHigh must be above entry: the zone runs from entry up to "
                "entryHigh",
                field="entryHigh",
            )
    stop_loss = check_price(draft.stop_loss, field="stopLoss")
    take_profits = _check_take_profits(draft.take_profits)
    _check_sides(direction, entry, entry_high or entry, stop_loss, take_profits)
    return SignalDraft(
        pair=normalize_pair(draft.pair),
        direction=direction,
        entry=entry,
        entry_high=entry_high,
        stop_loss=stop_loss,
        take_profits=take_profits,
        note=optional_text(draft.note, field="note", max_length=MAX_NOTE_LENGTH),
        destination_ids=tuple(dict.fromkeys(draft.destination_ids)),
    )


def _check_take_profits(values: list[Decimal]) -> list[Decimal]:
    if not 1 <= len(values) <= MAX_TAKE_PROFITS:
        raise InvalidInput(
            f"takeProfits must list 1 to {MAX_TAKE_PROFITS} prices",
            field="takeProfits",
        )
    return [check_price(value, field="takeProfits") for value in values]


def _check_sides(
    direction: str,
    entry_low: Decimal,
    entry_high: Decimal,
    stop_loss: Decimal,
    take_profits: list[Decimal],
) -> None:
    """Check that the stop is on the losing side and the targets on the other."""
    if direction == "long":
        stop_ok = stop_loss < entry_low
        targets_ok = take_profits[0] > entry_high
        ordered = all(a < b for a, b in itertools.pairwise(take_profits))
        stop_rule, target_rule, order = "below", "above", "ascending"
    else:
        stop_ok = stop_loss > entry_high
        targets_ok = take_profits[0] < entry_low
        ordered = all(a > b for a, b in itertools.pairwise(take_profits))
        stop_rule, target_rule, order = "above", "below", "descending"
    if not stop_ok:
        raise InvalidInput(
            f"stopLoss must be {stop_rule} the entry for a {direction} signal",
            field="stopLoss",
        )
    if not targets_ok:
        raise InvalidInput(
            f"takeProfits must be {target_rule} the entry for a {direction} signal",
            field="takeProfits",
        )
    if not ordered:
        raise InvalidInput(
            f"takeProfits must be in {order} order for a {direction} signal, "
            "each one further from the entry",
            field="takeProfits",
        )


async def create_signal(
    session: AsyncSession, draft: SignalDraft, *, now: datetime
) -> Signal:
    """Create a signal and queue its post to each destination named."""
    checked = check_draft(draft)
    if len(checked.destination_ids) > MAX_DESTINATIONS:
        raise InvalidInput(
            f"destinations must list at most {MAX_DESTINATIONS} ids",
            field="destinations",
        )
    destinations = [
        await get_destination(session, destination_id)
        for destination_id in checked.destination_ids
    ]
    signal = Signal(
        pair=checked.pair,
        direction=checked.direction,
        entry=checked.entry,
        entry_high=checked.entry_high,
        stop_loss=checked.stop_loss,
        initial_stop_loss=checked.stop_loss,
        take_profits=[price_text(price) for price in checked.take_profits],
        note=checked.note,
        status="pending",
        created_at=now,
        updated_at=now,
    )
    session.add(signal)
    await session.flush()
    text = post_text(signal)
    for destination in destinations:
        job = await enqueue_message(
            session,
            key=f"signal:{signal.id}:post:{destination.id}",
            bot_id=destination.bot_id,
            chat_id=destination.chat_id,
            text=text,
            now=now,
        )
        session.add(
            SignalDelivery(
                signal_id=signal.id,
                destination_id=destination.id,
                chat_id=destination.chat_id,
                title=destination.title,
                job_id=job.id,
                created_at=now,
            )
        )
    await session.flush()
    return signal


async def get_signal(
    session: AsyncSession, signal_id: uuid.UUID, *, for_update: bool = False
) -> Signal:
    """Fetch a signal of the session's workspace; another tenant's is NOT_FOUND."""
    signal = await session.get(Signal, signal_id, with_for_update=for_update)
    if signal is None:
        raise NotFound("Signal")
    return signal


async def list_signals(
    session: AsyncSession,
    *,
    status: str | None = None,
    pair: str | None = None,
    period_start: datetime | None = None,
    period_end: datetime | None = None,
    page: int = 1,
    page_size: int = 20,
) -> SignalPage:
    """List signals, newest first; ``period_start <= createdAt < period_end``."""
    check_paging(page, page_size)
    conditions = signal_filters(
        pair=pair, period_start=period_start, period_end=period_end
    )
    if status is not None:
        if status not in STATUS_FILTERS:
            raise InvalidInput(
                "status must be one of open (pending or open), pending, closed, "
                "cancelled",
                field="status",
            )
        conditions.append(Signal.status.in_(STATUS_FILTERS[status]))
    total = await count_rows(session, Signal, conditions)
    rows = await session.execute(
        one_page(
            select(Signal)
            .where(*conditions)
            .order_by(Signal.created_at.desc(), Signal.id.desc()),
            page,
            page_size,
        )
    )
    views = await signal_views(session, list(rows.scalars()))
    return SignalPage(views, page=page, page_size=page_size, total=total)


def signal_filters(
    *,
    pair: str | None,
    period_start: datetime | None,
    period_end: datetime | None,
) -> list[ColumnElement[bool]]:
    """Return the WHERE conditions shared by the listing and the statistics."""
    conditions: list[ColumnElement[bool]] = []
    if pair is not None and pair.strip():
        conditions.append(Signal.pair == normalize_pair(pair))
    if period_start and period_end and period_end <= period_start:
        raise InvalidInput("to must be later than from", field="to")
    if period_start is not None:
        conditions.append(Signal.created_at >= period_start)
    if period_end is not None:
        conditions.append(Signal.created_at < period_end)
    return conditions


async def signal_views(
    session: AsyncSession, signals: list[Signal]
) -> list[SignalView]:
    """Load the events and deliveries of many signals with three queries."""
    ids = [signal.id for signal in signals]
    if not ids:
        return []
    events = (
        await session.execute(
            select(SignalEvent)
            .where(SignalEvent.signal_id.in_(ids))
            .order_by(SignalEvent.occurred_at, SignalEvent.id)
        )
    ).scalars()
    rows = (
        await session.execute(
            select(SignalDelivery, Job)
            .outerjoin(Job, Job.id == SignalDelivery.job_id)
            .where(SignalDelivery.signal_id.in_(ids))
            .order_by(SignalDelivery.created_at, SignalDelivery.chat_id)
        )
    ).all()
    events_by_signal: dict[uuid.UUID, list[SignalEvent]] = {key: [] for key in ids}
    for event in events:
        events_by_signal[event.signal_id].append(event)
    posts: dict[uuid.UUID, list[Delivery]] = {key: [] for key in ids}
    replies: dict[uuid.UUID, list[Delivery]] = {}
    for delivery, job in rows:
        if delivery.event_id is None:
            posts[delivery.signal_id].append(Delivery(delivery, job))
        else:
            replies.setdefault(delivery.event_id, []).append(Delivery(delivery, job))
    return [
        SignalView(signal, events_by_signal[signal.id], posts[signal.id], replies)
        for signal in signals
    ]


async def signal_stats(
    session: AsyncSession,
    *,
    pair: str | None = None,
    period_start: datetime | None = None,
    period_end: datetime | None = None,
) -> SignalStats:
    """Count and measure the signals created in the period, overall and by pair."""
    conditions = signal_filters(
        pair=pair, period_start=period_start, period_end=period_end
    )
    # NOTE: every matching signal is loaded and measured in Python, because
    # results need exact Decimal arithmetic per signal. Move the counting into
    # SQL if a workspace's signals reach the hundreds of thousands.
    rows = await session.execute(select(Signal).where(*conditions))
    return tally(rows.scalars())
