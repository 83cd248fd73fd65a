"""Copy trading signals: exact prices, validation, the lifecycle, listing, statistics.

Prices are compared as the exact strings the API sends and as the text stored
in the database. Posting to Telegram is tested in test_copy_trading_delivery.
"""

import json
import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import Uuid, func, select
from sqlalchemy import column as sql_column
from sqlalchemy import table as sql_table

from db.models import Job, Signal, SignalEvent
from tests.conftest import FakeClock, Server, Workspace, graphql

SIGNALS = "/api/copy-trading/signals"
STATS = "/api/copy-trading/stats"
ROLE_MESSAGE = "This action needs the owner or admin role"
MODULE_OFF = "The copy_trading module is turned off for this workspace"
EURUSD = {
    "pair": "EURUSD",
    "direction": "long",
    "entry": "1.085",
    "stopLoss": "1.080",
    "takeProfits": ["1.090", "1.095"],
}
CREATE_SIGNAL = """
mutation($input: SignalInput!) {
  createSignal(input: $input) {
    id pair direction entry entryHigh stopLoss takeProfits status text
  }
}
"""
SIGNAL = """
query($id: ID!) {
  signal(id: $id) {
    id status outcome stopLoss exitPrice result resultUnit rMultiple tpHitLevel
    events { type level price }
  }
}
"""

# (pair, entry, stop loss, take profit): each price of the exact-decimal table
# appears as a given price, written as it must come back.
EXACT_CASES = [
    ("EURUSD", "1.085", "1.080", "1.08512"),
    ("USDJPY", "151.234", "150.5", "152"),
    ("XAUUSD", "2345.67", "2330", "2360.0"),
    ("PEPEUSDT", "0.000000812", "0.0000007", "0.00000091"),
    ("BTCUSDT", "68000.5", "67000", "70000.25"),
]


# Helpers


async def create(client: httpx.AsyncClient, **fields: Any) -> httpx.Response:
    return await client.post(SIGNALS, json={**EURUSD, **fields})


async def created_id(client: httpx.AsyncClient, **fields: Any) -> str:
    response = await create(client, **fields)
    assert response.status_code == 201, response.text
    signal_id: str = response.json()["id"]
    return signal_id


async def send_event(
    client: httpx.AsyncClient, signal_id: str, **body: Any
) -> httpx.Response:
    return await client.patch(f"{SIGNALS}/{signal_id}", json=body)


async def events(client: httpx.AsyncClient, signal_id: str, *steps: Any) -> None:
    """Send lifecycle events in order; each step is a name or a (name, body)."""
    for step in steps:
        name, extra = (step, {}) if isinstance(step, str) else step
        response = await send_event(client, signal_id, event=name, **extra)
        assert response.status_code == 200, response.text


async def stored_text(server: Server, signal_id: str, column: str) -> str:
    """Read a price column as the database stores it, before any conversion."""
    async with server.sessions() as db:
        # An untyped column skips the DecimalText conversion.
        value = await db.scalar(
            select(sql_column(column))
            .select_from(sql_table("signals"))
            .where(sql_column("id", Uuid()) == uuid.UUID(signal_id))
        )
    assert isinstance(value, str)
    return value


async def signal_count(server: Server, tenant_id: str) -> int:
    async with server.sessions() as db:
        count = await db.scalar(
            select(func.count())
            .select_from(Signal)
            .where(Signal.tenant_id == uuid.UUID(tenant_id))
        )
    return count or 0


async def event_count(server: Server, signal_id: str) -> int:
    async with server.sessions() as db:
        count = await db.scalar(
            select(func.count())
            .select_from(SignalEvent)
            .where(SignalEvent.signal_id == uuid.UUID(signal_id))
        )
    return count or 0


# Exact decimals


