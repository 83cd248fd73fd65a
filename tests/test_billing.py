"""Billing: add-on modules, quoted USDT payments, the signed transfer webhook.

Amounts are compared as Decimal or integer base units, never as floats. Each
rejected request also checks that the workspace's payments, entitlements and
recorded transfers did not change.
"""

import asyncio
import json
import random
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import strawberry
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from strawberry.types.base import StrawberryObjectDefinition
from tronpy.keys import PrivateKey

from db.models import ModuleEntitlement, Payment, Tenant, TronTransfer
from db.tenancy import scoped_session
from domain import billing
from domain.auth import Viewer
from domain.billing import MAINNET_USDT, MODULES, BillingConfig, ServiceUnavailable
from domain.errors import ErrorCode, Forbidden
from ibhq.app import create_app
from resolvers.context import Context, ResponseEffects
from resolvers.loaders import Loaders
from rest_compat.operations import load_operations
from rest_compat.routes import ROUTES, RestRoute
from schema import build_schema
from schema.permissions import SignedIn, allow, declared_module
from tests.conftest import (
    PAYER,
    SECOND_WALLET,
    WALLET,
    FakeClock,
    Server,
    Workspace,
    graphql,
    make_settings,
    register,
    signed_headers,
)

MODULE_KEYS = {"module", "enabled", "active", "paidUntil", "trialEndsAt", "price"}
PAYMENT_KEYS = {
    "id", "module", "months", "amount", "currency", "network", "wallet",
    "expiresAt", "status", "createdAt", "paidAt", "txid",
}  # fmt: skip
ROLE_MESSAGE = "This action needs the owner or admin role"
TRIAL = timedelta(days=14)
PERIOD = timedelta(days=30)
OFFSET_STEP = Decimal("0.0001")
# A valid TRON address that is not the USDT contract.
LOOKALIKE_TOKEN = PrivateKey(bytes([4] * 32)).public_key.to_base58check_address()
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

MODULE_FIELDS = "module enabled active paidUntil trialEndsAt price"
MODULES_QUERY = f"{{ billing {{ modules {{ {MODULE_FIELDS} }} }} }}"
PAYMENTS_QUERY = "{ billing { payments { id module amount status } } }"
SET_MODULE = f"""
mutation($module: String!, $enabled: Boolean!) {{
  setModuleEnabled(module: $module, enabled: $enabled) {{ {MODULE_FIELDS} }}
}}
"""


