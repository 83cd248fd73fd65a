"""Add-on modules, their entitlements, and USDT (TRC-20) payments for them.

Invariants:
- A module is active while it is switched on and either in its trial or paid
  for. The CRM is not a module and is always on.
- Amounts are exact: prices are Decimal, payments are stored in USDT base
  units (6 decimals) and a transfer matches a payment only when the integer
  units are equal.
- No two reserved payments to one wallet quote the same amount. A partial
  unique index on (wallet, amount_units) WHERE reserved enforces it, and a
  reservation lasts through the late window after expiry.
- A transfer is recorded once (its txid is unique) and credits at most one
  payment, once.
"""

import logging
import random
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import ModuleEntitlement, Payment, Tenant, TronTransfer
from db.tenancy import SKIP_SCOPE_OPTION, lock_tenant
from domain.errors import DomainError, ErrorCode, InvalidInput, NotFound

logger = logging.getLogger(__name__)

MODULES = (
    "forwarder",
    "onboarding",
    "outreach",
    "copy_trading",
    "referrals",
    "templates",
)
MODULE_ALIASES = {"copy-trading": "copy_trading"}
DEFAULT_PRICES = {
    "forwarder": Decimal("49"),
    "onboarding": Decimal("39"),
    "outreach": Decimal("59"),
    "copy_trading": Decimal("79"),
    "referrals": Decimal("29"),
    "templates": Decimal("19"),
}
USDT_DECIMALS = 6
UNITS_PER_USDT = 10**USDT_DECIMALS
PERIOD = timedelta(days=30)
MAX_MONTHS = 12
# Far above any real payment, and its base units fit a signed 64-bit column.
MAX_USDT = Decimal(10) ** 12
PLAIN_DECIMAL = re.compile(r"[0-9]{1,13}(\.[0-9]{1,18})?")
MAINNET_USDT = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
TRON_ADDRESS = re.compile(r"T[1-9A-HJ-NP-Za-km-z]{33}")
TXID = re.compile(r"[0-9a-fA-F]{64}")
# Chain and server clocks differ a little; a transfer stamped this much before
# the payment was quoted still counts.
CLOCK_SKEW = timedelta(minutes=5)
ALLOCATION_ATTEMPTS = 20


class ServiceUnavailable(DomainError):
    code = ErrorCode.UNAVAILABLE


@dataclass(frozen=True, slots=True)
class BillingConfig:
    prices: Mapping[str, Decimal]
    trial: timedelta
    wallets: tuple[str, ...]
    expiry: timedelta
    late_window: timedelta
    step_units: int
    max_offset_units: int
    usdt_contracts: frozenset[str]


@dataclass(frozen=True, slots=True)
class ModuleState:
    module: str
    enabled: bool
    trial_ends_at: datetime
    paid_until: datetime | None
    price: Decimal

    def active(self, now: datetime) -> bool:
        paid = self.paid_until is not None and now < self.paid_until
        return self.enabled and (now < self.trial_ends_at or paid)


def parse_module(name: str) -> str:
    module = MODULE_ALIASES.get(name, name)
    if module not in MODULES:
        raise InvalidInput(
            f"module must be one of {', '.join(MODULES)}, not '{name[:40]}'",
            field="module",
        )
    return module


def format_units(units: int) -> str:
    """Render base units as a USDT amount in fixed point, without trailing zeros."""
    amount = (Decimal(units) / UNITS_PER_USDT).normalize()
    return format(amount, "f")


def parse_usdt(text: str, *, field: str = "amount") -> int:
    """Parse a decimal USDT amount into base units; more than 6 decimals is invalid."""
    try:
        amount = Decimal(text)
    except (InvalidOperation, TypeError):
        raise InvalidInput(f"{field} must be a decimal number", field=field) from None
    if not amount.is_finite() or amount <= 0:
        raise InvalidInput(f"{field} must be a positive number", field=field)
    if amount > MAX_USDT:
        raise InvalidInput(f"{field} is too large", field=field)
    units = amount * UNITS_PER_USDT
    if units != units.to_integral_value():
        raise InvalidInput(
            f"{field} has more than {USDT_DECIMALS} decimals", field=field
        )
    return int(units)


