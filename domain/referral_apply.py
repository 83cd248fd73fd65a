"""The public referral application, sent from a partner's landing page.

It is the one write open to the internet, so it is rate limited per client
address and per workspace, returns the same 400 for an unknown workspace,
an unknown partner code and a suspended partner, creates nothing for a
filled honeypot field, refuses browser origins the workspace has not allowed,
and turns a repeat within a day into the same lead.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.engine import RequestSession
from db.models import Lead, Tenant
from db.tenancy import lock_tenant, scoped_session
from domain import commissions, leads, ratelimits
from domain.errors import Forbidden, InvalidInput
from domain.referrals import find_by_code, get_plan
from domain.timeline import add_system_entry
from domain.validation import clean_text, normalize_email

UNKNOWN = "Unknown workspace or partner code"
REPEAT_WINDOW = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class ApplyLimits:
    per_address: ratelimits.Limit
    per_workspace: ratelimits.Limit


@dataclass(frozen=True, slots=True)
class Application:
    tenant_slug: str
    partner_code: str
    full_name: str
    email: str
    phone: str | None
    telegram: str | None
    honeypot: str | None


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """The outcome of an application, with the origin to grant CORS to, if any."""

    lead_id: uuid.UUID | None
    conversion_id: uuid.UUID | None
    created: bool
    allowed_origin: str | None


async def find_tenant(session: AsyncSession, slug: str) -> Tenant | None:
    result = await session.execute(select(Tenant).where(Tenant.slug == slug.strip()))
    return result.scalar_one_or_none()


async def apply(
    sessions: async_sessionmaker[RequestSession],
    application: Application,
    *,
    client_address: str,
    origin: str | None,
    limits: ApplyLimits,
    now: datetime,
) -> ApplyResult:
    await _count(sessions, f"apply:address:{client_address}", limits.per_address, now)
    if application.honeypot:
        # Looks like success to the bot that filled the hidden field, but
        # grants its origin nothing.
        return ApplyResult(None, None, created=False, allowed_origin=None)

    async with sessions() as db:
        tenant = await find_tenant(db, application.tenant_slug)
    if tenant is None:
        raise InvalidInput(UNKNOWN)
    await _count(sessions, f"apply:tenant:{tenant.id}", limits.per_workspace, now)

    async with scoped_session(sessions, tenant.id) as db:
        result = await _apply_in_workspace(
            db, tenant.id, application, origin=origin, now=now
        )
        await db.commit()
    return result


async def _apply_in_workspace(
    db: AsyncSession,
    tenant_id: uuid.UUID,
    application: Application,
    *,
    origin: str | None,
    now: datetime,
) -> ApplyResult:
    # Serialise applications of one workspace, so that concurrent repeats find
    # the first one's lead instead of each creating their own.
    await lock_tenant(db, tenant_id)
    # The partner is checked first, so that a caller who does not know a valid
    # code learns nothing more from a refused origin than from a wrong code.
    partner = await find_by_code(db, application.partner_code.strip())
    if partner is None or partner.status != "active":
        raise InvalidInput(UNKNOWN)
    plan = await get_plan(db)
    if origin is not None and origin not in plan.allowed_origins:
        raise Forbidden(
            f"Origin {origin} is not allowed to send applications to this workspace"
        )
    full_name = clean_text(application.full_name, field="fullName", max_length=200)
    email = normalize_email(application.email)

    repeat = (
        await db.execute(
            select(Lead)
            .where(
                Lead.email == email,
                Lead.partner_id == partner.id,
                Lead.created_at >= now - REPEAT_WINDOW,
            )
            .order_by(Lead.created_at)
            .limit(1)
        )
    ).scalar_one_or_none()
    if repeat is not None:
        return ApplyResult(repeat.id, None, created=False, allowed_origin=origin)

    lead = await leads.create_lead(
        db,
        None,
        {
            "full_name": full_name,
            "email": email,
            "phone": application.phone,
            "telegram": application.telegram,
            "source": "referral",
            "partner_id": partner.id,
        },
        now=now,
    )
    add_system_entry(
        db,
        lead,
        f"Applied through referral partner {partner.name} ({partner.code})",
        author_id=None,
        now=now,
    )
    recorded = await commissions.record_conversion(
        db,
        partner_code=partner.code,
        converted_name=full_name,
        value=None,
        currency=None,
        external_id=None,
        lead_id=lead.id,
        now=now,
    )
    return ApplyResult(
        lead.id, recorded.conversion.id, created=True, allowed_origin=origin
    )


async def _count(
    sessions: async_sessionmaker[RequestSession],
    key: str,
    limit: ratelimits.Limit,
    now: datetime,
) -> None:
    # Counted and committed on their own, so a request that fails later
    # still counts against its limit.
    async with sessions() as db:
        try:
            await ratelimits.hit(
                db,
                key,
                limit,
                now=now,
                message="Too many applications; try again later",
            )
        finally:
            await db.commit()