# Helpers


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def to_millis(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(milliseconds=1)


def new_txid() -> str:
    return uuid.uuid4().hex + uuid.uuid4().hex


async def set_module(
    client: httpx.AsyncClient, module: str, enabled: bool
) -> httpx.Response:
    return await client.patch(
        "/api/billing/modules", json={"module": module, "enabled": enabled}
    )


async def modules_of(client: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    body = await graphql(client, MODULES_QUERY)
    assert "errors" not in body, body
    rows = body["data"]["billing"]["modules"]
    assert [row["module"] for row in rows] == list(MODULES)
    return {row["module"]: row for row in rows}


async def quote_payment(
    client: httpx.AsyncClient, module: str = "forwarder", months: int = 1
) -> dict[str, Any]:
    response = await client.post(
        "/api/billing/create-payment", json={"module": module, "months": months}
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def transfer_for(payment: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """Return a webhook body that pays ``payment`` exactly, as of its creation."""
    body = {
        "txid": new_txid(),
        "contract": MAINNET_USDT,
        "from": PAYER,
        "to": payment["wallet"],
        "amount": payment["amount"],
        "blockNumber": 70_000_000,
        "blockTimestamp": to_millis(
            parse_time(payment["createdAt"]) + timedelta(seconds=20)
        ),
    }
    body.update(overrides)
    return body


def sign_body(body: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    content = json.dumps(body).encode()
    return content, signed_headers(content)


async def webhook(server: Server, body: dict[str, Any]) -> httpx.Response:
    content, headers = sign_body(body)
    async with server.client() as client:
        return await client.post(
            "/api/billing/webhook", content=content, headers=headers
        )


async def payment_row(server: Server, payment_id: str) -> Payment:
    async with server.sessions() as db:
        row: Payment | None = await db.get(Payment, uuid.UUID(payment_id))
    assert row is not None
    return row


async def entitlement(
    server: Server, tenant_id: str, module: str
) -> ModuleEntitlement | None:
    async with server.sessions() as db:
        row: ModuleEntitlement | None = await db.scalar(
            select(ModuleEntitlement).where(
                ModuleEntitlement.tenant_id == uuid.UUID(tenant_id),
                ModuleEntitlement.module == module,
            )
        )
    return row


async def transfers(server: Server, txid: str) -> list[TronTransfer]:
    async with server.sessions() as db:
        result = await db.execute(
            select(TronTransfer).where(TronTransfer.txid == txid.lower())
        )
        return list(result.scalars())


async def tenant_state(server: Server, tenant_id: str) -> tuple[list[Any], list[Any]]:
    """Return the workspace's payments and entitlements, in comparable form."""
    tenant = uuid.UUID(tenant_id)
    async with server.sessions() as db:
        payments = (
            await db.execute(
                select(Payment).where(Payment.tenant_id == tenant).order_by(Payment.id)
            )
        ).scalars()
        payment_rows = [
            (
                row.id, row.module, row.months, row.amount_units, row.wallet,
                row.status, row.reserved, row.paid_at, row.txid,
            )
            for row in payments
        ]  # fmt: skip
        entitlements = (
            await db.execute(
                select(ModuleEntitlement)
                .where(ModuleEntitlement.tenant_id == tenant)
                .order_by(ModuleEntitlement.module)
            )
        ).scalars()
        entitlement_rows = [
            (row.module, row.enabled, row.trial_ends_at, row.paid_until)
            for row in entitlements
        ]
    return payment_rows, entitlement_rows


async def payment_count(server: Server, tenant_id: str) -> int:
    async with server.sessions() as db:
        count = await db.scalar(
            select(func.count())
            .select_from(Payment)
            .where(Payment.tenant_id == uuid.UUID(tenant_id))
        )
    return count or 0


async def tenant_created_at(server: Server, tenant_id: str) -> datetime:
    async with server.sessions() as db:
        tenant: Tenant | None = await db.get(Tenant, uuid.UUID(tenant_id))
    assert tenant is not None
    return tenant.created_at


def offset_of(payment: dict[str, Any], price: Decimal) -> Decimal:
    return Decimal(payment["amount"]) - price * int(payment["months"])


# Modules


async def test_owner_and_admin_toggle(workspace: Workspace, server: Server) -> None:
    trial_ends = await tenant_created_at(server, workspace.tenant_id) + TRIAL

    disabled = await set_module(workspace.owner, "forwarder", False)
    enabled = await set_module(workspace.admin, "outreach", True)

    assert disabled.status_code == 200, disabled.text
    assert set(disabled.json()) == MODULE_KEYS
    assert disabled.json() == {
        "module": "forwarder",
        "enabled": False,
        "active": False,
        "paidUntil": None,
        "trialEndsAt": disabled.json()["trialEndsAt"],
        "price": "49",
    }
    assert parse_time(disabled.json()["trialEndsAt"]) == trial_ends
    assert enabled.status_code == 200, enabled.text
    assert enabled.json() == {
        "module": "outreach",
        "enabled": True,
        "active": True,
        "paidUntil": None,
        "trialEndsAt": disabled.json()["trialEndsAt"],
        "price": "59",
    }
    states = await modules_of(workspace.member)
    assert states["forwarder"] == disabled.json()
    assert states["outreach"] == enabled.json()
    assert all(states[name]["enabled"] for name in MODULES if name != "forwarder")
    row = await entitlement(server, workspace.tenant_id, "forwarder")
    assert row is not None
    assert row.enabled is False


async def test_copy_trading_alias_accepted(
    workspace: Workspace, server: Server
) -> None:
    response = await set_module(workspace.owner, "copy-trading", False)

    assert response.status_code == 200, response.text
    assert response.json()["module"] == "copy_trading"
    assert response.json()["enabled"] is False
    assert response.json()["price"] == "79"
    assert (await modules_of(workspace.owner))["copy_trading"]["enabled"] is False
    row = await entitlement(server, workspace.tenant_id, "copy_trading")
    assert row is not None
    assert row.enabled is False


async def test_unknown_module_rejected(workspace: Workspace, server: Server) -> None:
    before = await tenant_state(server, workspace.tenant_id)
    states = await modules_of(workspace.owner)

    response = await set_module(workspace.owner, "crm", False)

    assert response.status_code == 400
    assert response.json() == {
        "error": "module must be one of forwarder, onboarding, outreach, "
        "copy_trading, referrals, templates, not 'crm'"
    }
    assert await tenant_state(server, workspace.tenant_id) == before
    assert await modules_of(workspace.owner) == states


async def test_member_cannot_toggle_module(
    workspace: Workspace, server: Server
) -> None:
    before = await tenant_state(server, workspace.tenant_id)

    response = await set_module(workspace.member, "forwarder", False)
    body = await graphql(
        workspace.member, SET_MODULE, {"module": "forwarder", "enabled": False}
    )

    assert response.status_code == 403
    assert response.json() == {"error": ROLE_MESSAGE}
    assert body["data"] is None
    assert body["errors"][0]["message"] == ROLE_MESSAGE
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert await tenant_state(server, workspace.tenant_id) == before
    assert (await modules_of(workspace.owner))["forwarder"]["enabled"] is True


async def test_toggle_during_trial(workspace: Workspace) -> None:
    disabled = await set_module(workspace.owner, "templates", False)
    enabled = await set_module(workspace.owner, "templates", True)

    assert disabled.status_code == 200, disabled.text
    assert disabled.json()["enabled"] is False
    assert disabled.json()["active"] is False
    assert enabled.status_code == 200, enabled.text
    assert enabled.json()["enabled"] is True
    assert enabled.json()["active"] is True
    assert (await modules_of(workspace.owner))["templates"] == enabled.json()


async def test_enable_after_trial_rejected(
    workspace: Workspace, server: Server, clock: FakeClock
) -> None:
    assert (await set_module(workspace.owner, "forwarder", False)).status_code == 200
    clock.advance(timedelta(days=15))
    before = await tenant_state(server, workspace.tenant_id)

    response = await set_module(workspace.owner, "forwarder", True)
    body = await graphql(
        workspace.owner, SET_MODULE, {"module": "forwarder", "enabled": True}
    )

    assert response.status_code == 400
    message = response.json()["error"]
    assert message.startswith("The forwarder module's trial has ended")
    assert "POST /api/billing/create-payment" in message
    assert '{"module": "forwarder", "months": 1}' in message
    assert body["data"] is None
    assert body["errors"][0]["message"] == message
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert await tenant_state(server, workspace.tenant_id) == before
    state = (await modules_of(workspace.owner))["forwarder"]
    assert state["enabled"] is False
    assert state["active"] is False


async def test_disable_after_trial_allowed(
    workspace: Workspace, clock: FakeClock
) -> None:
    clock.advance(timedelta(days=15))
    lapsed = (await modules_of(workspace.owner))["onboarding"]

    response = await set_module(workspace.owner, "onboarding", False)

    assert lapsed["enabled"] is True
    assert lapsed["active"] is False
    assert response.status_code == 200, response.text
    assert response.json()["enabled"] is False
    assert response.json()["active"] is False
    assert (await modules_of(workspace.owner))["onboarding"] == response.json()


async def test_graphql_set_module_enabled(workspace: Workspace) -> None:
    body = await graphql(
        workspace.admin, SET_MODULE, {"module": "copy-trading", "enabled": False}
    )

    assert "errors" not in body, body
    state = body["data"]["setModuleEnabled"]
    assert set(state) == MODULE_KEYS
    assert state["module"] == "copy_trading"
    assert state["enabled"] is False
    assert state["active"] is False
    assert state["price"] == "79"
    assert (await modules_of(workspace.owner))["copy_trading"] == state
    rest_response = await set_module(workspace.owner, "copy_trading", False)
    assert rest_response.json() == state


# Payments


async def test_create_payment_quotes_amount(
    workspace: Workspace, server: Server
) -> None:
    response = await workspace.owner.post(
        "/api/billing/create-payment", json={"module": "forwarder", "months": 2}
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == PAYMENT_KEYS
    assert body["module"] == "forwarder"
    assert body["months"] == 2
    assert body["currency"] == "USDT"
    assert body["network"] == "TRC20"
    assert body["wallet"] in (WALLET, SECOND_WALLET)
    assert body["status"] == "pending"
    assert body["paidAt"] is None
    assert body["txid"] is None
    assert parse_time(body["expiresAt"]) == parse_time(body["createdAt"]) + timedelta(
        minutes=30
    )
    assert isinstance(body["amount"], str)
    offset = offset_of(body, Decimal("49"))
    assert Decimal("0.0001") <= offset <= Decimal("0.0999")
    assert offset % OFFSET_STEP == 0
    row = await payment_row(server, body["id"])
    assert row.tenant_id == uuid.UUID(workspace.tenant_id)
    assert row.amount_units == Decimal(body["amount"]) * 1_000_000
    assert row.status == "pending"
    assert row.reserved is True
    assert row.wallet == body["wallet"]
    assert row.reserved_until == parse_time(body["expiresAt"]) + timedelta(hours=24)
    listed = (await graphql(workspace.member, PAYMENTS_QUERY))["data"]["billing"]
    assert listed["payments"] == [
        {
            "id": body["id"],
            "module": "forwarder",
            "amount": body["amount"],
            "status": "pending",
        }
    ]


async def test_copy_trading_payment_alias(workspace: Workspace) -> None:
    body = await quote_payment(workspace.admin, "copy-trading", 3)

    assert body["module"] == "copy_trading"
    assert body["months"] == 3
    offset = offset_of(body, Decimal("79"))
    assert Decimal("0.0001") <= offset <= Decimal("0.0999")
    assert offset % OFFSET_STEP == 0


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"module": "forwarder", "months": 0}, "months must be between 1 and 12"),
        ({"module": "forwarder", "months": 13}, "months must be between 1 and 12"),
        (
            {"module": "crm", "months": 1},
            "module must be one of forwarder, onboarding, outreach, "
            "copy_trading, referrals, templates, not 'crm'",
        ),
    ],
    ids=["months-0", "months-13", "unknown-module"],
)
async def test_create_payment_rejects_input(
    workspace: Workspace, server: Server, payload: dict[str, Any], message: str
) -> None:
    before = await tenant_state(server, workspace.tenant_id)

    response = await workspace.owner.post("/api/billing/create-payment", json=payload)

    assert response.status_code == 400
    assert response.json() == {"error": message}
    assert await tenant_state(server, workspace.tenant_id) == before


async def test_member_cannot_create_payment(
    workspace: Workspace, server: Server
) -> None:
    response = await workspace.member.post(
        "/api/billing/create-payment", json={"module": "forwarder", "months": 1}
    )

    assert response.status_code == 403
    assert response.json() == {"error": ROLE_MESSAGE}
    assert await payment_count(server, workspace.tenant_id) == 0


async def test_payments_stay_in_tenant(
    workspace: Workspace, other_workspace: Workspace
) -> None:
    payment = await quote_payment(workspace.owner)

    other_listing = await graphql(other_workspace.owner, PAYMENTS_QUERY)
    own_listing = await graphql(workspace.owner, PAYMENTS_QUERY)

    assert other_listing == {"data": {"billing": {"payments": []}}}
    assert [item["id"] for item in own_listing["data"]["billing"]["payments"]] == [
        payment["id"]
    ]


async def test_concurrent_payments_get_distinct_amounts(server: Server) -> None:
    owners = [(await register(server))[0] for _ in range(4)]
    try:
        responses = await asyncio.gather(
            *(
                owner.post(
                    "/api/billing/create-payment",
                    json={"module": "referrals", "months": 2},
                )
                for owner in owners
                for _ in range(10)
            )
        )
    finally:
        for owner in owners:
            await owner.aclose()

    assert [response.status_code for response in responses] == [201] * 40
    quotes = [response.json() for response in responses]
    pairs = {(quote["wallet"], Decimal(quote["amount"])) for quote in quotes}
    assert len(pairs) == 40
    for quote in quotes:
        offset = offset_of(quote, Decimal("29"))
        assert Decimal("0.0001") <= offset <= Decimal("0.0999")
        assert offset % OFFSET_STEP == 0
    async with server.sessions() as db:
        reserved = (
            await db.execute(
                select(Payment.wallet, Payment.amount_units).where(
                    Payment.id.in_([uuid.UUID(quote["id"]) for quote in quotes]),
                    Payment.reserved.is_(True),
                )
            )
        ).all()
    assert len(set(reserved)) == 40


def reserved_payment(tenant_id: str, units: int, *, reserved: bool) -> Payment:
    now = datetime.now(UTC)
    return Payment(
        tenant_id=uuid.UUID(tenant_id),
        module="forwarder",
        months=1,
        amount_units=units,
        wallet=WALLET,
        status="pending",
        reserved=reserved,
        created_at=now,
        expires_at=now + timedelta(minutes=30),
        reserved_until=now + timedelta(hours=24, minutes=30),
    )


async def test_reserved_amount_index(workspace: Workspace, server: Server) -> None:
    # Every price is above one USDT, so no quote can have this amount.
    units = random.randrange(100, 999_999)
    first = reserved_payment(workspace.tenant_id, units, reserved=True)
    async with server.sessions() as db:
        db.add(first)
        await db.commit()

    async with server.sessions() as db:
        db.add(reserved_payment(workspace.tenant_id, units, reserved=True))
        with pytest.raises(IntegrityError):
            await db.flush()
        await db.rollback()

    released = reserved_payment(workspace.tenant_id, units, reserved=False)
    async with server.sessions() as db:
        db.add(released)
        await db.commit()
    async with server.sessions() as db:
        rows = (
            await db.execute(
                select(Payment.reserved).where(
                    Payment.wallet == WALLET, Payment.amount_units == units
                )
            )
        ).all()
        await db.execute(
            delete(Payment).where(
                Payment.tenant_id == uuid.UUID(workspace.tenant_id),
                Payment.amount_units == units,
            )
        )
        await db.commit()
    assert sorted(row.reserved for row in rows) == [False, True]


async def test_reservation_outlasts_late_window(
    workspace: Workspace, server: Server
) -> None:
    # A price no other test quotes, and a time long past, so the shared
    # database's other reservations are neither seen nor released here.
    config = BillingConfig(
        prices={"forwarder": Decimal("3.21")},
        trial=TRIAL,
        wallets=(WALLET,),
        expiry=timedelta(minutes=30),
        late_window=timedelta(hours=24),
        step_units=100,
        max_offset_units=200,
        usdt_contracts=frozenset({MAINNET_USDT}),
    )
    start = datetime(2020, 1, 1, tzinfo=UTC)
    rng = random.Random(20200101)
    tenant = uuid.UUID(workspace.tenant_id)

    async def create(now: datetime) -> Payment:
        return await billing.create_payment(
            db, "forwarder", 1, config=config, now=now, rng=rng
        )

    async with scoped_session(server.sessions, tenant) as db:
        first = await create(start)
        second = await create(start)
        assert {first.amount_units, second.amount_units} == {3_210_100, 3_210_200}
        assert first.reserved_until == start + timedelta(hours=24, minutes=30)

        for moment in (
            start,
            start + timedelta(minutes=31),
            start + timedelta(hours=24, minutes=29, seconds=59),
        ):
            with pytest.raises(ServiceUnavailable) as rejected:
                await create(moment)
            assert rejected.value.code == ErrorCode.UNAVAILABLE
            assert rejected.value.message == (
                "Every payment amount at this price is reserved; try again later"
            )
        await db.refresh(first)
        assert first.status == "expired"
        assert first.reserved is True

        later = start + timedelta(hours=24, minutes=30)
        third = await create(later)
        await db.refresh(first)
        await db.refresh(second)

        assert third.amount_units in (3_210_100, 3_210_200)
        assert third.reserved is True
        assert first.status == "expired"
        assert first.reserved is False
        assert second.status == "expired"
        assert second.reserved is False
        await db.rollback()


# The webhook


async def test_webhook_pays_payment(workspace: Workspace, server: Server) -> None:
    assert (await set_module(workspace.owner, "forwarder", False)).status_code == 200
    payment = await quote_payment(workspace.owner, "forwarder", 2)
    body = transfer_for(payment)

    response = await webhook(server, body)

    assert response.status_code == 200, response.text
    assert response.json() == {"status": "matched", "paymentId": payment["id"]}
    row = await payment_row(server, payment["id"])
    assert row.status == "paid"
    assert row.txid == body["txid"]
    assert row.paid_at is not None
    assert abs(row.paid_at - server.clock.now()) < timedelta(seconds=10)
    granted = await entitlement(server, workspace.tenant_id, "forwarder")
    assert granted is not None
    assert granted.paid_until == row.paid_at + 2 * PERIOD
    assert granted.enabled is True
    state = (await modules_of(workspace.owner))["forwarder"]
    assert state["enabled"] is True
    assert state["active"] is True
    assert parse_time(state["paidUntil"]) == granted.paid_until
    (recorded,) = await transfers(server, body["txid"])
    assert recorded.status == "matched"
    assert recorded.payment_id == row.id
    assert recorded.amount_units == Decimal(payment["amount"]) * 1_000_000
    listed = (await graphql(workspace.owner, PAYMENTS_QUERY))["data"]["billing"]
    assert listed["payments"][0]["status"] == "paid"


async def test_second_payment_extends(workspace: Workspace, server: Server) -> None:
    first = await quote_payment(workspace.owner, "outreach", 1)
    second = await quote_payment(workspace.owner, "outreach", 2)
    assert (await webhook(server, transfer_for(first))).json()["status"] == "matched"
    granted = await entitlement(server, workspace.tenant_id, "outreach")
    assert granted is not None
    assert granted.paid_until is not None
    paid_until = granted.paid_until

    response = await webhook(server, transfer_for(second))

    assert response.json() == {"status": "matched", "paymentId": second["id"]}
    extended = await entitlement(server, workspace.tenant_id, "outreach")
    assert extended is not None
    assert extended.paid_until == paid_until + 2 * PERIOD
    state = (await modules_of(workspace.owner))["outreach"]
    assert parse_time(state["paidUntil"]) == paid_until + 2 * PERIOD


async def test_duplicate_txid_changes_nothing(
    workspace: Workspace, server: Server
) -> None:
    payment = await quote_payment(workspace.owner)
    body = transfer_for(payment)
    assert (await webhook(server, body)).json()["status"] == "matched"
    before = await tenant_state(server, workspace.tenant_id)

    again = await webhook(server, body)
    upper = await webhook(server, {**body, "txid": body["txid"].upper()})

    assert again.status_code == 200, again.text
    assert again.json() == {"status": "duplicate"}
    assert upper.json() == {"status": "duplicate"}
    assert await tenant_state(server, workspace.tenant_id) == before
    assert len(await transfers(server, body["txid"])) == 1


@pytest.mark.parametrize("units", [-1, 1], ids=["short", "over"])
async def test_inexact_amount_unmatched(
    workspace: Workspace, server: Server, units: int
) -> None:
    payment = await quote_payment(workspace.owner)
    amount = Decimal(payment["amount"]) + units * Decimal("0.000001")
    body = transfer_for(payment, amount=format(amount, "f"))
    before = await tenant_state(server, workspace.tenant_id)

    response = await webhook(server, body)

    assert response.status_code == 200, response.text
    assert response.json() == {"status": "unmatched"}
    assert await tenant_state(server, workspace.tenant_id) == before
    assert (await payment_row(server, payment["id"])).status == "pending"
    (recorded,) = await transfers(server, body["txid"])
    assert recorded.status == "unmatched"
    assert recorded.payment_id is None
    assert recorded.amount_units == amount * 1_000_000


@pytest.mark.parametrize(
    ("field", "value", "detail"),
    [
        ("contract", LOOKALIKE_TOKEN, "token contract is not an allowed USDT contract"),
        ("to", PAYER, "recipient is not a receiving wallet"),
    ],
    ids=["lookalike-token", "foreign-recipient"],
)
async def test_transfer_ignored(
    workspace: Workspace, server: Server, field: str, value: str, detail: str
) -> None:
    payment = await quote_payment(workspace.owner)
    body = transfer_for(payment, **{field: value})
    before = await tenant_state(server, workspace.tenant_id)

    response = await webhook(server, body)

    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ignored"}
    assert await tenant_state(server, workspace.tenant_id) == before
    forwarder = await entitlement(server, workspace.tenant_id, "forwarder")
    assert forwarder is not None
    assert forwarder.paid_until is None
    (recorded,) = await transfers(server, body["txid"])
    assert recorded.status == "ignored"
    assert recorded.detail == detail
    assert recorded.payment_id is None


async def test_late_payment_within_window(
    workspace: Workspace, server: Server, clock: FakeClock
) -> None:
    payment = await quote_payment(workspace.owner, "onboarding", 1)
    clock.advance(timedelta(hours=2))
    # Quoting another payment marks overdue payments expired, but they stay reserved.
    await quote_payment(workspace.owner, "referrals", 1)
    expired = await payment_row(server, payment["id"])
    pending = (await graphql(workspace.owner, PAYMENTS_QUERY))["data"]["billing"]
    late = parse_time(payment["expiresAt"]) + timedelta(hours=1)
    body = transfer_for(payment, blockTimestamp=to_millis(late))

    response = await webhook(server, body)

    assert expired.status == "expired"
    assert expired.reserved is True
    assert pending["payments"][1]["status"] == "expired"
    assert response.json() == {"status": "matched", "paymentId": payment["id"]}
    row = await payment_row(server, payment["id"])
    assert row.status == "paid_late"
    assert row.txid == body["txid"]
    granted = await entitlement(server, workspace.tenant_id, "onboarding")
    assert granted is not None
    assert granted.enabled is True
    assert row.paid_at is not None
    assert granted.paid_until == row.paid_at + PERIOD
    listed = (await graphql(workspace.owner, PAYMENTS_QUERY))["data"]["billing"]
    assert listed["payments"][1]["status"] == "paid_late"


async def test_payment_after_window_unmatched(
    workspace: Workspace, server: Server, clock: FakeClock
) -> None:
    payment = await quote_payment(workspace.owner, "onboarding", 1)
    clock.advance(timedelta(hours=25))
    late = parse_time(payment["expiresAt"]) + timedelta(hours=24, seconds=1)
    body = transfer_for(payment, blockTimestamp=to_millis(late))
    before = await tenant_state(server, workspace.tenant_id)

    response = await webhook(server, body)

    assert response.json() == {"status": "unmatched"}
    assert await tenant_state(server, workspace.tenant_id) == before
    assert (await payment_row(server, payment["id"])).paid_at is None
    onboarding = await entitlement(server, workspace.tenant_id, "onboarding")
    assert onboarding is not None
    assert onboarding.paid_until is None
    (recorded,) = await transfers(server, body["txid"])
    assert recorded.status == "unmatched"


def seven_decimals(payment: dict[str, Any]) -> dict[str, Any]:
    amount = Decimal(payment["amount"]) + Decimal("0.0000001")
    return {"amount": format(amount, "f")}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (seven_decimals, "amount has more than 6 decimals"),
        (
            lambda _: {"txid": "ab" * 31 + "zz"},
            "txid must be a 64-character hex transaction id",
        ),
        (
            lambda _: {"txid": "ab" * 31},
            "txid must be a 64-character hex transaction id",
        ),
        (lambda _: {"blockNumber": -1}, "blockNumber must not be negative"),
    ],
    ids=["seven-decimals", "txid-not-hex", "txid-short", "negative-block"],
)
async def test_webhook_rejects_bad_input(
    workspace: Workspace,
    server: Server,
    overrides: Callable[[dict[str, Any]], dict[str, Any]],
    message: str,
) -> None:
    payment = await quote_payment(workspace.owner)
    body = transfer_for(payment, **overrides(payment))
    before = await tenant_state(server, workspace.tenant_id)

    response = await webhook(server, body)

    assert response.status_code == 400
    assert response.json() == {"error": message}
    assert await tenant_state(server, workspace.tenant_id) == before
    assert await transfers(server, body["txid"]) == []
    assert (await payment_row(server, payment["id"])).status == "pending"