def seed_entitlements(
    session: AsyncSession, tenant_id: uuid.UUID, *, trial: timedelta, now: datetime
) -> None:
    """Give a new workspace a trial of every module, fixed from now.

    A later change of the trial setting leaves these rows as they are.
    """
    for module in MODULES:
        session.add(
            ModuleEntitlement(
                tenant_id=tenant_id,
                module=module,
                enabled=True,
                trial_ends_at=now + trial,
                paid_until=None,
                updated_at=now,
            )
        )


async def module_states(
    session: AsyncSession, tenant_id: uuid.UUID, config: BillingConfig
) -> dict[str, ModuleState]:
    """Return the state of every module for the session's workspace."""
    tenant = await session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound("Workspace")
    rows = {
        row.module: row
        for row in (await session.execute(select(ModuleEntitlement))).scalars()
    }
    states = {}
    for module in MODULES:
        row = rows.get(module)
        states[module] = ModuleState(
            module=module,
            # Registration writes a row per module; a workspace made before
            # billing existed has none and gets a trial from its creation.
            enabled=row.enabled if row else True,
            trial_ends_at=row.trial_ends_at
            if row
            else tenant.created_at + config.trial,
            paid_until=row.paid_until if row else None,
            price=config.prices[module],
        )
    return states


async def set_module_enabled(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    module: str,
    enabled: bool,
    *,
    config: BillingConfig,
    now: datetime,
) -> ModuleState:
    module = parse_module(module)
    # Lock the tenant row, so that concurrent first toggles create one
    # entitlement row between them, not one each.
    await lock_tenant(session, tenant_id)
    state = (await module_states(session, tenant_id, config))[module]
    if enabled and not ModuleState(
        module, True, state.trial_ends_at, state.paid_until, state.price
    ).active(now):
        raise InvalidInput(
            f"The {module} module's trial has ended and it is not paid for. Buy it "
            f"with POST /api/billing/create-payment "
            f'{{"module": "{module}", "months": 1}} and send the quoted USDT amount.',
            field="module",
        )
    row = await _entitlement(session, tenant_id, module, state, now=now)
    row.enabled = enabled
    row.updated_at = now
    await session.flush()
    return _state_of(row, config)


async def create_payment(
    session: AsyncSession,
    module: str,
    months: int,
    *,
    config: BillingConfig,
    now: datetime,
    rng: random.Random | None = None,
) -> Payment:
    """Quote a unique amount for ``months`` of ``module`` to one of the wallets."""
    module = parse_module(module)
    if not 1 <= months <= MAX_MONTHS:
        raise InvalidInput(f"months must be between 1 and {MAX_MONTHS}", field="months")
    if not config.wallets:
        raise ServiceUnavailable(
            "Payments are not available: no receiving wallet is configured "
            "(IBHQ_TRON_WALLETS)"
        )
    await release_reservations(session, now=now)
    base_units = parse_usdt(str(config.prices[module] * months))
    rng = rng or random.SystemRandom()

    for _attempt in range(ALLOCATION_ATTEMPTS):
        wallet, units = await _free_amount(session, base_units, config, rng)
        payment = Payment(
            module=module,
            months=months,
            amount_units=units,
            wallet=wallet,
            status="pending",
            reserved=True,
            created_at=now,
            expires_at=now + config.expiry,
            reserved_until=now + config.expiry + config.late_window,
        )
        try:
            async with session.begin_nested():
                session.add(payment)
                await session.flush()
        except IntegrityError:
            # A concurrent request took this amount first; pick another.
            continue
        return payment
    raise ServiceUnavailable("Could not reserve a unique amount; try again shortly")


async def _free_amount(
    session: AsyncSession, base_units: int, config: BillingConfig, rng: random.Random
) -> tuple[str, int]:
    offsets = range(config.step_units, config.max_offset_units + 1, config.step_units)
    taken = set(
        (
            await session.execute(
                select(Payment.wallet, Payment.amount_units).where(
                    Payment.reserved.is_(True),
                    Payment.wallet.in_(config.wallets),
                    Payment.amount_units.between(
                        base_units + offsets.start, base_units + offsets.stop
                    ),
                ),
                execution_options={SKIP_SCOPE_OPTION: True},
            )
        ).all()
    )
    free = [
        (wallet, base_units + offset)
        for wallet in config.wallets
        for offset in offsets
        if (wallet, base_units + offset) not in taken
    ]
    if not free:
        raise ServiceUnavailable(
            "Every payment amount at this price is reserved; try again later"
        )
    return rng.choice(free)


