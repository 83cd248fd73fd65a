"""Signal destinations and what the loopback fake Bot API receives.

Destinations are checked with getChat and getChatMember before they are
saved. Posts and lifecycle replies go through the outbox; the tests that
need them sent run the Telegram workers against the fake.
"""

import itertools
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from db.models import SignalDelivery, SignalDestination
from tests.conftest import Server, Workspace, graphql
from tests.fakes.bot_api import FakeBotApi
from tests.support.waiting import eventually

SIGNALS = "/api/copy-trading/signals"
ROLE_MESSAGE = "This action needs the owner or admin role"
EURUSD_SIGNAL = {
    "pair": "EURUSD",
    "direction": "long",
    "entry": "1.085",
    "stopLoss": "1.080",
    "takeProfits": ["1.090"],
}
CREATE_DESTINATION = """
mutation($input: SignalDestinationInput!) {
  createSignalDestination(input: $input) { id botId chatId chatType title createdAt }
}
"""
DELETE_DESTINATION = "mutation($id: ID!) { deleteSignalDestination(id: $id) { id } }"
DESTINATIONS = "{ signalDestinations { id chatId title } }"
SIGNAL = """
query($id: ID!) {
  signal(id: $id) {
    text
    deliveries { destinationId chatId title status messageId error sentAt }
    events { type deliveries { chatId status messageId error } }
  }
}
"""

_chat_ids = itertools.count(-1_001_500_000_001, -1)


def next_chat_id() -> int:
    return next(_chat_ids)


async def connect_bot(workspace: Workspace, bot_api: FakeBotApi) -> tuple[str, str]:
    """Connect a new bot to the workspace; return its id and its token."""
    token = bot_api.add_bot(f"signals_{uuid.uuid4().hex[:8]}_bot")
    response = await workspace.owner.post(
        "/api/onboarding/bots", json={"botToken": token}
    )
    assert response.status_code == 201, response.text
    bot_id: str = response.json()["id"]
    return bot_id, token


async def create_destination(
    client: httpx.AsyncClient, bot_id: str, chat_id: int, title: str | None = None
) -> dict[str, Any]:
    variables = {"input": {"botId": bot_id, "chatId": str(chat_id), "title": title}}
    return await graphql(client, CREATE_DESTINATION, variables)


async def destination(
    workspace: Workspace,
    bot_api: FakeBotApi,
    bot: tuple[str, str],
    *,
    type: str = "channel",
) -> tuple[str, int]:
    """Add a chat where the bot may post, and make it a destination."""
    chat_id = next_chat_id()
    bot_api.add_chat(chat_id, f"Chat {chat_id}", type=type, bot_token=bot[1])
    body = await create_destination(workspace.owner, bot[0], chat_id)
    assert "errors" not in body, body
    destination_id: str = body["data"]["createSignalDestination"]["id"]
    return destination_id, chat_id


async def destination_count(server: Server, tenant_id: str) -> int:
    async with server.sessions() as db:
        count = await db.scalar(
            select(func.count())
            .select_from(SignalDestination)
            .where(SignalDestination.tenant_id == uuid.UUID(tenant_id))
        )
    return count or 0


