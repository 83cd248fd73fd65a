"""Referrals: partners and their chains, the commission plan, conversions with
their multi-level commissions, and the public application endpoint.

Amounts are compared as the exact strings the API sends. Each rejected write
also checks that the workspace's referral rows did not change. Every test that
calls the public apply endpoint sends its own client address in
X-Forwarded-For, because that endpoint is rate limited per address.
"""

import asyncio
import itertools
import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from db.models import Activity, Commission, Conversion, Lead, Partner, ReferralSettings
from tests.conftest import (
    FakeClock,
    Server,
    Workspace,
    graphql,
    make_settings,
    serve_app,
)

PARTNER_FIELDS = """
id name email code parentId status level level1RateOverride conversions
pendingCommission approvedCommission paidCommission createdAt
"""
COMMISSION_FIELDS = "id partnerId level rate amount currency kind status paidAt"
CONVERSION_FIELDS = f"""
id partnerId convertedName value currency externalId leadId status createdAt
commissions {{ {COMMISSION_FIELDS} }}
"""
CREATE_PARTNER = f"""
mutation($input: CreatePartnerInput!) {{
  createPartner(input: $input) {{ {PARTNER_FIELDS} }}
}}
"""
UPDATE_PARTNER = f"""
mutation($id: ID!, $input: UpdatePartnerInput!) {{
  updatePartner(id: $id, input: $input) {{ {PARTNER_FIELDS} }}
}}
"""
PARTNER = f"query($id: ID!) {{ partner(id: $id) {{ {PARTNER_FIELDS} }} }}"
PARTNERS = "{ partners { id code } }"
PLAN = "{ commissionPlan { rates allowedOrigins } }"
SET_PLAN = """
mutation($rates: [Decimal!]!) {
  setCommissionPlan(rates: $rates) { rates allowedOrigins }
}
"""
SET_ORIGINS = """
mutation($origins: [String!]!) {
  setReferralAllowedOrigins(origins: $origins) { rates allowedOrigins }
}
"""
APPROVE = (
    f"mutation($id: ID!) {{ approveConversion(id: $id) {{ {CONVERSION_FIELDS} }} }}"
)
VOID = f"mutation($id: ID!) {{ voidConversion(id: $id) {{ {CONVERSION_FIELDS} }} }}"
COMPLETE = f"""
mutation($id: ID!, $value: Decimal!) {{
  completeConversion(id: $id, value: $value) {{ {CONVERSION_FIELDS} }}
}}
"""
MARK_PAID = f"""
mutation($partnerId: ID!, $from: DateTime!, $to: DateTime!) {{
  markCommissionsPaid(partnerId: $partnerId, from: $from, to: $to) {{
    {COMMISSION_FIELDS}
  }}
}}
"""
CONVERSIONS = f"{{ conversions {{ {CONVERSION_FIELDS} }} }}"

FIVE_LEVELS = ["30", "10", "5", "3", "2"]
ROLE_MESSAGE = "This action needs the owner or admin role"
UNKNOWN = "Unknown workspace or partner code"
MODULE_OFF = "The referrals module is turned off for this workspace"
RATE_LIMITED = "Too many applications; try again later"
RECEIVED = {"status": "received"}
HOUR = timedelta(hours=1)

_address_numbers = itertools.count(1)


# Helpers


def next_address() -> str:
    """Return a client address that no other test in this run uses."""
    number = next(_address_numbers)
    return f"10.77.{number // 250}.{number % 250 + 1}"


async def data_of(
    client: httpx.AsyncClient, query: str, variables: dict[str, Any] | None = None
) -> dict[str, Any]:
    body = await graphql(client, query, variables)
    assert "errors" not in body, body
    data: dict[str, Any] = body["data"]
    return data


