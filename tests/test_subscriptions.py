"""GraphQL subscriptions over graphql-transport-ws at /graphql."""

import asyncio
import json
from collections.abc import AsyncGenerator
from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import httpx
import strawberry
import websockets

from domain.billing import MAINNET_USDT
from schema.extensions import ErrorCodes
from tests.conftest import PAYER, Server, Workspace, signed_headers

PROTOCOL = "graphql-transport-ws"
SUBSCRIBE = "subscription($id: ID!) { paymentUpdated(id: $id) { id status txid } }"


def websocket_url(server: Server) -> str:
    return server.url.replace("http://", "ws://") + "/graphql"


def cookie_header(client: httpx.AsyncClient) -> str:
    return "; ".join(f"{name}={value}" for name, value in client.cookies.items())


async def receive(socket: Any) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(socket.recv(), 10))
    return message


async def subscribe(socket: Any, payment_id: str) -> None:
    await socket.send(json.dumps({"type": "connection_init"}))
    assert (await receive(socket))["type"] == "connection_ack"
    await socket.send(
        json.dumps(
            {
                "id": "1",
                "type": "subscribe",
                "payload": {"query": SUBSCRIBE, "variables": {"id": payment_id}},
            }
        )
    )


async def pay(server: Server, payment: dict[str, Any], txid: str) -> dict[str, Any]:
    content = json.dumps(
        {
            "txid": txid,
            "contract": MAINNET_USDT,
            "from": PAYER,
            "to": payment["wallet"],
            "amount": str(Decimal(payment["amount"])),
            "blockNumber": 70_000_000,
            "blockTimestamp": int(datetime.now(UTC).timestamp() * 1000),
        }
    ).encode()
    async with server.client() as client:
        response = await client.post(
            "/api/billing/webhook", content=content, headers=signed_headers(content)
        )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_payment_updated_turns_paid(server: Server, workspace: Workspace) -> None:
    created = await workspace.owner.post(
        "/api/billing/create-payment", json={"module": "referrals", "months": 1}
    )
    payment = created.json()
    txid = "c" * 63 + "1"

    async with websockets.connect(
        websocket_url(server),
        subprotocols=[PROTOCOL],  # type: ignore[list-item]
        additional_headers={"Cookie": cookie_header(workspace.member)},
    ) as socket:
        await subscribe(socket, payment["id"])
        first = await receive(socket)
        matched = await pay(server, payment, txid)
        second = await receive(socket)
        done = await receive(socket)

    assert first == {
        "id": "1",
        "type": "next",
        "payload": {
            "data": {
                "paymentUpdated": {
                    "id": payment["id"],
                    "status": "pending",
                    "txid": None,
                }
            }
        },
    }
    assert matched == {"status": "matched", "paymentId": payment["id"]}
    assert second["payload"]["data"]["paymentUpdated"] == {
        "id": payment["id"],
        "status": "paid",
        "txid": txid,
    }
    assert done == {"id": "1", "type": "complete"}


async def test_subscription_needs_session(server: Server, workspace: Workspace) -> None:
    created = await workspace.owner.post(
        "/api/billing/create-payment", json={"module": "referrals", "months": 1}
    )

    async with websockets.connect(
        websocket_url(server),
        subprotocols=[PROTOCOL],  # type: ignore[list-item]
    ) as socket:
        await subscribe(socket, created.json()["id"])
        message = await receive(socket)

    assert message["type"] == "error"
    assert message["payload"][0]["message"] == "Sign in to use this endpoint"
    assert message["payload"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_subscription_hides_other_tenant(
    server: Server, workspace: Workspace, other_workspace: Workspace
) -> None:
    created = await workspace.owner.post(
        "/api/billing/create-payment", json={"module": "referrals", "months": 1}
    )

    async with websockets.connect(
        websocket_url(server),
        subprotocols=[PROTOCOL],  # type: ignore[list-item]
        additional_headers={"Cookie": cookie_header(other_workspace.owner)},
    ) as socket:
        await subscribe(socket, created.json()["id"])
        message = await receive(socket)
        done = await receive(socket)

    # The lookup fails inside the stream, so it arrives as a result with errors.
    assert message["type"] == "next"
    assert message["payload"]["data"] is None
    assert message["payload"]["errors"][0]["message"] == "Payment not found"
    assert message["payload"]["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    assert done == {"id": "1", "type": "complete"}


async def test_subscription_rejects_foreign_origin(
    server: Server, workspace: Workspace
) -> None:
    try:
        async with websockets.connect(
            websocket_url(server),
            subprotocols=[PROTOCOL],  # type: ignore[list-item]
            additional_headers={"Cookie": cookie_header(workspace.owner)},
            origin="http://evil.example",  # type: ignore[arg-type]
        ) as socket:
            await socket.recv()
    except websockets.exceptions.WebSocketException as error:
        refused = error
    else:
        raise AssertionError("a handshake from another origin was accepted")

    assert isinstance(
        refused,
        (websockets.exceptions.InvalidStatus, websockets.exceptions.ConnectionClosed),
    )


@strawberry.type
class _Query:
    ping: str = "pong"


@strawberry.type
class _Subscription:
    @strawberry.subscription
    async def failing(self) -> AsyncGenerator[int, None]:
        yield 1
        raise RuntimeError("secret detail")


async def test_stream_errors_are_masked() -> None:
    schema = strawberry.Schema(
        _Query, subscription=_Subscription, extensions=[ErrorCodes]
    )
    context = SimpleNamespace(request_id="req-7")

    stream = await schema.subscribe("subscription { failing }", context_value=context)
    results = [result async for result in stream]  # type: ignore[union-attr]

    assert results[0].data == {"failing": 1}
    error = results[1].errors[0]
    assert error.message == "Internal server error (request id req-7)"
    assert error.extensions == {"code": "INTERNAL", "requestId": "req-7"}
    assert "secret detail" not in str(results[1].errors)