def error_of(body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    (error,) = body["errors"]
    return error["message"], error["extensions"]


# Destinations


async def test_destination_created_for_admin_bot(
    workspace: Workspace, bot_api: FakeBotApi
) -> None:
    bot_id, token = await connect_bot(workspace, bot_api)
    chat_id = next_chat_id()
    bot_api.add_chat(chat_id, "Acme <VIP> Signals", bot_token=token)

    body = await create_destination(workspace.owner, bot_id, chat_id)
    listing = await graphql(workspace.member, DESTINATIONS)

    assert "errors" not in body, body
    created = body["data"]["createSignalDestination"]
    assert created["botId"] == bot_id
    assert created["chatId"] == str(chat_id)
    assert created["chatType"] == "channel"
    assert created["title"] == "Acme <VIP> Signals"
    assert created["createdAt"].endswith("Z")
    assert listing["data"]["signalDestinations"] == [
        {"id": created["id"], "chatId": str(chat_id), "title": "Acme <VIP> Signals"}
    ]


async def test_destination_title_and_group(
    workspace: Workspace, bot_api: FakeBotApi
) -> None:
    bot_id, token = await connect_bot(workspace, bot_api)
    chat_id = next_chat_id()
    bot_api.add_chat(
        chat_id, "Traders", type="supergroup", bot_token=token, bot_status="member"
    )

    body = await create_destination(workspace.owner, bot_id, chat_id, "  VIP room ")

    created = body["data"]["createSignalDestination"]
    assert (created["chatType"], created["title"]) == ("supergroup", "VIP room")


REFUSALS = [
    (
        {"type": "channel", "bot_status": "member"},
        "@{bot} cannot post in this channel: make it an "
        "administrator with the right to post messages",
    ),
    (
        {"type": "channel", "can_post": False},
        "@{bot} cannot post in this channel: make it an "
        "administrator with the right to post messages",
    ),
    (
        {"type": "supergroup", "bot_status": "left"},
        "@{bot} cannot send messages in this group (its status there "
        "is left); add it as a member that may write",
    ),
    ({"type": "private"}, "chatId {chat} is a private chat; use a channel or a group"),
    (
        None,
        "Telegram rejected chatId {chat} for @{bot}: Bad Request: "
        "chat not found. Add the bot to the chat first",
    ),
]


@pytest.mark.parametrize(("chat", "message"), REFUSALS)
async def test_destination_refused_when_bot_cannot_post(
    server: Server,
    workspace: Workspace,
    bot_api: FakeBotApi,
    chat: dict[str, Any] | None,
    message: str,
) -> None:
    bot_id, token = await connect_bot(workspace, bot_api)
    username = bot_api.bots[token].user["username"]
    chat_id = next_chat_id()
    if chat is not None:
        bot_api.add_chat(chat_id, "Chat", bot_token=token, **chat)

    body = await create_destination(workspace.owner, bot_id, chat_id)

    expected = message.format(bot=username, chat=chat_id)
    assert error_of(body) == (expected, {"code": "BAD_USER_INPUT", "field": "chatId"})
    assert await destination_count(server, workspace.tenant_id) == 0


async def test_destination_telegram_unavailable(
    server: Server, workspace: Workspace, bot_api: FakeBotApi
) -> None:
    bot_id, token = await connect_bot(workspace, bot_api)
    chat_id = next_chat_id()
    bot_api.add_chat(chat_id, "Chat", bot_token=token)
    bot_api.fail("getChat", 502, "Bad Gateway")

    body = await create_destination(workspace.owner, bot_id, chat_id)

    assert error_of(body) == (
        "Telegram could not be reached to check the chat; try again shortly",
        {"code": "UNAVAILABLE"},
    )
    assert await destination_count(server, workspace.tenant_id) == 0


async def test_destination_duplicate_chat(
    server: Server, workspace: Workspace, bot_api: FakeBotApi
) -> None:
    bot = await connect_bot(workspace, bot_api)
    _, chat_id = await destination(workspace, bot_api, bot)

    body = await create_destination(workspace.owner, bot[0], chat_id)

    assert error_of(body) == (
        f"chatId {chat_id} is already a destination of this workspace",
        {"code": "BAD_USER_INPUT", "field": "chatId"},
    )
    assert await destination_count(server, workspace.tenant_id) == 1


async def test_destination_other_workspace(
    server: Server,
    workspace: Workspace,
    other_workspace: Workspace,
    bot_api: FakeBotApi,
) -> None:
    bot = await connect_bot(workspace, bot_api)
    destination_id, _ = await destination(workspace, bot_api, bot)

    with_foreign_bot = await create_destination(
        other_workspace.owner, bot[0], next_chat_id()
    )
    deleting = await graphql(
        other_workspace.owner, DELETE_DESTINATION, {"id": destination_id}
    )
    posting = await other_workspace.owner.post(
        SIGNALS,
        json={
            "pair": "EURUSD",
            "direction": "long",
            "entry": "1.085",
            "stopLoss": "1.08",
            "takeProfits": ["1.09"],
            "destinations": [destination_id],
        },
    )
    listing = await graphql(other_workspace.owner, DESTINATIONS)

    assert error_of(with_foreign_bot) == ("Bot not found", {"code": "NOT_FOUND"})
    assert error_of(deleting) == (
        "Signal destination not found",
        {"code": "NOT_FOUND"},
    )
    assert posting.status_code == 404
    assert posting.json() == {"error": "Signal destination not found"}
    assert listing["data"]["signalDestinations"] == []
    assert await destination_count(server, workspace.tenant_id) == 1
    assert await destination_count(server, other_workspace.tenant_id) == 0


async def test_destination_member_cannot_write(
    server: Server, workspace: Workspace, bot_api: FakeBotApi
) -> None:
    bot = await connect_bot(workspace, bot_api)
    destination_id, _ = await destination(workspace, bot_api, bot)
    chat_id = next_chat_id()
    bot_api.add_chat(chat_id, "Chat", bot_token=bot[1])

    creating = await create_destination(workspace.member, bot[0], chat_id)
    deleting = await graphql(
        workspace.member, DELETE_DESTINATION, {"id": destination_id}
    )

    assert error_of(creating) == (ROLE_MESSAGE, {"code": "FORBIDDEN"})
    assert error_of(deleting) == (ROLE_MESSAGE, {"code": "FORBIDDEN"})
    assert await destination_count(server, workspace.tenant_id) == 1


async def test_destination_deleted_keeps_deliveries(
    server: Server, workspace: Workspace, bot_api: FakeBotApi
) -> None:
    bot = await connect_bot(workspace, bot_api)
    destination_id, chat_id = await destination(workspace, bot_api, bot)
    created = await workspace.owner.post(
        SIGNALS,
        json={
            "pair": "EURUSD",
            "direction": "long",
            "entry": "1.085",
            "stopLoss": "1.08",
            "takeProfits": ["1.09"],
            "destinations": [destination_id],
        },
    )

    deleted = await graphql(workspace.owner, DELETE_DESTINATION, {"id": destination_id})
    signal = await graphql(workspace.owner, SIGNAL, {"id": created.json()["id"]})
    activated = await workspace.owner.patch(
        f"{SIGNALS}/{created.json()['id']}", json={"event": "activate"}
    )

    assert deleted["data"]["deleteSignalDestination"] == {"id": destination_id}
    assert await destination_count(server, workspace.tenant_id) == 0
    (delivery,) = signal["data"]["signal"]["deliveries"]
    assert delivery["destinationId"] is None
    assert delivery["chatId"] == str(chat_id)
    # No destination is left, so the event queues no reply.
    assert activated.json()["events"][0]["deliveries"] == []
    async with server.sessions() as db:
        rows = await db.scalar(
            select(func.count())
            .select_from(SignalDelivery)
            .where(SignalDelivery.signal_id == uuid.UUID(created.json()["id"]))
        )
    assert rows == 1


# Posts and replies through the workers


async def signal_of(client: httpx.AsyncClient, signal_id: str) -> dict[str, Any]:
    body = await graphql(client, SIGNAL, {"id": signal_id})
    assert "errors" not in body, body
    signal: dict[str, Any] = body["data"]["signal"]
    return signal


@pytest.mark.usefixtures("telegram_workers")
async def test_post_and_replies_reach_telegram(
    workspace: Workspace, bot_api: FakeBotApi
) -> None:
    bot = await connect_bot(workspace, bot_api)
    channel_id_, channel = await destination(workspace, bot_api, bot)
    group_id_, group = await destination(workspace, bot_api, bot, type="supergroup")
    content = (
        '{"pair": "usd/jpy", "direction": "buy", "entry": 151.234, '
        '"stopLoss": 150.734, "takeProfits": [151.734, 152.234], '
        '"note": "BoJ <minutes> & CPI", '
        f'"destinations": ["{channel_id_}", "{group_id_}"]}}'
    )

    response = await workspace.owner.post(
        SIGNALS, content=content, headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 201, response.text
    created = response.json()
    assert [d["status"] for d in created["deliveries"]] == ["pending", "pending"]
    signal_id = created["id"]

    async def all_sent() -> bool:
        signal = await signal_of(workspace.owner, signal_id)
        return all(d["status"] == "sent" for d in signal["deliveries"])

    await eventually(all_sent)
    (post,) = bot_api.sent_to(channel)
    (group_post,) = bot_api.sent_to(group)
    expected_text = (
        "🟢 <b>USDJPY BUY</b>\n\n"
        "Entry: <code>151.234</code>\n"
        "Stop loss: <code>150.734</code>\n"
        "TP1: <code>151.734</code>\n"
        "TP2: <code>152.234</code>\n\n"
        "<i>BoJ &lt;minutes&gt; &amp; CPI</i>"
    )
    assert created["text"] == expected_text
    assert post.text == expected_text
    assert post.parse_mode == "HTML"
    assert group_post.text == expected_text
    signal = await signal_of(workspace.owner, signal_id)
    by_chat = {d["chatId"]: d for d in signal["deliveries"]}
    assert by_chat[str(channel)]["messageId"] == str(post.message_id)
    assert by_chat[str(group)]["messageId"] == str(group_post.message_id)
    assert by_chat[str(channel)]["sentAt"].endswith("Z")
    assert by_chat[str(channel)]["error"] is None

    for body in (
        {"event": "activate"},
        {"event": "tp_hit", "level": 1},
        {"event": "close", "price": "151.9"},
    ):
        changed = await workspace.owner.patch(f"{SIGNALS}/{signal_id}", json=body)
        assert changed.status_code == 200, changed.text

    await eventually(lambda: len(bot_api.sent_to(channel)) == 4)
    await eventually(lambda: len(bot_api.sent_to(group)) == 4)
    replies = bot_api.sent_to(channel)[1:]
    assert [reply.reply_to_message_id for reply in replies] == [post.message_id] * 3
    group_replies = bot_api.sent_to(group)[1:]
    assert {reply.reply_to_message_id for reply in group_replies} == {
        group_post.message_id
    }
    assert [reply.text for reply in replies] == [
        "✅ <b>USDJPY</b>: entry reached, the trade is open.",
        "🎯 <b>USDJPY</b>: TP1 hit at <code>151.734</code> (+50.0 pips, +1.00R).",
        "🏁 <b>USDJPY</b>: closed at <code>151.9</code> (+66.6 pips, +1.33R).",
    ]

    async def replies_sent() -> bool:
        signal = await signal_of(workspace.owner, signal_id)
        statuses = [d["status"] for e in signal["events"] for d in e["deliveries"]]
        return statuses == ["sent"] * 6

    await eventually(replies_sent)


@pytest.mark.usefixtures("telegram_workers")
async def test_lost_admin_rights_fail_delivery(
    workspace: Workspace, bot_api: FakeBotApi
) -> None:
    bot = await connect_bot(workspace, bot_api)
    kept_id, kept = await destination(workspace, bot_api, bot)
    lost_id, lost = await destination(workspace, bot_api, bot)
    bot_api.set_member(lost, bot[1], "member")

    response = await workspace.owner.post(
        SIGNALS,
        json={
            "pair": "BTCUSDT",
            "direction": "short",
            "entry": "68000.5",
            "stopLoss": "69000",
            "takeProfits": ["67000"],
            "destinations": [kept_id, lost_id],
        },
    )
    signal_id = response.json()["id"]

    async def settled() -> bool:
        signal = await signal_of(workspace.owner, signal_id)
        return all(d["status"] != "pending" for d in signal["deliveries"])

    await eventually(settled)
    signal = await signal_of(workspace.owner, signal_id)
    by_chat = {d["chatId"]: d for d in signal["deliveries"]}
    assert by_chat[str(kept)]["status"] == "sent"
    assert by_chat[str(lost)]["status"] == "failed"
    assert by_chat[str(lost)]["messageId"] is None
    assert by_chat[str(lost)]["error"] == (
        "Bad Request: need administrator rights in the channel chat"
    )
    assert len(bot_api.sent_to(kept)) == 1
    assert bot_api.sent_to(lost) == []
    assert "<code>68000.5</code>" in bot_api.sent_to(kept)[0].text


@pytest.mark.usefixtures("telegram_workers")
async def test_stop_after_target_reply_shows_win(
    workspace: Workspace, bot_api: FakeBotApi
) -> None:
    bot = await connect_bot(workspace, bot_api)
    channel_id_, channel = await destination(workspace, bot_api, bot)
    response = await workspace.owner.post(
        SIGNALS,
        json={
            "pair": "XAUUSD",
            "direction": "long",
            "entry": "2345.67",
            "stopLoss": "2335.67",
            "takeProfits": ["2355.67", "2365.67"],
            "destinations": [channel_id_],
        },
    )
    signal_id = response.json()["id"]

    for body in (
        {"event": "activate"},
        {"event": "tp_hit", "level": 1},
        {"event": "sl_hit"},
    ):
        changed = await workspace.owner.patch(f"{SIGNALS}/{signal_id}", json=body)
        assert changed.status_code == 200, changed.text
    await eventually(lambda: len(bot_api.sent_to(channel)) == 4)

    assert bot_api.sent_to(channel)[3].text == (
        "🛑 <b>XAUUSD</b>: stop loss hit at <code>2335.67</code> after TP1 "
        "(+100.0 pips, +1.00R)."
    )


@pytest.mark.usefixtures("telegram_workers")
async def test_no_reply_under_failed_post(
    workspace: Workspace, bot_api: FakeBotApi
) -> None:
    bot = await connect_bot(workspace, bot_api)
    channel_id_, channel = await destination(workspace, bot_api, bot)
    bot_api.fail(
        "sendMessage",
        403,
        "Forbidden: bot was kicked from the channel chat",
        chat_id=channel,
    )
    response = await workspace.owner.post(
        SIGNALS, json={**EURUSD_SIGNAL, "destinations": [channel_id_]}
    )
    signal_id = response.json()["id"]

    async def post_failed() -> bool:
        signal = await signal_of(workspace.owner, signal_id)
        return bool(signal["deliveries"][0]["status"] == "failed")

    await eventually(post_failed)
    changed = await workspace.owner.patch(
        f"{SIGNALS}/{signal_id}", json={"event": "activate"}
    )

    assert changed.status_code == 200
    signal = await signal_of(workspace.owner, signal_id)
    assert signal["events"][0]["deliveries"] == []
    assert bot_api.sent_to(channel) == []


@pytest.mark.usefixtures("telegram_workers")
async def test_reply_fails_when_post_fails_later(
    workspace: Workspace, bot_api: FakeBotApi
) -> None:
    bot = await connect_bot(workspace, bot_api)
    channel_id_, channel = await destination(workspace, bot_api, bot)
    # The post meets flood control twice, so the reply is queued behind it
    # while it is still pending; then Telegram rejects the post for good.
    bot_api.fail(
        "sendMessage", 429, "Too Many Requests", retry_after=1, chat_id=channel
    )
    bot_api.fail("sendMessage", 403, "Forbidden: bot was kicked", chat_id=channel)
    response = await workspace.owner.post(
        SIGNALS, json={**EURUSD_SIGNAL, "destinations": [channel_id_]}
    )
    signal_id = response.json()["id"]
    changed = await workspace.owner.patch(
        f"{SIGNALS}/{signal_id}", json={"event": "activate"}
    )
    assert changed.status_code == 200

    async def settled() -> bool:
        signal = await signal_of(workspace.owner, signal_id)
        replies = signal["events"][0]["deliveries"]
        return bool(replies) and replies[0]["status"] != "pending"

    await eventually(settled)
    signal = await signal_of(workspace.owner, signal_id)
    (reply,) = signal["events"][0]["deliveries"]
    assert reply["status"] == "failed"
    assert reply["error"] == "The message this replies to was not delivered"
    assert bot_api.sent_to(channel) == []
