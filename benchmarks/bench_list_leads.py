"""Benchmark one workspace's list of 50 leads served four ways.

The same page (``pageSize=50``, newest first, with ``total``) is fetched through:

- ``rest``: ``GET /api/leads?pageSize=50``, the REST route that runs the
  ``ListLeads`` operation;
- ``graphql``: ``POST /graphql`` with the ``ListLeads`` document itself and
  ``{"pageSize": 50}``;
- ``core-in-app``: a hand-written Starlette handler in this file, added to the
  product's router, so it runs behind the same request-id middleware;
- ``core-bare``: the same handler in a bare Starlette app with no middleware.

The handler does what the product does, in SQLAlchemy Core on the product's own
engine. It runs the same session-token lookup (SHA-256 of the cookie, joined to
the user, expiry and removal checked), then the same count query and the same
page query filtered by tenant, and renders the same JSON. It does all of that in
one transaction, whereas the product ends the lookup's transaction and opens a
second one for the operation. It never slides the session's expiry, which the
product does at most once a day per session
(``domain.auth.SESSION_REFRESH_INTERVAL``), so not during a run.

The server runs in a subprocess (uvicorn on 127.0.0.1, a free port) and the load
client runs in this process, so the client's CPU work never runs in the server's
event loop. The server counts SQL statements with a ``before_cursor_execute``
listener on the serving engine and returns the counts from ``/_bench/stats``,
a route that only this script mounts. The client checks that every response is
200 with a body byte-equal to the reference body. The REST body and both handler
bodies must be identical, and the GraphQL body must be exactly
``{"data":{"leads":<REST body>}}``.

Run from the project root::

    .venv/bin/python benchmarks/bench_list_leads.py
    .venv/bin/python benchmarks/bench_list_leads.py \\
        --postgres postgresql+asyncpg://postgres@127.0.0.1:5432/test

This is not a test: it is outside ``tests/`` and pytest never collects it.
"""

import argparse
import asyncio
import contextlib
import cProfile
import hashlib
import json
import math
import os
import platform
import secrets
import socket
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import uvicorn
from sqlalchemy import event, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from db.migrate import upgrade_to_head
from db.models import AuthSession, Lead, User
from ibhq.app import create_app
from ibhq.logs import configure_logging
from ibhq.settings import load_settings
from rest_compat.operations import load_operations

SCRIPT_PATH = Path(__file__).resolve()
PROJECT_ROOT = SCRIPT_PATH.parent.parent
HOST = "127.0.0.1"
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
PAGE_SIZE = 50
COOKIE_NAME = "authjs.session-token"  # the name on http:// (no __Secure- prefix)
IN_APP_PATH = "/benchmark/leads"
BENCH_PREFIX = "/_bench/"
BARE_PATH = "/_bench/leads"
MAX_DISTINCT_STATEMENTS = 30
SERVER_START_TIMEOUT_S = 60
SERVER_STOP_TIMEOUT_S = 30
# CPU use by other processes, in cores, above which a SQLite run is flagged as
# disturbed (on PostgreSQL the database's own backends count as "other").
BUSY_MACHINE_CORES = 0.1

STAGES = ("new", "contacted", "qualified", "registered", "funded", "active", "lost")
SOURCES = ("manual", "onboarding_bot", "referral", "outreach", "import")


class BenchmarkError(Exception):
    """Raised when a step of the benchmark fails. The message names the step."""


# --------------------------------------------------------------------------
# The server side: runs in the subprocess started with --serve.
# --------------------------------------------------------------------------


@dataclass
class ServerTally:
    """Counters of the serving engine's work since the last reset, and CPU time."""

    statements: int = 0
    begins: int = 0
    transactions: int = 0
    checkouts: int = 0
    pings: int = 0
    # Wall time from before_cursor_execute to after_cursor_execute, summed.
    # It includes waiting for aiosqlite's thread, for SQLite's lock and for the
    # event loop to resume the request, so it is not the database's own work.
    statement_seconds: float = 0.0
    begin_seconds: float = 0.0
    cpu_started: float = field(default_factory=time.process_time)
    texts: Counter[str] = field(default_factory=Counter)

    def reset(self) -> None:
        self.statements = self.begins = self.transactions = 0
        self.checkouts = self.pings = 0
        self.statement_seconds = self.begin_seconds = 0.0
        self.cpu_started = time.process_time()
        self.texts.clear()

    def snapshot(self) -> dict[str, Any]:
        return {
            "statements": self.statements,
            "begins": self.begins,
            "transactions": self.transactions,
            "checkouts": self.checkouts,
            "pings": self.pings,
            "statement_seconds": self.statement_seconds,
            "begin_seconds": self.begin_seconds,
            "cpu_seconds": time.process_time() - self.cpu_started,
            "texts": dict(self.texts),
        }


