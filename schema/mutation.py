"""The root Mutation type. Each mutation declares its permission and runs in
one transaction, committed only when it succeeds."""

import uuid
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Annotated, Any

import strawberry
from strawberry.permission import BasePermission
from strawberry.types import Info

from domain.errors import InvalidInput
from domain.referral_apply import Application
from domain.workspaces import Registration
from resolvers import billing, bots, copy_trading, leads, referrals, workspace
from resolvers.context import Context
from schema.billing import (
    BillingModule,
    CreatePaymentInput,
    Payment,
    TransferResult,
    TronTransferInput,
)
from schema.bots import Bot, BotMode, BotStep, BotStepInput, ConnectBotInput
from schema.copy_trading import (
    AddSubscriberInput,
    Signal,
    SignalDestination,
    SignalDestinationInput,
    SignalEventInput,
    SignalInput,
    Subscriber,
)
from schema.extensions import Transaction
from schema.inputs import (
    ActivityInput,
    AddMemberInput,
    LeadCreateInput,
    LeadUpdateInput,
    PipelineStageInput,
    RegisterInput,
)
from schema.permissions import CanWrite, Public, SignedWebhook, allow
from schema.referrals import (
    ApplicationReceipt,
    Commission,
    CommissionPlan,
    Conversion,
    ConversionInput,
    CreatePartnerInput,
    Partner,
    ReferralApplicationInput,
    UpdatePartnerInput,
)
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