@pytest.mark.parametrize(("pair", "entry", "stop", "target"), EXACT_CASES)
async def test_json_numbers_keep_digits(
    server: Server, workspace: Workspace, pair: str, entry: str, stop: str, target: str
) -> None:
    # Written by hand, so the numbers reach the server with exactly these digits.
    content = (
        f'{{"pair": "{pair}", "direction": "long", "entry": {entry}, '
        f'"stopLoss": {stop}, "takeProfits": [{target}]}}'
    )

    response = await workspace.owner.post(
        SIGNALS, content=content, headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["entry"] == entry
    assert body["stopLoss"] == stop
    assert body["takeProfits"] == [target]
    assert f"<code>{entry}</code>" in body["text"]
    assert f"<code>{target}</code>" in body["text"]
    assert await stored_text(server, body["id"], "entry") == entry
    assert await stored_text(server, body["id"], "stop_loss") == stop


@pytest.mark.parametrize(("pair", "entry", "stop", "target"), EXACT_CASES)
async def test_json_strings_keep_digits(
    server: Server, workspace: Workspace, pair: str, entry: str, stop: str, target: str
) -> None:
    response = await workspace.owner.post(
        SIGNALS,
        json={
            "pair": pair,
            "direction": "buy",
            "entry": entry,
            "stopLoss": stop,
            "takeProfits": [target],
        },
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["entry"], body["stopLoss"], body["takeProfits"]) == (
        entry,
        stop,
        [target],
    )
    assert body["direction"] == "long"
    assert await stored_text(server, body["id"], "entry") == entry
    async with server.sessions() as db:
        row = await db.get(Signal, uuid.UUID(body["id"]))
    assert row is not None
    assert row.entry == Decimal(entry)
    assert row.take_profits == [target]


async def test_exponent_json_number_is_fixed_point(workspace: Workspace) -> None:
    content = (
        '{"pair": "PEPEUSDT", "direction": "long", "entry": 8.12e-7, '
        '"stopLoss": 7E-7, "takeProfits": [9.1e-7]}'
    )

    response = await workspace.owner.post(
        SIGNALS, content=content, headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["entry"] == "0.000000812"
    assert body["stopLoss"] == "0.0000007"
    assert body["takeProfits"] == ["0.00000091"]


@pytest.mark.parametrize(("pair", "entry", "stop", "target"), EXACT_CASES)
async def test_graphql_literals_keep_digits(
    workspace: Workspace, pair: str, entry: str, stop: str, target: str
) -> None:
    query = f"""
    mutation {{
      createSignal(input: {{pair: "{pair}", direction: "long", entry: {entry},
        stopLoss: {stop}, takeProfits: [{target}]}}) {{ entry stopLoss takeProfits }}
    }}
    """

    body = await graphql(workspace.owner, query)

    assert "errors" not in body, body
    created = body["data"]["createSignal"]
    assert created == {"entry": entry, "stopLoss": stop, "takeProfits": [target]}


@pytest.mark.parametrize(("pair", "entry", "stop", "target"), EXACT_CASES)
async def test_graphql_variables_keep_digits(
    workspace: Workspace, pair: str, entry: str, stop: str, target: str
) -> None:
    # JSON numbers inside the variables, written by hand.
    payload = (
        f'{{"query": {json.dumps(CREATE_SIGNAL)}, "variables": {{"input": '
        f'{{"pair": "{pair}", "direction": "long", "entry": {entry}, '
        f'"stopLoss": {stop}, "takeProfits": ["{target}"]}}}}}}'
    )

    response = await workspace.owner.post(
        "/graphql", content=payload, headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 200, response.text
    created = response.json()["data"]["createSignal"]
    assert (created["entry"], created["stopLoss"]) == (entry, stop)
    assert created["takeProfits"] == [target]


# Validation


async def test_pair_and_direction_normalised(workspace: Workspace) -> None:
    response = await create(workspace.owner, pair=" eur/usd ", direction="BUY")

    assert response.status_code == 201, response.text
    assert response.json()["pair"] == "EURUSD"
    assert response.json()["direction"] == "long"


INVALID_SIGNALS = [
    (
        {"pair": "EU"},
        "pair must be 3 to 20 letters or digits, such as EURUSD or EUR/USD",
    ),
    (
        {"pair": "EUR$USD"},
        "pair must be 3 to 20 letters or digits, such as EURUSD or EUR/USD",
    ),
    (
        {"pair": "A" * 21},
        "pair must be 3 to 20 letters or digits, such as EURUSD or EUR/USD",
    ),
    (
        {"direction": "up"},
        "direction must be long or short (buy and sell are accepted too)",
    ),
    ({"entry": "0"}, "entry must be a positive price"),
    ({"entry": "-1.085"}, "entry must be a positive price"),
    ({"stopLoss": "-1"}, "stopLoss must be a positive price"),
    ({"takeProfits": ["1.09", "0"]}, "takeProfits must be a positive price"),
    (
        {"entry": "1.0851234567890123456789"},
        "entry must have at most 20 significant digits and 40 characters",
    ),
    ({"stopLoss": "1.090"}, "stopLoss must be below the entry for a long signal"),
    ({"stopLoss": "1.085"}, "stopLoss must be below the entry for a long signal"),
    (
        {"takeProfits": ["1.080"]},
        "takeProfits must be above the entry for a long signal",
    ),
    (
        {"takeProfits": ["1.095", "1.090"]},
        "takeProfits must be in ascending order for a long signal, "
        "each one further from the entry",
    ),
    (
        {"takeProfits": ["1.090", "1.090"]},
        "takeProfits must be in ascending order for a long signal, "
        "each one further from the entry",
    ),
    ({"takeProfits": []}, "takeProfits must list 1 to 10 prices"),
    (
        {"takeProfits": [str(Decimal("1.09") + i) for i in range(11)]},
        "takeProfits must list 1 to 10 prices",
    ),
    ({"direction": "sell"}, "stopLoss must be above the entry for a short signal"),
    (
        {"direction": "short", "stopLoss": "1.090", "takeProfits": ["1.095"]},
        "takeProfits must be below the entry for a short signal",
    ),
    (
        {"direction": "short", "stopLoss": "1.090", "takeProfits": ["1.070", "1.075"]},
        "takeProfits must be in descending order for a short signal, "
        "each one further from the entry",
    ),
    (
        {"entryHigh": "1.084"},
        "entryHigh must be above entry: the zone runs from entry up to entryHigh",
    ),
    ({"entryHigh": "1.091"}, "takeProfits must be above the entry for a long signal"),
    ({"note": "x" * 1001}, "note must be at most 1000 characters"),
    ({"entry": "abc"}, "Invalid value for 'entry': Decimal cannot represent 'abc'"),
    (
        {"entry": True},
        "Invalid value for 'entry': Decimal must be a number or a numeric string",
    ),
]


@pytest.mark.parametrize(("change", "message"), INVALID_SIGNALS)
async def test_invalid_signal_rejected(
    server: Server, workspace: Workspace, change: dict[str, Any], message: str
) -> None:
    response = await create(workspace.owner, **change)

    assert response.status_code == 400, response.text
    assert response.json() == {"error": message}
    assert await signal_count(server, workspace.tenant_id) == 0


async def test_invalid_signal_names_field_in_graphql(workspace: Workspace) -> None:
    body = await graphql(
        workspace.owner, CREATE_SIGNAL, {"input": {**EURUSD, "stopLoss": "1.2"}}
    )

    (error,) = body["errors"]
    assert error["message"] == "stopLoss must be below the entry for a long signal"
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "stopLoss"}


async def test_short_zone_signal_created(workspace: Workspace) -> None:
    response = await create(
        workspace.owner,
        direction="short",
        entry="1.0850",
        entryHigh="1.0860",
        stopLoss="1.0900",
        takeProfits=["1.0800", "1.0750"],
        note="Fed <speech> & CPI",
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["entryHigh"] == "1.0860"
    assert body["status"] == "pending"
    assert body["deliveries"] == []
    assert body["events"] == []
    assert body["text"] == (
        "🔴 <b>EURUSD SELL</b>\n\n"
        "Entry: <code>1.0850</code> to <code>1.0860</code>\n"
        "Stop loss: <code>1.0900</code>\n"
        "TP1: <code>1.0800</code>\n"
        "TP2: <code>1.0750</code>\n\n"
        "<i>Fed &lt;speech&gt; &amp; CPI</i>"
    )


async def test_unknown_destination_is_not_found(
    server: Server, workspace: Workspace
) -> None:
    response = await create(workspace.owner, destinations=[str(uuid.uuid4())])

    assert response.status_code == 404
    assert response.json() == {"error": "Signal destination not found"}
    assert await signal_count(server, workspace.tenant_id) == 0


# Lifecycle


async def test_lifecycle_win_through_both_targets(
    server: Server, workspace: Workspace
) -> None:
    signal_id = await created_id(workspace.owner)

    await events(workspace.owner, signal_id, "activate", ("tp_hit", {"level": 1}))
    middle = (await graphql(workspace.owner, SIGNAL, {"id": signal_id}))["data"]
    await events(workspace.owner, signal_id, ("tp_hit", {"level": 2}))
    final = await send_event(workspace.owner, signal_id, event="cancel")

    assert middle["signal"]["status"] == "open"
    assert middle["signal"]["tpHitLevel"] == 1
    assert middle["signal"]["result"] is None
    assert final.status_code == 400
    assert final.json() == {
        "error": "The signal is closed; no more events can be recorded"
    }
    body = (await graphql(workspace.owner, SIGNAL, {"id": signal_id}))["data"]
    assert body["signal"] == {
        "id": signal_id,
        "status": "closed",
        "outcome": "win",
        "stopLoss": "1.080",
        "exitPrice": "1.095",
        "result": "100.0",
        "resultUnit": "pips",
        "rMultiple": "2.00",
        "tpHitLevel": 2,
        "events": [
            {"type": "activate", "level": None, "price": None},
            {"type": "tp_hit", "level": 1, "price": None},
            {"type": "tp_hit", "level": 2, "price": None},
        ],
    }


async def test_breakeven_then_stop(workspace: Workspace) -> None:
    signal_id = await created_id(
        workspace.owner,
        pair="USDJPY",
        entry="151.234",
        stopLoss="150.734",
        takeProfits=["152.234"],
    )

    await events(workspace.owner, signal_id, "activate", "breakeven")
    again = await send_event(workspace.owner, signal_id, event="breakeven")
    response = await send_event(workspace.owner, signal_id, event="sl_hit")

    assert again.status_code == 400
    assert again.json() == {"error": "The stop loss is already at the entry"}
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["stopLoss"] == "151.234"
    assert body["initialStopLoss"] == "150.734"
    assert (body["outcome"], body["result"], body["rMultiple"]) == (
        "breakeven",
        "0.0",
        "0.00",
    )
    assert [event["type"] for event in body["events"]] == [
        "activate",
        "breakeven",
        "sl_hit",
    ]
    assert body["events"][2]["price"] == "151.234"
    assert body["closedAt"] is not None


async def test_crypto_close_in_percent(workspace: Workspace) -> None:
    signal_id = await created_id(
        workspace.owner,
        pair="BTCUSDT",
        entry="68000.5",
        stopLoss="67000.5",
        takeProfits=["70000.5"],
    )

    await events(workspace.owner, signal_id, "activate")
    response = await send_event(
        workspace.owner, signal_id, event="close", price="68680.505"
    )

    assert response.status_code == 200, response.text
    body = response.json()
    # 680.005 / 68000.5 is exactly 1 percent; 680.005 / 1000 of risk is 0.68 R.
    assert body["exitPrice"] == "68680.505"
    assert (body["outcome"], body["result"], body["resultUnit"]) == (
        "win",
        "1.00",
        "percent",
    )
    assert body["rMultiple"] == "0.68"
    assert body["events"][-1] == {
        "id": body["events"][-1]["id"],
        "type": "close",
        "level": None,
        "price": "68680.505",
        "occurredAt": body["events"][-1]["occurredAt"],
        "deliveries": [],
    }


async def test_stop_after_target_counts_win(workspace: Workspace) -> None:
    signal_id = await created_id(workspace.owner)

    await events(workspace.owner, signal_id, "activate", ("tp_hit", {"level": 1}))
    response = await send_event(workspace.owner, signal_id, event="sl_hit")

    body = response.json()
    assert (body["outcome"], body["exitPrice"], body["result"]) == (
        "win",
        "1.090",
        "50.0",
    )
    assert body["rMultiple"] == "1.00"


async def test_short_stop_is_loss(workspace: Workspace) -> None:
    signal_id = await created_id(
        workspace.owner,
        direction="sell",
        entry="1.0850",
        stopLoss="1.0900",
        takeProfits=["1.0800"],
    )

    await events(workspace.owner, signal_id, "activate")
    response = await send_event(workspace.owner, signal_id, event="sl_hit")

    body = response.json()
    assert (body["outcome"], body["result"], body["rMultiple"]) == (
        "loss",
        "-50.0",
        "-1.00",
    )


IMPOSSIBLE_EVENTS = [
    (
        [],
        {"event": "tp_hit", "level": 1},
        "This event needs a signal that is open, and the signal is pending; "
        "activate it first",
    ),
    (
        [],
        {"event": "close", "price": "1.09"},
        "This event needs a signal that is open, and the signal is pending; "
        "activate it first",
    ),
    (
        ["activate"],
        {"event": "activate"},
        "This event needs a signal that is pending, and the signal is open; "
        "it is already open",
    ),
    (
        ["activate"],
        {"event": "cancel"},
        "This event needs a signal that is pending, and the signal is open; "
        "an open signal is ended with close at a price",
    ),
    (
        ["cancel"],
        {"event": "tp_hit", "level": 1},
        "The signal is cancelled; no more events can be recorded",
    ),
    (
        ["activate"],
        {"event": "tp_hit", "level": 3},
        "level must be between 1 and 2, the signal's take profits",
    ),
    (
        ["activate"],
        {"event": "tp_hit", "level": 0},
        "level must be between 1 and 2, the signal's take profits",
    ),
    (["activate"], {"event": "tp_hit"}, "level is required for tp_hit"),
    (
        ["activate"],
        {"event": "sl_hit", "level": 1},
        "level is only allowed with tp_hit",
    ),
    (["activate"], {"event": "close"}, "price is required for close"),
    (["activate"], {"event": "close", "price": "-2"}, "price must be a positive price"),
    (
        ["activate"],
        {"event": "breakeven", "price": "1.09"},
        "price is only allowed with close",
    ),
    (
        ["activate"],
        {"event": "explode"},
        "Invalid value for 'event': Value 'explode' does not exist "
        "in 'SignalEventType' enum",
    ),
]


@pytest.mark.parametrize(("before", "body", "message"), IMPOSSIBLE_EVENTS)
async def test_impossible_event_rejected(
    server: Server,
    workspace: Workspace,
    before: list[str],
    body: dict[str, Any],
    message: str,
) -> None:
    signal_id = await created_id(workspace.owner)
    await events(workspace.owner, signal_id, *before)
    status_before = await graphql(workspace.owner, SIGNAL, {"id": signal_id})

    response = await workspace.owner.patch(f"{SIGNALS}/{signal_id}", json=body)

    assert response.status_code == 400, response.text
    assert response.json() == {"error": message}
    assert await event_count(server, signal_id) == len(before)
    assert await graphql(workspace.owner, SIGNAL, {"id": signal_id}) == status_before


async def test_repeated_target_level_rejected(workspace: Workspace) -> None:
    signal_id = await created_id(workspace.owner)
    await events(workspace.owner, signal_id, "activate", ("tp_hit", {"level": 1}))

    response = await send_event(workspace.owner, signal_id, event="tp_hit", level=1)

    assert response.status_code == 400
    assert response.json() == {"error": "TP1 is already hit; level must be above it"}


async def test_event_through_graphql(workspace: Workspace) -> None:
    signal_id = await created_id(workspace.owner)
    query = """
    mutation($id: ID!) {
      recordSignalEvent(id: $id, input: {event: activate}) { status openedAt }
    }
    """

    body = await graphql(workspace.owner, query, {"id": signal_id})

    assert "errors" not in body, body
    assert body["data"]["recordSignalEvent"]["status"] == "open"
    assert body["data"]["recordSignalEvent"]["openedAt"].endswith("Z")


# Listing


async def test_list_filters_and_pages(workspace: Workspace, clock: FakeClock) -> None:
    old = await created_id(workspace.owner)
    clock.advance(timedelta(days=2))
    start = clock.now() - timedelta(hours=1)
    opened = await created_id(
        workspace.owner,
        pair="GBPUSD",
        entry="1.27",
        stopLoss="1.26",
        takeProfits=["1.28"],
    )
    await events(workspace.owner, opened, "activate")
    closed = await created_id(workspace.owner)
    await events(workspace.owner, closed, "activate", ("close", {"price": "1.086"}))
    cancelled = await created_id(workspace.owner)
    await events(workspace.owner, cancelled, "cancel")

    async def ids(**params: Any) -> list[str]:
        response = await workspace.member.get(SIGNALS, params=params)
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    since = start.isoformat().replace("+00:00", "Z")
    assert await ids() == [cancelled, closed, opened, old]
    assert await ids(status="open") == [opened, old]
    assert await ids(status="pending") == [old]
    assert await ids(status="closed") == [closed]
    assert await ids(status="cancelled") == [cancelled]
    assert await ids(pair="gbp/usd") == [opened]
    assert await ids(**{"from": since}) == [cancelled, closed, opened]
    assert await ids(to=since) == [old]
    assert await ids(page=2, pageSize=3) == [old]
    page = await workspace.member.get(SIGNALS, params={"pageSize": 1})
    assert {k: v for k, v in page.json().items() if k != "items"} == {
        "page": 1,
        "pageSize": 1,
        "total": 4,
    }


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"status": "won"},
            "status must be one of open (pending or open), pending, closed, cancelled",
        ),
        ({"pageSize": "101"}, "pageSize must be between 1 and 100"),
        ({"page": "0"}, "page must be 1 or more"),
        (
            {"from": "2026-01-01"},
            "Invalid value for 'from': DateTime must include a time zone, such as Z",
        ),
        (
            {"from": "2026-02-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"},
            "to must be later than from",
        ),
        (
            {"pair": "€"},
            "pair must be 3 to 20 letters or digits, such as EURUSD or EUR/USD",
        ),
        (
            {"sort": "pair"},
            "Unknown query parameter 'sort'; this route accepts: status, "
            "pair, from, to, page, pageSize",
        ),
    ],
)
async def test_list_bad_filter_rejected(
    workspace: Workspace, params: dict[str, str], message: str
) -> None:
    response = await workspace.owner.get(SIGNALS, params=params)

    assert response.status_code == 400
    assert response.json() == {"error": message}


