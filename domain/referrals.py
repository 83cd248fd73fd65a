"""Referral partners, their chains, and the workspace's commission plan.

Invariants:
- A partner is never its own ancestor: a parent change that would close a
  loop of any length is refused, under a lock on the tenant row so that two
  concurrent changes cannot close one together.
- No chain is deeper than the plan has levels.
- Rates are exact decimals in percent, each from 0 to 100, summing to at
  most 100.
"""

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Partner, ReferralSettings
from db.tenancy import lock_tenant
from domain.errors import InvalidInput, NotFound
from domain.validation import clean_text, normalize_email, optional_text

CODE_PATTERN = re.compile(r"[a-z0-9_-]{3,32}")
STATUSES = ("active", "suspended")
DEFAULT_RATES = (Decimal("30"), Decimal("10"), Decimal("5"))
MAX_LEVELS = 10
MAX_ORIGINS = 20
EDITABLE_FIELDS = frozenset({"name", "email", "status", "parent_code", "rate_override"})


@dataclass(frozen=True, slots=True)
class Plan:
    rates: tuple[Decimal, ...]
    allowed_origins: tuple[str, ...]


async def get_plan(session: AsyncSession) -> Plan:
    row = await _settings_row(session)
    if row is None:
        return Plan(rates=DEFAULT_RATES, allowed_origins=())
    return Plan(
        rates=tuple(Decimal(rate) for rate in row.rates),
        allowed_origins=tuple(row.allowed_origins),
    )


async def set_plan(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    rates: list[Decimal],
    *,
    now: datetime,
) -> Plan:
    checked = check_rates(rates)
    await lock_tenant(session, tenant_id)
    deepest = max(_depths(await all_partners(session)).values(), default=0)
    if deepest > len(checked):
        raise InvalidInput(
            f"A partner chain is {deepest} levels deep; the plan needs at least "
            f"{deepest} levels until that chain is shortened",
            field="rates",
        )
    for partner in (await all_partners(session)).values():
        _check_override_fits(partner.rate_override, checked, field="rates")
    row = await _editable_settings(session, now=now)
    row.rates = [format(rate, "f") for rate in checked]
    row.updated_at = now
    await session.flush()
    return await get_plan(session)


async def set_allowed_origins(
    session: AsyncSession, tenant_id: uuid.UUID, origins: list[str], *, now: datetime
) -> Plan:
    cleaned = [_check_origin(origin) for origin in origins]
    if len(cleaned) > MAX_ORIGINS:
        raise InvalidInput(
            f"At most {MAX_ORIGINS} origins are allowed", field="allowedOrigins"
        )
    await lock_tenant(session, tenant_id)
    row = await _editable_settings(session, now=now)
    row.allowed_origins = list(dict.fromkeys(cleaned))
    row.updated_at = now
    await session.flush()
    return await get_plan(session)


def check_rates(rates: list[Decimal]) -> tuple[Decimal, ...]:
    if not 1 <= len(rates) <= MAX_LEVELS:
        raise InvalidInput(f"rates must list 1 to {MAX_LEVELS} levels", field="rates")
    for level, rate in enumerate(rates, start=1):
        if not rate.is_finite() or not Decimal(0) <= rate <= Decimal(100):
            raise InvalidInput(
                f"rates: level {level} must be between 0 and 100, not {rate}",
                field="rates",
            )
    if sum(rates) > 100:
        raise InvalidInput(
            f"rates must sum to at most 100, not {format(sum(rates), 'f')}",
            field="rates",
        )
    return tuple(rates)


def parse_rate(value: Decimal | None, *, field: str) -> Decimal | None:
    if value is None:
        return None
    if not value.is_finite() or not Decimal(0) <= value <= Decimal(100):
        raise InvalidInput(f"{field} must be between 0 and 100", field=field)
    return value


def _check_override_fits(
    override: Decimal | None,
    rates: tuple[Decimal, ...],
    *,
    field: str = "level1RateOverride",
) -> None:
    """Keep a level-1 override plus the upline's rates within 100 percent."""
    if override is None:
        return
    total = override + sum(rates[1:], Decimal(0))
    if total > 100:
        raise InvalidInput(
            f"A level-1 rate of {format(override, 'f')} with the plan's other levels "
            f"would pay {format(total, 'f')} percent, over the maximum of 100",
            field=field,
        )


async def all_partners(session: AsyncSession) -> dict[uuid.UUID, Partner]:
    result = await session.execute(select(Partner))
    return {partner.id: partner for partner in result.scalars()}


async def get_partner(session: AsyncSession, partner_id: uuid.UUID) -> Partner:
    partner = await session.get(Partner, partner_id)
    if partner is None:
        raise NotFound("Partner")
    return partner


async def find_by_code(session: AsyncSession, code: str) -> Partner | None:
    result = await session.execute(select(Partner).where(Partner.code == code))
    return result.scalar_one_or_none()


def chain_of(partner: Partner, partners: Mapping[uuid.UUID, Partner]) -> list[Partner]:
    """Return the partner and its upline, nearest first."""
    chain = [partner]
    while chain[-1].parent_id is not None and len(chain) <= MAX_LEVELS:
        chain.append(partners[chain[-1].parent_id])
    return chain


def level_of(partner: Partner, partners: Mapping[uuid.UUID, Partner]) -> int:
    return len(chain_of(partner, partners))