def instrument_engine(engine: AsyncEngine, tally: ServerTally) -> None:
    """Count statements, transactions, pool checkouts and pre-pings of ``engine``.

    SQLite gets an explicit ``BEGIN IMMEDIATE`` from ``db.engine``. It is
    counted apart from the other statements, because the test suite's
    StatementCounter leaves it out, and the time spent waiting in it is summed
    apart as well.
    """
    sync_engine = engine.sync_engine

    def before(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        conn.info["bench_started"] = time.perf_counter()

    def after(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        elapsed = time.perf_counter() - conn.info.pop("bench_started")
        if statement.startswith("BEGIN"):
            tally.begins += 1
            tally.begin_seconds += elapsed
            return
        tally.statements += 1
        tally.statement_seconds += elapsed
        if statement in tally.texts or len(tally.texts) < MAX_DISTINCT_STATEMENTS:
            tally.texts[statement] += 1

    def on_begin(_conn: Any) -> None:
        tally.transactions += 1

    def on_checkout(*_: Any) -> None:
        tally.checkouts += 1

    event.listen(sync_engine, "before_cursor_execute", before)
    event.listen(sync_engine, "after_cursor_execute", after)
    event.listen(sync_engine, "begin", on_begin)
    event.listen(sync_engine, "checkout", on_checkout)

    # pool_pre_ping (set by db.engine for PostgreSQL) pings on every checkout
    # outside the cursor events, so the dialect's ping is wrapped to count it.
    dialect = sync_engine.dialect
    ping = dialect.do_ping

    def counted_ping(dbapi_connection: Any) -> bool:
        tally.pings += 1
        return ping(dbapi_connection)

    dialect.do_ping = counted_ping  # type: ignore[method-assign]


def format_utc(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def lead_json(row: Any) -> dict[str, Any]:
    """Render a lead row with the keys and order of the LeadFields fragment."""
    return {
        "id": str(row.id),
        "fullName": row.full_name,
        "email": row.email,
        "phone": row.phone,
        "telegram": row.telegram,
        "pipelineStage": row.pipeline_stage,
        "source": row.source,
        "tags": list(row.tags),
        "notes": row.notes,
        "lostReason": row.lost_reason,
        "ownerId": str(row.owner_id) if row.owner_id else None,
        "createdAt": format_utc(row.created_at),
        "updatedAt": format_utc(row.updated_at),
    }


def core_leads_endpoint(engine: AsyncEngine, cookie_name: str) -> Any:
    """Build the hand-written list endpoint: session lookup, count, page, JSON."""
    auth_sessions = AuthSession.__table__
    users = User.__table__
    leads = Lead.__table__
    # The same statements the product sends: domain.auth.resolve_session's
    # join, then domain.leads.list_leads's count and page, scoped to the tenant.
    session_lookup = select(auth_sessions, users).join_from(
        auth_sessions, users, users.c.id == auth_sessions.c.user_id
    )

    async def endpoint(request: Request) -> Response:
        token = request.cookies.get(cookie_name)
        if not token or len(token) > 200:
            return JSONResponse({"error": "Sign in to use this endpoint"}, 401)
        raw_size = request.query_params.get("pageSize", "20")
        if not raw_size.isdigit() or not 1 <= int(raw_size) <= 100:
            return JSONResponse({"error": "pageSize must be 1 to 100"}, 400)
        page_size = int(raw_size)
        token_hash = hashlib.sha256(token.encode()).hexdigest()

        async with engine.connect() as connection:
            found = (
                await connection.execute(
                    session_lookup.where(
                        auth_sessions.c.token_hash == token_hash,
                        auth_sessions.c.expires_at > datetime.now(UTC),
                        users.c.removed_at.is_(None),
                    )
                )
            ).first()
            if found is None:
                return JSONResponse({"error": "Sign in to use this endpoint"}, 401)
            tenant_id = found._mapping[users.c.tenant_id]
            total = await connection.scalar(
                select(func.count())
                .select_from(leads)
                .where(leads.c.tenant_id == tenant_id)
            )
            rows = await connection.execute(
                select(leads)
                .where(leads.c.tenant_id == tenant_id)
                .order_by(leads.c.created_at.desc(), leads.c.id.desc())
                .limit(page_size)
                .offset(0)
            )
            items = [lead_json(row) for row in rows]

        body = {"items": items, "page": 1, "pageSize": page_size, "total": total}
        return JSONResponse(body)

    return endpoint


def stats_app(tally: ServerTally, profile_dir: Path | None) -> Starlette:
    profiler: list[cProfile.Profile] = []

    async def reset(request: Request) -> Response:
        tally.reset()
        if profile_dir is not None:
            profiler[:] = [cProfile.Profile()]
            profiler[0].enable()
        return JSONResponse({"ok": True})

    async def stats(request: Request) -> Response:
        if profiler:
            profiler[0].disable()
            name = request.query_params.get("profile", "run")
            assert profile_dir is not None
            profiler[0].dump_stats(profile_dir / f"{name}.pstats")
            profiler.clear()
        return JSONResponse(tally.snapshot())

    return Starlette(
        routes=[
            Route("/_bench/reset", reset, methods=["POST"]),
            Route("/_bench/stats", stats, methods=["GET"]),
        ]
    )


def build_server_app(
    product: Starlette, tally: ServerTally, profile_dir: Path | None
) -> ASGIApp:
    """Wrap the product app with the benchmark's own routes under /_bench/."""
    engine: AsyncEngine = product.state.engine
    instrument_engine(engine, tally)
    settings = product.state.services.settings
    endpoint = core_leads_endpoint(engine, settings.session_cookie_name)
    # Inside the product's router, behind its middleware like /api/leads.
    product.router.routes.insert(0, Route(IN_APP_PATH, endpoint, methods=["GET"]))
    bare = stats_app(tally, profile_dir)
    bare.router.routes.append(Route(BARE_PATH, endpoint, methods=["GET"]))

    async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(BENCH_PREFIX):
            await bare(scope, receive, send)
            return
        await product(scope, receive, send)

    return dispatch


async def serve(max_seconds: float, profile_dir: Path | None) -> None:
    """Serve until stdin closes or ``max_seconds`` pass.

    Prints ``{"port": N}`` on stdout once uvicorn accepts connections.
    """
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    # IPPROTO_TCP, not the default 0: asyncio sets TCP_NODELAY on accepted
    # connections only when the listener's proto is IPPROTO_TCP (as it is on
    # sockets uvicorn creates for `ibhq serve`). Without it, Nagle's algorithm
    # delays uvicorn's body write until the client's delayed ACK, about 40 ms.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind((HOST, 0))
    port = sock.getsockname()[1]
    settings = settings.model_copy(update={"public_url": f"http://{HOST}:{port}"})
    # Workers are off: their periodic jobs would add statements to the counts.
    product = create_app(settings, workers=False)
    app = build_server_app(product, ServerTally(), profile_dir)
    config = uvicorn.Config(
        app,
        log_config=None,
        lifespan="on",
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
    )
    server = uvicorn.Server(config)
    loop = asyncio.get_running_loop()

    def request_exit() -> None:
        server.should_exit = True

    # The parent stops the server by closing stdin. If the parent dies, the
    # pipe closes as well, so the server never outlives it.
    def wait_for_stdin_eof() -> None:
        sys.stdin.buffer.read()
        loop.call_soon_threadsafe(request_exit)

    threading.Thread(target=wait_for_stdin_eof, daemon=True).start()
    loop.call_later(max_seconds, request_exit)

    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
            raise BenchmarkError("uvicorn stopped before it started serving")
        await asyncio.sleep(0.01)
    print(json.dumps({"port": port}), flush=True)
    await task
    sock.close()


# --------------------------------------------------------------------------
# The load client: a minimal HTTP/1.1 keep-alive client on asyncio streams,
# so the client spends little CPU per request on a machine with few cores.
# --------------------------------------------------------------------------


class HttpConnection:
    """One keep-alive HTTP/1.1 connection to the server, one request at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> "HttpConnection":
        reader, writer = await asyncio.open_connection(HOST, port)
        return cls(reader, writer)

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        """Send one request and read the response's status and body."""
        self.writer.write(request)

        status_line = await self.reader.readline()
        parts = status_line.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
            raise BenchmarkError(f"invalid HTTP status line {status_line[:80]!r}")
        status = int(parts[1])

        length = None
        closing = False
        while True:
            line = await self.reader.readline()
            if not line:
                raise BenchmarkError("the server closed the connection mid-response")
            if line == b"\r\n":
                break
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                closing = True

        if length is None:
            raise BenchmarkError(
                f"status {status} response without Content-Length; this client "
                "reads only bodies of a declared length"
            )
        body = await self.reader.readexactly(length)
        if closing:
            raise BenchmarkError(
                f"the server closed the keep-alive connection after status {status}: "
                f"{body[:200]!r}"
            )
        return status, body

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


@dataclass(frozen=True)
class Mode:
    key: str
    label: str
    method: str
    path: str
    body: bytes = b""

    def request(self, port: int, token: str) -> bytes:
        lines = [
            f"{self.method} {self.path} HTTP/1.1",
            f"Host: {HOST}:{port}",
            f"Cookie: {COOKIE_NAME}={token}",
            "Accept: application/json",
        ]
        if self.method == "POST":
            lines.append("Content-Type: application/json")
            lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + self.body


def build_modes() -> tuple[Mode, ...]:
    operation = load_operations()["ListLeads"]
    graphql_body = json.dumps(
        {
            "query": operation.document,
            "operationName": "ListLeads",
            "variables": {"pageSize": PAGE_SIZE},
        }
    ).encode()
    query = f"?pageSize={PAGE_SIZE}"
    return (
        Mode("rest", "REST `GET /api/leads`", "GET", "/api/leads" + query),
        Mode("graphql", "GraphQL `POST /graphql`", "POST", "/graphql", graphql_body),
        Mode("core-in-app", "Core handler, in the app", "GET", IN_APP_PATH + query),
        Mode("core-bare", "Core handler, bare Starlette", "GET", BARE_PATH + query),
    )


@dataclass
class LoadResult:
    requests: int
    seconds: float
    latencies: list[float]
    client_cpu_seconds: float
    machine_cpu_seconds: float


async def run_load(
    port: int,
    request: bytes,
    expected_body: bytes,
    *,
    total: int,
    concurrency: int,
    max_seconds: float,
) -> LoadResult:
    """Send ``total`` requests over ``concurrency`` connections and time each."""
    connections = [await HttpConnection.open(port) for _ in range(concurrency)]
    remaining = total
    latencies: list[float] = []

    async def worker(connection: HttpConnection) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            status, body = await connection.exchange(request)
            latencies.append(time.perf_counter() - started)
            if status != 200 or body != expected_body:
                raise BenchmarkError(
                    f"unexpected response: status {status}, body {body[:200]!r}"
                )

    cpu_started = time.process_time()
    machine_started = machine_busy_seconds()
    started = time.perf_counter()
    try:
        async with asyncio.timeout(max_seconds), asyncio.TaskGroup() as group:
            for connection in connections:
                group.create_task(worker(connection))
    except TimeoutError:
        raise BenchmarkError(
            f"the load run timed out after {max_seconds:.0f} s with {remaining} "
            "requests left; raise --run-timeout or lower --requests"
        ) from None
    finally:
        for connection in connections:
            await connection.close()
    return LoadResult(
        requests=total,
        seconds=time.perf_counter() - started,
        latencies=latencies,
        client_cpu_seconds=time.process_time() - cpu_started,
        machine_cpu_seconds=machine_busy_seconds() - machine_started,
    )


def machine_busy_seconds() -> float:
    """Return the CPU seconds all processes have used since boot, from /proc/stat.

    The busy fields are user, nice, system, irq, softirq and steal; idle and
    iowait are left out. Returns NaN where /proc/stat cannot be read, so the
    report shows the figure as unknown instead of as an idle machine.
    """
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return math.nan
    ticks = [int(value) for value in fields]
    busy = ticks[0] + ticks[1] + ticks[2] + ticks[5] + ticks[6] + ticks[7]
    return busy / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], fraction: float) -> float:
    """Return the nearest-rank percentile of ``values``."""
    ordered = sorted(values)
    rank = max(1, math.ceil(len(ordered) * fraction))
    return ordered[rank - 1]


# --------------------------------------------------------------------------
# Orchestration: databases, the server process, seeding and the runs.
# --------------------------------------------------------------------------


@dataclass
class ModeResult:
    key: str
    label: str
    rounds: list[dict[str, Any]] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        requests = sum(r["requests"] for r in self.rounds)
        rates = [r["requests"] / r["seconds"] for r in self.rounds]

        def per_request(key: str) -> float:
            return sum(r["server"][key] for r in self.rounds) / requests

        return {
            "mode": self.key,
            "label": self.label,
            "rounds": len(self.rounds),
            "requests": requests,
            "rps_median": statistics.median(rates),
            "rps_min": min(rates),
            "rps_max": max(rates),
            "p50_ms": percentile(self.latencies, 0.50) * 1000,
            "p99_ms": percentile(self.latencies, 0.99) * 1000,
            "statements_per_request": per_request("statements"),
            "begins_per_request": per_request("begins"),
            "transactions_per_request": per_request("transactions"),
            "checkouts_per_request": per_request("checkouts"),
            "pings_per_request": per_request("pings"),
            "server_cpu_ms": per_request("cpu_seconds") * 1000,
            "sql_ms": per_request("statement_seconds") * 1000,
            "begin_wait_ms": per_request("begin_seconds") * 1000,
            "client_cpu_ms": sum(r["client_cpu_seconds"] for r in self.rounds)
            / requests
            * 1000,
            # CPU that neither the server nor the client used, in cores: other
            # processes (PostgreSQL's backends on a PostgreSQL run, and any
            # other work on the machine). /proc/stat counts in ticks of 10 ms,
            # so small values are noise.
            "other_cpu_cores": max(
                sum(
                    r["machine_cpu_seconds"]
                    - r["client_cpu_seconds"]
                    - r["server"]["cpu_seconds"]
                    for r in self.rounds
                )
                / sum(r["seconds"] for r in self.rounds),
                0.0,
            ),
            "statement_texts": self.rounds[-1]["server"]["texts"],
        }


@contextlib.contextmanager
def sqlite_database() -> Iterator[tuple[str, Path]]:
    with tempfile.TemporaryDirectory(prefix="ibhq-bench-") as folder:
        url = f"sqlite+aiosqlite:///{Path(folder) / 'bench.db'}"
        upgrade_to_head(url)
        yield url, Path(folder)


async def _postgres_admin(base_url: str, statement: str) -> str:
    url = make_url(base_url)
    connection = await asyncpg.connect(
        host=url.host,
        port=url.port or 5432,
        user=url.username,
        password=url.password,
        database=url.database or "postgres",
    )
    try:
        await connection.execute(statement)
        version: str = await connection.fetchval("SHOW server_version")
        return version
    finally:
        await connection.close()


@contextlib.contextmanager
def postgres_database(base_url: str) -> Iterator[tuple[str, Path, str]]:
    """Create a fresh ``ibhq_bench_<random>`` database, migrate it, drop it after."""
    url = make_url(base_url)
    if url.host not in LOOPBACK_NAMES:
        raise BenchmarkError(
            f"--postgres must point at a server on loopback, not {url.host!r}"
        )
    name = f"ibhq_bench_{uuid.uuid4().hex[:12]}"
    version = asyncio.run(_postgres_admin(base_url, f'CREATE DATABASE "{name}"'))
    try:
        rendered = url.set(drivername="postgresql+asyncpg", database=name)
        rendered_url = rendered.render_as_string(hide_password=False)
        upgrade_to_head(rendered_url)
        with tempfile.TemporaryDirectory(prefix="ibhq-bench-") as folder:
            yield rendered_url, Path(folder), version
    finally:
        drop = f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
        asyncio.run(_postgres_admin(base_url, drop))


@contextlib.asynccontextmanager
async def server_process(
    database_url: str, data_dir: Path, args: argparse.Namespace
) -> AsyncIterator[int]:
    """Start the server subprocess, yield its port, and stop it on exit."""
    env = dict(os.environ)
    env.update(
        {
            "IBHQ_DATABASE_URL": database_url,
            "IBHQ_DATA_DIR": str(data_dir),
            "IBHQ_SECRET_KEY": secrets.token_urlsafe(48),
            "IBHQ_PASSWORD_HASH_TIME_COST": "1",
            "IBHQ_PASSWORD_HASH_MEMORY_KIB": "1024",
            "IBHQ_LOG_LEVEL": "WARNING",
        }
    )
    command = [
        sys.executable,
        str(SCRIPT_PATH),
        "--serve",
        "--server-max-seconds",
        str(args.server_max_seconds),
    ]
    if args.profile:
        command += ["--profile", str(args.profile)]
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=PROJECT_ROOT,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdin is not None
    assert process.stdout is not None
    try:
        try:
            line = await asyncio.wait_for(
                process.stdout.readline(), SERVER_START_TIMEOUT_S
            )
        except TimeoutError:
            raise BenchmarkError(
                f"the server did not start within {SERVER_START_TIMEOUT_S} s"
            ) from None
        if not line:
            raise BenchmarkError("the server exited before it started; see stderr")
        yield int(json.loads(line)["port"])
    finally:
        process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), SERVER_STOP_TIMEOUT_S)
        except TimeoutError:
            process.kill()
            await process.wait()


