"""Object types. Each wraps a database row and reads only what it exposes."""

from datetime import datetime
from enum import Enum
from typing import Any, Self

import strawberry
from strawberry.types import Info

from db.models import Activity as ActivityRow
from db.models import Lead as LeadRow
from db.models import PipelineStage as StageRow
from db.models import Tenant as TenantRow
from db.models import User as UserRow
from domain.leads import LeadPage as LeadPageResult
from resolvers import leads as lead_resolvers
from resolvers.context import Context


@strawberry.enum
class Role(Enum):
    owner = "owner"
    admin = "admin"
    member = "member"


@strawberry.enum
class LeadSource(Enum):
    manual = "manual"
    onboarding_bot = "onboarding_bot"
    referral = "referral"
    outreach = "outreach"
    import_ = strawberry.enum_value("import", name="import")


@strawberry.enum
class ActivityType(Enum):
    note = "note"
    call = "call"
    email = "email"
    system = "system"


@strawberry.type(description="A member of the workspace.")
class Member:
    id: strawberry.ID
    email: str
    name: str
    role: Role
    created_at: datetime

    @classmethod
    def from_row(cls, row: UserRow) -> Self:
        return cls(
            id=strawberry.ID(str(row.id)),
            email=row.email,
            name=row.name,
            role=Role(row.role),
            created_at=row.created_at,
        )


@strawberry.type(description="A workspace: one introducing broker's business.")
class Workspace:
    id: strawberry.ID
    name: str
    slug: str
    created_at: datetime

    @classmethod
    def from_row(cls, row: TenantRow) -> Self:
        return cls(
            id=strawberry.ID(str(row.id)),
            name=row.name,
            slug=row.slug,
            created_at=row.created_at,
        )


@strawberry.type(description="A step of the sales pipeline, addressed by its key.")
class PipelineStage:
    key: str
    name: str
    position: int

    @classmethod
    def from_row(cls, row: StageRow) -> Self:
        return cls(key=row.key, name=row.name, position=row.position)


@strawberry.type(description="An entry of a lead's timeline.")
class Activity:
    id: strawberry.ID
    type: ActivityType
    body: str
    occurred_at: datetime
    created_at: datetime
    author_id: strawberry.Private[Any]

    @strawberry.field(description="Who wrote it, or caused it for system entries.")
    async def author(self, info: Info[Context, None]) -> Member | None:
        user = await lead_resolvers.user_by_id(info.context, self.author_id)
        return Member.from_row(user) if user else None

    @classmethod
    def from_row(cls, row: ActivityRow) -> Self:
        return cls(
            id=strawberry.ID(str(row.id)),
            type=ActivityType(row.type),
            body=row.body,
            occurred_at=row.occurred_at,
            created_at=row.created_at,
            author_id=row.author_id,
        )


@strawberry.type(description="A person in the CRM.")
class Lead:
    id: strawberry.ID
    full_name: str
    email: str | None
    phone: str | None
    telegram: str | None
    pipeline_stage: str
    source: LeadSource
    tags: list[str]
    notes: str | None
    lost_reason: str | None
    owner_id: strawberry.ID | None
    created_at: datetime
    updated_at: datetime
    row: strawberry.Private[LeadRow]

    @strawberry.field(description="The timeline, newest first.")
    async def activities(self, info: Info[Context, None]) -> list[Activity]:
        rows = await lead_resolvers.activities_of(info.context, self.row)
        return [Activity.from_row(row) for row in rows]

    @strawberry.field
    async def owner(self, info: Info[Context, None]) -> Member | None:
        user = await lead_resolvers.user_by_id(info.context, self.row.owner_id)
        return Member.from_row(user) if user else None

    @classmethod
    def from_row(cls, row: LeadRow) -> Self:
        return cls(
            id=strawberry.ID(str(row.id)),
            full_name=row.full_name,
            email=row.email,
            phone=row.phone,
            telegram=row.telegram,
            pipeline_stage=row.pipeline_stage,
            source=LeadSource(row.source),
            tags=list(row.tags),
            notes=row.notes,
            lost_reason=row.lost_reason,
            owner_id=strawberry.ID(str(row.owner_id)) if row.owner_id else None,
            created_at=row.created_at,
            updated_at=row.updated_at,
            row=row,
        )


@strawberry.type(description="One page of leads.")
class LeadPage:
    items: list[Lead]
    page: int
    page_size: int
    total: int

    @classmethod
    def from_result(cls, result: LeadPageResult) -> Self:
        return cls(
            items=[Lead.from_row(row) for row in result.items],
            page=result.page,
            page_size=result.page_size,
            total=result.total,
        )


@strawberry.type
class RegisterPayload:
    user: Member
    tenant: Workspace


@strawberry.type
class DeletePayload:
    id: strawberry.ID