async def test_concurrent_webhooks_credit_once(
    workspace: Workspace, server: Server
) -> None:
    payment = await quote_payment(workspace.owner, "templates", 1)
    content, headers = sign_body(transfer_for(payment))

    async with server.client() as client:
        responses = await asyncio.gather(
            *(
                client.post("/api/billing/webhook", content=content, headers=headers)
                for _ in range(10)
            )
        )

    assert [response.status_code for response in responses] == [200] * 10
    outcomes = sorted(response.json()["status"] for response in responses)
    assert outcomes == ["duplicate"] * 9 + ["matched"]
    row = await payment_row(server, payment["id"])
    assert row.status == "paid"
    granted = await entitlement(server, workspace.tenant_id, "templates")
    assert granted is not None
    assert row.paid_at is not None
    assert granted.paid_until == row.paid_at + PERIOD


@pytest.mark.parametrize("existing", [False, True], ids=["new-row", "existing-row"])
async def test_concurrent_payments_all_extend(
    workspace: Workspace, server: Server, existing: bool
) -> None:
    if existing:
        assert (await set_module(workspace.owner, "forwarder", True)).status_code == 200
    payments = [await quote_payment(workspace.owner, "forwarder", 1) for _ in range(4)]
    bodies = [sign_body(transfer_for(payment)) for payment in payments]

    async with server.client() as client:
        responses = await asyncio.gather(
            *(
                client.post("/api/billing/webhook", content=content, headers=headers)
                for content, headers in bodies
            )
        )

    assert [response.status_code for response in responses] == [200] * 4, [
        response.text for response in responses
    ]
    assert [response.json()["status"] for response in responses] == ["matched"] * 4
    paid_at = [(await payment_row(server, p["id"])).paid_at for p in payments]
    granted = await entitlement(server, workspace.tenant_id, "forwarder")
    assert granted is not None
    assert granted.paid_until is not None
    # NOTE: this checks a race, so a missing lock can pass in some runs.
    # The first payment credited sets its paidAt + 30 days. Each later one
    # extends that by another 30 days.
    assert granted.paid_until - 4 * PERIOD in paid_at