async def seed(client: httpx.AsyncClient, leads: int) -> str:
    """Register a workspace and create ``leads`` leads in it.

    Returns the owner's session token.
    """
    slug = f"bench-{uuid.uuid4().hex[:10]}"
    response = await client.post(
        "/api/auth/register",
        json={
            "tenantName": f"Benchmark {slug}",
            "tenantSlug": slug,
            "email": f"owner@{slug}.example.com",
            "password": "correct horse battery",
        },
    )
    if response.status_code != 201:
        raise BenchmarkError(f"registration failed: {response.text}")
    owner_id = response.json()["user"]["id"]
    token = client.cookies.get(COOKIE_NAME)
    if not token:
        raise BenchmarkError(f"registration set no {COOKIE_NAME} cookie")

    for index in range(leads):
        response = await client.post("/api/leads", json=lead_fields(index, owner_id))
        if response.status_code != 201:
            raise BenchmarkError(f"creating lead {index} failed: {response.text}")
    return token


def lead_fields(index: int, owner_id: str) -> dict[str, Any]:
    """Return varied lead fields, so that nulls, tags and owners are all rendered."""
    stage = STAGES[index % len(STAGES)]
    fields: dict[str, Any] = {
        "fullName": f"Benchmark Lead {index:02d}",
        "pipelineStage": stage,
        "source": SOURCES[index % len(SOURCES)],
        "tags": ["benchmark", f"batch-{index % 4}"][: index % 3],
    }
    if index % 2 == 0:
        fields["email"] = f"lead{index:02d}@example.com"
    if index % 3 == 0:
        fields["phone"] = f"+44 20 7946 {index:04d}"
    if index % 4 == 0:
        fields["telegram"] = f"@bench_lead_{index:02d}"
    if index % 5 == 0:
        fields["notes"] = f"Asked about account types, call {index}."
    if stage == "lost":
        fields["lostReason"] = "Chose another broker"
    if index % 3 == 1:
        fields["ownerId"] = owner_id
    return fields