async def test_list_statement_count(server: Server, workspace: Workspace) -> None:
    for _ in range(3):
        signal_id = await created_id(workspace.owner)
        await events(workspace.owner, signal_id, "activate")

    server.statements.reset()
    response = await workspace.owner.get(SIGNALS)

    assert response.status_code == 200
    assert len(response.json()["items"]) == 3
    select_statements = [
        s for s in server.statements.statements if "signal" in s.lower()
    ]
    # count, page, events, deliveries with their jobs.
    assert len(select_statements) == 4, select_statements


# Statistics


async def make_track_record(client: httpx.AsyncClient) -> None:
    """Create seven signals whose statistics the tests work out by hand."""
    win = await created_id(client)
    await events(
        client, win, "activate", ("tp_hit", {"level": 1}), ("tp_hit", {"level": 2})
    )
    loss = await created_id(
        client,
        direction="short",
        entry="1.0850",
        stopLoss="1.0900",
        takeProfits=["1.0800"],
    )
    await events(client, loss, "activate", "sl_hit")
    even = await created_id(
        client,
        pair="USDJPY",
        entry="151.234",
        stopLoss="150.734",
        takeProfits=["152.234"],
    )
    await events(client, even, "activate", "breakeven", "sl_hit")
    crypto = await created_id(
        client,
        pair="BTCUSDT",
        entry="68000.5",
        stopLoss="67000.5",
        takeProfits=["70000.5"],
    )
    await events(client, crypto, "activate", ("close", {"price": "68680.505"}))
    gold = await created_id(
        client,
        pair="XAUUSD",
        direction="short",
        entry="2345.67",
        stopLoss="2350.67",
        takeProfits=["2335.67"],
    )
    await events(client, gold, "cancel")
    await created_id(client)
    partial = await created_id(client)
    await events(client, partial, "activate", ("tp_hit", {"level": 1}), "sl_hit")


