"""The payment monitor, end to end on loopback.

The real TronGrid client (httpx) and node client (tronpy) talk to the fake
TRON of tests/fakes/tron.py. The real webhook client reports to the app's
real ``POST /api/billing/webhook`` through a relay, which counts deliveries
and can fail calls. Payments are created through the API, as an owner would.
"""

import asyncio
import logging
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import delete, select
from tronpy.keys import PrivateKey

from db.models import MonitorCursor, Payment, TronTransfer
from domain.billing import MAINNET_USDT, parse_usdt
from domain.tron import ConfirmedTransfer
from ibhq.app import create_app
from ibhq.settings import SettingsError
from ibhq.worker_config import payment_monitor_config, worker_config
from integrations.billing_webhook import BillingWebhookClient, message_id
from integrations.retry import RetryPolicy
from integrations.tron_node import TronNodeClient
from integrations.trongrid import TronGridClient, TronGridError
from tests.conftest import (
    PAYER,
    WALLET,
    WEBHOOK_SECRET,
    Server,
    make_settings,
    register,
)
from tests.fakes.loopback import serve_loopback
from tests.fakes.tron import FakeTron, serve_fake_tron
from tests.fakes.webhook import WebhookRelay, serve_webhook_relay
from workers.payment_monitor import (
    PaymentMonitor,
    PaymentMonitorConfig,
    open_payment_monitor,
    run_payment_monitor,
)
from workers.runner import run_workers

LOOKALIKE = PrivateKey(bytes([9] * 32)).public_key.to_base58check_address()
ROUTER = PrivateKey(bytes([10] * 32)).public_key.to_base58check_address()
FAST = RetryPolicy(attempts=4, initial_seconds=0.001, max_seconds=0.005)
CONFIRMATIONS = 3


@pytest_asyncio.fixture(scope="module")
async def served_tron() -> AsyncIterator[FakeTron]:
    async with serve_fake_tron() as fake:
        yield fake


@pytest_asyncio.fixture(scope="module")
async def served_relay(server: Server) -> AsyncIterator[WebhookRelay]:
    async with serve_webhook_relay(f"{server.url}/api/billing/webhook") as running:
        yield running


@pytest.fixture
def tron(served_tron: FakeTron) -> FakeTron:
    """The fake TRON, with a fresh chain for this test."""
    served_tron.reset()
    return served_tron


@pytest.fixture
def relay(served_relay: WebhookRelay) -> WebhookRelay:
    served_relay.reset()
    return served_relay


