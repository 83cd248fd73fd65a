"""Resolvers of the CRM: leads, their timeline and the pipeline."""

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from db.models import Activity, Lead, PipelineStage, User
from domain import leads, pipeline, timeline
from domain.leads import LeadPage
from resolvers.context import Context
from resolvers.ids import parse_id


async def lead(ctx: Context, lead_id: str) -> Lead:
    return await leads.get_lead(ctx.db, parse_id(lead_id, "Lead"))


async def lead_page(
    ctx: Context, *, stage: str | None, query: str | None, page: int, page_size: int
) -> LeadPage:
    return await leads.list_leads(
        ctx.db, stage=stage, query=query, page=page, page_size=page_size
    )


async def create_lead(ctx: Context, fields: Mapping[str, Any]) -> Lead:
    return await leads.create_lead(ctx.db, ctx.signed_in.user_id, fields, now=ctx.now())


async def update_lead(ctx: Context, lead_id: str, changes: Mapping[str, Any]) -> Lead:
    return await leads.update_lead(
        ctx.db, ctx.signed_in, parse_id(lead_id, "Lead"), changes, clock=ctx.clock
    )


async def delete_lead(ctx: Context, lead_id: str) -> str:
    deleted = await leads.delete_lead(ctx.db, parse_id(lead_id, "Lead"))
    return str(deleted)


async def add_activity(
    ctx: Context, lead_id: str, *, type_: str, body: str, occurred_at: datetime | None
) -> Activity:
    target = await leads.get_lead(ctx.db, parse_id(lead_id, "Lead"))
    return await timeline.add_activity(
        ctx.db,
        target,
        type_=type_,
        body=body,
        occurred_at=occurred_at,
        author_id=ctx.signed_in.user_id,
        now=ctx.now(),
    )


async def activities_of(ctx: Context, target: Lead) -> list[Activity]:
    result: list[Activity] = await ctx.loaders.activities_by_lead.load(target.id)
    return result


async def user_by_id(ctx: Context, user_id: Any) -> User | None:
    if user_id is None:
        return None
    result: User | None = await ctx.loaders.users_by_id.load(user_id)
    return result


async def stages(ctx: Context) -> list[PipelineStage]:
    return await pipeline.list_stages(ctx.db)


async def add_stage(
    ctx: Context, *, key: str, name: str, position: int | None
) -> PipelineStage:
    return await pipeline.add_stage(ctx.db, key=key, name=name, position=position)


async def rename_stage(ctx: Context, *, key: str, name: str) -> PipelineStage:
    return await pipeline.rename_stage(ctx.db, key=key, name=name)


async def reorder_stages(ctx: Context, keys: list[str]) -> list[PipelineStage]:
    return await pipeline.reorder_stages(ctx.db, keys)


async def remove_stage(
    ctx: Context, *, key: str, move_leads_to: str | None
) -> list[PipelineStage]:
    return await pipeline.remove_stage(
        ctx.db,
        key=key,
        move_leads_to=move_leads_to,
        author_id=ctx.signed_in.user_id,
        now=ctx.now(),
    )