async def reference_bodies(
    port: int, modes: tuple[Mode, ...], token: str, leads: int
) -> dict[str, bytes]:
    """Fetch each mode once and check that all of them return the same page."""
    connection = await HttpConnection.open(port)
    bodies = {}
    try:
        for mode in modes:
            status, body = await connection.exchange(mode.request(port, token))
            if status != 200:
                raise BenchmarkError(f"{mode.key}: status {status}, {body[:300]!r}")
            bodies[mode.key] = body
    finally:
        await connection.close()

    rest = bodies["rest"]
    page = json.loads(rest)
    if page["total"] != leads or len(page["items"]) != min(leads, PAGE_SIZE):
        raise BenchmarkError(f"the REST page is not the seeded one: {rest[:300]!r}")
    for key in ("core-in-app", "core-bare"):
        if bodies[key] != rest:
            raise BenchmarkError(f"{key} body differs from REST: {bodies[key]!r}")
    if bodies["graphql"] != b'{"data":{"leads":' + rest + b"}}":
        raise BenchmarkError(f"GraphQL body differs: {bodies['graphql'][:300]!r}")
    return bodies


async def benchmark_database(
    name: str, database_url: str, data_dir: Path, args: argparse.Namespace
) -> list[dict[str, Any]]:
    modes = build_modes()
    results = {mode.key: ModeResult(mode.key, mode.label) for mode in modes}
    async with server_process(database_url, data_dir, args) as port:
        base_url = f"http://{HOST}:{port}"
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
            token = await seed(client, args.leads)
            expected = await reference_bodies(port, modes, token, args.leads)

            for round_index in range(args.rounds):
                for mode in modes:
                    request = mode.request(port, token)
                    body = expected[mode.key]
                    limits = {
                        "concurrency": args.concurrency,
                        "max_seconds": args.run_timeout,
                    }
                    await run_load(port, request, body, total=args.warmup, **limits)
                    await client.post("/_bench/reset")
                    result = await run_load(
                        port, request, body, total=args.requests, **limits
                    )
                    profile = f"{name}-{mode.key}-{round_index + 1}"
                    stats = await client.get(
                        "/_bench/stats", params={"profile": profile}
                    )
                    results[mode.key].latencies += result.latencies
                    results[mode.key].rounds.append(
                        {
                            "requests": result.requests,
                            "seconds": result.seconds,
                            "client_cpu_seconds": result.client_cpu_seconds,
                            "machine_cpu_seconds": result.machine_cpu_seconds,
                            "server": stats.json(),
                        }
                    )
                    print(
                        f"  {name} round {round_index + 1} {mode.key}: "
                        f"{result.requests / result.seconds:.0f} req/s",
                        file=sys.stderr,
                        flush=True,
                    )
    return [results[mode.key].summary() for mode in modes]


