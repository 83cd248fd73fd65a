"""Connecting onboarding bots: the token is checked with getMe and kept encrypted."""

import logging
import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from db.models import TelegramBot
from domain.secrets import decrypt
from ibhq.app import create_app
from tests.conftest import FakeClock, Server, Workspace, make_settings
from tests.fakes.bot_api import FakeBotApi

BOT_KEYS = {
    "id", "telegramId", "username", "name", "mode", "status", "lastError",
    "tokenHint", "leadsCount", "createdAt",
}  # fmt: skip


def new_username() -> str:
    return f"ib_{uuid.uuid4().hex[:10]}_bot"


async def bot_rows(server: Server, telegram_id: int) -> list[TelegramBot]:
    async with server.sessions() as db:
        result = await db.execute(
            select(TelegramBot).where(TelegramBot.telegram_id == telegram_id)
        )
        return list(result.scalars())


async def bot_count(server: Server, tenant_id: str) -> int:
    async with server.sessions() as db:
        count = await db.scalar(
            select(func.count())
            .select_from(TelegramBot)
            .where(TelegramBot.tenant_id == uuid.UUID(tenant_id))
        )
    return count or 0


async def test_connect_returns_bot(
    server: Server, workspace: Workspace, bot_api: FakeBotApi
) -> None:
    username = new_username()
    token = bot_api.add_bot(username, name="Acme Onboarding")
    telegram_id = int(token.split(":")[0])

    response = await workspace.owner.post(
        "/api/onboarding/bots", json={"botToken": token}
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == BOT_KEYS
    assert body["telegramId"] == str(telegram_id)
    assert body["username"] == username
    assert body["name"] == "Acme Onboarding"
    assert body["mode"] is None
    assert body["status"] == "stopped"
    assert body["lastError"] is None
    assert body["leadsCount"] == 0
    assert body["tokenHint"] == f"{telegram_id}:…{token[-4:]}"
    assert token not in response.text
    assert token.split(":")[1] not in response.text
    (row,) = await bot_rows(server, telegram_id)
    assert row.token_encrypted != token
    assert token not in row.token_encrypted
    assert decrypt(server.settings.signing_key, row.token_encrypted) == token


async def test_list_shows_only_own_bots(
    workspace: Workspace, other_workspace: Workspace, bot_api: FakeBotApi
) -> None:
    token = bot_api.add_bot(new_username())
    created = await workspace.owner.post(
        "/api/onboarding/bots", json={"botToken": token}
    )

    own = await workspace.member.get("/api/onboarding/bots")
    other = await other_workspace.owner.get("/api/onboarding/bots")

    assert own.status_code == 200
    assert [bot["id"] for bot in own.json()] == [created.json()["id"]]
    assert other.status_code == 200
    assert other.json() == []


async def test_rejected_token_stores_nothing(
    server: Server, workspace: Workspace, bot_api: FakeBotApi
) -> None:
    unknown = "5550001:AAunknownTokenThatTelegramDoesNotKnow"

    response = await workspace.owner.post(
        "/api/onboarding/bots", json={"botToken": unknown}
    )

    assert response.status_code == 400
    assert response.json() == {"error": "Telegram rejected this bot token"}
    assert (unknown, "getMe") in bot_api.calls
    assert await bot_count(server, workspace.tenant_id) == 0


@pytest.mark.parametrize("token", ["", "not-a-token", "123:short", "abc:" + "x" * 30])
async def test_malformed_token_rejected(
    server: Server, workspace: Workspace, token: str
) -> None:
    response = await workspace.owner.post(
        "/api/onboarding/bots", json={"botToken": token}
    )

    assert response.status_code == 400
    assert response.json() == {
        "error": "botToken must look like 123456789:AA... as @BotFather gives it"
    }
    assert await bot_count(server, workspace.tenant_id) == 0


async def test_telegram_error_is_unavailable(
    server: Server, workspace: Workspace, bot_api: FakeBotApi
) -> None:
    token = bot_api.add_bot(new_username())
    bot_api.fail_next = 1

    response = await workspace.owner.post(
        "/api/onboarding/bots", json={"botToken": token}
    )

    assert response.status_code == 503
    assert response.json() == {
        "error": "Telegram could not be reached to check the token; try again shortly"
    }
    assert await bot_count(server, workspace.tenant_id) == 0


async def test_telegram_unreachable(
    server: Server, workspace: Workspace, tmp_path: Path, clock: FakeClock
) -> None:
    # make_settings points the Bot API at a closed loopback port.
    app = create_app(make_settings(server.settings.database_url, tmp_path), clock=clock)
    cookies = dict(workspace.owner.cookies.items())
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://127.0.0.1",
            cookies=cookies,
        ) as client:
            response = await client.post(
                "/api/onboarding/bots",
                json={"botToken": "5550002:AAsomeTokenThatNobodyCanCheckNow"},
            )
    finally:
        await app.state.engine.dispose()

    assert response.status_code == 503
    assert response.json()["error"].startswith("Telegram could not be reached")