TALLY_KEYS = [
    "total", "open", "closed", "wins", "losses", "breakeven", "winRate",
    "totalPips", "totalPercent", "averageR",
]  # fmt: skip


def tally(*values: Any) -> dict[str, Any]:
    return dict(zip(TALLY_KEYS, values, strict=True))


async def test_stats_match_hand_computed(workspace: Workspace) -> None:
    await make_track_record(workspace.owner)

    response = await workspace.member.get(STATS)

    assert response.status_code == 200, response.text
    body = response.json()
    by_pair = body.pop("byPair")
    # Pips: 100 + (-50) + 0 + 50; R: (2 - 1 + 0 + 0.68 + 1) / 5 = 0.536.
    assert body == tally(7, 1, 5, 3, 1, 1, "60.00", "100.0", "1.00", "0.54")
    assert by_pair == [
        {
            "pair": "BTCUSDT",
            "resultUnit": "percent",
            **tally(1, 0, 1, 1, 0, 0, "100.00", "0.0", "1.00", "0.68"),
        },
        {
            "pair": "EURUSD",
            "resultUnit": "pips",
            **tally(4, 1, 3, 2, 1, 0, "66.67", "100.0", "0.00", "0.67"),
        },
        {
            "pair": "USDJPY",
            "resultUnit": "pips",
            **tally(1, 0, 1, 0, 0, 1, "0.00", "0.0", "0.00", "0.00"),
        },
        {
            "pair": "XAUUSD",
            "resultUnit": "pips",
            **tally(1, 0, 0, 0, 0, 0, None, "0.0", "0.00", None),
        },
    ]


