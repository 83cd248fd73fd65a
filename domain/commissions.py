"""Conversions and the multi-level commissions they pay.

Invariants:
- Commissions are exact decimals rounded half-up to the currency's places.
  A conversion's commissions never sum to more than its value times the rates
  used, because any rounding excess is taken back from the deepest levels.
- Nothing is deleted: voiding a conversion voids its unpaid commissions and
  adds a negative reversal for each paid one, to be settled with the next
  payout.
- An external id names one conversion per workspace; a repeat, concurrent or
  not, returns the first and creates nothing.
"""

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Commission, Conversion, Lead, Partner
from domain.errors import InvalidInput, NotFound
from domain.referrals import all_partners, chain_of, find_by_code, get_plan
from domain.validation import clean_text, optional_text

# Places commissions are rounded to; any other valid code gets two.
CURRENCY_PLACES = {"BTC": 8, "ETH": 8}
DEFAULT_PLACES = 2
DEFAULT_CURRENCY = "USDT"
CURRENCY_PATTERN = re.compile(r"[A-Z]{3,5}")
MAX_VALUE = Decimal("1000000000000")


@dataclass(frozen=True, slots=True)
class RecordedConversion:
    conversion: Conversion
    created: bool


def places_of(currency: str) -> int:
    return CURRENCY_PLACES.get(currency, DEFAULT_PLACES)


def check_currency(currency: str | None) -> str:
    code = (currency or DEFAULT_CURRENCY).strip().upper()
    if not CURRENCY_PATTERN.fullmatch(code):
        raise InvalidInput(
            "currency must be a code of 3 to 5 letters", field="currency"
        )
    return code


def check_value(value: Decimal) -> Decimal:
    if not value.is_finite() or value <= 0 or value > MAX_VALUE:
        raise InvalidInput("value must be a positive amount", field="value")
    return value


def split_commissions(
    value: Decimal, rates: list[Decimal], places: int
) -> list[Decimal]:
    """Return each level's amount, rounded half-up, never summing past the cap.

    The cap is the exact ``value * sum(rates) / 100``. Rounding every level up
    can pass it by a few units; those are taken back from the deepest level
    first, and no amount goes below zero.
    """
    unit = Decimal(1).scaleb(-places)
    amounts = [
        (value * rate / 100).quantize(unit, rounding=ROUND_HALF_UP) for rate in rates
    ]
    cap = value * sum(rates, Decimal(0)) / 100
    index = len(amounts) - 1
    while sum(amounts, Decimal(0)) > cap and index >= 0:
        if amounts[index] >= unit:
            amounts[index] -= unit
        else:
            index -= 1
    return amounts


async def record_conversion(
    session: AsyncSession,
    *,
    partner_code: str,
    converted_name: str,
    value: Decimal | None,
    currency: str | None,
    external_id: str | None,
    lead_id: uuid.UUID | None,
    now: datetime,
) -> RecordedConversion:
    converted_name = clean_text(converted_name, field="convertedName", max_length=200)
    external = optional_text(external_id, field="externalId", max_length=200)
    code = check_currency(currency)
    if value is not None:
        check_value(value)
    if external is not None and (existing := await _by_external_id(session, external)):
        return RecordedConversion(existing, created=False)
    partner = await find_by_code(session, partner_code.strip())
    if partner is None:
        raise InvalidInput(
            f"partnerCode '{partner_code}' is not a partner", field="partnerCode"
        )
    if lead_id is not None and await session.get(Lead, lead_id) is None:
        raise InvalidInput("leadId is not a lead of this workspace", field="leadId")

    conversion = Conversion(
        partner_id=partner.id,
        converted_name=converted_name,
        value=value,
        currency=code,
        external_id=external,
        lead_id=lead_id,
        status="pending",
        created_at=now,
        updated_at=now,
    )
    try:
        async with session.begin_nested():
            session.add(conversion)
            await session.flush()
    except IntegrityError:
        # A concurrent request recorded the same external id first.
        assert external is not None
        first = await _by_external_id(session, external)
        assert first is not None
        return RecordedConversion(first, created=False)
    if value is not None:
        await _add_commissions(session, conversion, partner, now=now)
    await session.flush()
    return RecordedConversion(conversion, created=True)


