"""Shared fixtures: a migrated database, a real server on loopback, and workspaces.

The suite runs on SQLite by default and on PostgreSQL when
IBHQ_TEST_POSTGRES_URL is set (a fresh database is created there and dropped
afterwards). One ``ibhq`` app is served by uvicorn on a free loopback port for
the whole session; each test registers its own workspaces, so tests stay
independent without a database per test.
"""

import asyncio
import base64
import contextlib
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import uvicorn
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from standardwebhooks import Webhook
from starlette.applications import Starlette
from tronpy.keys import PrivateKey

from db.engine import RequestSession
from ibhq.app import create_app
from ibhq.settings import Settings
from tests.fakes.bot_api import FakeBotApi
from tests.fakes.loopback import serve_loopback
from tests.support.databases import test_database
from workers.bot_updates import UpdateWorkerConfig
from workers.runner import TelegramWorkersConfig, run_telegram_workers
from workers.sender import SenderConfig

TEST_SECRET = "test-secret-key-that-is-long-enough-for-the-check"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"billing webhook test secret").decode()
# Addresses made from fixed private keys, so they pass base58check.
WALLET = PrivateKey(bytes([1] * 32)).public_key.to_base58check_address()
SECOND_WALLET = PrivateKey(bytes([2] * 32)).public_key.to_base58check_address()
PAYER = PrivateKey(bytes([3] * 32)).public_key.to_base58check_address()