# The module gate

SCHEMA = build_schema()


def root_field_module(route: RestRoute) -> str | None:
    """Return the module that the route's root GraphQL field declares, if any."""
    definition = load_operations()[route.operation].definition
    type_name = definition.operation.value.capitalize()
    field_name = definition.selection_set.selections[0].name.value  # type: ignore[attr-defined]
    field = SCHEMA.get_field_for_type(field_name, type_name)
    assert field is not None, f"{type_name}.{field_name}"
    return declared_module(field.extensions)


GATED_ROUTES = [
    (route, module)
    for route in ROUTES
    if (module := root_field_module(route)) is not None
]


async def test_schema_declares_known_modules() -> None:
    checked = []
    for name in SCHEMA._schema.type_map:
        definition = SCHEMA.get_type_by_name(name)
        if not isinstance(definition, StrawberryObjectDefinition):
            continue
        for field in definition.fields:
            checked.append(f"{name}.{field.python_name}")
            assert declared_module(field.extensions) in (None, *MODULES), checked[-1]
    assert "Mutation.create_payment" in checked
    assert "Billing.modules" in checked


@pytest.mark.parametrize(
    ("route", "module"),
    GATED_ROUTES,
    ids=[f"{route.method} {route.path}" for route, _ in GATED_ROUTES],
)
async def test_gated_route_rejects_disabled_module(
    workspace: Workspace, route: RestRoute, module: str
) -> None:
    assert (await set_module(workspace.owner, module, False)).status_code == 200
    path = route.path
    for name in route.path_params:
        path = path.replace("{" + name + "}", str(uuid.uuid4()))
    body = dict(route.example or {})
    if "tenantSlug" in body:
        # A public route names its workspace in the body.
        body["tenantSlug"] = workspace.slug
    content = json.dumps(body).encode()
    headers = signed_headers(content) if route.signed_webhook else {}
    headers["Content-Type"] = "application/json"

    response = await workspace.owner.request(
        route.method,
        path,
        content=content if route.body is not None else None,
        headers=headers,
    )

    assert response.status_code == 403, response.text
    assert response.json() == {
        "error": f"The {module} module is turned off for this workspace"
    }
    assert (await modules_of(workspace.owner))[module]["enabled"] is False


