"""A loopback relay in front of the real billing webhook.

It forwards each call, body and Standard Webhooks headers untouched, to the
app's ``/api/billing/webhook`` and returns the app's response. It notes
every call, so a test can count deliveries per transaction, and it can fail
the next N calls with HTTP 500 itself, to exercise the monitor's retries.
"""

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.loopback import serve_loopback

FORWARDED = ("content-type", "webhook-id", "webhook-timestamp", "webhook-signature")


@dataclass
class Call:
    txid: str
    webhook_id: str
    status_code: int
    answer: str


@dataclass
class WebhookRelay:
    target: str
    url: str = ""
    calls: list[Call] = field(default_factory=list)
    _failures: int = 0
    _client: httpx.AsyncClient = field(
        default_factory=lambda: httpx.AsyncClient(timeout=30)
    )

    def reset(self) -> None:
        self.calls = []
        self._failures = 0

    def fail_next(self, count: int) -> None:
        self._failures = count

    def delivered(self) -> list[str]:
        """Txids of the calls that the app accepted with 200, in order."""
        return [call.txid for call in self.calls if call.status_code == 200]

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/", self._relay, methods=["POST"])])

    async def _relay(self, request: Request) -> Response:
        body = await request.body()
        try:
            txid = str(json.loads(body).get("txid"))
        except (ValueError, AttributeError):
            txid = "?"
        webhook_id = request.headers.get("webhook-id", "")
        if self._failures > 0:
            self._failures -= 1
            self.calls.append(Call(txid, webhook_id, 500, "relay failure"))
            return JSONResponse({"error": "Internal server error"}, status_code=500)
        headers = {
            name: request.headers[name] for name in FORWARDED if name in request.headers
        }
        answer = await self._client.post(self.target, content=body, headers=headers)
        self.calls.append(Call(txid, webhook_id, answer.status_code, answer.text))
        return Response(
            answer.content,
            status_code=answer.status_code,
            media_type=answer.headers.get("content-type"),
        )


@asynccontextmanager
async def serve_webhook_relay(target: str) -> AsyncIterator[WebhookRelay]:
    relay = WebhookRelay(target)
    try:
        async with serve_loopback(relay.app()) as url:
            relay.url = url + "/"
            yield relay
    finally:
        await relay._client.aclose()