async def test_stats_filters(workspace: Workspace, clock: FakeClock) -> None:
    await make_track_record(workspace.owner)
    clock.advance(timedelta(days=3))
    later = clock.now() - timedelta(minutes=1)
    await created_id(
        workspace.owner,
        pair="AUDUSD",
        entry="0.66",
        stopLoss="0.65",
        takeProfits=["0.67"],
    )
    since = later.isoformat().replace("+00:00", "Z")

    eur = (await workspace.owner.get(STATS, params={"pair": "eur/usd"})).json()
    recent = (await workspace.owner.get(STATS, params={"from": since})).json()
    early = (await workspace.owner.get(STATS, params={"to": since})).json()

    assert [entry["pair"] for entry in eur["byPair"]] == ["EURUSD"]
    assert eur["total"] == 4
    assert eur["winRate"] == "66.67"
    assert recent["total"] == 1
    assert recent["winRate"] is None
    assert recent["averageR"] is None
    assert early["total"] == 7


async def test_stats_empty_workspace(workspace: Workspace) -> None:
    response = await workspace.owner.get(STATS)

    assert response.json() == {
        **tally(0, 0, 0, 0, 0, 0, None, "0.0", "0.00", None),
        "byPair": [],
    }


# Tenancy, roles and the module gate


async def test_other_workspace_signal_not_found(
    server: Server, workspace: Workspace, other_workspace: Workspace
) -> None:
    signal_id = await created_id(workspace.owner)

    patch = await send_event(other_workspace.owner, signal_id, event="activate")
    query = await graphql(other_workspace.owner, SIGNAL, {"id": signal_id})
    listing = await other_workspace.owner.get(SIGNALS)
    stats = await other_workspace.owner.get(STATS)

    assert patch.status_code == 404
    assert patch.json() == {"error": "Signal not found"}
    assert query["errors"][0]["message"] == "Signal not found"
    assert query["errors"][0]["extensions"] == {"code": "NOT_FOUND"}
    assert listing.json()["items"] == []
    assert stats.json()["total"] == 0
    assert await event_count(server, signal_id) == 0