async def release_reservations(session: AsyncSession, *, now: datetime) -> None:
    """Mark overdue payments expired and free amounts past their late window."""
    every_tenant = {SKIP_SCOPE_OPTION: True}
    await session.execute(
        update(Payment)
        .where(Payment.status == "pending", Payment.expires_at <= now)
        .values(status="expired"),
        execution_options=every_tenant,
    )
    await session.execute(
        update(Payment)
        .where(Payment.reserved.is_(True), Payment.reserved_until <= now)
        .values(reserved=False),
        execution_options=every_tenant,
    )


def payment_status(payment: Payment, now: datetime) -> str:
    if payment.status == "pending" and now >= payment.expires_at:
        return "expired"
    return payment.status


async def list_payments(session: AsyncSession) -> list[Payment]:
    result = await session.execute(
        select(Payment).order_by(Payment.created_at.desc(), Payment.id)
    )
    return list(result.scalars())


async def get_payment(session: AsyncSession, payment_id: uuid.UUID) -> Payment:
    payment = await session.get(Payment, payment_id)
    if payment is None:
        raise NotFound("Payment")
    return payment


@dataclass(frozen=True, slots=True)
class IncomingTransfer:
    txid: str
    contract: str
    from_address: str
    to_address: str
    amount_units: int
    block_number: int
    block_timestamp: datetime


@dataclass(frozen=True, slots=True)
class TransferOutcome:
    status: str
    payment_id: uuid.UUID | None = None


async def record_transfer(
    session: AsyncSession,
    transfer: IncomingTransfer,
    *,
    config: BillingConfig,
    now: datetime,
) -> TransferOutcome:
    """Record a transfer and credit the payment it matches, if any.

    Use a session that no tenant scopes: the matching payment may belong to
    any workspace. Commits nothing; the caller does.
    """
    row = TronTransfer(
        txid=transfer.txid.lower(),
        contract=transfer.contract,
        from_address=transfer.from_address,
        to_address=transfer.to_address,
        amount_units=transfer.amount_units,
        block_number=transfer.block_number,
        block_timestamp=transfer.block_timestamp,
        status="unmatched",
        received_at=now,
    )
    try:
        async with session.begin_nested():
            session.add(row)
            await session.flush()
    except IntegrityError:
        return TransferOutcome("duplicate")

    if transfer.contract not in config.usdt_contracts:
        row.status, row.detail = (
            "ignored",
            "token contract is not an allowed USDT contract",
        )
    elif transfer.to_address not in config.wallets:
        row.status, row.detail = "ignored", "recipient is not a receiving wallet"
    else:
        payment = await _matching_payment(session, transfer)
        if payment is not None:
            await _credit(session, payment, row, config=config, now=now)
            return TransferOutcome("matched", payment.id)
        logger.warning(
            "unmatched transfer %s of %s USDT to %s",
            row.txid,
            format_units(row.amount_units),
            row.to_address,
        )
    await session.flush()
    return TransferOutcome(row.status)


async def _matching_payment(
    session: AsyncSession, transfer: IncomingTransfer
) -> Payment | None:
    return (
        await session.execute(
            select(Payment)
            .where(
                Payment.wallet == transfer.to_address,
                Payment.amount_units == transfer.amount_units,
                Payment.reserved.is_(True),
                Payment.status.in_(("pending", "expired")),
                Payment.created_at <= transfer.block_timestamp + CLOCK_SKEW,
                Payment.reserved_until >= transfer.block_timestamp,
            )
            .with_for_update()
        )
    ).scalar_one_or_none()


async def _credit(
    session: AsyncSession,
    payment: Payment,
    transfer: TronTransfer,
    *,
    config: BillingConfig,
    now: datetime,
) -> None:
    late = transfer.block_timestamp > payment.expires_at
    payment.status = "paid_late" if late else "paid"
    payment.paid_at = now
    payment.txid = transfer.txid
    transfer.status = "matched"
    transfer.payment_id = payment.id
    await extend_module(
        session,
        payment.tenant_id,
        payment.module,
        payment.months,
        trial=config.trial,
        now=now,
    )
    await session.flush()
    logger.info(
        "payment %s of tenant %s paid by %s",
        payment.id,
        payment.tenant_id,
        transfer.txid,
    )