async def test_bot_belongs_to_one_workspace(
    server: Server,
    workspace: Workspace,
    other_workspace: Workspace,
    bot_api: FakeBotApi,
) -> None:
    token = bot_api.add_bot(new_username())
    first = await workspace.owner.post("/api/onboarding/bots", json={"botToken": token})

    second = await other_workspace.owner.post(
        "/api/onboarding/bots", json={"botToken": token}
    )

    assert first.status_code == 201
    assert second.status_code == 400
    assert second.json() == {
        "error": "This bot is already connected to another workspace"
    }
    rows = await bot_rows(server, int(token.split(":")[0]))
    assert [str(row.tenant_id) for row in rows] == [workspace.tenant_id]


async def test_reconnect_replaces_token(
    server: Server, workspace: Workspace, bot_api: FakeBotApi
) -> None:
    token = bot_api.add_bot(new_username())
    first = await workspace.owner.post("/api/onboarding/bots", json={"botToken": token})
    regenerated = token[:-4] + "ZZZZ"
    bot_api.bots[regenerated] = bot_api.bots.pop(token)

    again = await workspace.admin.post(
        "/api/onboarding/bots", json={"botToken": regenerated}
    )

    assert again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["tokenHint"].endswith("…ZZZZ")
    (row,) = await bot_rows(server, int(token.split(":")[0]))
    assert decrypt(server.settings.signing_key, row.token_encrypted) == regenerated


async def test_member_cannot_connect(
    server: Server, workspace: Workspace, bot_api: FakeBotApi
) -> None:
    token = bot_api.add_bot(new_username())

    response = await workspace.member.post(
        "/api/onboarding/bots", json={"botToken": token}
    )

    assert response.status_code == 403
    assert response.json() == {"error": "This action needs the owner or admin role"}
    assert (token, "getMe") not in bot_api.calls
    assert await bot_count(server, workspace.tenant_id) == 0


async def test_module_off_blocks_bots(
    server: Server, workspace: Workspace, bot_api: FakeBotApi
) -> None:
    switched = await workspace.owner.patch(
        "/api/billing/modules", json={"module": "onboarding", "enabled": False}
    )
    token = bot_api.add_bot(new_username())

    listing = await workspace.owner.get("/api/onboarding/bots")
    connecting = await workspace.owner.post(
        "/api/onboarding/bots", json={"botToken": token}
    )

    message = {"error": "The onboarding module is turned off for this workspace"}
    assert switched.status_code == 200
    assert (listing.status_code, listing.json()) == (403, message)
    assert (connecting.status_code, connecting.json()) == (403, message)
    assert await bot_count(server, workspace.tenant_id) == 0


async def test_token_never_logged(
    workspace: Workspace, bot_api: FakeBotApi, caplog: pytest.LogCaptureFixture
) -> None:
    token = bot_api.add_bot(new_username())
    unknown = "5550003:AAanotherTokenThatTelegramRejects"

    with caplog.at_level(logging.DEBUG):
        await workspace.owner.post("/api/onboarding/bots", json={"botToken": token})
        await workspace.owner.post("/api/onboarding/bots", json={"botToken": unknown})

    # The test's HTTP client and the fake Bot API's server (uvicorn.access,
    # which `ibhq serve` turns off) log the Telegram URL; the product must not.
    product = [
        record.getMessage()
        for record in caplog.records
        if not record.name.startswith(("httpx", "httpcore", "uvicorn.access"))
    ]
    assert product
    for secret in (token, token.split(":")[1], unknown.split(":")[1]):
        assert all(secret not in line for line in product)
