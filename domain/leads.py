"""CRM leads: create, read, update, delete, with their timeline.

Creating a lead, and changing its stage or owner, writes a system entry into
the timeline in the same transaction as the change itself.
"""

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Lead, User
from domain.auth import Viewer
from domain.clock import Clock
from domain.errors import InvalidInput, NotFound
from domain.paging import check_paging, count_rows, one_page
from domain.pipeline import LOST_STAGE, list_stages, require_stage
from domain.timeline import add_system_entry
from domain.validation import clean_text, normalize_email, optional_text

SOURCES = ("manual", "onboarding_bot", "referral", "outreach", "import")
DEFAULT_PAGE_SIZE = 20
MAX_TAGS = 50
PHONE_PATTERN = re.compile(r"\+?[0-9][0-9 ().\-]{3,38}")
TELEGRAM_USERNAME = re.compile(r"@?([A-Za-z][A-Za-z0-9_]{3,31})")
TELEGRAM_ID = re.compile(r"-?[0-9]{1,20}")
EDITABLE_FIELDS = frozenset(
    {
        "full_name", "email", "phone", "telegram", "pipeline_stage", "source",
        "tags", "notes", "lost_reason", "owner_id", "partner_id",
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class LeadPage:
    items: list[Lead]
    page: int
    page_size: int
    total: int


async def get_lead(
    session: AsyncSession, lead_id: uuid.UUID, *, for_update: bool = False
) -> Lead:
    """Fetch a lead of the session's workspace; another tenant's is NOT_FOUND too."""
    lead = await session.get(Lead, lead_id, with_for_update=for_update)
    if lead is None:
        raise NotFound("Lead")
    return lead


async def list_leads(
    session: AsyncSession,
    *,
    stage: str | None = None,
    query: str | None = None,
    page: int = 1,
    page_size: int = DEFAULT_PAGE_SIZE,
) -> LeadPage:
    check_paging(page, page_size)

    conditions = []
    if stage:
        await require_stage(session, stage, field="stage")
        conditions.append(Lead.pipeline_stage == stage)
    if query and query.strip():
        text = clean_text(query, field="q", max_length=200)
        pattern = "%" + _escape_like(text) + "%"
        conditions.append(
            or_(
                *(
                    column.ilike(pattern, escape="\\")
                    for column in (
                        Lead.full_name,
                        Lead.email,
                        Lead.phone,
                        Lead.telegram,
                    )
                )
            )
        )

    total = await count_rows(session, Lead, conditions)
    rows = await session.execute(
        one_page(
            select(Lead)
            .where(*conditions)
            .order_by(Lead.created_at.desc(), Lead.id.desc()),
            page,
            page_size,
        )
    )
    return LeadPage(
        items=list(rows.scalars()), page=page, page_size=page_size, total=total
    )


async def lead_of_telegram_user(
    session: AsyncSession, telegram_user_id: int
) -> Lead | None:
    """Return the workspace's lead for a Telegram user, if there is one."""
    return (
        await session.execute(
            select(Lead).where(Lead.telegram_user_id == telegram_user_id)
        )
    ).scalar_one_or_none()


async def create_lead(
    session: AsyncSession,
    author_id: uuid.UUID | None,
    fields: Mapping[str, Any],
    *,
    now: datetime,
) -> Lead:
    values = {key: value for key, value in fields.items() if value is not None}
    if "full_name" not in values:
        raise InvalidInput("fullName is required", field="fullName")
    lead = Lead(
        full_name="",
        pipeline_stage=await default_stage(session),
        source="manual",
        tags=[],
        created_at=now,
        updated_at=now,
    )
    await _apply(session, lead, values)
    _check_lost_reason(lead)
    session.add(lead)
    await session.flush()
    add_system_entry(
        session,
        lead,
        f"Lead created (source: {lead.source}, stage: {lead.pipeline_stage})",
        author_id=author_id,
        now=now,
    )
    await session.flush()
    return lead


async def update_lead(
    session: AsyncSession,
    viewer: Viewer,
    lead_id: uuid.UUID,
    changes: Mapping[str, Any],
    *,
    clock: Clock,
) -> Lead:
    """Apply a partial update; keys that are absent stay as they are.

    The lead is locked first and the time read after, so that concurrent
    updates of one lead write their timeline entries in the order they apply.
    """
    lead = await get_lead(session, lead_id, for_update=True)
    if not changes:
        return lead
    now = clock.now()
    old_stage, old_owner = lead.pipeline_stage, lead.owner_id
    await _apply(session, lead, changes)
    if lead.pipeline_stage != LOST_STAGE and "lost_reason" not in changes:
        lead.lost_reason = None
    _check_lost_reason(lead)
    lead.updated_at = now

    if lead.pipeline_stage != old_stage:
        body = f"Stage changed from {old_stage} to {lead.pipeline_stage}"
        if lead.pipeline_stage == LOST_STAGE:
            body += f": {lead.lost_reason}"
        add_system_entry(session, lead, body, author_id=viewer.user_id, now=now)
    if lead.owner_id != old_owner:
        before, after = await _member_names(session, old_owner, lead.owner_id)
        add_system_entry(
            session,
            lead,
            f"Owner changed from {before} to {after}",
            author_id=viewer.user_id,
            now=now,
        )
    await session.flush()
    return lead


async def delete_lead(session: AsyncSession, lead_id: uuid.UUID) -> uuid.UUID:
    lead = await get_lead(session, lead_id)
    await session.execute(delete(Lead).where(Lead.id == lead.id))
    session.expunge(lead)
    return lead_id


async def _apply(session: AsyncSession, lead: Lead, changes: Mapping[str, Any]) -> None:
    unknown = set(changes) - EDITABLE_FIELDS
    assert not unknown, f"unknown lead fields {unknown}"
    for key, value in changes.items():
        setattr(lead, key, await _clean_field(session, key, value))


async def _clean_field(session: AsyncSession, key: str, value: Any) -> Any:
    match key:
        case "full_name":
            if value is None:
                raise InvalidInput("fullName must not be empty", field="fullName")
            return clean_text(value, field="fullName", max_length=200)
        case "email":
            text = optional_text(value, field="email", max_length=320)
            return None if text is None else normalize_email(text)
        case "phone":
            return _clean_phone(value)
        case "telegram":
            return _clean_telegram(value)
        case "pipeline_stage":
            if value is None:
                raise InvalidInput(
                    "pipelineStage must not be empty", field="pipelineStage"
                )
            return await require_stage(session, value, field="pipelineStage")
        case "source":
            if value not in SOURCES:
                raise InvalidInput(
                    f"source must be one of {', '.join(SOURCES)}", field="source"
                )
            return value
        case "tags":
            return _clean_tags(value or [])
        case "notes":
            return optional_text(value, field="notes", max_length=10_000)
        case "lost_reason":
            return optional_text(value, field="lostReason", max_length=500)
        case "owner_id":
            return None if value is None else await _check_owner(session, value)
        case "partner_id":
            return value
    raise AssertionError(key)


def _clean_phone(value: str | None) -> str | None:
    text = optional_text(value, field="phone", max_length=40)
    if text is None:
        return None
    digits = sum(character.isdigit() for character in text)
    if not PHONE_PATTERN.fullmatch(text) or digits < 5:
        raise InvalidInput(
            "phone must be a phone number of digits, spaces and + ( ) . -",
            field="phone",
        )
    return text


def _clean_telegram(value: str | None) -> str | None:
    text = optional_text(value, field="telegram", max_length=40)
    if text is None:
        return None
    if TELEGRAM_ID.fullmatch(text):
        return text
    match = TELEGRAM_USERNAME.fullmatch(text)
    if match is None:
        raise InvalidInput(
            "telegram must be a username (4 to 32 letters, digits or _) or a user id",
            field="telegram",
        )
    return "@" + match.group(1)


def _clean_tags(tags: list[str]) -> list[str]:
    cleaned: list[str] = []
    for tag in tags:
        text = clean_text(tag, field="tags", max_length=50)
        if text not in cleaned:
            cleaned.append(text)
    if len(cleaned) > MAX_TAGS:
        raise InvalidInput(f"tags must hold at most {MAX_TAGS} tags", field="tags")
    return cleaned


async def _check_owner(session: AsyncSession, owner_id: uuid.UUID) -> uuid.UUID:
    user = await session.get(User, owner_id)
    if user is None or user.removed_at is not None:
        raise InvalidInput("ownerId is not a member of this workspace", field="ownerId")
    return user.id


def _check_lost_reason(lead: Lead) -> None:
    if lead.pipeline_stage == LOST_STAGE and not lead.lost_reason:
        raise InvalidInput(
            "lostReason is required to move a lead to the lost stage",
            field="lostReason",
        )
    if lead.pipeline_stage != LOST_STAGE and lead.lost_reason:
        raise InvalidInput(
            "lostReason can only be set on a lead in the lost stage",
            field="lostReason",
        )


async def default_stage(session: AsyncSession) -> str:
    stages = [stage for stage in await list_stages(session) if stage.key != LOST_STAGE]
    if not stages:
        raise InvalidInput("This workspace has no pipeline stage to put leads in")
    return stages[0].key


async def _member_names(
    session: AsyncSession, *user_ids: uuid.UUID | None
) -> list[str]:
    names = []
    for user_id in user_ids:
        user = await session.get(User, user_id) if user_id else None
        names.append(user.name if user else "nobody")
    return names


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