async def complete_conversion(
    session: AsyncSession,
    conversion_id: uuid.UUID,
    *,
    value: Decimal,
    currency: str | None,
    now: datetime,
) -> Conversion:
    """Give a value to a conversion recorded without one; compute its commissions."""
    conversion = await get_conversion(session, conversion_id, for_update=True)
    if conversion.value is not None:
        raise InvalidInput("This conversion already has a value", field="value")
    if conversion.status != "pending":
        raise InvalidInput(f"This conversion is {conversion.status}", field="id")
    conversion.value = check_value(value)
    if currency is not None:
        conversion.currency = check_currency(currency)
    conversion.updated_at = now
    partner = await session.get(Partner, conversion.partner_id)
    assert partner is not None
    await _add_commissions(session, conversion, partner, now=now)
    await session.flush()
    return conversion


async def approve_conversion(
    session: AsyncSession, conversion_id: uuid.UUID, *, now: datetime
) -> Conversion:
    conversion = await get_conversion(session, conversion_id, for_update=True)
    if conversion.status != "pending":
        raise InvalidInput(
            "Only a pending conversion can be approved; "
            f"this one is {conversion.status}"
        )
    if conversion.value is None:
        raise InvalidInput(
            "Give the conversion a value before approving it", field="value"
        )
    conversion.status = "approved"
    conversion.updated_at = now
    await session.execute(
        update(Commission)
        .where(
            Commission.conversion_id == conversion.id, Commission.status == "pending"
        )
        .values(status="approved")
    )
    await session.flush()
    return conversion


async def void_conversion(
    session: AsyncSession, conversion_id: uuid.UUID, *, now: datetime
) -> Conversion:
    conversion = await get_conversion(session, conversion_id, for_update=True)
    if conversion.status == "void":
        raise InvalidInput("This conversion is already void")
    rows = (
        await session.execute(
            select(Commission).where(
                Commission.conversion_id == conversion.id,
                Commission.kind == "commission",
            )
        )
    ).scalars()
    for commission in rows:
        if commission.status in ("pending", "approved"):
            commission.status = "void"
        elif commission.status == "paid":
            session.add(
                Commission(
                    conversion_id=conversion.id,
                    partner_id=commission.partner_id,
                    level=commission.level,
                    rate=commission.rate,
                    amount=-commission.amount,
                    currency=commission.currency,
                    kind="reversal",
                    status="pending",
                    created_at=now,
                )
            )
    conversion.status = "void"
    conversion.updated_at = now
    await session.flush()
    return conversion


async def mark_paid(
    session: AsyncSession,
    partner_id: uuid.UUID,
    *,
    period_start: datetime,
    period_end: datetime,
    now: datetime,
) -> list[Commission]:
    """Mark a partner's approved commissions of a period paid; return them.

    Pending reversals of the partner, written when a paid commission's
    conversion was voided, are settled with this payout too.
    """
    if period_end <= period_start:
        raise InvalidInput("to must be after from", field="to")
    if await session.get(Partner, partner_id) is None:
        raise NotFound("Partner")
    rows = list(
        (
            await session.execute(
                select(Commission)
                .where(
                    Commission.partner_id == partner_id,
                    or_(
                        and_(
                            Commission.status == "approved",
                            Commission.created_at >= period_start,
                            Commission.created_at < period_end,
                        ),
                        and_(
                            Commission.kind == "reversal",
                            Commission.status == "pending",
                            Commission.created_at < period_end,
                        ),
                    ),
                )
                .with_for_update()
            )
        ).scalars()
    )
    for commission in rows:
        commission.status = "paid"
        commission.paid_at = now
    await session.flush()
    return rows


async def get_conversion(
    session: AsyncSession, conversion_id: uuid.UUID, *, for_update: bool = False
) -> Conversion:
    conversion = await session.get(
        Conversion, conversion_id, with_for_update=for_update
    )
    if conversion is None:
        raise NotFound("Conversion")
    return conversion


