"""Input types. Optional fields of update inputs default to UNSET, so that an
absent field stays as it is and an explicit null clears it."""

from datetime import datetime

import strawberry

from schema.types import ActivityType, LeadSource, Role


@strawberry.input
class RegisterInput:
    tenant_name: str
    tenant_slug: str
    email: str
    password: str
    name: str | None = None


@strawberry.input
class LeadCreateInput:
    full_name: str
    email: str | None = None
    phone: str | None = None
    telegram: str | None = None
    pipeline_stage: str | None = None
    source: LeadSource | None = None
    tags: list[str] | None = None
    notes: str | None = None
    lost_reason: str | None = None
    owner_id: strawberry.ID | None = None


@strawberry.input
class LeadUpdateInput:
    full_name: str | None = strawberry.UNSET
    email: str | None = strawberry.UNSET
    phone: str | None = strawberry.UNSET
    telegram: str | None = strawberry.UNSET
    pipeline_stage: str | None = strawberry.UNSET
    source: LeadSource | None = strawberry.UNSET
    tags: list[str] | None = strawberry.UNSET
    notes: str | None = strawberry.UNSET
    lost_reason: str | None = strawberry.UNSET
    owner_id: strawberry.ID | None = strawberry.UNSET


@strawberry.input
class ActivityInput:
    type: ActivityType
    body: str
    occurred_at: datetime | None = None


@strawberry.input
class AddMemberInput:
    email: str
    password: str
    role: Role
    name: str | None = None


@strawberry.input
class PipelineStageInput:
    key: str
    name: str
    position: int | None = None