@pytest_asyncio.fixture
async def owner(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    """The signed-in owner of a new workspace, who buys modules."""
    client, _ = await register(server)
    yield client
    await client.aclose()


@pytest_asyncio.fixture(autouse=True)
async def fresh_cursors(server: Server) -> None:
    """Each test has a fresh fake chain, so it starts without cursors."""
    async with server.sessions() as db:
        await db.execute(delete(MonitorCursor))
        await db.commit()


def monitor_config(
    server: Server, tron: FakeTron, relay: WebhookRelay, **overrides: Any
) -> PaymentMonitorConfig:
    values: dict[str, Any] = {
        "billing": server.settings.billing,
        "trongrid_url": tron.url,
        "tron_node_url": tron.url,
        "webhook_url": relay.url,
        "webhook_secret": WEBHOOK_SECRET,
        "confirmations": CONFIRMATIONS,
        "interval_seconds": 0.01,
        "retry": FAST,
    }
    values.update(overrides)
    return PaymentMonitorConfig(**values)


@asynccontextmanager
async def monitor(
    server: Server, tron: FakeTron, relay: WebhookRelay, **overrides: Any
) -> AsyncIterator[PaymentMonitor]:
    config = monitor_config(server, tron, relay, **overrides)
    async with open_payment_monitor(
        server.sessions, config, clock=server.clock
    ) as running:
        yield running


async def run_pass(
    server: Server, tron: FakeTron, relay: WebhookRelay, **overrides: Any
) -> dict[str, Any]:
    """Run one pass; return the report of the wallet that had transfers."""
    async with monitor(server, tron, relay, **overrides) as running:
        reports = await running.run_pass()
    busy = [r for r in reports if r.outcomes or r.skipped or r.stopped or r.error]
    assert len(busy) <= 1, busy
    if not busy:
        return {"outcomes": {}, "skipped": 0, "stopped": None, "error": False}
    report = busy[0]
    return {
        "outcomes": dict(report.outcomes),
        "skipped": report.skipped,
        "stopped": report.stopped,
        "error": report.error,
    }


async def create_payment(owner: httpx.AsyncClient, months: int = 1) -> dict[str, Any]:
    response = await owner.post(
        "/api/billing/create-payment", json={"module": "forwarder", "months": months}
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    body["units"] = parse_usdt(body["amount"])
    return body


async def payment_row(server: Server, payment_id: str) -> Payment:
    async with server.sessions() as db:
        result = await db.execute(
            select(Payment).where(Payment.id == uuid.UUID(payment_id))
        )
        return result.scalar_one()


async def transfer_rows(server: Server, *txids: str) -> dict[str, TronTransfer]:
    async with server.sessions() as db:
        rows = (
            await db.execute(select(TronTransfer).where(TronTransfer.txid.in_(txids)))
        ).scalars()
        return {row.txid: row for row in rows}


async def cursor_of(server: Server, wallet: str) -> int | None:
    async with server.sessions() as db:
        row = await db.get(MonitorCursor, wallet)
    return None if row is None else int(row.last_timestamp_ms)


def pay(
    tron: FakeTron, payment: dict[str, Any], *, units: int | None = None, **details: Any
) -> str:
    """Put a transfer for ``payment`` on the fake chain; return its txid."""
    transfer = tron.add(
        contract=details.pop("contract", MAINNET_USDT),
        from_address=PAYER,
        to_address=payment["wallet"],
        value=payment["units"] if units is None else units,
        **details,
    )
    return transfer.txid


# The cases of the brief.


async def test_monitor_credits_matching_transfer(
    server: Server, owner: httpx.AsyncClient, tron: FakeTron, relay: WebhookRelay
) -> None:
    payment = await create_payment(owner)
    txid = pay(tron, payment)
    tron.mine(CONFIRMATIONS)

    report = await run_pass(server, tron, relay)

    assert report["outcomes"] == {"matched": 1}
    assert relay.delivered() == [txid]
    assert relay.calls[0].webhook_id == message_id(txid)
    row = await payment_row(server, payment["id"])
    assert (row.status, row.txid) == ("paid", txid)
    transfer = (await transfer_rows(server, txid))[txid]
    assert transfer.status == "matched"
    assert transfer.amount_units == payment["units"]
    listed = tron.transfers[0]
    assert transfer.block_number == listed.block_number
    assert await cursor_of(server, payment["wallet"]) == listed.block_timestamp_ms

    # The next pass finds nothing new and sends nothing.
    again = await run_pass(server, tron, relay)
    assert again["outcomes"] == {}
    assert again["skipped"] == 1
    assert len(relay.calls) == 1


async def test_monitor_ignores_lookalike_token(
    server: Server, owner: httpx.AsyncClient, tron: FakeTron, relay: WebhookRelay
) -> None:
    payment = await create_payment(owner)
    fake_usdt = pay(tron, payment, contract=LOOKALIKE)
    tron.mine(CONFIRMATIONS)

    report = await run_pass(server, tron, relay)

    assert report["outcomes"] == {"ignored": 1}
    assert relay.calls == []
    assert (await transfer_rows(server, fake_usdt))[fake_usdt].status == "ignored"
    assert (await payment_row(server, payment["id"])).status == "pending"

    # The real token's transfer of the same amount still pays.
    real = pay(tron, payment)
    tron.mine(CONFIRMATIONS)
    report = await run_pass(server, tron, relay)
    assert report["outcomes"] == {"matched": 1}
    assert relay.delivered() == [real]


@pytest.mark.parametrize(
    ("details", "reason"),
    [
        ({"result": "REVERT"}, "REVERT"),
        ({"result": "OUT_OF_ENERGY"}, "OUT_OF_ENERGY"),
        ({"called_contract": ROUTER}, "not the token contract"),
        ({"logged": False}, "no Transfer event"),
    ],
    ids=["reverted", "out-of-energy", "other-contract", "no-event"],
)
async def test_monitor_fails_transfer_chain_contradicts(
    server: Server,
    owner: httpx.AsyncClient,
    tron: FakeTron,
    relay: WebhookRelay,
    details: dict[str, Any],
    reason: str,
) -> None:
    payment = await create_payment(owner)
    txid = pay(tron, payment, **details)
    tron.mine(CONFIRMATIONS)

    report = await run_pass(server, tron, relay)

    assert report["outcomes"] == {"failed": 1}
    assert relay.calls == []
    row = (await transfer_rows(server, txid))[txid]
    assert row.status == "failed"
    assert reason in (row.detail or "")
    assert (await payment_row(server, payment["id"])).status == "pending"
    # Recorded once, never retried.
    again = await run_pass(server, tron, relay)
    assert (again["outcomes"], again["skipped"]) == ({}, 1)


async def test_monitor_waits_for_confirmations(
    server: Server, owner: httpx.AsyncClient, tron: FakeTron, relay: WebhookRelay
) -> None:
    payment = await create_payment(owner)
    before = pay(
        tron, payment, units=payment["units"] + 7, block_number=tron.latest_block - 10
    )
    txid = pay(tron, payment)
    tron.mine(CONFIRMATIONS - 1)

    report = await run_pass(server, tron, relay)

    # The confirmed earlier transfer is handled; the new one waits, and the
    # cursor stays at the earlier one's time.
    assert report["outcomes"] == {"unmatched": 1}
    assert report["stopped"] == "pending"
    assert relay.delivered() == [before]
    assert await transfer_rows(server, txid) == {}
    assert (
        await cursor_of(server, payment["wallet"])
        == tron.transfers[0].block_timestamp_ms
    )
    assert (await payment_row(server, payment["id"])).status == "pending"

    tron.mine(1)
    report = await run_pass(server, tron, relay)

    assert report["outcomes"] == {"matched": 1}
    assert relay.delivered() == [before, txid]
    assert (await payment_row(server, payment["id"])).status == "paid"


async def test_monitor_waits_for_unseen_transaction(
    server: Server, owner: httpx.AsyncClient, tron: FakeTron, relay: WebhookRelay
) -> None:
    payment = await create_payment(owner)
    # The index lists it, but the node is a block behind.
    txid = pay(tron, payment, block_number=tron.latest_block + 1)

    report = await run_pass(server, tron, relay)
    assert report["stopped"] == "pending"
    assert relay.calls == []

    tron.mine(1 + CONFIRMATIONS)
    report = await run_pass(server, tron, relay)
    assert report["outcomes"] == {"matched": 1}
    assert relay.delivered() == [txid]


async def test_monitor_reports_off_by_one_unmatched(
    server: Server, owner: httpx.AsyncClient, tron: FakeTron, relay: WebhookRelay
) -> None:
    payment = await create_payment(owner)
    short = pay(tron, payment, units=payment["units"] - 1)
    over = pay(tron, payment, units=payment["units"] + 1)
    tron.mine(CONFIRMATIONS)

    report = await run_pass(server, tron, relay)

    assert report["outcomes"] == {"unmatched": 2}
    rows = await transfer_rows(server, short, over)
    assert {row.status for row in rows.values()} == {"unmatched"}
    assert rows[over].amount_units == payment["units"] + 1
    assert (await payment_row(server, payment["id"])).status == "pending"


async def test_monitor_late_transfer_pays_late(
    server: Server, owner: httpx.AsyncClient, tron: FakeTron, relay: WebhookRelay
) -> None:
    payment = await create_payment(owner)
    # An hour later: after the 30-minute expiry, inside the 24-hour late window.
    late_block = tron.latest_block + 3600 * 1000 // 3000
    txid = pay(tron, payment, block_number=late_block)
    tron.mine(late_block - tron.latest_block + CONFIRMATIONS)

    report = await run_pass(server, tron, relay)

    assert report["outcomes"] == {"matched": 1}
    row = await payment_row(server, payment["id"])
    assert (row.status, row.txid) == ("paid_late", txid)


class Crash(BaseException):
    """Stands for the process dying: nothing in the monitor catches it."""


class CrashAfter:
    """Delivers through the real reporter, then dies after the k-th delivery."""

    def __init__(self, inner: BillingWebhookClient, deliveries: int) -> None:
        self.inner = inner
        self.left = deliveries

    async def report(self, transfer: ConfirmedTransfer) -> str:
        status = await self.inner.report(transfer)
        self.left -= 1
        if self.left == 0:
            # Delivered, but the cursor has not moved past it yet.
            raise Crash
        return status


@pytest.mark.parametrize("crash_after", [2, 3, 5])
async def test_monitor_restart_mid_page_exactly_once(
    server: Server,
    owner: httpx.AsyncClient,
    tron: FakeTron,
    relay: WebhookRelay,
    crash_after: int,
) -> None:
    first = await create_payment(owner)
    second = await create_payment(owner)
    wallet = first["wallet"]
    base = tron.latest_block
    # Eight transfers into one wallet, several sharing a block (and so a
    # timestamp) across the boundaries of pages of three.
    plan = [
        (base, first["units"] if first["wallet"] == wallet else 1_000_001),
        (base, 1_000_002),
        (base, 1_000_003),
        (base + 1, 1_000_004),
        (base + 1, second["units"] if second["wallet"] == wallet else 1_000_005),
        (base + 2, 1_000_006),
        (base + 2, 1_000_007),
        (base + 3, 1_000_008),
    ]
    txids = [
        tron.add(
            contract=MAINNET_USDT,
            from_address=PAYER,
            to_address=wallet,
            value=value,
            block_number=block,
        ).txid
        for block, value in plan
    ]
    tron.mine(3 + CONFIRMATIONS)

    config = monitor_config(server, tron, relay, page_size=3)
    grid = TronGridClient(tron.url, page_size=3, retry=FAST)
    node = TronNodeClient(tron.url, retry=FAST)
    webhook = BillingWebhookClient(relay.url, WEBHOOK_SECRET, retry=FAST)
    try:
        dying = PaymentMonitor(
            server.sessions,
            source=grid,
            chain=node,
            reporter=CrashAfter(webhook, crash_after),
            billing=config.billing,
            confirmations=CONFIRMATIONS,
            clock=server.clock,
        )
        with pytest.raises(Crash):
            await dying.run_pass()
    finally:
        for client in (grid, node, webhook):
            await client.aclose()
    assert relay.delivered() == txids[:crash_after]

    report = await run_pass(server, tron, relay, page_size=3)

    assert relay.delivered() == txids
    assert Counter(relay.delivered()) == Counter(set(txids))
    # The transfer delivered just before the crash is read again and skipped,
    # as are those delivered earlier in the same block.
    assert report["skipped"] >= 1
    assert sum(report["outcomes"].values()) == len(txids) - crash_after
    rows = await transfer_rows(server, *txids)
    assert set(rows) == set(txids)
    assert await cursor_of(server, wallet) == tron.transfers[-1].block_timestamp_ms
    if first["wallet"] == wallet:
        assert (await payment_row(server, first["id"])).status == "paid"


async def test_webhook_5xx_retried_with_same_id(
    server: Server, owner: httpx.AsyncClient, tron: FakeTron, relay: WebhookRelay
) -> None:
    payment = await create_payment(owner)
    txid = pay(tron, payment)
    tron.mine(CONFIRMATIONS)
    relay.fail_next(FAST.attempts - 1)

    report = await run_pass(server, tron, relay)

    assert report["outcomes"] == {"matched": 1}
    assert [call.status_code for call in relay.calls] == [500] * 3 + [200]
    assert {call.webhook_id for call in relay.calls} == {message_id(txid)}
    assert (await payment_row(server, payment["id"])).status == "paid"


async def test_webhook_unreachable_holds_cursor(
    server: Server, owner: httpx.AsyncClient, tron: FakeTron, relay: WebhookRelay
) -> None:
    payment = await create_payment(owner)
    txid = pay(tron, payment)
    tron.mine(CONFIRMATIONS)
    relay.fail_next(FAST.attempts)

    report = await run_pass(server, tron, relay)

    assert report["stopped"] == "undelivered"
    assert len(relay.calls) == FAST.attempts
    assert await cursor_of(server, payment["wallet"]) is None
    assert await transfer_rows(server, txid) == {}

    report = await run_pass(server, tron, relay)
    assert report["outcomes"] == {"matched": 1}
    assert relay.delivered() == [txid]


async def test_webhook_bad_signature_not_retried(
    server: Server,
    owner: httpx.AsyncClient,
    tron: FakeTron,
    relay: WebhookRelay,
    caplog: pytest.LogCaptureFixture,
) -> None:
    payment = await create_payment(owner)
    txid = pay(tron, payment)
    tron.mine(CONFIRMATIONS)
    wrong = "whsec_" + "QUJD" * 10

    with caplog.at_level(logging.ERROR):
        report = await run_pass(server, tron, relay, webhook_secret=wrong)

    assert report["stopped"] == "undelivered"
    assert [call.status_code for call in relay.calls] == [401]
    assert "rejected transfer" in caplog.text
    assert await transfer_rows(server, txid) == {}

    report = await run_pass(server, tron, relay)
    assert report["outcomes"] == {"matched": 1}


async def test_trongrid_and_node_5xx_are_retried(
    server: Server, owner: httpx.AsyncClient, tron: FakeTron, relay: WebhookRelay
) -> None:
    payment = await create_payment(owner)
    txid = pay(tron, payment)
    tron.mine(CONFIRMATIONS)
    tron.fail_next(2, "trongrid")
    tron.fail_next(2, "node")

    report = await run_pass(server, tron, relay)

    assert report["outcomes"] == {"matched": 1}
    assert relay.delivered() == [txid]
    # Two failures and a success for the listing (twice: both wallets share
    # the counter) and for the node's first call.
    assert len(tron.calls("trongrid")) == 2 + len(server.settings.billing.wallets)
    assert len(tron.calls("node", "gettransactioninfobyid")) == 3


async def test_monitor_loop_survives_errors(
    server: Server, owner: httpx.AsyncClient, tron: FakeTron, relay: WebhookRelay
) -> None:
    payment = await create_payment(owner)
    txid = pay(tron, payment)
    tron.mine(CONFIRMATIONS)
    tron.fail_next(3 * FAST.attempts, "trongrid")

    config = monitor_config(server, tron, relay)
    task = asyncio.create_task(
        run_payment_monitor(server.sessions, config, clock=server.clock)
    )

    try:
        await wait_until(lambda: _paid_and_relayed(server, payment["id"], relay))
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert relay.delivered() == [txid]
    assert len(tron.calls("trongrid")) > 3 * FAST.attempts


async def _paid(server: Server, payment_id: str) -> bool:
    return (await payment_row(server, payment_id)).status == "paid"


async def _paid_and_relayed(
    server: Server, payment_id: str, relay: WebhookRelay
) -> bool:
    # The payment turns paid before the relay records the delivery, which
    # happens only once the webhook's response has reached the relay.
    return await _paid(server, payment_id) and bool(relay.delivered())


async def wait_until(
    condition: Callable[[], Awaitable[bool]], within: float = 10.0
) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


# Wiring: what runs the monitor, and when it refuses to.


async def test_workers_run_monitor_from_settings(
    server: Server,
    owner: httpx.AsyncClient,
    tron: FakeTron,
    relay: WebhookRelay,
    database_url: str,
    tmp_path: Path,
) -> None:
    settings = make_settings(
        database_url,
        tmp_path,
        env="test",
        trongrid_url=tron.url,
        tron_node_url=tron.url,
        billing_webhook_url=relay.url,
        tron_confirmations=CONFIRMATIONS,
        payment_monitor_interval_seconds=0.01,
    )
    config = worker_config(settings)
    assert config.payment_monitor is not None
    payment = await create_payment(owner)
    txid = pay(tron, payment)
    tron.mine(CONFIRMATIONS)

    task = asyncio.create_task(run_workers(server.sessions, config))
    try:
        await wait_until(lambda: _paid_and_relayed(server, payment["id"], relay))
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert relay.delivered() == [txid]


def test_monitor_config_needs_webhook_secret(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(
        "sqlite+aiosqlite:///unused.db",
        tmp_path,
        billing_webhook_secret=None,
        trongrid_url="http://127.0.0.1:9",
        tron_node_url="http://127.0.0.1:9",
    )
    with caplog.at_level(logging.ERROR):
        config = worker_config(settings)
    assert config.payment_monitor is None
    assert "IBHQ_BILLING_WEBHOOK_SECRET is not set" in caplog.text
    with pytest.raises(SettingsError, match="IBHQ_BILLING_WEBHOOK_SECRET"):
        payment_monitor_config(settings)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"tron_wallets": ""}, "IBHQ_TRON_WALLETS is empty"),
        ({"billing_webhook_secret": "hunter 2!"}, "is not base64"),
        ({"billing_webhook_secret": "whsec_c2hvcnQ="}, "too short"),
        ({"trongrid_url": "https://api.trongrid.io"}, "loopback"),
    ],
)
def test_monitor_config_rejects_unusable_settings(
    tmp_path: Path, overrides: dict[str, Any], message: str
) -> None:
    values = {
        "trongrid_url": "http://127.0.0.1:9",
        "tron_node_url": "http://127.0.0.1:9",
        **overrides,
    }
    settings = make_settings("sqlite+aiosqlite:///unused.db", tmp_path, **values)
    with pytest.raises(SettingsError, match=message):
        payment_monitor_config(settings)
    if overrides.get("tron_wallets") == "":
        assert worker_config(settings).payment_monitor is None


