"""The lifecycle of a signal: events, the state changes they make, and replies.

States move pending -> open -> closed, or pending -> cancelled; nothing is
recorded on a closed or cancelled signal. Each event is stored with its time,
and its reply to the post in every destination is queued in the same
transaction.

Outcome of a closed signal:
- win when a take profit was hit before the stop, or when it is closed by
  hand at a price in profit;
- loss when the stop is hit first, or when it is closed by hand at a loss;
- breakeven when the stop was moved to the entry and then hit, or when it is
  closed by hand exactly at the entry.
A signal stopped out after a take profit is measured at the highest take
profit hit. A signal closed by hand is measured at its close price alone.
"""

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Job, Signal, SignalDelivery, SignalEvent
from domain.errors import InvalidInput
from domain.outbox import FAILED, enqueue_message
from domain.signal_results import price_move, reference_entry
from domain.signal_text import event_text
from domain.signals import EVENTS, check_price, get_signal


async def record_event(
    session: AsyncSession,
    signal_id: uuid.UUID,
    *,
    event: str,
    level: int | None,
    price: Decimal | None,
    now: datetime,
) -> Signal:
    """Apply a lifecycle event and queue its reply under each post."""
    signal = await get_signal(session, signal_id, for_update=True)
    _check_event_fields(event, level=level, price=price)
    recorded = _apply(signal, event, level=level, price=price, now=now)
    session.add(recorded)
    signal.updated_at = now
    await session.flush()
    await _queue_replies(session, signal, recorded, now=now)
    return signal


def _check_event_fields(
    event: str, *, level: int | None, price: Decimal | None
) -> None:
    if event not in EVENTS:
        raise InvalidInput(f"event must be one of {', '.join(EVENTS)}", field="event")
    if event == "tp_hit" and level is None:
        raise InvalidInput("level is required for tp_hit", field="level")
    if event != "tp_hit" and level is not None:
        raise InvalidInput("level is only allowed with tp_hit", field="level")
    if event == "close" and price is None:
        raise InvalidInput("price is required for close", field="price")
    if event != "close" and price is not None:
        raise InvalidInput("price is only allowed with close", field="price")
    if price is not None:
        check_price(price, field="price")


def _apply(
    signal: Signal,
    event: str,
    *,
    level: int | None,
    price: Decimal | None,
    now: datetime,
) -> SignalEvent:
    """Move the signal to its next state; raise InvalidInput for an impossible event."""
    if signal.status in ("closed", "cancelled"):
        raise InvalidInput(
            f"The signal is {signal.status}; no more events can be recorded",
            field="event",
        )
    if event == "activate":
        _require(signal, "pending", "it is already open")
        signal.status = "open"
        signal.opened_at = now
    elif event == "cancel":
        _require(signal, "pending", "an open signal is ended with close at a price")
        signal.status = "cancelled"
        signal.closed_at = now
    else:
        _require(signal, "open", "activate it first")
        if event == "tp_hit":
            assert level is not None
            _hit_take_profit(signal, level, now=now)
        elif event == "sl_hit":
            price = signal.stop_loss
            _close(signal, _stop_exit(signal), now=now, after_stop=True)
        elif event == "breakeven":
            _move_stop_to_entry(signal)
        else:
            assert price is not None
            _close(signal, price, now=now, after_stop=False)
    return SignalEvent(
        signal_id=signal.id, type=event, level=level, price=price, occurred_at=now
    )


def _require(signal: Signal, status: str, hint: str) -> None:
    if signal.status != status:
        raise InvalidInput(
            f"This event needs a signal that is {status}, and the signal is "
            f"{signal.status}; {hint}",
            field="event",
        )


def _hit_take_profit(signal: Signal, level: int, *, now: datetime) -> None:
    count = len(signal.take_profits)
    if not 1 <= level <= count:
        raise InvalidInput(
            f"level must be between 1 and {count}, the signal's take profits",
            field="level",
        )
    if signal.tp_hit_level is not None and level <= signal.tp_hit_level:
        raise InvalidInput(
            f"TP{signal.tp_hit_level} is already hit; level must be above it",
            field="level",
        )
    signal.tp_hit_level = level
    if level == count:
        _close(signal, Decimal(signal.take_profits[-1]), now=now, after_stop=False)


def _stop_exit(signal: Signal) -> Decimal:
    """Return where a stopped signal is measured: at its best take profit, if any."""
    if signal.tp_hit_level is not None:
        return Decimal(signal.take_profits[signal.tp_hit_level - 1])
    return signal.stop_loss


def _move_stop_to_entry(signal: Signal) -> None:
    entry = reference_entry(signal)
    if signal.stop_loss == entry:
        raise InvalidInput("The stop loss is already at the entry", field="event")
    signal.stop_loss = entry


def _close(
    signal: Signal, exit_price: Decimal, *, now: datetime, after_stop: bool
) -> None:
    """Close the signal; a take profit hit before the stop makes it a win."""
    move = price_move(signal, exit_price)
    if (
        (after_stop and signal.tp_hit_level is not None)
        or signal.tp_hit_level == len(signal.take_profits)
        or move > 0
    ):
        outcome = "win"
    elif move < 0:
        outcome = "loss"
    else:
        outcome = "breakeven"
    signal.status = "closed"
    signal.outcome = outcome
    signal.exit_price = exit_price
    signal.closed_at = now


async def _queue_replies(
    session: AsyncSession, signal: Signal, event: SignalEvent, *, now: datetime
) -> None:
    """Queue the event's reply under the post in each destination that still exists."""
    posts = (
        await session.execute(
            select(SignalDelivery, Job)
            .outerjoin(Job, Job.id == SignalDelivery.job_id)
            .where(
                SignalDelivery.signal_id == signal.id,
                SignalDelivery.event_id.is_(None),
                SignalDelivery.destination_id.is_not(None),
            )
            .order_by(SignalDelivery.created_at, SignalDelivery.id)
        )
    ).all()
    text = event_text(signal, event)
    for post, job in posts:
        if job is None or job.status == FAILED:
            # No post to reply under: the bot was removed or Telegram refused it.
            continue
        reply = await enqueue_message(
            session,
            key=f"signal:{signal.id}:event:{event.id}:{post.destination_id}",
            bot_id=job.bot_id,
            chat_id=post.chat_id,
            text=text,
            now=now,
            reply_to_job_id=job.id,
        )
        session.add(
            SignalDelivery(
                signal_id=signal.id,
                event_id=event.id,
                destination_id=post.destination_id,
                chat_id=post.chat_id,
                title=post.title,
                job_id=reply.id,
                created_at=now,
            )
        )
    await session.flush()