class FakeClock:
    """A clock that follows real time, shifted by however much a test moved it."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, delta: timedelta) -> None:
        self.offset += delta


class StatementCounter:
    """Counts the SQL statements an engine sends.

    The BEGIN that SQLite gets explicitly is left out, so the counts are the
    same on SQLite and PostgreSQL.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.count = 0
        self.statements: list[str] = []
        event.listen(engine.sync_engine, "before_cursor_execute", self._on_execute)

    def _on_execute(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith("BEGIN"):
            return
        self.count += 1
        self.statements.append(statement)

    def reset(self) -> None:
        self.count = 0
        self.statements.clear()


@dataclass
class Server:
    url: str
    app: Starlette
    clock: FakeClock
    settings: Settings
    sessions: async_sessionmaker[RequestSession]
    statements: StatementCounter

    def client(self, **kwargs: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=30, **kwargs)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with test_database(tmp_path_factory.mktemp("db")) as url:
        yield url


def make_settings(database_url: str, data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "env": "test",
        "database_url": database_url,
        "data_dir": data_dir,
        "secret_key": TEST_SECRET,
        "public_url": "http://127.0.0.1:1",
        "forwarded_allow_ips": "127.0.0.1",
        "tron_wallets": f"{WALLET},{SECOND_WALLET}",
        "billing_webhook_secret": WEBHOOK_SECRET,
        "subscription_poll_seconds": 0.05,
        # A closed loopback port: an app that is not given the fake Bot API
        # fails to reach Telegram instead of reaching the real one.
        "telegram_api_url": "http://127.0.0.1:9",
        # Cheap hashing keeps the many sign-ins of the suite fast.
        "password_hash_time_cost": 1,
        "password_hash_memory_kib": 1024,
    }
    values.update(overrides)
    return Settings(**values)


def signed_headers(content: bytes, secret: str = WEBHOOK_SECRET) -> dict[str, str]:
    """Return Standard Webhooks headers that sign ``content`` as of now."""
    now = datetime.now(UTC)
    message_id = f"msg_{uuid.uuid4().hex}"
    return {
        "Content-Type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, now, content),
    }


@asynccontextmanager
async def serve_app(settings: Settings, clock: FakeClock) -> AsyncIterator[Server]:
    """Serve a fresh app with uvicorn on a free loopback port until the block ends."""
    # IPPROTO_TCP, so that asyncio sets TCP_NODELAY on accepted connections;
    # without it Nagle's algorithm delays each response by about 40 ms.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    settings = settings.model_copy(update={"public_url": f"http://127.0.0.1:{port}"})
    app = create_app(settings, clock=clock)
    config = uvicorn.Config(
        app,
        log_config=None,
        lifespan="on",
        proxy_headers=True,
        forwarded_allow_ips="127.0.0.1",
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield Server(
            url=f"http://127.0.0.1:{port}",
            app=app,
            clock=clock,
            settings=settings,
            sessions=app.state.services.sessions,
            statements=StatementCounter(app.state.engine),
        )
    finally:
        server.should_exit = True
        await task
        sock.close()


@pytest_asyncio.fixture(scope="session")
async def bot_api() -> AsyncIterator[FakeBotApi]:
    """The fake Telegram Bot API that the session's server talks to."""
    fake = FakeBotApi()
    async with serve_loopback(fake.app()) as url:
        fake.url = url
        yield fake


@pytest_asyncio.fixture(scope="session")
async def server(
    database_url: str, tmp_path_factory: pytest.TempPathFactory, bot_api: FakeBotApi
) -> AsyncIterator[Server]:
    settings = make_settings(
        database_url, tmp_path_factory.mktemp("data"), telegram_api_url=bot_api.url
    )
    async with serve_app(settings, FakeClock()) as running:
        yield running


class TelegramWorkers:
    """The Telegram workers (sending, updates, polling) running beside the server."""

    def __init__(self, server: Server, config: TelegramWorkersConfig) -> None:
        self.server = server
        self.config = config
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        assert self._task is None, "already running"
        self._task = asyncio.create_task(
            run_telegram_workers(
                self.server.sessions,
                self.config,
                self.server.clock,
                self.server.app.state.wakeups,
            )
        )

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None


@pytest_asyncio.fixture
async def telegram_workers(
    server: Server, bot_api: FakeBotApi
) -> AsyncIterator[TelegramWorkers]:
    """Run the Telegram workers beside the server for one test.

    Short waits keep the tests quick; pacing stays on, at a tenth of a second.
    """
    key = server.settings.signing_key
    config = TelegramWorkersConfig(
        api_url=bot_api.url,
        sender=SenderConfig(
            secret_key=key,
            idle_seconds=0.02,
            chat_interval=timedelta(milliseconds=100),
            group_interval=timedelta(milliseconds=100),
            bot_interval=timedelta(0),
        ),
        updates=UpdateWorkerConfig(
            secret_key=key,
            idle_seconds=0.02,
            poll_wait_seconds=1,
            billing=server.settings.billing,
        ),
    )
    workers = TelegramWorkers(server, config)
    workers.start()
    try:
        yield workers
    finally:
        await workers.stop()


@pytest.fixture
def clock(server: Server) -> Iterator[FakeClock]:
    """The server's clock; time moved by a test is put back after it."""
    yield server.clock
    server.clock.offset = timedelta()


def unique_slug(prefix: str = "ws") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@dataclass
class Workspace:
    """A registered workspace with signed-in clients for each role."""

    tenant_id: str
    slug: str
    owner: httpx.AsyncClient
    owner_id: str
    owner_email: str
    admin: httpx.AsyncClient
    admin_id: str
    member: httpx.AsyncClient
    member_id: str


PASSWORD = "correct horse battery"


async def register(
    server: Server, slug: str | None = None
) -> tuple[httpx.AsyncClient, dict[str, Any]]:
    """Register a workspace through REST; return the owner's client and the body."""
    slug = slug or unique_slug()
    client = server.client()
    response = await client.post(
        "/api/auth/register",
        json={
            "tenantName": f"Workspace {slug}",
            "tenantSlug": slug,
            "email": f"owner@{slug}.example.com",
            "password": PASSWORD,
        },
    )
    assert response.status_code == 201, response.text
    return client, response.json()


async def graphql(
    client: httpx.AsyncClient, query: str, variables: dict[str, Any] | None = None
) -> dict[str, Any]:
    response = await client.post(
        "/graphql", json={"query": query, "variables": variables or {}}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def sign_in(
    server: Server, email: str, password: str = PASSWORD
) -> httpx.AsyncClient:
    """Sign in through the Auth.js routes, as the dashboard's login form does."""
    client = server.client()
    token = (await client.get("/api/auth/csrf")).json()["csrfToken"]
    response = await client.post(
        "/api/auth/callback/credentials",
        data={"csrfToken": token, "email": email, "password": password},
    )
    assert response.status_code == 302, response.text
    assert server.settings.session_cookie_name in client.cookies
    return client


ADD_MEMBER = """
mutation($input: AddMemberInput!) { addMember(input: $input) { id email role } }
"""


async def add_member(owner: httpx.AsyncClient, email: str, role: str) -> str:
    body = await graphql(
        owner,
        ADD_MEMBER,
        {"input": {"email": email, "password": PASSWORD, "role": role, "name": role}},
    )
    assert "errors" not in body, body
    member_id: str = body["data"]["addMember"]["id"]
    return member_id


async def create_workspace(server: Server) -> Workspace:
    """Register a workspace with an owner, an admin and a member, each signed in."""
    owner, body = await register(server)
    slug = body["tenant"]["slug"]
    admin_id = await add_member(owner, f"admin@{slug}.example.com", "admin")
    member_id = await add_member(owner, f"member@{slug}.example.com", "member")
    return Workspace(
        tenant_id=body["tenant"]["id"],
        slug=slug,
        owner=owner,
        owner_id=body["user"]["id"],
        owner_email=body["user"]["email"],
        admin=await sign_in(server, f"admin@{slug}.example.com"),
        admin_id=admin_id,
        member=await sign_in(server, f"member@{slug}.example.com"),
        member_id=member_id,
    )


async def close_workspace(workspace: Workspace) -> None:
    for client in (workspace.owner, workspace.admin, workspace.member):
        await client.aclose()


@pytest_asyncio.fixture
async def workspace(server: Server) -> AsyncIterator[Workspace]:
    created = await create_workspace(server)
    yield created
    await close_workspace(created)


@pytest_asyncio.fixture
async def other_workspace(server: Server) -> AsyncIterator[Workspace]:
    """A second workspace, for proving that one tenant cannot reach another."""
    created = await create_workspace(server)
    yield created
    await close_workspace(created)
