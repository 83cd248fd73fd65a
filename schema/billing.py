"""Billing types: add-on modules, USDT payments, and transfers from the monitor."""

from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Self

import strawberry
from strawberry.types import Info

from db.models import Payment as PaymentRow
from domain.billing import ModuleState, TransferOutcome, payment_status
from resolvers import billing as billing_resolvers
from resolvers.context import Context
from schema.scalars import BigInt


@strawberry.enum
class PaymentStatus(Enum):
    pending = "pending"
    paid = "paid"
    expired = "expired"
    paid_late = "paid_late"


@strawberry.type(description="An add-on module and this workspace's right to it.")
class BillingModule:
    module: str
    enabled: bool = strawberry.field(description="Switched on by the workspace.")
    active: bool = strawberry.field(
        description="Enabled and in trial or paid for: its APIs respond."
    )
    trial_ends_at: datetime
    paid_until: datetime | None
    price: Decimal = strawberry.field(description="USDT per 30 days.")

    @classmethod
    def from_state(cls, state: ModuleState, now: datetime) -> Self:
        return cls(
            module=state.module,
            enabled=state.enabled,
            active=state.active(now),
            trial_ends_at=state.trial_ends_at,
            paid_until=state.paid_until,
            price=state.price,
        )


@strawberry.type(description="A quoted USDT payment for months of a module.")
class Payment:
    id: strawberry.ID
    module: str
    months: int
    amount: Decimal = strawberry.field(
        description="The exact USDT amount to send; any other amount is not matched."
    )
    currency: str
    network: str
    wallet: str
    status: PaymentStatus
    created_at: datetime
    expires_at: datetime
    paid_at: datetime | None
    txid: str | None

    @classmethod
    def from_row(cls, row: PaymentRow, now: datetime) -> Self:
        return cls(
            id=strawberry.ID(str(row.id)),
            module=row.module,
            months=row.months,
            amount=Decimal(row.amount_units).scaleb(-6).normalize(),
            currency="USDT",
            network="TRC20",
            wallet=row.wallet,
            status=PaymentStatus(payment_status(row, now)),
            created_at=row.created_at,
            expires_at=row.expires_at,
            paid_at=row.paid_at,
            txid=row.txid,
        )


@strawberry.type
class Billing:
    @strawberry.field
    async def modules(self, info: Info[Context, None]) -> list[BillingModule]:
        now = info.context.now()
        states = await billing_resolvers.modules(info.context)
        return [BillingModule.from_state(state, now) for state in states]

    @strawberry.field(description="This workspace's payments, newest first.")
    async def payments(self, info: Info[Context, None]) -> list[Payment]:
        now = info.context.now()
        rows = await billing_resolvers.payments(info.context)
        return [Payment.from_row(row, now) for row in rows]


@strawberry.input
class CreatePaymentInput:
    module: str
    months: int


@strawberry.input(description="A TRC-20 transfer, as the payment monitor reports it.")
class TronTransferInput:
    txid: str
    contract: str
    from_: str = strawberry.field(name="from")
    to: str
    amount: str = strawberry.field(description="A decimal string, such as 49.0037.")
    block_number: BigInt
    block_timestamp: BigInt = strawberry.field(description="Unix time in ms.")


@strawberry.type
class TransferResult:
    status: str = strawberry.field(
        description="matched, unmatched, duplicate or ignored."
    )
    payment_id: strawberry.ID | None

    @classmethod
    def from_outcome(cls, outcome: TransferOutcome) -> Self:
        payment_id = (
            strawberry.ID(str(outcome.payment_id)) if outcome.payment_id else None
        )
        return cls(status=outcome.status, payment_id=payment_id)