def mutation(
    permission: type[BasePermission],
    description: str | None = None,
    *,
    module: str | None = None,
) -> Any:
    return strawberry.mutation(
        extensions=[*allow(permission, module=module), Transaction()],
        description=description,
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

    @mutation(CanWrite, "Switch an add-on module on or off.")
    async def set_module_enabled(
        self, info: Info[Context, None], module: str, enabled: bool
    ) -> BillingModule:
        state = await billing.set_module_enabled(info.context, module, enabled=enabled)
        return BillingModule.from_state(state, info.context.now())

    @mutation(CanWrite, "Quote a unique USDT amount for months of a module.")
    async def create_payment(
        self, info: Info[Context, None], input: CreatePaymentInput
    ) -> Payment:
        row = await billing.create_payment(info.context, input.module, input.months)
        return Payment.from_row(row, info.context.now())

    @mutation(
        SignedWebhook, "Record a TRC-20 transfer reported by the payment monitor."
    )
    async def record_tron_transfer(
        self, info: Info[Context, None], input: TronTransferInput
    ) -> TransferResult:
        outcome = await billing.record_transfer(
            info.context,
            txid=input.txid,
            contract=input.contract,
            sender=input.from_,
            recipient=input.to,
            amount=input.amount,
            block_number=input.block_number,
            block_timestamp_ms=input.block_timestamp,
        )
        return TransferResult.from_outcome(outcome)

    @mutation(CanWrite, module="referrals")
    async def create_partner(
        self, info: Info[Context, None], input: CreatePartnerInput
    ) -> Partner:
        view = await referrals.create_partner(
            info.context,
            name=input.name,
            email=input.email,
            code=input.code,
            parent_code=input.parent_code,
        )
        return Partner.from_view(view)

    @mutation(
        CanWrite,
        "Change the fields given; parentCode null makes a root.",
        module="referrals",
    )
    async def update_partner(
        self, info: Info[Context, None], id: strawberry.ID, input: UpdatePartnerInput
    ) -> Partner:
        changes = _fields(input)
        if "level1_rate_override" in changes:
            changes["rate_override"] = changes.pop("level1_rate_override")
        return Partner.from_view(
            await referrals.update_partner(info.context, id, changes)
        )

    @mutation(
        CanWrite, "Set the level rates, in percent; level 1 first.", module="referrals"
    )
    async def set_commission_plan(
        self, info: Info[Context, None], rates: list[Decimal]
    ) -> CommissionPlan:
        return CommissionPlan.from_plan(await referrals.set_plan(info.context, rates))

    @mutation(
        CanWrite, "Set the origins allowed to send applications.", module="referrals"
    )
    async def set_referral_allowed_origins(
        self, info: Info[Context, None], origins: list[str]
    ) -> CommissionPlan:
        plan = await referrals.set_allowed_origins(info.context, origins)
        return CommissionPlan.from_plan(plan)

    @mutation(
        CanWrite,
        "Record a conversion; commissions follow the chain.",
        module="referrals",
    )
    async def record_conversion(
        self, info: Info[Context, None], input: ConversionInput
    ) -> Conversion:
        row = await referrals.record_conversion(
            info.context,
            partner_code=input.partner_code,
            converted_name=input.converted_name,
            value=input.value,
            currency=input.currency,
            external_id=input.external_id,
            lead_id=input.lead_id,
        )
        return Conversion.from_row(row)

    @mutation(
        CanWrite,
        "Give a value to a conversion recorded without one.",
        module="referrals",
    )
    async def complete_conversion(
        self,
        info: Info[Context, None],
        id: strawberry.ID,
        value: Decimal,
        currency: str | None = None,
    ) -> Conversion:
        row = await referrals.complete_conversion(
            info.context, id, value=value, currency=currency
        )
        return Conversion.from_row(row)

    @mutation(CanWrite, module="referrals")
    async def approve_conversion(
        self, info: Info[Context, None], id: strawberry.ID
    ) -> Conversion:
        return Conversion.from_row(await referrals.approve_conversion(info.context, id))

    @mutation(
        CanWrite, "Void unpaid commissions and reverse paid ones.", module="referrals"
    )
    async def void_conversion(
        self, info: Info[Context, None], id: strawberry.ID
    ) -> Conversion:
        return Conversion.from_row(await referrals.void_conversion(info.context, id))

    @mutation(
        CanWrite,
        "Mark a partner's approved commissions of a period paid.",
        module="referrals",
    )
    async def mark_commissions_paid(
        self,
        info: Info[Context, None],
        partner_id: strawberry.ID,
        from_: Annotated[datetime, strawberry.argument(name="from")],
        to: datetime,
    ) -> list[Commission]:
        rows = await referrals.mark_paid(
            info.context, partner_id, period_start=from_, period_end=to
        )
        return [Commission.from_row(row) for row in rows]

    @mutation(Public, "Apply from a referral landing page.", module="referrals")
    async def apply_referral(
        self, info: Info[Context, None], input: ReferralApplicationInput
    ) -> ApplicationReceipt:
        await referrals.apply(
            info.context,
            Application(
                tenant_slug=input.tenant_slug,
                partner_code=input.partner_code,
                full_name=input.full_name,
                email=input.email,
                phone=input.phone,
                telegram=input.telegram,
                honeypot=input.website,
            ),
        )
        return ApplicationReceipt(status="received")

    @mutation(CanWrite, "Connect a Telegram bot by its token.", module="onboarding")
    async def connect_bot(
        self, info: Info[Context, None], input: ConnectBotInput
    ) -> Bot:
        return Bot.from_view(await bots.connect_bot(info.context, input.bot_token))

    @mutation(
        CanWrite,
        "Replace a bot's whole flow; an invalid list saves nothing.",
        module="onboarding",
    )
    async def set_bot_steps(
        self,
        info: Info[Context, None],
        bot_id: strawberry.ID,
        steps: list[BotStepInput],
    ) -> list[BotStep]:
        saved = await bots.set_steps(
            info.context, bot_id, [step.to_step() for step in steps]
        )
        return [BotStep.from_step(step) for step in saved]

    @mutation(
        CanWrite,
        "Start the bot in webhook or polling mode; starting again switches modes.",
        module="onboarding",
    )
    async def start_bot(
        self, info: Info[Context, None], bot_id: strawberry.ID, mode: BotMode
    ) -> Bot:
        return Bot.from_view(await bots.start_bot(info.context, bot_id, mode.value))

    @mutation(CanWrite, "Stop the bot.", module="onboarding")
    async def stop_bot(self, info: Info[Context, None], bot_id: strawberry.ID) -> Bot:
        return Bot.from_view(await bots.stop_bot(info.context, bot_id))

    @mutation(
        CanWrite,
        "Add a channel or group where a bot of the workspace can post signals.",
        module="copy_trading",
    )
    async def create_signal_destination(
        self, info: Info[Context, None], input: SignalDestinationInput
    ) -> SignalDestination:
        row = await copy_trading.create_destination(
            info.context, bot_id=input.bot_id, chat_id=input.chat_id, title=input.title
        )
        return SignalDestination.from_row(row)

    @mutation(CanWrite, module="copy_trading")
    async def delete_signal_destination(
        self, info: Info[Context, None], id: strawberry.ID
    ) -> DeletePayload:
        deleted = await copy_trading.delete_destination(info.context, id)
        return DeletePayload(id=strawberry.ID(deleted))

    @mutation(
        CanWrite,
        "Create a signal and post it to the destinations given.",
        module="copy_trading",
    )
    async def create_signal(
        self, info: Info[Context, None], input: SignalInput
    ) -> Signal:
        view = await copy_trading.create_signal(
            info.context, input.to_draft(), list(input.destinations or [])
        )
        return Signal.from_view(view)

    @mutation(
        CanWrite,
        "Record a lifecycle event and reply to the post in each destination.",
        module="copy_trading",
    )
    async def record_signal_event(
        self, info: Info[Context, None], id: strawberry.ID, input: SignalEventInput
    ) -> Signal:
        view = await copy_trading.record_event(
            info.context,
            id,
            event=input.event.value,
            level=input.level,
            price=input.price,
        )
        return Signal.from_view(view)

    @mutation(
        CanWrite,
        "Add a subscriber, or renew the subscription of the same Telegram user.",
        module="copy_trading",
    )
    async def add_subscriber(
        self, info: Info[Context, None], input: AddSubscriberInput
    ) -> Subscriber:
        view = await copy_trading.add_subscriber(
            info.context,
            telegram_user_id=input.telegram_user_id,
            username=input.username,
            plan=input.plan,
            expires_at=input.expires_at,
        )
        return Subscriber.from_view(view, info.context.now())


def _fields(input: Any) -> dict[str, Any]:
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
