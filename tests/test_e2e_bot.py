"""End to end: an onboarding bot served by a real `ibhq serve`, restarted midway.

The server process talks to the loopback fake Bot API of this test process;
its workers send the replies. Stopping and starting the process in the middle
of a conversation must lose nothing: the next answer continues the flow.
"""

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from tests.fakes.bot_api import FakeBotApi
from tests.support.waiting import eventually
from tests.test_e2e import IBHQ, command_env, empty_or_sqlite, free_port

FLOW = [
    {"key": "hello", "type": "message", "text": "Welcome!"},
    {
        "key": "email",
        "type": "question",
        "text": "Your email?",
        "field": "email",
        "check": "email",
    },
    {"key": "bye", "type": "end", "text": "Thanks, we will write to you."},
]


@asynccontextmanager
async def serving(
    env: dict[str, str], port: int, log: Path, *options: str
) -> AsyncIterator[str]:
    """Run `ibhq serve` until the block ends; yield its base URL."""
    url = f"http://127.0.0.1:{port}"
    with log.open("a") as output:
        process = await asyncio.create_subprocess_exec(
            IBHQ,
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            *options,
            env={**env, "IBHQ_PUBLIC_URL": url},
            stdout=output,
            stderr=output,
        )
        try:
            await eventually(lambda: _healthy(url), timeout=30)
            yield url
        finally:
            process.terminate()
            await asyncio.wait_for(process.wait(), 20)


async def _healthy(url: str) -> bool:
    try:
        async with httpx.AsyncClient() as client:
            return (await client.get(f"{url}/healthz", timeout=1)).status_code == 200
    except httpx.TransportError:
        return False


async def test_bot_conversation_survives_restart(
    tmp_path: Path, bot_api: FakeBotApi
) -> None:
    token = bot_api.add_bot(f"e2e_{uuid.uuid4().hex[:8]}_bot")
    user = 77_000_000 + uuid.uuid4().int % 1_000_000
    log = tmp_path / "serve.log"
    port = free_port()
    # Making the PostgreSQL database runs its own event loop: use a thread.
    database = empty_or_sqlite(tmp_path)
    database_url = await asyncio.to_thread(database.__enter__)
    try:
        env = command_env(
            tmp_path / "var", database_url, IBHQ_TELEGRAM_API_URL=bot_api.url
        )
        if database_url:
            migrate = await asyncio.create_subprocess_exec(IBHQ, "migrate", env=env)
            assert await migrate.wait() == 0

        async with serving(env, port, log) as url:
            cookies, bot_id = await register_with_bot(url, token, FLOW)
            async with httpx.AsyncClient(base_url=url, cookies=cookies) as client:
                started = await client.post(
                    f"/api/onboarding/bots/{bot_id}/start", json={"mode": "webhook"}
                )
                assert started.status_code == 200, started.text
            update = bot_api.message_update("/start", user_id=user)
            assert (await bot_api.deliver(token, update)).status_code == 200
            await eventually(lambda: len(bot_api.sent_to(user)) == 2, timeout=10)

        async with serving(env, port, log) as url:
            answer = bot_api.message_update("ALEX@example.com", user_id=user)
            assert (await bot_api.deliver(token, answer)).status_code == 200
            await eventually(lambda: len(bot_api.sent_to(user)) == 3, timeout=10)
            async with httpx.AsyncClient(base_url=url, cookies=cookies) as client:
                leads = await client.get(f"/api/onboarding/bots/{bot_id}/leads")
    finally:
        await asyncio.to_thread(database.__exit__, None, None, None)

    assert [message.text for message in bot_api.sent_to(user)] == [
        "Welcome!",
        "Your email?",
        "Thanks, we will write to you.",
    ]
    assert leads.status_code == 200, leads.text
    (item,) = leads.json()["items"]
    assert item["status"] == "completed"
    assert item["answers"] == [{"field": "email", "value": "alex@example.com"}]
    output = log.read_text()
    assert "Traceback" not in output, output
    assert token not in output
    assert token.split(":")[1] not in output
    assert bot_api.bots[token].webhook_secret not in output


async def register_with_bot(
    url: str, token: str, steps: list[dict[str, object]]
) -> tuple[dict[str, str], str]:
    """Register a workspace with the bot and its flow; return cookies and bot id."""
    async with httpx.AsyncClient(base_url=url) as client:
        registered = await client.post(
            "/api/auth/register",
            json={
                "tenantName": "Bot Desk",
                "tenantSlug": f"bot-desk-{uuid.uuid4().hex[:6]}",
                "email": f"{uuid.uuid4().hex[:8]}@desk.example",
                "password": "correct horse battery",
            },
        )
        assert registered.status_code == 201, registered.text
        bot = await client.post("/api/onboarding/bots", json={"botToken": token})
        assert bot.status_code == 201, bot.text
        bot_id: str = bot.json()["id"]
        saved = await client.put(
            f"/api/onboarding/bots/{bot_id}/steps", json={"steps": steps}
        )
        assert saved.status_code == 200, saved.text
        return dict(client.cookies), bot_id


async def test_worker_frees_polling_on_sigterm(
    tmp_path: Path, bot_api: FakeBotApi
) -> None:
    token = bot_api.add_bot(f"e2e_{uuid.uuid4().hex[:8]}_bot")
    first, second = (77_000_000 + uuid.uuid4().int % 1_000_000 for _ in range(2))
    log = tmp_path / "serve.log"
    database = empty_or_sqlite(tmp_path)
    database_url = await asyncio.to_thread(database.__enter__)
    try:
        env = command_env(
            tmp_path / "var", database_url, IBHQ_TELEGRAM_API_URL=bot_api.url
        )
        if database_url:
            migrate = await asyncio.create_subprocess_exec(IBHQ, "migrate", env=env)
            assert await migrate.wait() == 0
        async with serving(env, free_port(), log, "--no-workers") as url:
            cookies, bot_id = await register_with_bot(url, token, FLOW)
            async with httpx.AsyncClient(base_url=url, cookies=cookies) as client:
                started = await client.post(
                    f"/api/onboarding/bots/{bot_id}/start", json={"mode": "polling"}
                )
                assert started.status_code == 200, started.text

            with log.open("a") as output:
                worker = await asyncio.create_subprocess_exec(
                    IBHQ, "worker", env=env, stdout=output, stderr=output
                )
                bot_api.queue_update(
                    token, bot_api.message_update("/start", user_id=first)
                )
                await eventually(lambda: len(bot_api.sent_to(first)) == 2, timeout=15)
                worker.terminate()
                assert await asyncio.wait_for(worker.wait(), 20) == 0

                # A new worker polls at once: the old one freed its lease.
                worker = await asyncio.create_subprocess_exec(
                    IBHQ, "worker", env=env, stdout=output, stderr=output
                )
                try:
                    update = bot_api.message_update("/start", user_id=second)
                    bot_api.queue_update(token, update)
                    await eventually(
                        lambda: len(bot_api.sent_to(second)) == 2, timeout=15
                    )
                finally:
                    worker.terminate()
                    await asyncio.wait_for(worker.wait(), 20)
    finally:
        await asyncio.to_thread(database.__exit__, None, None, None)

    output_text = log.read_text()
    assert "Traceback" not in output_text, output_text
    assert "stopped by a signal" in output_text