# --------------------------------------------------------------------------
# The report.
# --------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    cpu_model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    memory = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    packages = ("starlette", "strawberry-graphql", "graphql-core", "sqlalchemy")
    packages += ("uvicorn", "h11", "aiosqlite", "asyncpg")
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": cpu_model,
        "memory": memory,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "packages": {name: metadata.version(name) for name in packages},
        "load_average_before": os.getloadavg(),
    }


def markdown_report(
    info: dict[str, Any],
    runs: dict[str, list[dict[str, Any]]],
    args: argparse.Namespace,
) -> str:
    lines = [
        f"Date: {info['date']}. Machine: {info['nproc']} CPUs ({info['cpu_model']}), "
        f"{info['memory']} memory, Python {info['python']}, "
        f"SQLite {info['sqlite']}"
        + (f", PostgreSQL {info['postgres']}" if "postgres" in info else "")
        + ".",
        "Packages: "
        + ", ".join(f"{name} {version}" for name, version in info["packages"].items())
        + ".",
        f"Load: {args.requests} requests per mode and round after {args.warmup} "
        f"warm-up requests, {args.concurrency} connections, {args.rounds} round(s), "
        f"{args.leads} leads. Load average before: "
        + " ".join(f"{value:.2f}" for value in info["load_average_before"])
        + ", after: "
        + " ".join(f"{value:.2f}" for value in os.getloadavg())
        + ".",
    ]
    for database, summaries in runs.items():
        lines += [
            "",
            f"### {database}",
            "",
            "| mode | req/s | p50 ms | p99 ms | SQL statements/request |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        for row in summaries:
            rate = f"{row['rps_median']:.0f}"
            if row["rounds"] > 1:
                rate += f" ({row['rps_min']:.0f}-{row['rps_max']:.0f})"
            lines.append(
                f"| {row['label']} | {rate} | {row['p50_ms']:.2f} | "
                f"{row['p99_ms']:.2f} | {row['statements_per_request']:.2f} |"
            )
        lines += [
            "",
            "| mode | BEGIN/req | transactions/req | checkouts/req | pings/req "
            "| server CPU ms/req | in SQL ms/req | in BEGIN ms/req "
            "| client CPU ms/req | other CPU, cores |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for row in summaries:
            lines.append(
                f"| {row['label']} | {row['begins_per_request']:.2f} | "
                f"{row['transactions_per_request']:.2f} | "
                f"{row['checkouts_per_request']:.2f} | "
                f"{row['pings_per_request']:.2f} | {row['server_cpu_ms']:.2f} | "
                f"{row['sql_ms']:.2f} | {row['begin_wait_ms']:.2f} | "
                f"{row['client_cpu_ms']:.2f} | {row['other_cpu_cores']:.2f} |"
            )
    busy = [
        f"{row['mode']} ({row['other_cpu_cores']:.2f} cores)"
        for row in runs.get("SQLite", [])
        if row["other_cpu_cores"] > BUSY_MACHINE_CORES
    ]
    if busy:
        lines += [
            "",
            "WARNING: other processes used CPU during the SQLite runs of "
            + ", ".join(busy)
            + "; rerun on an idle machine before comparing these figures.",
        ]
    return "\n".join(lines)


def statement_report(runs: dict[str, list[dict[str, Any]]]) -> str:
    lines = []
    for database, summaries in runs.items():
        for row in summaries:
            lines.append(f"-- {database} / {row['mode']} (count in the last round)")
            for text, count in row["statement_texts"].items():
                lines.append(f"{count:6d}  {' '.join(text.split())}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Compare requests per second, p50 and p99 latency and SQL "
        "statements per request for one workspace's list of leads served by REST "
        "(GET /api/leads), GraphQL (POST /graphql, the ListLeads operation) and a "
        "hand-written SQLAlchemy Core handler. The server is a uvicorn subprocess "
        "on 127.0.0.1; this process is the load client. Prints a Markdown report.",
    )

    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="also run on PostgreSQL: a URL such as "
        "postgresql+asyncpg://postgres@127.0.0.1:5432/test, whose database is used "
        "only to create and later drop a fresh ibhq_bench_<random> database "
        "(loopback hosts only)",
    )

    parser.add_argument(
        "--requests",
        type=int,
        default=2000,
        help="measured requests per mode and round (default 2000)",
    )

    parser.add_argument(
        "--warmup",
        type=int,
        default=200,
        help="unmeasured requests sent before each measured run (default 200)",
    )

    parser.add_argument(
        "--concurrency",
        type=int,
        default=10,
        help="keep-alive connections, each with one request in flight (default 10)",
    )

    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="times to repeat the sequence of modes; req/s is then the median "
        "over rounds and p50/p99 are over all measured requests (default 1)",
    )

    parser.add_argument(
        "--leads",
        type=int,
        default=PAGE_SIZE,
        help=f"leads to create in the workspace (default {PAGE_SIZE})",
    )

    parser.add_argument(
        "--run-timeout",
        type=float,
        default=300,
        help="seconds one load run may take before the benchmark fails (default 300)",
    )

    parser.add_argument(
        "--server-max-seconds",
        type=float,
        default=3600,
        help="seconds after which the server subprocess stops by itself (default 3600)",
    )

    parser.add_argument(
        "--json",
        type=Path,
        metavar="PATH",
        help="also write the machine facts and every figure to PATH as JSON",
    )

    parser.add_argument(
        "--show-sql",
        action="store_true",
        help="also print the distinct SQL statements each mode sent",
    )

    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="run cProfile in the server's event-loop thread during each measured "
        "run and write DIR/<database>-<mode>-<round>.pstats; profiling slows the "
        "server, so figures from such a run are not comparable with others",
    )

    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)

    args = parser.parse_args(argv)
    for name in ("requests", "concurrency", "rounds", "leads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be 1 or more, not {getattr(args, name)}")
    if args.warmup < 0:
        parser.error(f"--warmup must be 0 or more, not {args.warmup}")

    if args.postgres:
        try:
            host = make_url(args.postgres).host
        except ArgumentError:
            parser.error(f"--postgres is not a database URL: {args.postgres!r}")
        if host not in LOOPBACK_NAMES:
            parser.error(f"--postgres must point at a server on loopback, not {host!r}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve:
        asyncio.run(serve(args.server_max_seconds, args.profile))
        return 0
    if args.profile:
        args.profile = args.profile.resolve()
        args.profile.mkdir(parents=True, exist_ok=True)

    info = machine_info()
    runs: dict[str, list[dict[str, Any]]] = {}
    try:
        with sqlite_database() as (url, folder):
            runs["SQLite"] = asyncio.run(
                benchmark_database("sqlite", url, folder, args)
            )
        if args.postgres:
            with postgres_database(args.postgres) as (url, folder, version):
                info["postgres"] = version
                runs["PostgreSQL"] = asyncio.run(
                    benchmark_database("postgres", url, folder, args)
                )
    except BenchmarkError as error:
        print(f"bench_list_leads: {error}", file=sys.stderr)
        return 1

    print(markdown_report(info, runs, args))
    if args.show_sql:
        print()
        print(statement_report(runs))
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "runs": runs}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
