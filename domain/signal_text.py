"""The Telegram HTML of a signal's post and of its lifecycle replies.

Prices appear with exactly the digits they were given, never rounded or in
exponent form. Every value a user typed is escaped.
"""

from decimal import Decimal

from db.models import Signal, SignalEvent
from domain.signal_results import PIPS, r_multiple_at, result_at, result_unit
from domain.telegram_html import escape


def price_text(value: Decimal) -> str:
    return format(value, "f")


def _code(value: Decimal) -> str:
    return f"<code>{price_text(value)}</code>"


def _headline(signal: Signal) -> str:
    marker = "🟢" if signal.direction == "long" else "🔴"
    side = "BUY" if signal.direction == "long" else "SELL"
    return f"{marker} <b>{escape(signal.pair)} {side}</b>"


def post_text(signal: Signal) -> str:
    """Return the post that announces a signal."""
    if signal.entry_high is None:
        entry = _code(signal.entry)
    else:
        entry = f"{_code(signal.entry)} to {_code(signal.entry_high)}"
    lines = [
        _headline(signal),
        "",
        f"Entry: {entry}",
        f"Stop loss: {_code(signal.initial_stop_loss)}",
    ]
    lines += [
        f"TP{level}: {_code(Decimal(price))}"
        for level, price in enumerate(signal.take_profits, start=1)
    ]
    if signal.note:
        lines += ["", f"<i>{escape(signal.note)}</i>"]
    return "\n".join(lines)


def _result_text(signal: Signal, price: Decimal) -> str:
    result = result_at(signal, price)
    unit = "pips" if result_unit(signal.pair) == PIPS else "%"
    sign = "+" if result > 0 else ""
    amount = f"{sign}{result} pips" if unit == "pips" else f"{sign}{result}%"
    r_multiple = r_multiple_at(signal, price)
    r_sign = "+" if r_multiple > 0 else ""
    return f"{amount}, {r_sign}{r_multiple}R"


def event_text(signal: Signal, event: SignalEvent) -> str:
    """Return the reply that reports a lifecycle event under the post."""
    name = f"<b>{escape(signal.pair)}</b>"
    if event.type == "activate":
        return f"✅ {name}: entry reached, the trade is open."
    if event.type == "tp_hit":
        assert event.level is not None
        price = Decimal(signal.take_profits[event.level - 1])
        result = _result_text(signal, price)
        return f"🎯 {name}: TP{event.level} hit at {_code(price)} ({result})."
    if event.type == "sl_hit":
        assert event.price is not None
        # After a take profit the trade is measured there, not at the stop.
        measured = signal.exit_price if signal.exit_price is not None else event.price
        result = _result_text(signal, measured)
        after = f" after TP{signal.tp_hit_level}" if signal.tp_hit_level else ""
        return f"🛑 {name}: stop loss hit at {_code(event.price)}{after} ({result})."
    if event.type == "breakeven":
        return f"🔒 {name}: stop moved to the entry, {_code(signal.stop_loss)}."
    if event.type == "close":
        assert event.price is not None
        result = _result_text(signal, event.price)
        return f"🏁 {name}: closed at {_code(event.price)} ({result})."
    return f"❌ {name}: signal cancelled."