async def list_conversions(session: AsyncSession) -> list[Conversion]:
    result = await session.execute(
        select(Conversion).order_by(Conversion.created_at.desc(), Conversion.id)
    )
    return list(result.scalars())


async def commissions_by_conversion(
    session: AsyncSession, conversion_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[Commission]]:
    result = await session.execute(
        select(Commission)
        .where(Commission.conversion_id.in_(conversion_ids))
        .order_by(Commission.kind, Commission.level, Commission.created_at)
    )
    grouped: dict[uuid.UUID, list[Commission]] = {key: [] for key in conversion_ids}
    for commission in result.scalars():
        grouped[commission.conversion_id].append(commission)
    return grouped


@dataclass(frozen=True, slots=True)
class CurrencyTotals:
    currency: str
    pending: Decimal
    approved: Decimal
    paid: Decimal


@dataclass(frozen=True, slots=True)
class PartnerTotals:
    """A partner's conversion count and commission sums, kept apart by currency."""

    conversions: int
    by_currency: dict[str, CurrencyTotals]

    def of(self, currency: str) -> CurrencyTotals:
        zero = Decimal(0).quantize(Decimal(1).scaleb(-places_of(currency)))
        return self.by_currency.get(
            currency, CurrencyTotals(currency, zero, zero, zero)
        )


async def partner_totals(
    session: AsyncSession, partner_ids: list[uuid.UUID]
) -> dict[uuid.UUID, PartnerTotals]:
    """Sum each partner's commissions by currency and status; count its conversions."""
    sums: dict[uuid.UUID, dict[str, dict[str, Decimal]]] = {
        key: {} for key in partner_ids
    }
    commissions = await session.execute(
        select(
            Commission.partner_id,
            Commission.currency,
            Commission.status,
            Commission.amount,
        ).where(Commission.partner_id.in_(partner_ids))
    )
    for partner_id, currency, status, amount in commissions:
        zero = Decimal(0).quantize(Decimal(1).scaleb(-places_of(currency)))
        by_status = sums[partner_id].setdefault(
            currency, {"pending": zero, "approved": zero, "paid": zero}
        )
        if status in by_status:
            by_status[status] += amount
    counts: dict[uuid.UUID, int] = dict.fromkeys(partner_ids, 0)
    conversions = await session.execute(
        select(Conversion.partner_id).where(
            Conversion.partner_id.in_(partner_ids), Conversion.status != "void"
        )
    )
    for (partner_id,) in conversions:
        counts[partner_id] += 1
    return {
        key: PartnerTotals(
            conversions=counts[key],
            by_currency={
                currency: CurrencyTotals(
                    currency,
                    by_status["pending"],
                    by_status["approved"],
                    by_status["paid"],
                )
                for currency, by_status in sorted(sums[key].items())
            },
        )
        for key in partner_ids
    }


async def _add_commissions(
    session: AsyncSession, conversion: Conversion, partner: Partner, *, now: datetime
) -> None:
    assert conversion.value is not None
    plan = await get_plan(session)
    partners: Mapping[uuid.UUID, Partner] = await all_partners(session)
    chain = chain_of(partner, partners)[: len(plan.rates)]
    earners: list[tuple[int, Partner, Decimal]] = []
    for level, (member, rate) in enumerate(zip(chain, plan.rates, strict=False), 1):
        if level == 1 and member.rate_override is not None:
            rate = member.rate_override
        # A suspended partner earns nothing new; the levels above still do.
        if member.status == "active":
            earners.append((level, member, rate))
    amounts = split_commissions(
        conversion.value,
        [rate for _, _, rate in earners],
        places_of(conversion.currency),
    )
    for (level, member, rate), amount in zip(earners, amounts, strict=True):
        session.add(
            Commission(
                conversion_id=conversion.id,
                partner_id=member.id,
                level=level,
                rate=rate,
                amount=amount,
                currency=conversion.currency,
                kind="commission",
                status="pending",
                created_at=now,
            )
        )


async def _by_external_id(session: AsyncSession, external_id: str) -> Conversion | None:
    result = await session.execute(
        select(Conversion).where(Conversion.external_id == external_id)
    )
    return result.scalar_one_or_none()