@strawberry.type
class GateQuery:
    @strawberry.field(extensions=allow(SignedIn, module="forwarder"))
    def gated(self) -> str:
        return "open"


GATE_SCHEMA = strawberry.Schema(query=GateQuery)


async def run_gate(server: Server, workspace: Workspace) -> Any:
    """Run the gated field with the Context that a request of the owner builds."""
    tenant = uuid.UUID(workspace.tenant_id)
    viewer = Viewer(
        user_id=uuid.UUID(workspace.owner_id),
        tenant_id=tenant,
        role="owner",
        email=workspace.owner_email,
        name="Owner",
        session_id=uuid.uuid4(),
        session_expires_at=server.clock.now() + timedelta(days=1),
    )
    db = scoped_session(server.sessions, tenant)
    try:
        context = Context(
            request_id="gate-test",
            db=db,
            viewer=viewer,
            loaders=Loaders.for_request(db, server.settings.billing),
            settings=server.settings,
            clock=server.clock,
            client_address="127.0.0.1",
            effects=ResponseEffects(),
            sessions=server.sessions,
            bot_api=server.app.state.services.bot_api,
        )
        return await GATE_SCHEMA.execute("{ gated }", context_value=context)
    finally:
        await db.close()


def assert_gate_closed(result: Any) -> None:
    assert result.data is None
    (error,) = result.errors
    assert error.message == "The forwarder module is turned off for this workspace"
    assert isinstance(error.original_error, Forbidden)


