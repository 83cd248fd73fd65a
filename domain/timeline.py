"""Activities: the timeline of a lead."""

import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Activity, Lead
from domain.errors import InvalidInput
from domain.validation import clean_text

USER_ACTIVITY_TYPES = ("note", "call", "email")
SYSTEM = "system"
MAX_BODY_LENGTH = 10_000


def add_system_entry(
    session: AsyncSession,
    lead: Lead,
    body: str,
    *,
    author_id: uuid.UUID | None,
    now: datetime,
) -> Activity:
    activity = Activity(
        lead_id=lead.id,
        type=SYSTEM,
        body=body,
        occurred_at=now,
        author_id=author_id,
        created_at=now,
    )
    session.add(activity)
    return activity


async def add_activity(
    session: AsyncSession,
    lead: Lead,
    *,
    type_: str,
    body: str,
    occurred_at: datetime | None,
    author_id: uuid.UUID,
    now: datetime,
) -> Activity:
    if type_ not in USER_ACTIVITY_TYPES:
        raise InvalidInput(
            f"type must be one of {', '.join(USER_ACTIVITY_TYPES)}, not '{type_}'",
            field="type",
        )
    activity = Activity(
        lead_id=lead.id,
        type=type_,
        body=clean_text(body, field="body", max_length=MAX_BODY_LENGTH),
        occurred_at=occurred_at or now,
        author_id=author_id,
        created_at=now,
    )
    session.add(activity)
    await session.flush()
    return activity


async def activities_by_lead(
    session: AsyncSession, lead_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[Activity]]:
    """Load the timelines of several leads at once, newest first."""
    result = await session.execute(
        select(Activity)
        .where(Activity.lead_id.in_(lead_ids))
        .order_by(Activity.occurred_at.desc(), Activity.created_at.desc())
    )
    timelines: dict[uuid.UUID, list[Activity]] = {lead_id: [] for lead_id in lead_ids}
    for activity in result.scalars():
        timelines[activity.lead_id].append(activity)
    return timelines
