"""Results of signals in pips, percent and R multiples, and their statistics.

Rules:
- A result is measured from the reference entry (the entry, or the middle of
  an entry zone) to the exit price, positive when the trade made money.
- Pip sizes: 0.1 for gold (XAUUSD); 0.01 for a pair of two fiat currency
  codes quoted in JPY (USDJPY); 0.0001 for any other pair of two fiat
  currency codes (EURUSD). Every other pair (crypto such as BTCUSDT, indices,
  metals other than gold) is measured in percent of the reference entry.
- An R multiple is the price move over the initial risk: the distance from
  the reference entry to the first stop loss.
- Pips are rounded to 0.1, percent and R to 0.01, half up. Totals and
  averages are computed from those rounded values, so they match what each
  signal shows.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, localcontext

from db.models import Signal

PIPS = "pips"
PERCENT = "percent"
PIP_STEP = Decimal("0.1")
PERCENT_STEP = Decimal("0.01")
R_STEP = Decimal("0.01")
# Digits for results: two valid prices can differ by 25 orders of magnitude.
RESULT_PRECISION = 60
GOLD_PIP = Decimal("0.1")
JPY_PIP = Decimal("0.01")
FOREX_PIP = Decimal("0.0001")

# ISO 4217 codes of currencies traded as forex pairs. CNH, the offshore
# yuan, is not an ISO code but is quoted like one.
FIAT_CURRENCIES = frozenset(
    {
        "AED", "AUD", "BGN", "BHD", "BRL", "CAD", "CHF", "CLP", "CNH", "CNY",
        "COP", "CZK", "DKK", "EGP", "EUR", "GBP", "HKD", "HUF", "IDR", "ILS",
        "INR", "ISK", "JPY", "KES", "KRW", "KWD", "MXN", "MYR", "NGN", "NOK",
        "NZD", "OMR", "PEN", "PHP", "PLN", "QAR", "RON", "RUB", "SAR", "SEK",
        "SGD", "THB", "TRY", "TWD", "UAH", "USD", "ZAR",
    }
)  # fmt: skip


def pip_size(pair: str) -> Decimal | None:
    """Return the pip size of a pair, or None when its results are in percent."""
    if pair == "XAUUSD":
        return GOLD_PIP
    base, quote = pair[:3], pair[3:]
    if len(pair) != 6 or base not in FIAT_CURRENCIES or quote not in FIAT_CURRENCIES:
        return None
    return JPY_PIP if quote == "JPY" else FOREX_PIP


def result_unit(pair: str) -> str:
    return PERCENT if pip_size(pair) is None else PIPS


def reference_entry(signal: Signal) -> Decimal:
    """Return the entry, or the middle of the entry zone when there is one."""
    if signal.entry_high is None:
        return signal.entry
    return (signal.entry + signal.entry_high) / 2


def price_move(signal: Signal, price: Decimal) -> Decimal:
    """Return how far ``price`` is from the entry in the trade's favour."""
    move = price - reference_entry(signal)
    return move if signal.direction == "long" else -move


def result_at(signal: Signal, price: Decimal) -> Decimal:
    """Return the result of exiting at ``price``, in the pair's unit."""
    # Enough precision for any ratio of two valid prices, quantized to 0.01.
    with localcontext(prec=RESULT_PRECISION):
        move = price_move(signal, price)
        size = pip_size(signal.pair)
        if size is None:
            percent = move / reference_entry(signal) * 100
            return percent.quantize(PERCENT_STEP, rounding=ROUND_HALF_UP)
        return (move / size).quantize(PIP_STEP, rounding=ROUND_HALF_UP)


def r_multiple_at(signal: Signal, price: Decimal) -> Decimal:
    with localcontext(prec=RESULT_PRECISION):
        risk = abs(reference_entry(signal) - signal.initial_stop_loss)
        ratio = price_move(signal, price) / risk
        return ratio.quantize(R_STEP, rounding=ROUND_HALF_UP)


def result_of(signal: Signal) -> Decimal | None:
    """Return a closed signal's result in its unit; None while it has no exit."""
    if signal.exit_price is None:
        return None
    return result_at(signal, signal.exit_price)


def r_multiple_of(signal: Signal) -> Decimal | None:
    if signal.exit_price is None:
        return None
    return r_multiple_at(signal, signal.exit_price)


@dataclass(slots=True)
class Tally:
    """Counts and sums over a set of signals."""

    total: int = 0
    open: int = 0
    closed: int = 0
    wins: int = 0
    losses: int = 0
    breakeven: int = 0
    total_pips: Decimal = Decimal("0.0")
    total_percent: Decimal = Decimal("0.00")
    r_values: list[Decimal] = field(default_factory=list)

    def add(self, signal: Signal) -> None:
        self.total += 1
        if signal.status in ("pending", "open"):
            self.open += 1
        if signal.status != "closed":
            return
        self.closed += 1
        if signal.outcome == "win":
            self.wins += 1
        elif signal.outcome == "loss":
            self.losses += 1
        else:
            self.breakeven += 1
        result = result_of(signal)
        r_multiple = r_multiple_of(signal)
        with localcontext(prec=RESULT_PRECISION):
            if result is not None and result_unit(signal.pair) == PIPS:
                self.total_pips += result
            elif result is not None:
                self.total_percent += result
        if r_multiple is not None:
            self.r_values.append(r_multiple)

    @property
    def win_rate(self) -> Decimal | None:
        """Wins in percent of closed signals (breakeven included), or None."""
        if self.closed == 0:
            return None
        rate = Decimal(self.wins) / Decimal(self.closed) * 100
        return rate.quantize(PERCENT_STEP, rounding=ROUND_HALF_UP)

    @property
    def average_r(self) -> Decimal | None:
        if not self.r_values:
            return None
        with localcontext(prec=RESULT_PRECISION):
            average = sum(self.r_values, Decimal(0)) / len(self.r_values)
            return average.quantize(R_STEP, rounding=ROUND_HALF_UP)


@dataclass(frozen=True, slots=True)
class SignalStats:
    overall: Tally
    # By pair, in alphabetical order of the pair.
    by_pair: dict[str, Tally]


def tally(signals: Iterable[Signal]) -> SignalStats:
    overall = Tally()
    by_pair: dict[str, Tally] = {}
    for signal in signals:
        overall.add(signal)
        by_pair.setdefault(signal.pair, Tally()).add(signal)
    return SignalStats(overall, dict(sorted(by_pair.items())))