async def test_module_permission_checks_state(
    workspace: Workspace, server: Server, clock: FakeClock
) -> None:
    in_trial = await run_gate(server, workspace)
    assert (await set_module(workspace.owner, "forwarder", False)).status_code == 200
    switched_off = await run_gate(server, workspace)
    assert (await set_module(workspace.owner, "forwarder", True)).status_code == 200
    switched_on = await run_gate(server, workspace)
    clock.advance(timedelta(days=15))
    lapsed = await run_gate(server, workspace)
    payment = await quote_payment(workspace.owner)
    paid = await webhook(server, transfer_for(payment))
    renewed = await run_gate(server, workspace)

    assert in_trial.errors is None
    assert in_trial.data == {"gated": "open"}
    assert_gate_closed(switched_off)
    assert switched_on.errors is None
    assert switched_on.data == {"gated": "open"}
    assert_gate_closed(lapsed)
    assert paid.json()["status"] == "matched"
    assert renewed.errors is None
    assert renewed.data == {"gated": "open"}


# Settings without wallets or webhook secret


@asynccontextmanager
async def unconfigured_app(
    server: Server, tmp_path: Path, clock: FakeClock
) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(
        server.settings.database_url,
        tmp_path,
        tron_wallets="",
        billing_webhook_secret=None,
    )
    app = create_app(settings, clock=clock)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(
            transport=transport, base_url="http://127.0.0.1"
        ) as client:
            yield client
    finally:
        await app.state.engine.dispose()


