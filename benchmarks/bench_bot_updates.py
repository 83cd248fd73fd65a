"""Benchmark an onboarding bot under a burst of new people.

``ibhq serve`` runs in a subprocess on a fresh database, with its workers, and
talks to the loopback fake Bot API that runs in this process. One bot in
webhook mode gets ``--users`` /start updates, ``--concurrency`` at a time, each
from a different person. Its flow sends a greeting and a question to each.

Measured:
- webhook latency: from POST to the 200 of the webhook endpoint;
- handling rate: stored updates handled per second (from the database);
- sending: how long until every message reached the fake, and the most
  messages the fake saw in any one second, against the per-bot pace of about
  30 a second that the sender keeps.

Run from the project root::

    .venv/bin/python benchmarks/bench_bot_updates.py
    .venv/bin/python benchmarks/bench_bot_updates.py \\
        --postgres postgresql+asyncpg://postgres@127.0.0.1:5432/test

This is not a test: it is outside ``tests/`` and pytest never collects it.
"""

import argparse
import asyncio
import os
import socket
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path

# Run as a script from the project root: make the root importable for tests.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import uvicorn
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import create_async_engine

from db.models import BotUpdate
from tests.fakes.bot_api import FakeBotApi

FLOW = [
    {"key": "hello", "type": "message", "text": "Welcome to <b>Acme</b>!"},
    {
        "key": "email",
        "type": "question",
        "text": "What is your email?",
        "field": "email",
        "check": "email",
    },
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def wait_ready(url: str, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            try:
                if (await client.get(f"{url}/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("the server did not become ready")


async def setup_bot(url: str, fake: FakeBotApi) -> str:
    async with httpx.AsyncClient(base_url=url) as client:
        registered = await client.post(
            "/api/auth/register",
            json={
                "tenantName": "Bench",
                "tenantSlug": f"bench-{uuid.uuid4().hex[:8]}",
                "email": f"{uuid.uuid4().hex[:8]}@bench.example",
                "password": "correct horse battery",
                "name": "Bench",
            },
        )
        registered.raise_for_status()
        token = fake.add_bot("bench_onboarding_bot")
        bot = await client.post("/api/onboarding/bots", json={"botToken": token})
        bot.raise_for_status()
        bot_id = bot.json()["id"]
        steps = await client.put(
            f"/api/onboarding/bots/{bot_id}/steps", json={"steps": FLOW}
        )
        steps.raise_for_status()
        started = await client.post(
            f"/api/onboarding/bots/{bot_id}/start", json={"mode": "webhook"}
        )
        started.raise_for_status()
    return token


async def burst(
    fake: FakeBotApi, token: str, users: int, concurrency: int
) -> list[float]:
    bot = fake.bots[token]
    headers = {"X-Telegram-Bot-Api-Secret-Token": bot.webhook_secret}
    updates = [
        fake.message_update("/start", user_id=1_000_000 + index)
        for index in range(users)
    ]
    latencies: list[float] = []
    gate = asyncio.Semaphore(concurrency)

    async def post(client: httpx.AsyncClient, update: dict[str, object]) -> None:
        async with gate:
            began = time.perf_counter()
            response = await client.post(bot.webhook_url, json=update, headers=headers)
            latencies.append(time.perf_counter() - began)
            assert response.status_code == 200, response.text

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        await asyncio.gather(*(post(client, update) for update in updates))
    return latencies


async def handling_rate(database_url: str) -> tuple[int, float]:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            row = (
                await connection.execute(
                    select(
                        func.count(),
                        func.min(BotUpdate.received_at),
                        func.max(BotUpdate.handled_at),
                    ).where(BotUpdate.status == "done")
                )
            ).one()
    finally:
        await engine.dispose()
    count, first, last = row
    seconds = (_as_datetime(last) - _as_datetime(first)).total_seconds()
    return count, count / seconds if seconds > 0 else float("inf")


def _as_datetime(value: object) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def run(args: argparse.Namespace) -> None:
    fake = FakeBotApi()
    fake_port = free_port()
    fake.url = f"http://127.0.0.1:{fake_port}"
    fake_server = uvicorn.Server(
        uvicorn.Config(fake.app(), host="127.0.0.1", port=fake_port, log_level="error")
    )
    fake_task = asyncio.create_task(fake_server.serve())

    with tempfile.TemporaryDirectory() as data_dir:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        database_url = args.postgres or f"sqlite+aiosqlite:///{data_dir}/ibhq.db"
        env = {
            **os.environ,
            "IBHQ_DATA_DIR": data_dir,
            "IBHQ_DATABASE_URL": database_url,
            "IBHQ_PUBLIC_URL": url,
            "IBHQ_TELEGRAM_API_URL": fake.url,
            "IBHQ_LOG_LEVEL": "WARNING",
        }
        if args.postgres:
            migrate = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "ibhq", "migrate", env=env
            )
            await migrate.wait()
        server = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ibhq", "serve", "--port", str(port), env=env
        )
        try:
            await wait_ready(url)
            token = await setup_bot(url, fake)
            began = time.monotonic()
            latencies = await burst(fake, token, args.users, args.concurrency)
            while len(fake.sent) < 2 * args.users:  # noqa: ASYNC110 - the fake has no event
                await asyncio.sleep(0.05)
            sent_seconds = time.monotonic() - began
            count, rate = await handling_rate(database_url)
        finally:
            server.terminate()
            await server.wait()
    fake_server.should_exit = True
    await fake_task

    per_second: dict[int, int] = {}
    for stamp in fake.sent_at:
        per_second[int(stamp)] = per_second.get(int(stamp), 0) + 1
    print(f"users: {args.users}, concurrency: {args.concurrency}")
    print(
        "webhook latency ms: "
        f"p50 {statistics.median(latencies) * 1000:.1f}, "
        f"p99 {percentile(latencies, 0.99) * 1000:.1f}, "
        f"max {max(latencies) * 1000:.1f}"
    )
    print(f"updates handled: {count}, {rate:.0f} per second")
    print(
        f"all {len(fake.sent)} messages sent after {sent_seconds:.1f} s; "
        f"most in one second: {max(per_second.values())}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--postgres", help="a PostgreSQL URL whose database is empty")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
