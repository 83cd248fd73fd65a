"""The operator's commands: ``ibhq payments ...`` and ``ibhq payment-monitor``.

Each runs in-process through ``ibhq.cli.main``, in a thread of its own (the
commands call ``asyncio.run``), with IBHQ_* variables pointing at the test
database that the session's server uses.
"""

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import delete, select

from db.models import MonitorCursor, Payment, TronTransfer
from domain.billing import MAINNET_USDT, IncomingTransfer, parse_usdt, record_transfer
from ibhq import cli
from tests.conftest import (
    PAYER,
    SECOND_WALLET,
    TEST_SECRET,
    WALLET,
    WEBHOOK_SECRET,
    Server,
    register,
)
from tests.fakes.tron import FakeTron, serve_fake_tron
from tests.fakes.webhook import WebhookRelay, serve_webhook_relay


@dataclass
class Run:
    code: int
    out: str
    err: str


@pytest.fixture
def ibhq_env(
    monkeypatch: pytest.MonkeyPatch, database_url: str, tmp_path: Path
) -> pytest.MonkeyPatch:
    """IBHQ_* variables for the test database; logging left as pytest set it."""
    values = {
        "IBHQ_ENV": "test",
        "IBHQ_DATABASE_URL": database_url,
        "IBHQ_DATA_DIR": str(tmp_path),
        "IBHQ_SECRET_KEY": TEST_SECRET,
        "IBHQ_TRON_WALLETS": f"{WALLET},{SECOND_WALLET}",
        "IBHQ_BILLING_WEBHOOK_SECRET": WEBHOOK_SECRET,
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(cli, "configure_logging", lambda level, fmt: None)
    return monkeypatch


async def ibhq(capsys: pytest.CaptureFixture[str], *args: str) -> Run:
    capsys.readouterr()
    try:
        code = await asyncio.to_thread(cli.main, list(args))
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    captured = capsys.readouterr()
    return Run(code, captured.out, captured.err)


@pytest_asyncio.fixture
async def owner(server: Server) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    client, body = await register(server)
    yield client, body["tenant"]["slug"]
    await client.aclose()


async def create_payment(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.post(
        "/api/billing/create-payment", json={"module": "forwarder", "months": 1}
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def unmatched_transfer(server: Server, wallet: str, amount: str) -> str:
    """Record a transfer that pays nothing, as the webhook would."""
    txid = secrets.token_hex(32)
    async with server.sessions() as db:
        outcome = await record_transfer(
            db,
            IncomingTransfer(
                txid=txid,
                contract=MAINNET_USDT,
                from_address=PAYER,
                to_address=wallet,
                amount_units=parse_usdt(amount),
                block_number=70_000_000,
                block_timestamp=server.clock.now() - timedelta(minutes=1),
            ),
            config=server.settings.billing,
            now=server.clock.now(),
        )
        await db.commit()
    assert outcome.status == "unmatched"
    return txid


def lines_with(text: str, needle: str) -> list[str]:
    return [line for line in text.splitlines() if needle in line]


async def test_payments_list_shows_every_workspace(
    server: Server,
    owner: tuple[httpx.AsyncClient, str],
    ibhq_env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    client, slug = owner
    payment = await create_payment(client)
    other, other_body = await register(server)
    other_payment = await create_payment(other)
    await other.aclose()

    run = await ibhq(capsys, "payments", "list")

    assert run.code == 0, run.err
    header = run.out.splitlines()[0].split()
    assert header == [
        "ID",
        "WORKSPACE",
        "MODULE",
        "MONTHS",
        "AMOUNT",
        "WALLET",
        "STATUS",
        "CREATED",
    ]
    [line] = lines_with(run.out, payment["id"])
    cells = line.split()
    assert cells[:3] == [payment["id"], slug, "forwarder"]
    assert cells[3:7] == ["1", payment["amount"], payment["wallet"], "pending"]
    assert cells[7].endswith("Z")
    assert lines_with(run.out, other_body["tenant"]["slug"])[0].startswith(
        other_payment["id"]
    )
    # Aligned: every row's wallet starts in the same column as the header's.
    column = run.out.splitlines()[0].index("WALLET")
    assert line[column:].startswith(payment["wallet"])


async def test_payments_unmatched_lists_transfers_that_paid_nothing(
    server: Server,
    ibhq_env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    txid = await unmatched_transfer(server, WALLET, "12.345678")

    run = await ibhq(capsys, "payments", "unmatched")

    assert run.code == 0, run.err
    assert run.out.splitlines()[0].split() == ["TXID", "TO", "AMOUNT", "BLOCK", "TIME"]
    [line] = lines_with(run.out, txid)
    cells = line.split()
    assert cells[:3] == [txid, WALLET, "12.345678"]
    assert datetime.strptime(cells[3], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


async def test_payments_resolve_credits_the_payment(
    server: Server,
    owner: tuple[httpx.AsyncClient, str],
    ibhq_env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    client, slug = owner
    payment = await create_payment(client)
    # The payer sent a little less than quoted; the operator accepts it.
    short = str(Decimal(payment["amount"]) - Decimal("0.5"))
    txid = await unmatched_transfer(server, payment["wallet"], short)

    run = await ibhq(capsys, "payments", "resolve", txid.upper(), payment["id"])

    assert run.code == 0, run.err
    assert txid in run.out
    assert slug in run.out
    assert "now paid" in run.out
    async with server.sessions() as db:
        row = await db.get(Payment, uuid.UUID(payment["id"]))
        transfer = (
            await db.execute(select(TronTransfer).where(TronTransfer.txid == txid))
        ).scalar_one()
    assert row is not None
    assert (row.status, row.txid) == ("paid", txid)
    assert (transfer.status, transfer.payment_id) == ("matched", row.id)

    # It is no longer unmatched, and cannot be credited twice.
    listing = await ibhq(capsys, "payments", "unmatched")
    assert txid not in listing.out
    again = await ibhq(capsys, "payments", "resolve", txid, payment["id"])
    assert again.code == 1
    assert "not unmatched" in again.err


async def test_payments_resolve_explains_bad_ids(
    server: Server,
    owner: tuple[httpx.AsyncClient, str],
    ibhq_env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    client, _ = owner
    payment = await create_payment(client)
    txid = await unmatched_transfer(server, payment["wallet"], "3.5")

    unknown_transfer = await ibhq(
        capsys, "payments", "resolve", "ab" * 32, payment["id"]
    )
    assert unknown_transfer.code == 1
    assert "not found" in unknown_transfer.err
    assert "ab" * 32 in unknown_transfer.err

    unknown_payment = await ibhq(capsys, "payments", "resolve", txid, str(uuid.uuid4()))
    assert unknown_payment.code == 1
    assert "Payment" in unknown_payment.err
    assert "not found" in unknown_payment.err

    not_an_id = await ibhq(capsys, "payments", "resolve", txid, "42")
    assert not_an_id.code == 2
    assert "'42' is not a payment id" in not_an_id.err

    # Nothing changed.
    async with server.sessions() as db:
        transfer = (
            await db.execute(select(TronTransfer).where(TronTransfer.txid == txid))
        ).scalar_one()
    assert transfer.status == "unmatched"


@pytest.mark.parametrize(
    "command",
    [
        ["payments"],
        ["payments", "list"],
        ["payments", "unmatched"],
        ["payments", "resolve"],
        ["payment-monitor"],
        ["worker"],
    ],
)
async def test_every_command_has_help(
    ibhq_env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: list[str],
) -> None:
    run = await ibhq(capsys, *command, "--help")
    assert run.code == 0
    assert run.out.startswith(f"usage: ibhq {' '.join(command)}")
    if command == ["payments", "resolve"]:
        assert "TXID" in run.out
        assert "PAYMENT_ID" in run.out
    if command == ["payment-monitor"]:
        assert "--once" in run.out
        assert "IBHQ_BILLING_WEBHOOK_SECRET" in run.out


async def test_payment_monitor_once_reports_what_it_did(
    server: Server,
    owner: tuple[httpx.AsyncClient, str],
    ibhq_env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    client, _ = owner
    payment = await create_payment(client)
    async with server.sessions() as db:
        await db.execute(delete(MonitorCursor))
        await db.commit()
    tron: FakeTron
    relay: WebhookRelay
    async with (
        serve_fake_tron() as tron,
        serve_webhook_relay(f"{server.url}/api/billing/webhook") as relay,
    ):
        transfer = tron.add(
            contract=MAINNET_USDT,
            from_address=PAYER,
            to_address=payment["wallet"],
            value=parse_usdt(payment["amount"]),
        )
        tron.mine(2)
        for name, value in {
            "IBHQ_TRONGRID_URL": tron.url,
            "IBHQ_TRON_NODE_URL": tron.url,
            "IBHQ_BILLING_WEBHOOK_URL": relay.url,
            "IBHQ_TRON_CONFIRMATIONS": "2",
        }.items():
            ibhq_env.setenv(name, value)

        run = await ibhq(capsys, "payment-monitor", "--once")

    assert run.code == 0, run.err
    assert f"{payment['wallet']}: 1 matched" in run.out
    assert relay.delivered() == [transfer.txid]
    async with server.sessions() as db:
        row = await db.get(Payment, uuid.UUID(payment["id"]))
    assert row is not None
    assert row.status == "paid"


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("IBHQ_BILLING_WEBHOOK_SECRET", None, "IBHQ_BILLING_WEBHOOK_SECRET is not set"),
        ("IBHQ_TRON_WALLETS", "", "IBHQ_TRON_WALLETS is empty"),
        ("IBHQ_TRONGRID_URL", "https://api.trongrid.io", "loopback"),
    ],
)
async def test_payment_monitor_will_not_start_misconfigured(
    ibhq_env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    value: str | None,
    message: str,
) -> None:
    ibhq_env.setenv("IBHQ_TRONGRID_URL", "http://127.0.0.1:9")
    ibhq_env.setenv("IBHQ_TRON_NODE_URL", "http://127.0.0.1:9")
    if value is None:
        ibhq_env.delenv(variable)
    else:
        ibhq_env.setenv(variable, value)

    run = await ibhq(capsys, "payment-monitor", "--once")

    assert run.code == 2
    assert message in run.err
    assert run.out == ""