async def test_no_wallet_returns_503(
    server: Server, tmp_path: Path, clock: FakeClock
) -> None:
    async with unconfigured_app(server, tmp_path, clock) as client:
        slug = f"bare-{uuid.uuid4().hex[:12]}"
        registered = await client.post(
            "/api/auth/register",
            json={
                "tenantName": "Bare",
                "tenantSlug": slug,
                "email": f"owner@{slug}.example.com",
                "password": "correct horse battery",
            },
        )
        assert registered.status_code == 201, registered.text
        tenant_id = registered.json()["tenant"]["id"]
        payment_response = await client.post(
            "/api/billing/create-payment", json={"module": "forwarder", "months": 1}
        )
        leads = await client.get("/api/leads")

    assert payment_response.status_code == 503
    assert payment_response.json() == {
        "error": "Payments are not available: no receiving wallet is configured "
        "(IBHQ_TRON_WALLETS)"
    }
    assert leads.status_code == 200, leads.text
    assert await payment_count(server, tenant_id) == 0


async def test_no_secret_webhook_returns_503(
    workspace: Workspace, server: Server, tmp_path: Path, clock: FakeClock
) -> None:
    payment = await quote_payment(workspace.owner)
    body = transfer_for(payment)
    content, headers = sign_body(body)
    before = await tenant_state(server, workspace.tenant_id)

    async with unconfigured_app(server, tmp_path, clock) as client:
        response = await client.post(
            "/api/billing/webhook", content=content, headers=headers
        )

    assert response.status_code == 503
    assert response.json() == {"error": "The billing webhook is not configured"}
    assert await tenant_state(server, workspace.tenant_id) == before
    assert await transfers(server, body["txid"]) == []


