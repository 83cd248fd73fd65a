"""The root Query type."""

import strawberry
from strawberry.types import Info

from resolvers import leads, workspace
from resolvers.context import Context
from schema.permissions import SignedIn, allow
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

    @strawberry.field(extensions=allow(SignedIn))
    async def lead(self, info: Info[Context, None], id: strawberry.ID) -> Lead:
        return Lead.from_row(await leads.lead(info.context, id))
