"""Subscribers: added by GraphQL or by an onboarding flow, listed through REST."""

import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from db.models import Lead, Subscriber
from db.tenancy import scoped_session
from domain.subscribers import subscribe_from_bot
from tests.conftest import FakeClock, Server, Workspace, graphql

SUBSCRIBERS = "/api/copy-trading/subscribers"
ADD = """
mutation($input: AddSubscriberInput!) {
  addSubscriber(input: $input) {
    id telegramUserId username plan since expiresAt status lead { id fullName }
  }
}
"""
# Beyond 2**53, so a float anywhere on the way would change it.
BIG_USER_ID = "9007199254740993"


async def add(
    workspace: Workspace, client: Any = None, **fields: Any
) -> dict[str, Any]:
    values = {"telegramUserId": BIG_USER_ID, "plan": "vip", **fields}
    return await graphql(client or workspace.owner, ADD, {"input": values})


async def subscriber_count(server: Server, tenant_id: str) -> int:
    async with server.sessions() as db:
        count = await db.scalar(
            select(func.count())
            .select_from(Subscriber)
            .where(Subscriber.tenant_id == uuid.UUID(tenant_id))
        )
    return count or 0


async def test_add_and_list(workspace: Workspace, clock: FakeClock) -> None:
    expires = (clock.now() + timedelta(days=30)).isoformat().replace("+00:00", "Z")

    body = await add(workspace, username="@trader_joe", expiresAt=expires)
    listing = await workspace.member.get(SUBSCRIBERS)

    assert "errors" not in body, body
    added = body["data"]["addSubscriber"]
    assert added["telegramUserId"] == BIG_USER_ID
    assert added["username"] == "trader_joe"
    assert added["plan"] == "vip"
    assert added["status"] == "active"
    assert added["lead"] is None
    assert listing.status_code == 200
    assert listing.json() == {
        "items": [
            {
                "id": added["id"],
                "telegramUserId": BIG_USER_ID,
                "username": "trader_joe",
                "plan": "vip",
                "since": added["since"],
                "expiresAt": added["expiresAt"],
                "status": "active",
                "lead": None,
            }
        ],
        "page": 1,
        "pageSize": 20,
        "total": 1,
    }


async def test_status_filter_and_expiry(workspace: Workspace, clock: FakeClock) -> None:
    soon = (clock.now() + timedelta(days=1)).isoformat().replace("+00:00", "Z")
    short = (await add(workspace, telegramUserId="1001", expiresAt=soon))["data"]
    forever = (await add(workspace, telegramUserId="1002"))["data"]
    clock.advance(timedelta(days=2))

    active = await workspace.owner.get(SUBSCRIBERS, params={"status": "active"})
    expired = await workspace.owner.get(SUBSCRIBERS, params={"status": "expired"})
    paged = await workspace.owner.get(SUBSCRIBERS, params={"pageSize": 1, "page": 2})

    assert [s["id"] for s in active.json()["items"]] == [forever["addSubscriber"]["id"]]
    assert [s["id"] for s in expired.json()["items"]] == [short["addSubscriber"]["id"]]
    assert expired.json()["items"][0]["status"] == "expired"
    assert paged.json()["total"] == 2
    assert [s["id"] for s in paged.json()["items"]] == [short["addSubscriber"]["id"]]


async def test_add_again_renews(
    server: Server, workspace: Workspace, clock: FakeClock
) -> None:
    first = (await add(workspace, plan="basic"))["data"]["addSubscriber"]
    clock.advance(timedelta(hours=1))

    second = (await add(workspace, plan="vip"))["data"]["addSubscriber"]

    assert second["id"] == first["id"]
    assert second["since"] == first["since"]
    assert second["plan"] == "vip"
    assert await subscriber_count(server, workspace.tenant_id) == 1


async def test_subscribe_from_bot_links_lead(
    server: Server, workspace: Workspace, clock: FakeClock
) -> None:
    lead = await workspace.owner.post("/api/leads", json={"fullName": "Joe Trader"})
    lead_id = uuid.UUID(lead.json()["id"])
    tenant_id = uuid.UUID(workspace.tenant_id)

    async with scoped_session(server.sessions, tenant_id) as db:
        first = await subscribe_from_bot(
            db,
            telegram_user_id=777_000_111,
            username="joe",
            lead_id=lead_id,
            plan="free",
            now=clock.now(),
        )
        again = await subscribe_from_bot(
            db,
            telegram_user_id=777_000_111,
            username=None,
            lead_id=None,
            plan="vip",
            now=clock.now(),
        )
        await db.commit()
    listing = await workspace.owner.get(SUBSCRIBERS)

    assert again.id == first.id
    assert again.expires_at is None
    (item,) = listing.json()["items"]
    assert item["telegramUserId"] == "777000111"
    assert (item["username"], item["plan"], item["status"]) == ("joe", "vip", "active")
    assert item["lead"]["id"] == str(lead_id)
    assert item["lead"]["fullName"] == "Joe Trader"


async def test_add_links_lead_by_telegram_user(
    server: Server, workspace: Workspace
) -> None:
    lead = await workspace.owner.post("/api/leads", json={"fullName": "Ann"})
    async with scoped_session(server.sessions, uuid.UUID(workspace.tenant_id)) as db:
        row = await db.get(Lead, uuid.UUID(lead.json()["id"]))
        assert row is not None
        row.telegram_user_id = 5_550_123
        await db.commit()

    body = await add(workspace, telegramUserId=5_550_123)

    assert body["data"]["addSubscriber"]["lead"] == {
        "id": lead.json()["id"],
        "fullName": "Ann",
    }


INVALID = [
    (
        {"telegramUserId": "0"},
        "telegramUserId must be a positive Telegram user id",
        "telegramUserId",
    ),
    (
        {"telegramUserId": "-5"},
        "telegramUserId must be a positive Telegram user id",
        "telegramUserId",
    ),
    ({"plan": "  "}, "plan must not be empty", "plan"),
    ({"plan": "p" * 65}, "plan must be at most 64 characters", "plan"),
    (
        {"username": "bad name!"},
        "username must be a Telegram username: letters, digits and _, at most 32",
        "username",
    ),
    (
        {"expiresAt": "2020-01-01T00:00:00Z"},
        "expiresAt must be in the future",
        "expiresAt",
    ),
]


@pytest.mark.parametrize(("change", "message", "field"), INVALID)
async def test_invalid_subscriber_rejected(
    server: Server,
    workspace: Workspace,
    change: dict[str, Any],
    message: str,
    field: str,
) -> None:
    body = await add(workspace, **change)

    (error,) = body["errors"]
    assert error["message"] == message
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": field}
    assert await subscriber_count(server, workspace.tenant_id) == 0


async def test_subscribers_isolated_and_guarded(
    server: Server, workspace: Workspace, other_workspace: Workspace
) -> None:
    await add(workspace)

    foreign = await other_workspace.owner.get(SUBSCRIBERS)
    by_member = await add(workspace, workspace.member, telegramUserId="42")
    bad_status = await workspace.owner.get(SUBSCRIBERS, params={"status": "gone"})

    assert foreign.json()["items"] == []
    assert by_member["errors"][0]["message"] == (
        "This action needs the owner or admin role"
    )
    assert bad_status.status_code == 400
    assert bad_status.json() == {"error": "status must be active or expired"}
    assert await subscriber_count(server, workspace.tenant_id) == 1
    assert await subscriber_count(server, other_workspace.tenant_id) == 0
