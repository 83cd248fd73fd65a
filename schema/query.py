"""The root Query type."""

from datetime import datetime
from typing import Annotated

import strawberry
from strawberry.types import Info

from resolvers import bots, copy_trading, leads, referrals, workspace
from resolvers.context import Context
from schema.billing import Billing
from schema.bots import Bot, BotMessagePage, BotStep, CapturedLeadPage
from schema.copy_trading import (
    Signal,
    SignalDestination,
    SignalPage,
    SignalStats,
    SubscriberPage,
)
from schema.permissions import SignedIn, allow
from schema.referrals import CommissionPlan, Conversion, Partner
from schema.types import Lead, LeadPage, Member, PipelineStage, Workspace


@strawberry.type
class Query:
    @strawberry.field(extensions=allow(SignedIn), description="The signed-in member.")
    async def me(self, info: Info[Context, None]) -> Member:
        return Member.from_row(await workspace.me(info.context))

    @strawberry.field(extensions=allow(SignedIn))
    async def workspace(self, info: Info[Context, None]) -> Workspace:
        return Workspace.from_row(await workspace.workspace(info.context))

    @strawberry.field(extensions=allow(SignedIn))
    async def members(self, info: Info[Context, None]) -> list[Member]:
        return [Member.from_row(row) for row in await workspace.members(info.context)]

    @strawberry.field(extensions=allow(SignedIn))
    async def pipeline_stages(self, info: Info[Context, None]) -> list[PipelineStage]:
        rows = await leads.stages(info.context)
        return [PipelineStage.from_row(row) for row in rows]

    @strawberry.field(
        extensions=allow(SignedIn),
        description="Leads, newest first. `q` searches name, email, phone and "
        "Telegram; `stage` is a pipeline stage key.",
    )
    async def leads(
        self,
        info: Info[Context, None],
        stage: str | None = None,
        q: str | None = None,
        page: int = 1,
        page_size: int = 20,
    ) -> LeadPage:
        result = await leads.lead_page(
            info.context, stage=stage, query=q, page=page, page_size=page_size
        )
        return LeadPage.from_result(result)

    @strawberry.field(extensions=allow(SignedIn, module="referrals"))
    async def partners(self, info: Info[Context, None]) -> list[Partner]:
        views = await referrals.partner_views(info.context)
        return [Partner.from_view(view) for view in views]

    @strawberry.field(extensions=allow(SignedIn, module="referrals"))
    async def partner(self, info: Info[Context, None], id: strawberry.ID) -> Partner:
        return Partner.from_view(await referrals.partner(info.context, id))

    @strawberry.field(extensions=allow(SignedIn, module="referrals"))
    async def commission_plan(self, info: Info[Context, None]) -> CommissionPlan:
        return CommissionPlan.from_plan(await referrals.plan(info.context))

    @strawberry.field(
        extensions=allow(SignedIn, module="referrals"),
        description="Conversions, newest first, with their commissions.",
    )
    async def conversions(self, info: Info[Context, None]) -> list[Conversion]:
        rows = await referrals.conversions(info.context)
        return [Conversion.from_row(row) for row in rows]

    @strawberry.field(extensions=allow(SignedIn, module="onboarding"))
    async def onboarding_bots(self, info: Info[Context, None]) -> list[Bot]:
        return [Bot.from_view(view) for view in await bots.list_bots(info.context)]

    @strawberry.field(extensions=allow(SignedIn, module="onboarding"))
    async def bot_steps(
        self, info: Info[Context, None], bot_id: strawberry.ID
    ) -> list[BotStep]:
        steps = await bots.steps_of(info.context, bot_id)
        return [BotStep.from_step(step) for step in steps]

    @strawberry.field(
        extensions=allow(SignedIn, module="onboarding"),
        description="The people a bot has talked to, newest first, with their "
        "answers and progress.",
    )
    async def bot_leads(
        self,
        info: Info[Context, None],
        bot_id: strawberry.ID,
        page: int = 1,
        page_size: int = 20,
    ) -> CapturedLeadPage:
        result = await bots.captured(info.context, bot_id, page, page_size)
        return CapturedLeadPage.from_page(result)

    @strawberry.field(
        extensions=allow(SignedIn, module="onboarding"),
        description="The bot's messages to Telegram, newest first; status "
        "failed lists those Telegram refused, with its reason.",
    )
    async def bot_messages(
        self,
        info: Info[Context, None],
        bot_id: strawberry.ID,
        status: str | None = None,
        page: int = 1,
        page_size: int = 20,
    ) -> BotMessagePage:
        result = await bots.messages(info.context, bot_id, status, page, page_size)
        return BotMessagePage.from_page(result)

    @strawberry.field(extensions=allow(SignedIn))
    async def billing(self) -> Billing:
        return Billing()

    @strawberry.field(extensions=allow(SignedIn))
    async def lead(self, info: Info[Context, None], id: strawberry.ID) -> Lead:
        return Lead.from_row(await leads.lead(info.context, id))

    @strawberry.field(extensions=allow(SignedIn, module="copy_trading"))
    async def signal_destinations(
        self, info: Info[Context, None]
    ) -> list[SignalDestination]:
        rows = await copy_trading.list_destinations(info.context)
        return [SignalDestination.from_row(row) for row in rows]

    @strawberry.field(
        extensions=allow(SignedIn, module="copy_trading"),
        description="Signals, newest first. status open means pending or open; "
        "from and to bound createdAt (from included, to excluded).",
    )
    async def signals(
        self,
        info: Info[Context, None],
        status: str | None = None,
        pair: str | None = None,
        from_: Annotated[datetime | None, strawberry.argument(name="from")] = None,
        to: datetime | None = None,
        page: int = 1,
        page_size: int = 20,
    ) -> SignalPage:
        result = await copy_trading.signal_page(
            info.context,
            status=status,
            pair=pair,
            period_start=from_,
            period_end=to,
            page=page,
            page_size=page_size,
        )
        return SignalPage.from_result(result)

    @strawberry.field(extensions=allow(SignedIn, module="copy_trading"))
    async def signal(self, info: Info[Context, None], id: strawberry.ID) -> Signal:
        return Signal.from_view(await copy_trading.signal(info.context, id))

    @strawberry.field(
        extensions=allow(SignedIn, module="copy_trading"),
        description="Counts, win rate and results of the signals created from "
        "from (included) to to (excluded), overall and by pair.",
    )
    async def signal_stats(
        self,
        info: Info[Context, None],
        pair: str | None = None,
        from_: Annotated[datetime | None, strawberry.argument(name="from")] = None,
        to: datetime | None = None,
    ) -> SignalStats:
        stats = await copy_trading.stats(
            info.context, pair=pair, period_start=from_, period_end=to
        )
        return SignalStats.from_stats(stats)

    @strawberry.field(
        extensions=allow(SignedIn, module="copy_trading"),
        description="Subscribers, newest first; status is active or expired.",
    )
    async def subscribers(
        self,
        info: Info[Context, None],
        status: str | None = None,
        page: int = 1,
        page_size: int = 20,
    ) -> SubscriberPage:
        result = await copy_trading.subscriber_page(
            info.context, status=status, page=page, page_size=page_size
        )
        return SubscriberPage.from_result(result, info.context.now())