def test_monitor_config_repr_hides_secrets(tmp_path: Path) -> None:
    settings = make_settings("sqlite+aiosqlite:///unused.db", tmp_path)
    config = PaymentMonitorConfig(
        billing=settings.billing,
        trongrid_url="http://127.0.0.1:9",
        tron_node_url="http://127.0.0.1:9",
        webhook_url="http://127.0.0.1:9",
        webhook_secret=WEBHOOK_SECRET,
        trongrid_api_key="grid-key",
    )
    assert WEBHOOK_SECRET not in repr(config)
    assert "grid-key" not in repr(config)


# The adapters on their own, against the fake.


async def test_trongrid_client_pages_by_fingerprint(
    tron: FakeTron,
) -> None:
    huge = 123_456_789_012_345_678_901_234_567_890
    values = [1, 2, 3, huge, 5]
    for value in values:
        tron.add(contract=LOOKALIKE, from_address=PAYER, to_address=WALLET, value=value)
    tron.add(
        contract=MAINNET_USDT,
        from_address=PAYER,
        to_address=WALLET,
        value=99,
        kind="Approval",
    )
    tron.add(contract=MAINNET_USDT, from_address=WALLET, to_address=PAYER, value=98)
    client = TronGridClient(tron.url, api_key="grid-key", page_size=2, retry=FAST)
    try:
        pages = [list(page) async for page in client.transfer_pages(WALLET, since_ms=0)]
    finally:
        await client.aclose()

    assert [[t.amount_units for t in page] for page in pages] == [
        [1, 2],
        [3, huge],
        [5],
    ]
    calls = tron.calls("trongrid")
    assert len(calls) == 3
    assert {call.api_key for call in calls} == {"grid-key"}
    assert "fingerprint" not in calls[0].params
    assert calls[1].params["fingerprint"] != calls[2].params["fingerprint"]
    assert calls[0].params["only_to"] == "true"
    assert calls[0].params["order_by"] == "block_timestamp,asc"