async def extend_module(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    module: str,
    months: int,
    *,
    trial: timedelta,
    now: datetime,
) -> ModuleEntitlement:
    """Extend a module's paid period by whole 30-day periods and switch it on.

    The tenant row is locked first (PostgreSQL; SQLite serialises writers), so
    two payments credited at once both count instead of one overwriting the
    other's extension, and only one of them creates a missing entitlement row.
    """
    await lock_tenant(session, tenant_id)
    row = (
        await session.execute(
            select(ModuleEntitlement).where(
                ModuleEntitlement.tenant_id == tenant_id,
                ModuleEntitlement.module == module,
            )
        )
    ).scalar_one_or_none()
    if row is None:
        tenant = await session.get(Tenant, tenant_id)
        assert tenant is not None
        row = ModuleEntitlement(
            tenant_id=tenant_id,
            module=module,
            enabled=True,
            trial_ends_at=tenant.created_at + trial,
            paid_until=None,
            updated_at=now,
        )
        session.add(row)
    start = max(now, row.paid_until) if row.paid_until else now
    row.paid_until = start + months * PERIOD
    row.enabled = True
    row.updated_at = now
    return row


async def _entitlement(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    module: str,
    state: ModuleState,
    *,
    now: datetime,
) -> ModuleEntitlement:
    row = (
        await session.execute(
            select(ModuleEntitlement).where(ModuleEntitlement.module == module)
        )
    ).scalar_one_or_none()
    if row is None:
        row = ModuleEntitlement(
            tenant_id=tenant_id,
            module=module,
            enabled=state.enabled,
            trial_ends_at=state.trial_ends_at,
            paid_until=state.paid_until,
            updated_at=now,
        )
        session.add(row)
    return row


def _state_of(row: ModuleEntitlement, config: BillingConfig) -> ModuleState:
    return ModuleState(
        module=row.module,
        enabled=row.enabled,
        trial_ends_at=row.trial_ends_at,
        paid_until=row.paid_until,
        price=config.prices[row.module],
    )


async def list_transfers(
    session: AsyncSession, *, status: str | None = None
) -> list[TronTransfer]:
    statement = select(TronTransfer).order_by(TronTransfer.block_timestamp.desc())
    if status is not None:
        statement = statement.where(TronTransfer.status == status)
    return list((await session.execute(statement)).scalars())


async def list_all_payments(session: AsyncSession) -> list[Payment]:
    """List every workspace's payments, for the operator; use an unscoped session."""
    result = await session.execute(
        select(Payment).order_by(Payment.created_at.desc(), Payment.id)
    )
    return list(result.scalars())


async def resolve_transfer(
    session: AsyncSession,
    txid: str,
    payment_id: uuid.UUID,
    *,
    config: BillingConfig,
    now: datetime,
) -> Payment:
    """Credit an unmatched transfer to a payment by an operator's decision.

    The amounts may differ (a payer sent a little too much or too little);
    the operator has checked. The payment must not be paid already.
    """
    transfer = (
        await session.execute(
            select(TronTransfer)
            .where(TronTransfer.txid == txid.lower())
            .with_for_update()
        )
    ).scalar_one_or_none()
    if transfer is None:
        raise NotFound(f"Transfer {txid}")
    if transfer.status != "unmatched":
        raise InvalidInput(
            f"Transfer {txid} is {transfer.status}, not unmatched", field="txid"
        )
    payment = (
        await session.execute(
            select(Payment).where(Payment.id == payment_id).with_for_update()
        )
    ).scalar_one_or_none()
    if payment is None:
        raise NotFound(f"Payment {payment_id}")
    if payment.status in ("paid", "paid_late"):
        raise InvalidInput(f"Payment {payment_id} is already {payment.status}")
    await _credit(session, payment, transfer, config=config, now=now)
    transfer.detail = "resolved by an operator"
    await session.flush()
    return payment