async def test_member_cannot_write(server: Server, workspace: Workspace) -> None:
    signal_id = await created_id(workspace.owner)

    created = await create(workspace.member)
    changed = await send_event(workspace.member, signal_id, event="activate")
    listed = await workspace.member.get(SIGNALS)

    assert (created.status_code, created.json()) == (403, {"error": ROLE_MESSAGE})
    assert (changed.status_code, changed.json()) == (403, {"error": ROLE_MESSAGE})
    assert listed.status_code == 200
    assert await signal_count(server, workspace.tenant_id) == 1
    assert await event_count(server, signal_id) == 0


async def test_module_off_blocks_everything(
    server: Server, workspace: Workspace
) -> None:
    signal_id = await created_id(workspace.owner)
    switched = await workspace.owner.patch(
        "/api/billing/modules", json={"module": "copy_trading", "enabled": False}
    )

    responses = [
        await workspace.owner.get(SIGNALS),
        await create(workspace.owner),
        await send_event(workspace.owner, signal_id, event="activate"),
        await workspace.owner.get("/api/copy-trading/subscribers"),
        await workspace.owner.get(STATS),
    ]
    queries = [
        "{ signalDestinations { id } }",
        "{ signalStats { total } }",
        "{ subscribers { total } }",
        f'{{ signal(id: "{signal_id}") {{ id }} }}',
    ]
    gql = [await graphql(workspace.owner, query) for query in queries]

    assert switched.status_code == 200
    for response in responses:
        assert (response.status_code, response.json()) == (403, {"error": MODULE_OFF})
    for body in gql:
        assert [error["message"] for error in body["errors"]] == [MODULE_OFF]
    assert await signal_count(server, workspace.tenant_id) == 1
    assert await event_count(server, signal_id) == 0


