"""Pipeline stages: a per-workspace ordered list that leads move through.

Stages are addressed by a stable ``key``; renaming changes only the display
name, so leads and scripts that use the key keep working. The ``lost`` stage
is built in: moving a lead there requires a reason, and it cannot be removed.
"""

import re
import uuid
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Lead, PipelineStage
from domain.errors import InvalidInput, NotFound
from domain.timeline import add_system_entry
from domain.validation import check_pattern, clean_text

LOST_STAGE = "lost"
DEFAULT_STAGES = (
    ("new", "New"),
    ("contacted", "Contacted"),
    ("qualified", "Qualified"),
    ("registered", "Registered"),
    ("funded", "Funded"),
    ("active", "Active"),
    (LOST_STAGE, "Lost"),
)
MAX_STAGES = 30
KEY_PATTERN = re.compile(r"[a-z0-9]+(?:_[a-z0-9]+)*")


def seed_default_stages(session: AsyncSession, tenant_id: uuid.UUID) -> None:
    for position, (key, name) in enumerate(DEFAULT_STAGES):
        session.add(
            PipelineStage(tenant_id=tenant_id, key=key, name=name, position=position)
        )


async def list_stages(session: AsyncSession) -> list[PipelineStage]:
    result = await session.execute(
        select(PipelineStage).order_by(PipelineStage.position, PipelineStage.key)
    )
    return list(result.scalars())


async def get_stage(session: AsyncSession, key: str) -> PipelineStage:
    stage = await find_stage(session, key)
    if stage is None:
        raise NotFound(f"Pipeline stage '{key}'")
    return stage


async def find_stage(session: AsyncSession, key: str) -> PipelineStage | None:
    result = await session.execute(
        select(PipelineStage).where(PipelineStage.key == key)
    )
    return result.scalar_one_or_none()


async def require_stage(session: AsyncSession, key: str, *, field: str) -> str:
    """Return ``key`` if it names a stage; a bad field value is BAD_USER_INPUT."""
    if await find_stage(session, key) is None:
        raise InvalidInput(f"{field} '{key}' is not a pipeline stage", field=field)
    return key


async def add_stage(
    session: AsyncSession, *, key: str, name: str, position: int | None
) -> PipelineStage:
    key = check_pattern(
        key.strip(),
        KEY_PATTERN,
        field="key",
        rule="lowercase letters and digits, words joined by single underscores",
    )
    if len(key) > 40:
        raise InvalidInput("key must be at most 40 characters", field="key")
    name = clean_text(name, field="name", max_length=60)
    stages = await list_stages(session)
    if any(stage.key == key for stage in stages):
        raise InvalidInput(f"key '{key}' is already a stage", field="key")
    if len(stages) >= MAX_STAGES:
        raise InvalidInput(f"A pipeline has at most {MAX_STAGES} stages", field="key")

    index = len(stages) if position is None else position
    if not 0 <= index <= len(stages):
        raise InvalidInput(
            f"position must be between 0 and {len(stages)}", field="position"
        )
    stage = PipelineStage(key=key, name=name, position=index)
    stages.insert(index, stage)
    session.add(stage)
    _renumber(stages)
    await session.flush()
    return stage


async def rename_stage(session: AsyncSession, *, key: str, name: str) -> PipelineStage:
    stage = await get_stage(session, key)
    stage.name = clean_text(name, field="name", max_length=60)
    await session.flush()
    return stage


async def reorder_stages(session: AsyncSession, keys: list[str]) -> list[PipelineStage]:
    stages = await list_stages(session)
    by_key = {stage.key: stage for stage in stages}
    if len(keys) != len(set(keys)) or set(keys) != set(by_key):
        raise InvalidInput(
            "keys must list every stage exactly once: " + ", ".join(by_key),
            field="keys",
        )
    ordered = [by_key[key] for key in keys]
    _renumber(ordered)
    await session.flush()
    return ordered


async def remove_stage(
    session: AsyncSession,
    *,
    key: str,
    move_leads_to: str | None,
    author_id: uuid.UUID,
    now: datetime,
) -> list[PipelineStage]:
    """Remove a stage, moving its leads to another stage first if there are any."""
    stage = await get_stage(session, key)
    if key == LOST_STAGE:
        raise InvalidInput(
            "The lost stage is built in and cannot be removed", field="key"
        )
    in_use = await session.scalar(
        select(func.count()).select_from(Lead).where(Lead.pipeline_stage == key)
    )
    if in_use:
        if move_leads_to is None:
            raise InvalidInput(
                f"{in_use} leads are in stage '{key}'; name a stage in moveLeadsTo",
                field="moveLeadsTo",
            )
        if move_leads_to in (key, LOST_STAGE):
            raise InvalidInput(
                "moveLeadsTo must be another stage, and not lost", field="moveLeadsTo"
            )
        await require_stage(session, move_leads_to, field="moveLeadsTo")
        await _move_leads(session, key, move_leads_to, author_id=author_id, now=now)
    await session.delete(stage)
    await session.flush()
    stages = await list_stages(session)
    _renumber(stages)
    await session.flush()
    return stages


async def _move_leads(
    session: AsyncSession,
    from_stage: str,
    to_stage: str,
    *,
    author_id: uuid.UUID,
    now: datetime,
) -> None:
    leads = (
        await session.execute(select(Lead).where(Lead.pipeline_stage == from_stage))
    ).scalars()
    for lead in leads:
        lead.pipeline_stage = to_stage
        lead.updated_at = now
        add_system_entry(
            session,
            lead,
            f"Stage changed from {from_stage} to {to_stage} "
            f"because stage {from_stage} was removed",
            author_id=author_id,
            now=now,
        )


def _renumber(stages: list[PipelineStage]) -> None:
    for position, stage in enumerate(stages):
        stage.position = position