async def error_of(
    client: httpx.AsyncClient, query: str, variables: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Return the only GraphQL error of a request that must fail."""
    body = await graphql(client, query, variables)
    assert "errors" in body, body
    assert len(body["errors"]) == 1, body
    error: dict[str, Any] = body["errors"][0]
    return error


async def create_partner(
    client: httpx.AsyncClient,
    code: str,
    parent: str | None = None,
    *,
    name: str | None = None,
    email: str | None = None,
) -> dict[str, Any]:
    variables = {
        "input": {
            "name": name or f"Partner {code}",
            "code": code,
            "email": email,
            "parentCode": parent,
        }
    }
    partner: dict[str, Any] = (await data_of(client, CREATE_PARTNER, variables))[
        "createPartner"
    ]
    return partner


async def build_chain(
    client: httpx.AsyncClient, prefix: str, length: int
) -> list[dict[str, Any]]:
    """Create partners, each under the previous one, and return them root first."""
    chain: list[dict[str, Any]] = []
    parent = None
    for index in range(1, length + 1):
        partner = await create_partner(client, f"{prefix}{index}", parent)
        chain.append(partner)
        parent = partner["code"]
    return chain


async def update_partner(
    client: httpx.AsyncClient, partner_id: str, **changes: Any
) -> dict[str, Any]:
    return await graphql(client, UPDATE_PARTNER, {"id": partner_id, "input": changes})


async def fetch_partner(client: httpx.AsyncClient, partner_id: str) -> dict[str, Any]:
    partner: dict[str, Any] = (await data_of(client, PARTNER, {"id": partner_id}))[
        "partner"
    ]
    return partner


async def totals_of(client: httpx.AsyncClient, partner_id: str) -> dict[str, Any]:
    partner = await fetch_partner(client, partner_id)
    return {
        "conversions": partner["conversions"],
        "pending": partner["pendingCommission"],
        "approved": partner["approvedCommission"],
        "paid": partner["paidCommission"],
    }


def totals(
    conversions: int,
    pending: str = "0.00",
    approved: str = "0.00",
    paid: str = "0.00",
) -> dict[str, Any]:
    return {
        "conversions": conversions,
        "pending": pending,
        "approved": approved,
        "paid": paid,
    }


async def set_plan(client: httpx.AsyncClient, rates: list[str]) -> dict[str, Any]:
    plan: dict[str, Any] = (await data_of(client, SET_PLAN, {"rates": rates}))[
        "setCommissionPlan"
    ]
    return plan


async def convert(
    client: httpx.AsyncClient, code: str, value: Any, **extra: Any
) -> httpx.Response:
    return await client.post(
        "/api/referrals/conversions",
        json={"partnerCode": code, "convertedName": "Alex Morgan", "value": value}
        | extra,
    )


async def converted(
    client: httpx.AsyncClient, code: str, value: Any, **extra: Any
) -> dict[str, Any]:
    response = await convert(client, code, value, **extra)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def shares(conversion: dict[str, Any]) -> list[tuple[str, int, str, str]]:
    """Return (partnerId, level, rate, amount) of each commission, in order."""
    return [
        (row["partnerId"], row["level"], row["rate"], row["amount"])
        for row in conversion["commissions"]
    ]


def application(
    slug: str, code: str, email: str = "alex@example.com", **extra: Any
) -> dict[str, Any]:
    return {
        "tenantSlug": slug,
        "partnerCode": code,
        "fullName": "Alex Morgan",
        "email": email,
        "phone": "+44 20 7946 0958",
        "telegram": "@alex_fx",
    } | extra


async def apply(
    server: Server,
    body: dict[str, Any],
    address: str,
    origin: str | None = None,
) -> httpx.Response:
    headers = {"X-Forwarded-For": address}
    if origin is not None:
        headers["Origin"] = origin
    async with server.client() as client:
        return await client.post("/api/referrals/apply", json=body, headers=headers)


async def preflight(server: Server, origin: str | None) -> httpx.Response:
    headers = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    if origin is not None:
        headers["Origin"] = origin
    async with server.client() as client:
        return await client.options("/api/referrals/apply", headers=headers)


async def count_rows(server: Server, model: Any, tenant_id: str) -> int:
    async with server.sessions() as db:
        count = await db.scalar(
            select(func.count())
            .select_from(model)
            .where(model.tenant_id == uuid.UUID(tenant_id))
        )
    return count or 0


async def referral_state(server: Server, tenant_id: str) -> dict[str, list[Any]]:
    """Return every referral, lead and timeline row of a workspace, sorted."""
    tenant = uuid.UUID(tenant_id)
    columns = {
        "partners": (
            Partner.id, Partner.name, Partner.email, Partner.code,
            Partner.parent_id, Partner.status, Partner.rate_override,
        ),
        "conversions": (
            Conversion.id, Conversion.partner_id, Conversion.value,
            Conversion.status, Conversion.external_id, Conversion.lead_id,
        ),
        "commissions": (
            Commission.id, Commission.partner_id, Commission.level,
            Commission.amount, Commission.kind, Commission.status,
            Commission.paid_at,
        ),
        "settings": (ReferralSettings.rates, ReferralSettings.allowed_origins),
        "leads": (Lead.id, Lead.email, Lead.partner_id, Lead.source),
        "activities": (Activity.id, Activity.lead_id, Activity.body),
    }  # fmt: skip
    state: dict[str, list[Any]] = {}
    async with server.sessions() as db:
        for name, selected in columns.items():
            model = selected[0].class_
            rows = await db.execute(select(*selected).where(model.tenant_id == tenant))
            state[name] = sorted((tuple(row) for row in rows), key=repr)
    return state


async def leads_of(server: Server, tenant_id: str) -> list[Lead]:
    async with server.sessions() as db:
        rows = await db.scalars(
            select(Lead)
            .where(Lead.tenant_id == uuid.UUID(tenant_id))
            .order_by(Lead.created_at)
        )
        return list(rows)


async def conversions_of(server: Server, tenant_id: str) -> list[Conversion]:
    async with server.sessions() as db:
        rows = await db.scalars(
            select(Conversion)
            .where(Conversion.tenant_id == uuid.UUID(tenant_id))
            .order_by(Conversion.created_at)
        )
        return list(rows)


async def allow_origins(client: httpx.AsyncClient, origins: list[str]) -> None:
    plan = (await data_of(client, SET_ORIGINS, {"origins": origins}))[
        "setReferralAllowedOrigins"
    ]
    assert plan["allowedOrigins"] == origins


async def mark_paid(
    client: httpx.AsyncClient, partner_id: str, start: datetime, end: datetime
) -> list[dict[str, Any]]:
    variables = {"partnerId": partner_id, "from": iso(start), "to": iso(end)}
    paid: list[dict[str, Any]] = (await data_of(client, MARK_PAID, variables))[
        "markCommissionsPaid"
    ]
    return paid


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text)


# Partners


async def test_partner_fields_and_listing(workspace: Workspace) -> None:
    root = await create_partner(
        workspace.owner, "jane_fx", name="Jane Doe", email="Jane@Example.com"
    )
    child = await create_partner(workspace.admin, "sub-ib-7", "jane_fx")

    assert root["name"] == "Jane Doe"
    assert root["email"] == "jane@example.com"
    assert root["code"] == "jane_fx"
    assert root["parentId"] is None
    assert root["status"] == "active"
    assert root["level"] == 1
    assert root["level1RateOverride"] is None
    assert root["conversions"] == 0
    assert root["pendingCommission"] == "0.00"
    assert root["approvedCommission"] == "0.00"
    assert root["paidCommission"] == "0.00"
    assert root["createdAt"].endswith("Z")
    assert child["parentId"] == root["id"]
    assert child["level"] == 2

    response = await workspace.member.get("/api/referrals/partners")
    assert response.status_code == 200
    listed = response.json()
    assert [row["id"] for row in listed] == [root["id"], child["id"]]
    assert listed[0] == {**root, "commissionTotals": []}
    assert listed[1]["level"] == 2
    assert listed[1]["parentId"] == root["id"]


async def test_partners_need_sign_in(server: Server) -> None:
    async with server.client() as client:
        response = await client.get("/api/referrals/partners")

    assert response.status_code == 401
    assert response.json() == {"error": "Sign in to use this endpoint"}


async def test_partner_code_rules(server: Server, workspace: Workspace) -> None:
    await create_partner(workspace.owner, "taken")
    before = await referral_state(server, workspace.tenant_id)

    for code in ("ab", "x" * 33, "Upper", "has space", "dot.code", "taken", ""):
        error = await error_of(
            workspace.owner,
            CREATE_PARTNER,
            {"input": {"name": "Someone", "code": code}},
        )
        assert error["extensions"]["code"] == "BAD_USER_INPUT", code
        assert error["extensions"]["field"] == "code", code
        assert "code" in error["message"], code

    error = await error_of(
        workspace.owner,
        CREATE_PARTNER,
        {"input": {"name": "Someone", "code": "orphan", "parentCode": "missing"}},
    )
    assert error["extensions"]["field"] == "parentCode"
    assert error["message"] == "parentCode 'missing' is not a partner"
    assert await referral_state(server, workspace.tenant_id) == before


async def test_code_unique_per_workspace(
    workspace: Workspace, other_workspace: Workspace
) -> None:
    mine = await create_partner(workspace.owner, "shared_code")
    theirs = await create_partner(other_workspace.owner, "shared_code")

    assert mine["id"] != theirs["id"]


# Chains and amounts


async def test_chain_levels_one_to_five(server: Server, workspace: Workspace) -> None:
    plan = await set_plan(workspace.owner, FIVE_LEVELS)
    assert plan["rates"] == FIVE_LEVELS
    chain = await build_chain(workspace.owner, "lvl", 5)
    assert [partner["level"] for partner in chain] == [1, 2, 3, 4, 5]
    # 1234 at 30, 10, 5, 3 and 2 percent, each exact to the cent.
    amounts = ["370.20", "123.40", "61.70", "37.02", "24.68"]

    for depth in range(1, 6):
        conversion = await converted(workspace.owner, f"lvl{depth}", 1234)
        upline = [chain[depth - level]["id"] for level in range(1, depth + 1)]

        assert conversion["partnerId"] == chain[depth - 1]["id"]
        assert conversion["value"] == "1234"
        assert conversion["currency"] == "USDT"
        assert conversion["status"] == "pending"
        assert shares(conversion) == list(
            zip(
                upline,
                range(1, depth + 1),
                FIVE_LEVELS[:depth],
                amounts[:depth],
                strict=True,
            )
        )
        assert {row["kind"] for row in conversion["commissions"]} == {"commission"}
        assert {row["status"] for row in conversion["commissions"]} == {"pending"}
        assert {row["currency"] for row in conversion["commissions"]} == {"USDT"}

    assert await count_rows(server, Commission, workspace.tenant_id) == 15
    # The root earns level 1 once, then levels 2 to 5 from the four below.
    root = await totals_of(workspace.owner, chain[0]["id"])
    assert root == totals(1, pending="617.00")
    deepest = await totals_of(workspace.owner, chain[4]["id"])
    assert deepest == totals(1, pending="370.20")


@pytest.mark.parametrize(
    ("rates", "value", "currency", "expected"),
    [
        (["30", "10", "5"], "0.01", None, ["0.00", "0.00", "0.00"]),
        (["33.333", "10"], "333.33", None, ["111.11", "33.33"]),
        # Each half rounds up to 0.03, which would pay 0.06 of 0.05.
        (["50", "50"], "0.05", None, ["0.03", "0.02"]),
        # The exact shares sum to 49.995 but round to 50.00, so level 5 gives 0.01 back.
        (FIVE_LEVELS, "99.99", None, ["30.00", "10.00", "5.00", "3.00", "1.99"]),
        (["30", "10", "5"], "1.23456789", "BTC", ["0.37037037", "0.12345679",
                                                  "0.06172839"]),
        (["30", "10", "5"], "10.05", "eur", ["3.02", "1.01", "0.49"]),
    ],
)  # fmt: skip
async def test_rounding_stays_under_cap(
    workspace: Workspace,
    rates: list[str],
    value: str,
    currency: str | None,
    expected: list[str],
) -> None:
    await set_plan(workspace.owner, rates)
    chain = await build_chain(workspace.owner, "rnd", len(rates))
    extra = {"currency": currency} if currency else {}

    conversion = await converted(workspace.owner, chain[-1]["code"], value, **extra)

    assert [row["amount"] for row in conversion["commissions"]] == expected
    assert [row["rate"] for row in conversion["commissions"]] == rates
    paid_out = sum((Decimal(amount) for amount in expected), Decimal(0))
    cap = Decimal(value) * sum((Decimal(rate) for rate in rates), Decimal(0)) / 100
    assert paid_out <= cap
    assert conversion["currency"] == (currency or "USDT").upper()


async def test_level_one_override(workspace: Workspace) -> None:
    upper, lower = await build_chain(workspace.owner, "ovr", 2)
    below = await create_partner(workspace.owner, "ovr_child", "ovr2")
    body = await update_partner(workspace.owner, lower["id"], level1RateOverride="40")
    assert "errors" not in body, body
    assert body["data"]["updatePartner"]["level1RateOverride"] == "40"

    own = await converted(workspace.owner, "ovr2", "250")
    assert shares(own) == [
        (lower["id"], 1, "40", "100.00"),
        (upper["id"], 2, "10", "25.00"),
    ]

    # The override replaces only the partner's own level 1 rate.
    from_below = await converted(workspace.owner, "ovr_child", "250")
    assert shares(from_below) == [
        (below["id"], 1, "30", "75.00"),
        (lower["id"], 2, "10", "25.00"),
        (upper["id"], 3, "5", "12.50"),
    ]


async def test_override_out_of_range(server: Server, workspace: Workspace) -> None:
    partner = await create_partner(workspace.owner, "ovr_bad")
    before = await referral_state(server, workspace.tenant_id)

    for rate in ("-1", "100.01"):
        body = await update_partner(
            workspace.owner, partner["id"], level1RateOverride=rate
        )
        error = body["errors"][0]
        assert error["extensions"]["code"] == "BAD_USER_INPUT", rate
        assert error["extensions"]["field"] == "level1RateOverride", rate
        assert error["message"] == "level1RateOverride must be between 0 and 100"

    assert await referral_state(server, workspace.tenant_id) == before


async def test_override_keeps_total_cap(server: Server, workspace: Workspace) -> None:
    await set_plan(workspace.owner, ["30", "10", "5"])
    partner = await create_partner(workspace.owner, "ovr_cap")

    body = await update_partner(workspace.owner, partner["id"], level1RateOverride="86")
    accepted = await update_partner(
        workspace.owner, partner["id"], level1RateOverride="85"
    )
    before = await referral_state(server, workspace.tenant_id)
    raised_plan = await graphql(
        workspace.owner, "mutation { setCommissionPlan(rates: [30, 15, 5]) { rates } }"
    )

    error = body["errors"][0]
    assert error["extensions"]["field"] == "level1RateOverride"
    assert error["message"] == (
        "A level-1 rate of 86 with the plan's other levels would pay 101 percent, "
        "over the maximum of 100"
    )
    assert accepted["data"]["updatePartner"]["level1RateOverride"] == "85"
    assert raised_plan["errors"][0]["extensions"]["field"] == "rates"
    assert await referral_state(server, workspace.tenant_id) == before


async def test_suspended_partner_in_middle(workspace: Workspace) -> None:
    top, middle, bottom = await build_chain(workspace.owner, "sus", 3)
    body = await update_partner(workspace.owner, middle["id"], status="suspended")
    assert "errors" not in body, body
    assert body["data"]["updatePartner"]["status"] == "suspended"

    conversion = await converted(workspace.owner, "sus3", "200")
    assert shares(conversion) == [
        (bottom["id"], 1, "30", "60.00"),
        (top["id"], 3, "5", "10.00"),
    ]

    # A conversion under the suspended partner's own code pays only its upline.
    own = await converted(workspace.owner, "sus2", "200")
    assert own["partnerId"] == middle["id"]
    assert shares(own) == [(top["id"], 2, "10", "20.00")]

    assert await totals_of(workspace.owner, middle["id"]) == totals(1)
    assert await totals_of(workspace.owner, top["id"]) == totals(0, pending="30.00")


async def test_conversion_input_rules(server: Server, workspace: Workspace) -> None:
    await create_partner(workspace.owner, "inputs")
    before = await referral_state(server, workspace.tenant_id)
    cases = [
        ({"value": "0"}, "value must be a positive amount"),
        ({"value": "-5"}, "value must be a positive amount"),
        ({"currency": "US"}, "currency must be a code of 3 to 5 letters"),
        ({"partnerCode": "nobody"}, "partnerCode 'nobody' is not a partner"),
        ({"convertedName": "  "}, "convertedName must not be empty"),
        ({"leadId": str(uuid.uuid4())}, "leadId is not a lead of this workspace"),
    ]

    for change, message in cases:
        body = {"partnerCode": "inputs", "convertedName": "Alex", "value": "10"}
        response = await workspace.owner.post(
            "/api/referrals/conversions", json=body | change
        )
        assert response.status_code == 400, change
        assert response.json() == {"error": message}, change

    assert await referral_state(server, workspace.tenant_id) == before


# Loops and depth


async def test_loops_are_rejected(server: Server, workspace: Workspace) -> None:
    first, second, third = await build_chain(workspace.owner, "loop", 3)
    before = await referral_state(server, workspace.tenant_id)
    cases = [
        (third, "loop3", "A partner cannot be its own parent"),
        (second, "loop3", "parentCode 'loop3' is below this partner; the change "
                          "would make a loop"),
        (first, "loop2", "parentCode 'loop2' is below this partner; the change "
                         "would make a loop"),
        (first, "loop3", "parentCode 'loop3' is below this partner; the change "
                         "would make a loop"),
    ]  # fmt: skip

    for partner, parent_code, message in cases:
        body = await update_partner(
            workspace.owner, partner["id"], parentCode=parent_code
        )
        error = body["errors"][0]
        assert error["extensions"]["code"] == "BAD_USER_INPUT", parent_code
        assert error["extensions"]["field"] == "parentCode", parent_code
        assert error["message"] == message

    assert await referral_state(server, workspace.tenant_id) == before
    assert (await fetch_partner(workspace.owner, first["id"]))["parentId"] is None


async def test_concurrent_moves_make_no_loop(workspace: Workspace) -> None:
    left = await create_partner(workspace.owner, "left")
    right = await create_partner(workspace.owner, "right")

    bodies = await asyncio.gather(
        update_partner(workspace.owner, left["id"], parentCode="right"),
        update_partner(workspace.owner, right["id"], parentCode="left"),
    )

    failures = [body for body in bodies if "errors" in body]
    assert len(failures) == 1, bodies
    assert failures[0]["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    parents = [
        (await fetch_partner(workspace.owner, partner["id"]))["parentId"]
        for partner in (left, right)
    ]
    assert parents.count(None) == 1


async def test_move_and_unparent(workspace: Workspace) -> None:
    _, second = await build_chain(workspace.owner, "mv", 2)
    other = await create_partner(workspace.owner, "mv_other")

    moved = await update_partner(workspace.owner, second["id"], parentCode="mv_other")
    assert moved["data"]["updatePartner"]["parentId"] == other["id"]
    rooted = await update_partner(workspace.owner, second["id"], parentCode=None)
    assert rooted["data"]["updatePartner"]["parentId"] is None
    assert rooted["data"]["updatePartner"]["level"] == 1


async def test_depth_bound_by_plan(server: Server, workspace: Workspace) -> None:
    await build_chain(workspace.owner, "deep", 3)
    short_top, _ = await build_chain(workspace.owner, "short", 2)
    before = await referral_state(server, workspace.tenant_id)

    error = await error_of(
        workspace.owner,
        CREATE_PARTNER,
        {"input": {"name": "Too deep", "code": "deep4", "parentCode": "deep3"}},
    )
    assert error["extensions"]["field"] == "parentCode"
    assert error["message"] == (
        "parentCode 'deep3' is at the plan's deepest level (3); a partner below "
        "it would earn nothing"
    )

    # Moving a two-level chain below level 2 would make a chain of four.
    body = await update_partner(workspace.owner, short_top["id"], parentCode="deep2")
    assert body["errors"][0]["extensions"]["field"] == "parentCode"
    assert body["errors"][0]["message"] == (
        "The move would make a chain of 4 levels; the plan has 3"
    )

    error = await error_of(workspace.owner, SET_PLAN, {"rates": ["30", "10"]})
    assert error["extensions"]["field"] == "rates"
    assert "3 levels deep" in error["message"]
    assert await referral_state(server, workspace.tenant_id) == before
    assert (await data_of(workspace.owner, PLAN))["commissionPlan"]["rates"] == [
        "30",
        "10",
        "5",
    ]

    # A deeper plan lets the chain grow.
    await set_plan(workspace.owner, ["30", "10", "5", "1"])
    fourth = await create_partner(workspace.owner, "deep4", "deep3")
    assert fourth["level"] == 4


# Commission plan


async def test_plan_validation(server: Server, workspace: Workspace) -> None:
    await set_plan(workspace.owner, ["33.333", "10"])
    before = await referral_state(server, workspace.tenant_id)
    cases = [
        (["60", "40.01"], "rates must sum to at most 100, not 100.01"),
        (["30", "-1"], "rates: level 2 must be between 0 and 100, not -1"),
        (["100.5"], "rates: level 1 must be between 0 and 100, not 100.5"),
        ([], "rates must list 1 to 10 levels"),
        (["1"] * 11, "rates must list 1 to 10 levels"),
    ]

    for rates, message in cases:
        error = await error_of(workspace.owner, SET_PLAN, {"rates": rates})
        assert error["extensions"]["code"] == "BAD_USER_INPUT", rates
        assert error["extensions"]["field"] == "rates", rates
        assert error["message"] == message

    assert await referral_state(server, workspace.tenant_id) == before
    plan = (await data_of(workspace.member, PLAN))["commissionPlan"]
    assert plan == {"rates": ["33.333", "10"], "allowedOrigins": []}


async def test_plan_accepts_full_hundred(workspace: Workspace) -> None:
    default = (await data_of(workspace.owner, PLAN))["commissionPlan"]
    assert default == {"rates": ["30", "10", "5"], "allowedOrigins": []}

    plan = await set_plan(workspace.owner, ["10"] * 10)

    assert plan["rates"] == ["10"] * 10


# External ids


async def test_external_id_repeat(server: Server, workspace: Workspace) -> None:
    await create_partner(workspace.owner, "ext")

    first = await converted(workspace.owner, "ext", "100", externalId="order-1")
    again = await converted(workspace.owner, "ext", "999", externalId="order-1")

    assert again == first
    assert first["externalId"] == "order-1"
    assert await count_rows(server, Conversion, workspace.tenant_id) == 1
    assert await count_rows(server, Commission, workspace.tenant_id) == 1


async def test_concurrent_external_id(server: Server, workspace: Workspace) -> None:
    await build_chain(workspace.owner, "race", 3)

    responses = await asyncio.gather(
        convert(workspace.owner, "race3", "100", externalId="race-1"),
        convert(workspace.admin, "race3", "100", externalId="race-1"),
    )

    assert [response.status_code for response in responses] == [201, 201]
    ids = {response.json()["id"] for response in responses}
    assert len(ids) == 1
    assert await count_rows(server, Conversion, workspace.tenant_id) == 1
    assert await count_rows(server, Commission, workspace.tenant_id) == 3


# Approve, void, pay


async def test_approve_pay_void_flow(
    server: Server, workspace: Workspace, clock: FakeClock
) -> None:
    upper, lower = await build_chain(workspace.owner, "flow", 2)
    conversion = await converted(workspace.owner, "flow2", "100")
    assert await totals_of(workspace.owner, lower["id"]) == totals(1, "30.00")
    assert await totals_of(workspace.owner, upper["id"]) == totals(0, "10.00")

    approved = (await data_of(workspace.owner, APPROVE, {"id": conversion["id"]}))[
        "approveConversion"
    ]
    assert approved["status"] == "approved"
    assert [row["status"] for row in approved["commissions"]] == ["approved"] * 2
    assert await totals_of(workspace.owner, lower["id"]) == totals(1, approved="30.00")
    assert await totals_of(workspace.owner, upper["id"]) == totals(0, approved="10.00")

    created = parse_time(conversion["createdAt"])
    clock.advance(timedelta(minutes=5))
    paid = await mark_paid(workspace.owner, lower["id"], created - HOUR, created + HOUR)
    assert [(row["partnerId"], row["status"]) for row in paid] == [
        (lower["id"], "paid")
    ]
    assert paid[0]["amount"] == "30.00"
    assert parse_time(paid[0]["paidAt"]) > created
    assert await totals_of(workspace.owner, lower["id"]) == totals(1, paid="30.00")
    assert await totals_of(workspace.owner, upper["id"]) == totals(0, approved="10.00")

    voided = (await data_of(workspace.owner, VOID, {"id": conversion["id"]}))[
        "voidConversion"
    ]
    assert voided["status"] == "void"
    rows = [
        (row["partnerId"], row["level"], row["amount"], row["kind"], row["status"])
        for row in voided["commissions"]
    ]
    assert rows == [
        (lower["id"], 1, "30.00", "commission", "paid"),
        (upper["id"], 2, "10.00", "commission", "void"),
        (lower["id"], 1, "-30.00", "reversal", "pending"),
    ]
    # The paid commission stays paid, and its reversal is owed back.
    assert await totals_of(workspace.owner, lower["id"]) == totals(
        0, pending="-30.00", paid="30.00"
    )
    assert await totals_of(workspace.owner, upper["id"]) == totals(0)
    assert await count_rows(server, Commission, workspace.tenant_id) == 3
    assert await count_rows(server, Conversion, workspace.tenant_id) == 1


async def test_reversal_settles_next_payout(
    workspace: Workspace, clock: FakeClock
) -> None:
    (partner,) = await build_chain(workspace.owner, "settle", 1)
    first = await converted(workspace.owner, "settle1", "100")
    start = parse_time(first["createdAt"]) - HOUR
    await data_of(workspace.owner, APPROVE, {"id": first["id"]})
    clock.advance(timedelta(minutes=1))
    await mark_paid(workspace.owner, partner["id"], start, start + 2 * HOUR)
    await data_of(workspace.owner, VOID, {"id": first["id"]})
    clock.advance(timedelta(minutes=1))
    second = await converted(workspace.owner, "settle1", "200")
    await data_of(workspace.owner, APPROVE, {"id": second["id"]})

    clock.advance(timedelta(minutes=1))
    paid = await mark_paid(workspace.owner, partner["id"], start, start + 4 * HOUR)

    # The payout nets the reversal of the voided conversion against the new one.
    assert sorted((row["kind"], row["amount"]) for row in paid) == [
        ("commission", "60.00"),
        ("reversal", "-30.00"),
    ]
    assert await totals_of(workspace.owner, partner["id"]) == totals(1, paid="60.00")


async def test_invalid_transitions_rejected(
    server: Server, workspace: Workspace
) -> None:
    (partner,) = await build_chain(workspace.owner, "refuse", 1)
    conversion = await converted(workspace.owner, "refuse1", "100")
    no_value = await converted(workspace.owner, "refuse1", None)
    assert no_value["value"] is None
    assert no_value["commissions"] == []
    voided = (await data_of(workspace.owner, VOID, {"id": conversion["id"]}))[
        "voidConversion"
    ]
    assert [row["status"] for row in voided["commissions"]] == ["void"]
    assert await totals_of(workspace.owner, partner["id"]) == totals(1)
    before = await referral_state(server, workspace.tenant_id)

    cases = [
        (APPROVE, {"id": conversion["id"]},
         "Only a pending conversion can be approved; this one is void"),
        (VOID, {"id": conversion["id"]}, "This conversion is already void"),
        (APPROVE, {"id": no_value["id"]},
         "Give the conversion a value before approving it"),
        (COMPLETE, {"id": conversion["id"], "value": "5"},
         "This conversion already has a value"),
        (COMPLETE, {"id": no_value["id"], "value": "0"},
         "value must be a positive amount"),
        (MARK_PAID, {"partnerId": partner["id"], "from": "2030-01-02T00:00:00Z",
                     "to": "2030-01-01T00:00:00Z"}, "to must be after from"),
    ]  # fmt: skip
    for query, variables, message in cases:
        error = await error_of(workspace.owner, query, variables)
        assert error["extensions"]["code"] == "BAD_USER_INPUT", message
        assert error["message"] == message

    for query, variables in [
        (APPROVE, {"id": str(uuid.uuid4())}),
        (VOID, {"id": str(uuid.uuid4())}),
    ]:
        error = await error_of(workspace.owner, query, variables)
        assert error["extensions"]["code"] == "NOT_FOUND"
        assert error["message"] == "Conversion not found"

    assert await referral_state(server, workspace.tenant_id) == before


async def test_mark_paid_uses_period(workspace: Workspace, clock: FakeClock) -> None:
    (partner,) = await build_chain(workspace.owner, "period", 1)
    early = await converted(workspace.owner, "period1", "100")
    clock.advance(timedelta(days=10))
    late = await converted(workspace.owner, "period1", "50")
    for conversion in (early, late):
        await data_of(workspace.owner, APPROVE, {"id": conversion["id"]})

    start = parse_time(early["createdAt"]) - HOUR
    paid = await mark_paid(workspace.owner, partner["id"], start, start + 2 * HOUR)

    assert [row["amount"] for row in paid] == ["30.00"]
    assert await totals_of(workspace.owner, partner["id"]) == totals(
        2, approved="15.00", paid="30.00"
    )


# The public application


async def test_apply_creates_lead(server: Server, workspace: Workspace) -> None:
    partner = await create_partner(workspace.owner, "apply_ok", name="Jane Doe")
    body = application(workspace.slug, "apply_ok", email="Alex@Example.com")

    response = await apply(server, body, next_address())

    assert response.status_code == 201, response.text
    assert response.json() == RECEIVED
    assert "access-control-allow-origin" not in response.headers
    (lead,) = await leads_of(server, workspace.tenant_id)
    assert lead.full_name == "Alex Morgan"
    assert lead.email == "alex@example.com"
    assert lead.phone == "+44 20 7946 0958"
    assert lead.telegram == "@alex_fx"
    assert lead.source == "referral"
    assert str(lead.partner_id) == partner["id"]
    (conversion,) = await conversions_of(server, workspace.tenant_id)
    assert str(conversion.partner_id) == partner["id"]
    assert conversion.lead_id == lead.id
    assert conversion.value is None
    assert conversion.status == "pending"
    assert conversion.converted_name == "Alex Morgan"
    assert await count_rows(server, Commission, workspace.tenant_id) == 0

    detail = (await workspace.member.get(f"/api/leads/{lead.id}")).json()
    assert detail["source"] == "referral"
    bodies = [entry["body"] for entry in detail["activities"]]
    assert "Applied through referral partner Jane Doe (apply_ok)" in bodies
    assert await totals_of(workspace.owner, partner["id"]) == totals(1)


async def test_apply_then_complete(server: Server, workspace: Workspace) -> None:
    upper, lower = await build_chain(workspace.owner, "later", 2)
    response = await apply(
        server, application(workspace.slug, "later2"), next_address()
    )
    assert response.status_code == 201
    (pending,) = await conversions_of(server, workspace.tenant_id)

    completed = (
        await data_of(
            workspace.owner, COMPLETE, {"id": str(pending.id), "value": "500"}
        )
    )["completeConversion"]

    assert completed["value"] == "500"
    assert completed["leadId"] == str(pending.lead_id)
    assert shares(completed) == [
        (lower["id"], 1, "30", "150.00"),
        (upper["id"], 2, "10", "50.00"),
    ]
    approved = (await data_of(workspace.owner, APPROVE, {"id": str(pending.id)}))[
        "approveConversion"
    ]
    assert approved["status"] == "approved"


async def test_apply_rate_limit_per_address(
    server: Server, workspace: Workspace, clock: FakeClock
) -> None:
    await create_partner(workspace.owner, "limited")
    address = next_address()
    for number in range(10):
        body = application(workspace.slug, "limited", email=f"a{number}@example.com")
        response = await apply(server, body, address)
        assert response.status_code == 201, number
    before = await referral_state(server, workspace.tenant_id)

    body = application(workspace.slug, "limited", email="late@example.com")
    rejected = await apply(server, body, address)

    assert rejected.status_code == 429
    assert rejected.json() == {"error": RATE_LIMITED}
    assert 3590 <= int(rejected.headers["retry-after"]) <= 3600
    assert await referral_state(server, workspace.tenant_id) == before
    other = await apply(server, body, next_address())
    assert other.status_code == 201
    clock.advance(timedelta(minutes=61))
    body = application(workspace.slug, "limited", email="next@example.com")
    assert (await apply(server, body, address)).status_code == 201


async def test_apply_rate_limit_per_workspace(
    server: Server, workspace: Workspace, database_url: str, tmp_path: Path
) -> None:
    await create_partner(workspace.owner, "busy")
    settings = make_settings(database_url, tmp_path, apply_limit_per_workspace=2)

    async with serve_app(settings, FakeClock()) as limited:
        for number in range(2):
            body = application(workspace.slug, "busy", email=f"b{number}@example.com")
            response = await apply(limited, body, next_address())
            assert response.status_code == 201, number
        before = await referral_state(server, workspace.tenant_id)

        body = application(workspace.slug, "busy", email="third@example.com")
        rejected = await apply(limited, body, next_address())

    assert rejected.status_code == 429
    assert rejected.json() == {"error": RATE_LIMITED}
    assert 3590 <= int(rejected.headers["retry-after"]) <= 3600
    assert await referral_state(server, workspace.tenant_id) == before


async def test_apply_honeypot_creates_nothing(
    server: Server, workspace: Workspace
) -> None:
    await create_partner(workspace.owner, "honey")
    before = await referral_state(server, workspace.tenant_id)

    body = application(workspace.slug, "honey", website="https://spam.example")
    response = await apply(server, body, next_address())

    assert response.status_code == 201
    assert response.json() == RECEIVED
    assert await referral_state(server, workspace.tenant_id) == before


async def test_honeypot_grants_no_cors(server: Server, workspace: Workspace) -> None:
    await create_partner(workspace.owner, "honey_cors")
    await allow_origins(workspace.owner, [f"https://{workspace.slug}.example.com"])
    before = await referral_state(server, workspace.tenant_id)

    body = application(workspace.slug, "honey_cors", website="https://spam.example")
    response = await apply(
        server, body, next_address(), origin="https://spam-site.example.com"
    )

    # Whether it looks like success or is rejected, the origin gets no grant.
    assert response.status_code in (201, 403)
    assert "access-control-allow-origin" not in response.headers
    assert await referral_state(server, workspace.tenant_id) == before


async def test_apply_body_too_large(server: Server, workspace: Workspace) -> None:
    await create_partner(workspace.owner, "big")
    before = await referral_state(server, workspace.tenant_id)

    body = application(workspace.slug, "big", fullName="A" * 16_400)
    response = await apply(server, body, next_address())

    assert response.status_code == 413
    assert response.json() == {"error": "Request body is larger than 16384 bytes"}
    assert await referral_state(server, workspace.tenant_id) == before


async def test_apply_cors_preflight(server: Server, workspace: Workspace) -> None:
    origin = f"https://{workspace.slug}.example.com"
    rejected = await preflight(server, origin)
    assert rejected.status_code == 403
    assert "access-control-allow-origin" not in rejected.headers

    await allow_origins(workspace.owner, [origin])
    granted = await preflight(server, origin)

    assert granted.status_code == 204
    assert granted.headers["access-control-allow-origin"] == origin
    assert "POST" in granted.headers["access-control-allow-methods"]
    assert "content-type" in granted.headers["access-control-allow-headers"].lower()
    stranger = await preflight(server, f"https://not-{workspace.slug}.example.com")
    assert stranger.status_code == 403
    assert "access-control-allow-origin" not in stranger.headers
    assert (await preflight(server, None)).status_code == 403


async def test_apply_cors_post(
    server: Server, workspace: Workspace, other_workspace: Workspace
) -> None:
    await create_partner(workspace.owner, "cors")
    origin = f"https://{workspace.slug}.example.com"
    elsewhere = f"https://{other_workspace.slug}.example.com"
    await allow_origins(workspace.owner, [origin])
    await allow_origins(other_workspace.owner, [elsewhere])
    before = await referral_state(server, workspace.tenant_id)

    for wrong in (elsewhere, "https://evil.example.com"):
        body = application(workspace.slug, "cors")
        rejected = await apply(server, body, next_address(), origin=wrong)
        assert rejected.status_code == 403, wrong
        assert rejected.json() == {
            "error": f"Origin {wrong} is not allowed to send applications to this "
            "workspace"
        }
        assert "access-control-allow-origin" not in rejected.headers
    assert await referral_state(server, workspace.tenant_id) == before

    granted = await apply(
        server, application(workspace.slug, "cors"), next_address(), origin=origin
    )

    assert granted.status_code == 201
    assert granted.json() == RECEIVED
    assert granted.headers["access-control-allow-origin"] == origin
    assert "Origin" in granted.headers["vary"]
    assert len(await leads_of(server, workspace.tenant_id)) == 1


async def test_apply_repeat_within_day(
    server: Server, workspace: Workspace, clock: FakeClock
) -> None:
    await create_partner(workspace.owner, "again")
    address = next_address()
    first = await apply(server, application(workspace.slug, "again"), address)
    assert first.status_code == 201
    (lead,) = await leads_of(server, workspace.tenant_id)
    before = await referral_state(server, workspace.tenant_id)

    clock.advance(timedelta(hours=23))
    body = application(workspace.slug, "again", email="  ALEX@example.com ")
    repeat = await apply(server, body, address)

    assert repeat.status_code == 201
    assert repeat.json() == RECEIVED
    assert await referral_state(server, workspace.tenant_id) == before

    clock.advance(timedelta(days=2))
    later = await apply(server, application(workspace.slug, "again"), address)

    assert later.status_code == 201
    leads = await leads_of(server, workspace.tenant_id)
    assert len(leads) == 2
    assert leads[0].id == lead.id
    conversions = await conversions_of(server, workspace.tenant_id)
    assert [conversion.lead_id for conversion in conversions] == [
        lead.id,
        leads[1].id,
    ]


async def test_apply_concurrent_repeat(server: Server, workspace: Workspace) -> None:
    await create_partner(workspace.owner, "twice")
    body = application(workspace.slug, "twice")

    responses = await asyncio.gather(
        *(apply(server, body, next_address()) for _ in range(6))
    )

    assert [response.status_code for response in responses] == [201] * 6
    assert len(await leads_of(server, workspace.tenant_id)) == 1
    assert len(await conversions_of(server, workspace.tenant_id)) == 1
    later = await apply(server, body, next_address())
    assert later.status_code == 201


async def test_apply_unknown_same_message(
    server: Server, workspace: Workspace, other_workspace: Workspace
) -> None:
    suspended = await create_partner(workspace.owner, "gone")
    await update_partner(workspace.owner, suspended["id"], status="suspended")
    await create_partner(other_workspace.owner, "foreign")
    before = await referral_state(server, workspace.tenant_id)
    cases = [
        application(f"missing-{workspace.slug}", "gone"),
        application(workspace.slug, "nobody"),
        application(workspace.slug, "gone"),
        application(workspace.slug, "foreign"),
    ]

    for body in cases:
        response = await apply(server, body, next_address())
        assert response.status_code == 400, body
        assert response.json() == {"error": UNKNOWN}, body

    assert await referral_state(server, workspace.tenant_id) == before
    assert await leads_of(server, other_workspace.tenant_id) == []


async def test_apply_module_turned_off(server: Server, workspace: Workspace) -> None:
    partner = await create_partner(workspace.owner, "off")
    switched = await workspace.owner.patch(
        "/api/billing/modules", json={"module": "referrals", "enabled": False}
    )
    assert switched.status_code == 200, switched.text
    before = await referral_state(server, workspace.tenant_id)

    response = await apply(server, application(workspace.slug, "off"), next_address())

    assert response.status_code == 403
    assert response.json() == {"error": MODULE_OFF}
    listing = await workspace.owner.get("/api/referrals/partners")
    assert listing.status_code == 403
    assert listing.json() == {"error": MODULE_OFF}
    conversion = await convert(workspace.owner, "off", "100")
    assert conversion.status_code == 403
    assert conversion.json() == {"error": MODULE_OFF}
    error = await error_of(workspace.owner, PARTNER, {"id": partner["id"]})
    assert error["extensions"]["code"] == "FORBIDDEN"
    assert await referral_state(server, workspace.tenant_id) == before


# Roles and workspaces


async def test_member_cannot_write(server: Server, workspace: Workspace) -> None:
    partner = await create_partner(workspace.owner, "guarded")
    conversion = await converted(workspace.owner, "guarded", "100")
    before = await referral_state(server, workspace.tenant_id)

    response = await convert(workspace.member, "guarded", "100")
    assert response.status_code == 403
    assert response.json() == {"error": ROLE_MESSAGE}

    now = parse_time(conversion["createdAt"])
    writes = [
        (CREATE_PARTNER, {"input": {"name": "Member", "code": "by_member"}}),
        (UPDATE_PARTNER, {"id": partner["id"], "input": {"status": "suspended"}}),
        (SET_PLAN, {"rates": ["50"]}),
        (SET_ORIGINS, {"origins": ["https://member.example.com"]}),
        (APPROVE, {"id": conversion["id"]}),
        (VOID, {"id": conversion["id"]}),
        (COMPLETE, {"id": conversion["id"], "value": "1"}),
        (MARK_PAID, {"partnerId": partner["id"], "from": iso(now - HOUR),
                     "to": iso(now + HOUR)}),
    ]  # fmt: skip
    for query, variables in writes:
        error = await error_of(workspace.member, query, variables)
        assert error["extensions"]["code"] == "FORBIDDEN", query
        assert error["message"] == ROLE_MESSAGE

    assert await referral_state(server, workspace.tenant_id) == before
    listed = (await data_of(workspace.member, PARTNERS))["partners"]
    assert listed == [{"id": partner["id"], "code": "guarded"}]


async def test_other_workspace_isolated(
    server: Server, workspace: Workspace, other_workspace: Workspace
) -> None:
    partner = await create_partner(workspace.owner, "private")
    conversion = await converted(workspace.owner, "private", "100")
    before = await referral_state(server, workspace.tenant_id)
    intruder = other_workspace.owner

    error = await error_of(intruder, PARTNER, {"id": partner["id"]})
    assert error["extensions"]["code"] == "NOT_FOUND"
    assert error["message"] == "Partner not found"
    assert (await data_of(intruder, PARTNERS))["partners"] == []
    assert (await data_of(intruder, CONVERSIONS))["conversions"] == []
    listing = await intruder.get("/api/referrals/partners")
    assert listing.json() == []

    response = await convert(intruder, "private", "100")
    assert response.status_code == 400
    assert response.json() == {"error": "partnerCode 'private' is not a partner"}
    error = await error_of(
        intruder,
        CREATE_PARTNER,
        {"input": {"name": "Child", "code": "child", "parentCode": "private"}},
    )
    assert error["message"] == "parentCode 'private' is not a partner"

    now = parse_time(conversion["createdAt"])
    not_found = [
        (UPDATE_PARTNER, {"id": partner["id"], "input": {"status": "suspended"}}),
        (APPROVE, {"id": conversion["id"]}),
        (VOID, {"id": conversion["id"]}),
        (MARK_PAID, {"partnerId": partner["id"], "from": iso(now - HOUR),
                     "to": iso(now + HOUR)}),
    ]  # fmt: skip
    for query, variables in not_found:
        error = await error_of(intruder, query, variables)
        assert error["extensions"]["code"] == "NOT_FOUND", query

    assert await referral_state(server, workspace.tenant_id) == before
    assert await count_rows(server, Partner, other_workspace.tenant_id) == 0
    assert await count_rows(server, Conversion, other_workspace.tenant_id) == 0


async def test_totals_kept_per_currency(workspace: Workspace) -> None:
    await set_plan(workspace.owner, ["30", "10", "5"])
    await create_partner(workspace.owner, "multi_fx")
    for value, currency in (("100", "USDT"), ("0.5", "BTC"), ("50", "EUR")):
        response = await workspace.owner.post(
            "/api/referrals/conversions",
            json={
                "partnerCode": "multi_fx",
                "convertedName": "Client",
                "value": value,
                "currency": currency,
            },
        )
        assert response.status_code == 201, response.text

    listed = (await workspace.owner.get("/api/referrals/partners")).json()
    partner = next(row for row in listed if row["code"] == "multi_fx")

    assert partner["pendingCommission"] == "30.00"
    assert partner["commissionTotals"] == [
        {
            "currency": "BTC",
            "pending": "0.15000000",
            "approved": "0.00000000",
            "paid": "0.00000000",
        },
        {"currency": "EUR", "pending": "15.00", "approved": "0.00", "paid": "0.00"},
        {"currency": "USDT", "pending": "30.00", "approved": "0.00", "paid": "0.00"},
    ]