async def test_create_without_destinations_queues_nothing(
    server: Server, workspace: Workspace
) -> None:
    signal_id = await created_id(workspace.owner)

    async with server.sessions() as db:
        jobs = await db.scalar(
            select(func.count())
            .select_from(Job)
            .where(Job.key.like(f"signal:{signal_id}%"))
        )
    assert jobs == 0


# Sizes and spellings that must be refused before any work is done.


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            '"entry": "1e-999999999"',
            "Invalid value for 'entry': Decimal must be between 1e-100 and 1e100 "
            "in size",
        ),
        (
            '"entry": 1e999999999',
            "Invalid value for 'entry': Decimal must be between 1e-100 and 1e100 "
            "in size",
        ),
        (
            '"entry": "0e-999999999"',
            "Invalid value for 'entry': Decimal must be between 1e-100 and 1e100 "
            "in size",
        ),
        ('"entry": "1e-13"', "entry must be between 1e-12 and 1e13"),
        (
            '"entry": "1.085\u00a0"',
            # The message shows the value as Python's repr does.
            "Invalid value for 'entry': Decimal cannot represent '1.085\\xa0'",
        ),
        ('"entry": "1e13"', "entry must be between 1e-12 and 1e13"),
        (
            '"entry": "1_085"',
            "Invalid value for 'entry': Decimal cannot represent '1_085'",
        ),
        (
            # Arabic-Indic digits, which Decimal() alone would accept.
            '"entry": "\u0661.\u0660\u0668\u0665"',
            "Invalid value for 'entry': Decimal cannot represent "
            "'\u0661.\u0660\u0668\u0665'",
        ),
    ],
)
async def test_extreme_prices_rejected(
    server: Server, workspace: Workspace, content: str, message: str
) -> None:
    body = (
        '{"pair": "EURUSD", "direction": "long", "stopLoss": "1.080", '
        f'"takeProfits": ["1.090"], {content}}}'
    )
    before = await signal_count(server, workspace.tenant_id)

    response = await workspace.owner.post(
        SIGNALS, content=body.encode(), headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 400
    assert response.json() == {"error": message}
    assert await signal_count(server, workspace.tenant_id) == before


@pytest.mark.parametrize("pair", ["eurußd", "\ufb00usd", "eurusd\u0131"])
async def test_non_ascii_pair_rejected(workspace: Workspace, pair: str) -> None:
    response = await create(workspace.owner, pair=pair)

    assert response.status_code == 400
    assert response.json() == {
        "error": "pair must be 3 to 20 letters or digits, such as EURUSD or EUR/USD"
    }


async def test_repeated_filter_rejected(workspace: Workspace) -> None:
    response = await workspace.owner.get(f"{SIGNALS}?status=open&status=closed")

    assert response.status_code == 400
    assert response.json() == {
        "error": "Query parameter 'status' is given more than once"
    }


async def test_widest_prices_close_cleanly(workspace: Workspace) -> None:
    signal_id = await created_id(
        workspace.owner,
        pair="BTCUSDT",
        entry="0.000000000002",
        stopLoss="0.000000000001",
        takeProfits=["9999999999999"],
    )

    await events(workspace.owner, signal_id, "activate")
    response = await send_event(workspace.owner, signal_id, event="tp_hit", level=1)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["outcome"] == "win"
    assert body["result"] == "499999999999949999999999900.00"
    assert body["rMultiple"] == "9999999999998999999999998.00"
    stats = await workspace.owner.get(STATS, params={"pair": "BTCUSDT"})
    assert stats.status_code == 200
