"""Resolvers of onboarding bots."""

from db.models import TelegramBot
from db.tenancy import scoped_session
from domain import bot_runtime, bots, conversations, flows, outbox
from domain.bots import BotView
from domain.conversations import CapturedPage
from domain.flows import Step
from resolvers.context import Context
from resolvers.ids import parse_id


async def list_bots(ctx: Context) -> list[BotView]:
    return await bots.list_bots(ctx.db)


async def connect_bot(ctx: Context, token: str) -> BotView:
    await ctx.before_slow_call()
    row = await bots.connect_bot(
        ctx.db,
        ctx.bot_api,
        token,
        secret_key=ctx.settings.signing_key,
        now=ctx.now(),
    )
    return await _view(ctx, row)


async def set_steps(ctx: Context, bot_id: str, steps: list[Step]) -> list[Step]:
    bot = await bots.get_bot(ctx.db, parse_id(bot_id, "Bot"))
    return await flows.replace_steps(ctx.db, bot, steps, now=ctx.now())


async def steps_of(ctx: Context, bot_id: str) -> list[Step]:
    bot = await bots.get_bot(ctx.db, parse_id(bot_id, "Bot"))
    return flows.load_steps(bot)


async def _view(ctx: Context, bot: TelegramBot) -> BotView:
    return await bots.view_of(ctx.db, bot)


async def start_bot(ctx: Context, bot_id: str, mode: str) -> BotView:
    await ctx.before_slow_call()
    bot = await bot_runtime.start_bot(
        ctx.db,
        side_sessions(ctx),
        ctx.bot_api,
        parse_id(bot_id, "Bot"),
        mode,
        public_url=ctx.settings.public_url,
        secret_key=ctx.settings.signing_key,
        now=ctx.now(),
    )
    return await _view(ctx, bot)


async def stop_bot(ctx: Context, bot_id: str) -> BotView:
    await ctx.before_slow_call()
    bot = await bot_runtime.stop_bot(
        ctx.db,
        side_sessions(ctx),
        ctx.bot_api,
        parse_id(bot_id, "Bot"),
        secret_key=ctx.settings.signing_key,
        now=ctx.now(),
    )
    return await _view(ctx, bot)


def side_sessions(ctx: Context) -> bot_runtime.SessionOpener:
    """Return an opener of short sessions of the viewer's workspace."""
    return lambda: scoped_session(ctx.sessions, ctx.tenant_id)


async def read_bot(ctx: Context, bot_id: str) -> TelegramBot:
    """Read a bot in a short session of its own, closed before Telegram is called."""
    async with scoped_session(ctx.sessions, ctx.tenant_id) as reader:
        await reader.begin_reads()
        return await bots.get_bot(reader, parse_id(bot_id, "Bot"))


async def captured(
    ctx: Context, bot_id: str, page: int, page_size: int
) -> CapturedPage:
    return await conversations.captured(
        ctx.db, parse_id(bot_id, "Bot"), page=page, page_size=page_size
    )


async def messages(
    ctx: Context, bot_id: str, status: str | None, page: int, page_size: int
) -> outbox.JobPage:
    bot = await bots.get_bot(ctx.db, parse_id(bot_id, "Bot"))
    return await outbox.list_jobs(
        ctx.db, bot.id, status=status, page=page, page_size=page_size
    )
