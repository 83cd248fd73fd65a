"""The root Mutation type. Each mutation declares its permission and runs in
one transaction, committed only when it succeeds."""

import uuid
from enum import Enum
from typing import Any

import strawberry
from strawberry.permission import BasePermission
from strawberry.types import Info

from domain.errors import InvalidInput
from domain.workspaces import Registration
from resolvers import leads, workspace
from resolvers.context import Context
from schema.extensions import Transaction
from schema.inputs import (
    ActivityInput,
    AddMemberInput,
    LeadCreateInput,
    LeadUpdateInput,
    PipelineStageInput,
    RegisterInput,
)
from schema.permissions import CanWrite, Public, allow
from schema.types import (
    Activity,
    DeletePayload,
    Lead,
    Member,
    PipelineStage,
    RegisterPayload,
    Role,
    Workspace,
)


def mutation(permission: type[BasePermission], description: str | None = None) -> Any:
    return strawberry.mutation(
        extensions=[*allow(permission), Transaction()], description=description
    )


@strawberry.type
class Mutation:
    @mutation(Public, "Create a workspace and its owner, and sign the owner in.")
    async def register(
        self, info: Info[Context, None], input: RegisterInput
    ) -> RegisterPayload:
        tenant, owner = await workspace.register(
            info.context,
            Registration(
                tenant_name=input.tenant_name,
                tenant_slug=input.tenant_slug,
                email=input.email,
                password=input.password,
                name=input.name,
            ),
        )
        return RegisterPayload(
            user=Member.from_row(owner), tenant=Workspace.from_row(tenant)
        )

    @mutation(CanWrite)
    async def create_lead(
        self, info: Info[Context, None], input: LeadCreateInput
    ) -> Lead:
        return Lead.from_row(await leads.create_lead(info.context, _fields(input)))

    @mutation(CanWrite, "Change the fields given; absent fields stay, null clears.")
    async def update_lead(
        self, info: Info[Context, None], id: strawberry.ID, input: LeadUpdateInput
    ) -> Lead:
        row = await leads.update_lead(info.context, id, _fields(input))
        return Lead.from_row(row)

    @mutation(CanWrite)
    async def delete_lead(
        self, info: Info[Context, None], id: strawberry.ID
    ) -> DeletePayload:
        return DeletePayload(
            id=strawberry.ID(await leads.delete_lead(info.context, id))
        )

    @mutation(CanWrite)
    async def add_lead_activity(
        self, info: Info[Context, None], lead_id: strawberry.ID, input: ActivityInput
    ) -> Activity:
        row = await leads.add_activity(
            info.context,
            lead_id,
            type_=input.type.value,
            body=input.body,
            occurred_at=input.occurred_at,
        )
        return Activity.from_row(row)

    @mutation(CanWrite)
    async def add_member(
        self, info: Info[Context, None], input: AddMemberInput
    ) -> Member:
        row = await workspace.add_member(
            info.context,
            email=input.email,
            password=input.password,
            name=input.name,
            role=input.role.value,
        )
        return Member.from_row(row)

    @mutation(CanWrite, "Change a member's role; the last owner keeps theirs.")
    async def update_member_role(
        self, info: Info[Context, None], id: strawberry.ID, role: Role
    ) -> Member:
        row = await workspace.update_member_role(info.context, id, role.value)
        return Member.from_row(row)

    @mutation(CanWrite, "Remove a member and end their sessions at once.")
    async def remove_member(
        self, info: Info[Context, None], id: strawberry.ID
    ) -> Member:
        return Member.from_row(await workspace.remove_member(info.context, id))

    @mutation(CanWrite)
    async def add_pipeline_stage(
        self, info: Info[Context, None], input: PipelineStageInput
    ) -> PipelineStage:
        row = await leads.add_stage(
            info.context, key=input.key, name=input.name, position=input.position
        )
        return PipelineStage.from_row(row)

    @mutation(CanWrite, "Change a stage's display name; its key stays.")
    async def rename_pipeline_stage(
        self, info: Info[Context, None], key: str, name: str
    ) -> PipelineStage:
        return PipelineStage.from_row(
            await leads.rename_stage(info.context, key=key, name=name)
        )

    @mutation(CanWrite, "Put the stages in this order; list every key once.")
    async def reorder_pipeline_stages(
        self, info: Info[Context, None], keys: list[str]
    ) -> list[PipelineStage]:
        rows = await leads.reorder_stages(info.context, keys)
        return [PipelineStage.from_row(row) for row in rows]

    @mutation(CanWrite, "Remove a stage, moving its leads to `moveLeadsTo` first.")
    async def remove_pipeline_stage(
        self,
        info: Info[Context, None],
        key: str,
        move_leads_to: str | None = None,
    ) -> list[PipelineStage]:
        rows = await leads.remove_stage(
            info.context, key=key, move_leads_to=move_leads_to
        )
        return [PipelineStage.from_row(row) for row in rows]


def _fields(input: LeadCreateInput | LeadUpdateInput) -> dict[str, Any]:
    """Turn an input into domain field names, leaving out absent fields."""
    fields: dict[str, Any] = {}
    for name, value in vars(input).items():
        if value is strawberry.UNSET:
            continue
        if isinstance(value, Enum):
            value = value.value
        if name == "owner_id" and value is not None:
            value = _owner_id(value)
        fields[name] = value
    return fields


def _owner_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidInput(
            "ownerId is not a member of this workspace", field="ownerId"
        ) from None