async def test_concurrent_first_toggles(server: Server, workspace: Workspace) -> None:
    responses = await asyncio.gather(
        *(
            workspace.owner.patch(
                "/api/billing/modules",
                json={"module": "templates", "enabled": index % 2 == 0},
            )
            for index in range(8)
        )
    )

    assert [response.status_code for response in responses] == [200] * 8
    async with server.sessions() as db:
        rows = await db.scalar(
            select(func.count())
            .select_from(ModuleEntitlement)
            .where(
                ModuleEntitlement.tenant_id == uuid.UUID(workspace.tenant_id),
                ModuleEntitlement.module == "templates",
            )
        )
    assert rows == 1


@pytest.mark.parametrize(
    "amount",
    ["1e30", "9223372036854.775808", "1.909930e+01", "+19.0993", " 19.0993", "1_000"],
)
async def test_webhook_rejects_odd_amounts(
    server: Server, workspace: Workspace, amount: str
) -> None:
    payment = await quote_payment(workspace.owner)
    body = transfer_for(payment, amount=amount)

    response = await webhook(server, body)

    assert response.status_code == 400, response.text
    assert await transfers(server, body["txid"]) == []
    assert (await payment_row(server, payment["id"])).status == "pending"


async def test_trial_fixed_at_registration(
    server: Server, workspace: Workspace, tmp_path: Path, clock: FakeClock
) -> None:
    settings = make_settings(server.settings.database_url, tmp_path, trial_days=0)
    app = create_app(settings, clock=clock)
    transport = httpx.ASGITransport(app=app)
    cookies = dict(workspace.owner.cookies.items())
    try:
        async with httpx.AsyncClient(
            transport=transport, base_url="http://127.0.0.1", cookies=cookies
        ) as client:
            query = (
                "{ workspace { createdAt } billing { modules { active trialEndsAt } } }"
            )
            body = (await client.post("/graphql", json={"query": query})).json()
    finally:
        await app.state.engine.dispose()

    # This app's trial is 0 days, but the workspace keeps the 14 it was given.
    created = parse_time(body["data"]["workspace"]["createdAt"])
    modules = body["data"]["billing"]["modules"]
    assert len(modules) == len(MODULES)
    assert all(item["active"] for item in modules)
    assert {parse_time(item["trialEndsAt"]) for item in modules} == {
        created + timedelta(days=14)
    }
