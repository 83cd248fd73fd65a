"""Resolvers of billing: modules, payments, transfers from the payment monitor."""

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

from db.models import Payment
from db.tenancy import scoped_session
from domain import billing
from domain.billing import IncomingTransfer, ModuleState, TransferOutcome
from domain.errors import InvalidInput
from resolvers.context import Context
from resolvers.ids import parse_id


async def modules(ctx: Context) -> list[ModuleState]:
    states = await ctx.loaders.module_states_by_tenant.load(ctx.tenant_id)
    return list(states.values())


async def payments(ctx: Context) -> list[Payment]:
    return await billing.list_payments(ctx.db)


async def payment(ctx: Context, payment_id: str) -> Payment:
    return await billing.get_payment(ctx.db, parse_id(payment_id, "Payment"))


async def set_module_enabled(
    ctx: Context, module: str, *, enabled: bool
) -> ModuleState:
    return await billing.set_module_enabled(
        ctx.db,
        ctx.tenant_id,
        module,
        enabled,
        config=ctx.settings.billing,
        now=ctx.now(),
    )


async def create_payment(ctx: Context, module: str, months: int) -> Payment:
    return await billing.create_payment(
        ctx.db, module, months, config=ctx.settings.billing, now=ctx.now()
    )


async def record_transfer(
    ctx: Context,
    *,
    txid: str,
    contract: str,
    sender: str,
    recipient: str,
    amount: str,
    block_number: int,
    block_timestamp_ms: int,
) -> TransferOutcome:
    """Record a transfer the payment monitor reported, in a session of its own.

    The matching payment can belong to any workspace, so no tenant scopes it.
    """
    transfer = IncomingTransfer(
        txid=_checked(txid, billing.TXID, "txid", "a 64-character hex transaction id"),
        contract=_address(contract, "contract"),
        from_address=_address(sender, "from"),
        to_address=_address(recipient, "to"),
        amount_units=billing.parse_usdt(
            _checked(amount, billing.PLAIN_DECIMAL, "amount", "a plain decimal string")
        ),
        block_number=_non_negative(block_number, "blockNumber"),
        block_timestamp=_timestamp(block_timestamp_ms),
    )
    async with ctx.sessions() as db:
        outcome = await billing.record_transfer(
            db, transfer, config=ctx.settings.billing, now=ctx.now()
        )
        await db.commit()
    return outcome


async def payment_updates(ctx: Context, payment_id: str) -> AsyncIterator[Payment]:
    """Yield the payment now and again each time its status changes.

    Polls the database, the only place state lives, so a payment credited by
    another process shows up too. Ends once the payment is paid or its amount
    is released.
    """
    tenant_id = ctx.tenant_id
    target = parse_id(payment_id, "Payment")
    last_status = None
    while True:
        # A short session per poll, so no transaction stays open between polls.
        async with scoped_session(ctx.sessions, tenant_id) as db:
            current = await billing.get_payment(db, target)
        now = ctx.now()
        status = billing.payment_status(current, now)
        if status != last_status:
            last_status = status
            yield current
        if status in ("paid", "paid_late") or now >= current.reserved_until:
            return
        await asyncio.sleep(ctx.settings.subscription_poll_seconds)


def _checked(value: str, pattern: re.Pattern[str], field: str, rule: str) -> str:
    if not pattern.fullmatch(value):
        raise InvalidInput(f"{field} must be {rule}", field=field)
    return value


def _address(value: str, field: str) -> str:
    return _checked(value, billing.TRON_ADDRESS, field, "a TRON base58 address")


def _non_negative(value: int, field: str) -> int:
    if value < 0:
        raise InvalidInput(f"{field} must not be negative", field=field)
    return value


def _timestamp(milliseconds: int) -> datetime:
    if not 0 < milliseconds < 10**14:
        raise InvalidInput(
            "blockTimestamp must be a Unix time in milliseconds", field="blockTimestamp"
        )
    seconds, remainder = divmod(milliseconds, 1000)
    return datetime.fromtimestamp(seconds, UTC) + timedelta(milliseconds=remainder)
