"""Resolvers of onboarding bots."""

from domain import bots
from domain.bots import BotView
from resolvers.context import Context


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
