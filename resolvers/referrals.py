"""Resolvers of referrals: partners, the commission plan, conversions, applications."""

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from db.models import Commission, Conversion, Partner
from domain import commissions, referral_apply, referrals
from domain.commissions import PartnerTotals
from domain.errors import InvalidInput
from domain.referral_apply import Application, ApplyResult
from domain.referrals import Plan
from resolvers.context import Context
from resolvers.ids import parse_id


@dataclass(frozen=True, slots=True)
class PartnerView:
    """A partner with what is computed from its chain and its commissions."""

    row: Partner
    level: int
    totals: PartnerTotals


async def partner_views(
    ctx: Context, rows: list[Partner] | None = None
) -> list[PartnerView]:
    everyone = await referrals.all_partners(ctx.db)
    chosen = (
        rows
        if rows is not None
        else sorted(
            everyone.values(), key=lambda partner: (partner.created_at, partner.code)
        )
    )
    totals = await commissions.partner_totals(ctx.db, [row.id for row in chosen])
    return [
        PartnerView(row, referrals.level_of(row, everyone), totals[row.id])
        for row in chosen
    ]


async def partner(ctx: Context, partner_id: str) -> PartnerView:
    row = await referrals.get_partner(ctx.db, parse_id(partner_id, "Partner"))
    return (await partner_views(ctx, [row]))[0]


async def create_partner(
    ctx: Context, *, name: str, email: str | None, code: str, parent_code: str | None
) -> PartnerView:
    row = await referrals.create_partner(
        ctx.db,
        ctx.tenant_id,
        name=name,
        email=email,
        code=code,
        parent_code=parent_code,
        now=ctx.now(),
    )
    return (await partner_views(ctx, [row]))[0]


async def update_partner(
    ctx: Context, partner_id: str, changes: Mapping[str, Any]
) -> PartnerView:
    row = await referrals.update_partner(
        ctx.db, ctx.tenant_id, parse_id(partner_id, "Partner"), changes
    )
    return (await partner_views(ctx, [row]))[0]


async def plan(ctx: Context) -> Plan:
    return await referrals.get_plan(ctx.db)


async def set_plan(ctx: Context, rates: list[Decimal]) -> Plan:
    return await referrals.set_plan(ctx.db, ctx.tenant_id, rates, now=ctx.now())


async def set_allowed_origins(ctx: Context, origins: list[str]) -> Plan:
    return await referrals.set_allowed_origins(
        ctx.db, ctx.tenant_id, origins, now=ctx.now()
    )


async def conversions(ctx: Context) -> list[Conversion]:
    return await commissions.list_conversions(ctx.db)


async def commissions_of(ctx: Context, conversion_id: uuid.UUID) -> list[Commission]:
    result: list[Commission] = await ctx.loaders.commissions_by_conversion.load(
        conversion_id
    )
    return result


async def record_conversion(
    ctx: Context,
    *,
    partner_code: str,
    converted_name: str,
    value: Decimal | None,
    currency: str | None,
    external_id: str | None,
    lead_id: str | None,
) -> Conversion:
    recorded = await commissions.record_conversion(
        ctx.db,
        partner_code=partner_code,
        converted_name=converted_name,
        value=value,
        currency=currency,
        external_id=external_id,
        lead_id=_lead_id(lead_id),
        now=ctx.now(),
    )
    return recorded.conversion


async def complete_conversion(
    ctx: Context, conversion_id: str, *, value: Decimal, currency: str | None
) -> Conversion:
    return await commissions.complete_conversion(
        ctx.db,
        parse_id(conversion_id, "Conversion"),
        value=value,
        currency=currency,
        now=ctx.now(),
    )


async def approve_conversion(ctx: Context, conversion_id: str) -> Conversion:
    return await commissions.approve_conversion(
        ctx.db, parse_id(conversion_id, "Conversion"), now=ctx.now()
    )


async def void_conversion(ctx: Context, conversion_id: str) -> Conversion:
    return await commissions.void_conversion(
        ctx.db, parse_id(conversion_id, "Conversion"), now=ctx.now()
    )


async def mark_paid(
    ctx: Context, partner_id: str, *, period_start: datetime, period_end: datetime
) -> list[Commission]:
    return await commissions.mark_paid(
        ctx.db,
        parse_id(partner_id, "Partner"),
        period_start=period_start,
        period_end=period_end,
        now=ctx.now(),
    )


async def apply(ctx: Context, application: Application) -> ApplyResult:
    result = await referral_apply.apply(
        ctx.sessions,
        application,
        client_address=ctx.client_address,
        origin=ctx.origin,
        limits=ctx.settings.apply_limits,
        now=ctx.now(),
    )
    if result.allowed_origin is not None:
        ctx.effects.cors_origin = result.allowed_origin
    return result


def _lead_id(value: str | None) -> uuid.UUID | None:
    if value is None:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidInput(
            "leadId is not a lead of this workspace", field="leadId"
        ) from None