async def test_trongrid_client_rejects_malformed_entry(tron: FakeTron) -> None:
    tron.add(contract=MAINNET_USDT, from_address=PAYER, to_address=WALLET, value=1)
    tron.transfers[0].txid = "not-a-txid"
    client = TronGridClient(tron.url, retry=FAST)
    try:
        with pytest.raises(TronGridError, match="transaction_id"):
            async for _ in client.transfer_pages(WALLET, since_ms=0):
                pass
    finally:
        await client.aclose()


@pytest.mark.parametrize(
    ("path", "api_key", "sent"),
    [
        ("", "node-key", None),
        ("/trongrid", "node-key", "node-key"),
        ("/trongrid", None, None),
    ],
    ids=["other-node", "trongrid", "trongrid-without-key"],
)
async def test_node_client_key_for_trongrid_only(
    tron: FakeTron, path: str, api_key: str | None, sent: str | None
) -> None:
    transfer = tron.add(
        contract=MAINNET_USDT, from_address=PAYER, to_address=WALLET, value=5
    )
    client = TronNodeClient(tron.url + path, api_key=api_key, retry=FAST)
    try:
        info = await client.transaction_info(transfer.txid)
        latest = await client.latest_block_number()
        missing = await client.transaction_info("0" * 64)
    finally:
        await client.aclose()

    assert info is not None
    assert info.succeeded
    assert (info.contract, info.block_number) == (MAINNET_USDT, transfer.block_number)
    assert [(e.to_address, e.amount_units) for e in info.events] == [(WALLET, 5)]
    assert latest == tron.latest_block
    assert missing is None
    assert {call.api_key for call in tron.calls("node")} == {sent}


