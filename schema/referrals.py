"""Referral types: partners, the commission plan, conversions and commissions."""

from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Self

import strawberry
from strawberry.types import Info

from db.models import Commission as CommissionRow
from db.models import Conversion as ConversionRow
from domain.commissions import DEFAULT_CURRENCY
from domain.referrals import Plan
from resolvers import referrals as referral_resolvers
from resolvers.context import Context
from resolvers.referrals import PartnerView


@strawberry.enum
class PartnerStatus(Enum):
    active = "active"
    suspended = "suspended"


@strawberry.type(description="A partner's commission sums in one currency.")
class CommissionTotals:
    currency: str
    pending: Decimal
    approved: Decimal
    paid: Decimal


@strawberry.type(description="A referral partner (sub-IB) and its earnings.")
class Partner:
    id: strawberry.ID
    name: str
    email: str | None
    code: str
    parent_id: strawberry.ID | None
    status: PartnerStatus
    level: int = strawberry.field(description="1 for a partner with no parent.")
    level1_rate_override: Decimal | None
    conversions: int
    pending_commission: Decimal = strawberry.field(
        description="Pending commissions in USDT; see commissionTotals for others."
    )
    approved_commission: Decimal = strawberry.field(description="In USDT.")
    paid_commission: Decimal = strawberry.field(description="In USDT.")
    commission_totals: list["CommissionTotals"] = strawberry.field(
        description="Sums by currency, one entry per currency earned in."
    )
    created_at: datetime

    @classmethod
    def from_view(cls, view: PartnerView) -> Self:
        row = view.row
        usdt = view.totals.of(DEFAULT_CURRENCY)
        return cls(
            id=strawberry.ID(str(row.id)),
            name=row.name,
            email=row.email,
            code=row.code,
            parent_id=strawberry.ID(str(row.parent_id)) if row.parent_id else None,
            status=PartnerStatus(row.status),
            level=view.level,
            level1_rate_override=row.rate_override,
            conversions=view.totals.conversions,
            pending_commission=usdt.pending,
            approved_commission=usdt.approved,
            paid_commission=usdt.paid,
            commission_totals=[
                CommissionTotals(
                    currency=totals.currency,
                    pending=totals.pending,
                    approved=totals.approved,
                    paid=totals.paid,
                )
                for totals in view.totals.by_currency.values()
            ],
            created_at=row.created_at,
        )


@strawberry.type(
    description="Level rates in percent; level 1 is the converting partner."
)
class CommissionPlan:
    rates: list[Decimal]
    allowed_origins: list[str] = strawberry.field(
        description="Browser origins whose pages may send referral applications."
    )

    @classmethod
    def from_plan(cls, plan: Plan) -> Self:
        return cls(rates=list(plan.rates), allowed_origins=list(plan.allowed_origins))


@strawberry.type(description="One partner's share of a conversion at one level.")
class Commission:
    id: strawberry.ID
    partner_id: strawberry.ID
    level: int
    rate: Decimal
    amount: Decimal
    currency: str
    kind: str = strawberry.field(description="commission, or reversal of a paid one.")
    status: str = strawberry.field(description="pending, approved, paid or void.")
    created_at: datetime
    paid_at: datetime | None

    @classmethod
    def from_row(cls, row: CommissionRow) -> Self:
        return cls(
            id=strawberry.ID(str(row.id)),
            partner_id=strawberry.ID(str(row.partner_id)),
            level=row.level,
            rate=row.rate,
            amount=row.amount,
            currency=row.currency,
            kind=row.kind,
            status=row.status,
            created_at=row.created_at,
            paid_at=row.paid_at,
        )


@strawberry.type(description="A client a partner brought.")
class Conversion:
    id: strawberry.ID
    partner_id: strawberry.ID
    converted_name: str
    value: Decimal | None
    currency: str
    external_id: str | None
    lead_id: strawberry.ID | None
    status: str = strawberry.field(description="pending, approved or void.")
    created_at: datetime
    row: strawberry.Private[ConversionRow]

    @strawberry.field(description="Commissions by level, then reversals.")
    async def commissions(self, info: Info[Context, None]) -> list[Commission]:
        rows = await referral_resolvers.commissions_of(info.context, self.row.id)
        return [Commission.from_row(row) for row in rows]

    @classmethod
    def from_row(cls, row: ConversionRow) -> Self:
        return cls(
            id=strawberry.ID(str(row.id)),
            partner_id=strawberry.ID(str(row.partner_id)),
            converted_name=row.converted_name,
            value=row.value,
            currency=row.currency,
            external_id=row.external_id,
            lead_id=strawberry.ID(str(row.lead_id)) if row.lead_id else None,
            status=row.status,
            created_at=row.created_at,
            row=row,
        )


@strawberry.input
class CreatePartnerInput:
    name: str
    code: str
    email: str | None = None
    parent_code: str | None = None


@strawberry.input
class UpdatePartnerInput:
    name: str | None = strawberry.UNSET
    email: str | None = strawberry.UNSET
    status: PartnerStatus | None = strawberry.UNSET
    parent_code: str | None = strawberry.field(
        default=strawberry.UNSET, description="null makes the partner a root."
    )
    level1_rate_override: Decimal | None = strawberry.UNSET


@strawberry.input
class ConversionInput:
    partner_code: str
    converted_name: str
    value: Decimal | None = None
    currency: str | None = None
    external_id: str | None = None
    lead_id: strawberry.ID | None = None


@strawberry.input(description="An application from a referral landing page.")
class ReferralApplicationInput:
    tenant_slug: str
    partner_code: str
    full_name: str
    email: str
    phone: str | None = None
    telegram: str | None = None
    website: str | None = strawberry.field(
        default=None,
        description="A honeypot for bots: a request that fills it creates nothing.",
    )


@strawberry.type
class ApplicationReceipt:
    status: str