async def create_partner(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    *,
    name: str,
    email: str | None,
    code: str,
    parent_code: str | None,
    now: datetime,
) -> Partner:
    name = clean_text(name, field="name", max_length=200)
    email_text = optional_text(email, field="email", max_length=320)
    code = _check_code(code)
    await lock_tenant(session, tenant_id)
    if await find_by_code(session, code) is not None:
        raise InvalidInput(f"code '{code}' is already taken", field="code")
    partners = await all_partners(session)
    plan = await get_plan(session)
    parent = await _parent_by_code(session, parent_code)
    if parent is not None and level_of(parent, partners) + 1 > len(plan.rates):
        raise InvalidInput(
            f"parentCode '{parent_code}' is at the plan's deepest level "
            f"({len(plan.rates)}); a partner below it would earn nothing",
            field="parentCode",
        )
    partner = Partner(
        name=name,
        email=normalize_email(email_text) if email_text else None,
        code=code,
        parent_id=parent.id if parent else None,
        status="active",
        created_at=now,
    )
    session.add(partner)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:
        raise InvalidInput(f"code '{code}' is already taken", field="code") from None
    return partner


async def update_partner(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    partner_id: uuid.UUID,
    changes: Mapping[str, Any],
) -> Partner:
    """Apply a partial update; ``parent_code`` None makes the partner a root."""
    assert set(changes) <= EDITABLE_FIELDS, f"unknown partner fields {changes}"
    await lock_tenant(session, tenant_id)
    partner = await get_partner(session, partner_id)
    if "name" in changes:
        if changes["name"] is None:
            raise InvalidInput("name must not be empty", field="name")
        partner.name = clean_text(changes["name"], field="name", max_length=200)
    if "email" in changes:
        text = optional_text(changes["email"], field="email", max_length=320)
        partner.email = normalize_email(text) if text else None
    if "status" in changes:
        if changes["status"] not in STATUSES:
            raise InvalidInput(
                f"status must be one of {', '.join(STATUSES)}", field="status"
            )
        partner.status = changes["status"]
    if "rate_override" in changes:
        override = parse_rate(changes["rate_override"], field="level1RateOverride")
        plan = await get_plan(session)
        _check_override_fits(override, plan.rates)
        partner.rate_override = override
    if "parent_code" in changes:
        await _move(session, partner, changes["parent_code"])
    await session.flush()
    return partner


async def _move(
    session: AsyncSession, partner: Partner, parent_code: str | None
) -> None:
    parent = await _parent_by_code(session, parent_code)
    partners = await all_partners(session)
    if parent is not None:
        if parent.id == partner.id:
            raise InvalidInput("A partner cannot be its own parent", field="parentCode")
        if any(above.id == partner.id for above in chain_of(parent, partners)):
            raise InvalidInput(
                f"parentCode '{parent_code}' is below this partner; the change "
                "would make a loop",
                field="parentCode",
            )
    plan = await get_plan(session)
    new_level = level_of(parent, partners) + 1 if parent else 1
    deepest_below = _height(partner, partners)
    if new_level + deepest_below - 1 > len(plan.rates):
        raise InvalidInput(
            f"The move would make a chain of {new_level + deepest_below - 1} "
            f"levels; the plan has {len(plan.rates)}",
            field="parentCode",
        )
    partner.parent_id = parent.id if parent else None


def _height(partner: Partner, partners: Mapping[uuid.UUID, Partner]) -> int:
    """Return the number of levels from this partner down to its deepest one."""
    children: dict[uuid.UUID, list[uuid.UUID]] = {}
    for other in partners.values():
        if other.parent_id is not None:
            children.setdefault(other.parent_id, []).append(other.id)
    height, frontier = 1, children.get(partner.id, [])
    while frontier:
        height += 1
        frontier = [child for node in frontier for child in children.get(node, [])]
    return height


def _depths(partners: Mapping[uuid.UUID, Partner]) -> dict[uuid.UUID, int]:
    return {partner.id: level_of(partner, partners) for partner in partners.values()}


async def _parent_by_code(session: AsyncSession, code: str | None) -> Partner | None:
    if code is None or not code.strip():
        return None
    parent = await find_by_code(session, code.strip())
    if parent is None:
        raise InvalidInput(f"parentCode '{code}' is not a partner", field="parentCode")
    return parent


def _check_code(code: str) -> str:
    code = code.strip()
    if not CODE_PATTERN.fullmatch(code):
        raise InvalidInput(
            "code must be 3 to 32 lowercase letters, digits, _ or -", field="code"
        )
    return code


def _check_origin(origin: str) -> str:
    parts = urlsplit(origin.strip())
    valid = (
        parts.scheme in ("http", "https")
        and parts.netloc
        and not parts.path.strip("/")
        and not parts.query
        and not parts.fragment
        and "@" not in parts.netloc
    )
    if not valid:
        raise InvalidInput(
            f"'{origin}' is not an origin such as https://partners.example.com",
            field="allowedOrigins",
        )
    host = parts.netloc.lower()
    # Browsers leave the default port out of Origin, so it is left out here.
    default_port = ":443" if parts.scheme == "https" else ":80"
    host = host.removesuffix(default_port)
    return f"{parts.scheme}://{host}"


async def _settings_row(session: AsyncSession) -> ReferralSettings | None:
    result = await session.execute(select(ReferralSettings))
    return result.scalar_one_or_none()


async def _editable_settings(
    session: AsyncSession, *, now: datetime
) -> ReferralSettings:
    row = await _settings_row(session)
    if row is None:
        row = ReferralSettings(
            rates=[format(rate, "f") for rate in DEFAULT_RATES],
            allowed_origins=[],
            updated_at=now,
        )
        session.add(row)
    return row
