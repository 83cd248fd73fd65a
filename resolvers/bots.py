"""Resolvers of onboarding bots."""

from domain import bots, flows
from domain.bots import BotView
from domain.flows import Step
from resolvers.context import Context
from resolvers.ids import parse_id


async def list_bots(ctx: Context) -> list[BotView]:
    return await bots.list_bots(ctx.db)


async def connect_bot(ctx: Context, token: str) -> BotView:
    row = await bots.connect_bot(
        ctx.db,
        ctx.bot_api,
        token,
        secret_key=ctx.settings.signing_key,
        now=ctx.now(),
    )
    views = await bots.list_bots(ctx.db)
    return next(view for view in views if view.row.id == row.id)


async def set_steps(ctx: Context, bot_id: str, steps: list[Step]) -> list[Step]:
    bot = await bots.get_bot(ctx.db, parse_id(bot_id, "Bot"))
    return await flows.replace_steps(ctx.db, bot, steps, now=ctx.now())


async def steps_of(ctx: Context, bot_id: str) -> list[Step]:
    bot = await bots.get_bot(ctx.db, parse_id(bot_id, "Bot"))
    return flows.load_steps(bot)