async def test_monitor_logs_transfer_stuck_unseen(
    server: Server,
    owner: httpx.AsyncClient,
    tron: FakeTron,
    relay: WebhookRelay,
    caplog: pytest.LogCaptureFixture,
) -> None:
    payment = await create_payment(owner)
    # Listed with a time of 20 minutes ago, in a block the node never reaches.
    ghost = pay(
        tron,
        payment,
        block_number=tron.latest_block + 10_000,
        block_timestamp_ms=tron.block_time(tron.latest_block - 400),
    )

    with caplog.at_level(logging.ERROR):
        report = await run_pass(server, tron, relay)

    assert report["stopped"] == "pending"
    assert relay.calls == []
    assert f"transfer {ghost} was listed 20 minutes ago" in caplog.text


async def test_serve_runs_monitor_when_configured(
    server: Server,
    owner: httpx.AsyncClient,
    tron: FakeTron,
    relay: WebhookRelay,
    database_url: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    values: dict[str, Any] = {
        "trongrid_url": tron.url,
        "tron_node_url": tron.url,
        "billing_webhook_url": relay.url,
        "tron_confirmations": CONFIRMATIONS,
        "payment_monitor_interval_seconds": 0.01,
    }
    # Without the secret the app serves, and logs why nothing is monitored.
    unsigned = make_settings(
        database_url, tmp_path, billing_webhook_secret=None, **values
    )
    with caplog.at_level(logging.ERROR):
        app = create_app(unsigned, clock=server.clock, workers=True)
        async with (
            serve_loopback(app, lifespan=True) as url,
            httpx.AsyncClient() as client,
        ):
            assert (await client.get(f"{url}/healthz")).status_code == 200
    assert "payment monitor not started" in caplog.text

    payment = await create_payment(owner)
    txid = pay(tron, payment)
    tron.mine(CONFIRMATIONS)
    app = create_app(
        make_settings(database_url, tmp_path, **values),
        clock=server.clock,
        workers=True,
    )
    async with serve_loopback(app, lifespan=True):
        await wait_until(lambda: _paid_and_relayed(server, payment["id"], relay))
    assert relay.delivered() == [txid]
