"""Reports confirmed transfers to the billing webhook, signed with Standard Webhooks.

The message id is derived from the transaction id, so every delivery of one
transfer, first try or retry, carries the same ``webhook-id``. Each attempt
is signed afresh with the current time. Connection failures and 5xx responses
are retried with backoff. A 4xx response is final and is logged.
"""

import base64
import binascii
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial

import httpx
from standardwebhooks import Webhook

from domain.billing import format_units
from domain.tron import ConfirmedTransfer, WebhookDeliveryError
from integrations.retry import (
    RetryPolicy,
    call_with_retry,
    describe_error,
    is_server_error,
)

logger = logging.getLogger(__name__)

MIN_SECRET_BYTES = 24
STATUSES = frozenset({"matched", "unmatched", "duplicate", "ignored"})


def secret_problem(secret: str) -> str | None:
    """Why ``secret`` is unfit to sign webhooks, or None when it is fit.

    ``Webhook`` decodes base64 leniently, dropping characters outside the
    alphabet, so a hand-typed password would sign with a short key; this
    check is strict.
    """
    text = secret.removeprefix("whsec_")
    try:
        key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except binascii.Error:
        return "is not base64 (optionally prefixed with whsec_)"
    if len(key) < MIN_SECRET_BYTES:
        return f"is too short: it must decode to at least {MIN_SECRET_BYTES} bytes"
    return None


def message_id(txid: str) -> str:
    return f"msg_tron_{txid.lower()}"


def encode_transfer(transfer: ConfirmedTransfer) -> bytes:
    """Encode the JSON body of a report; integers stay integers, the amount is exact."""
    return json.dumps(
        {
            "txid": transfer.txid.lower(),
            "contract": transfer.contract,
            "from": transfer.from_address,
            "to": transfer.to_address,
            "amount": format_units(transfer.amount_units),
            "blockNumber": transfer.block_number,
            "blockTimestamp": transfer.block_timestamp_ms,
        },
        separators=(",", ":"),
    ).encode()


class BillingWebhookClient:
    """Implements ``domain.tron.TransferReporter``."""

    def __init__(
        self,
        url: str,
        secret: str,
        *,
        timeout_seconds: float = 10.0,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        # Raises on an empty secret or one that is not base64.
        self._signer = Webhook(secret)
        self._url = url
        self._client = httpx.AsyncClient(timeout=timeout_seconds, transport=transport)
        self._retry = retry or RetryPolicy()
        # Signatures carry wall-clock time; the receiver checks it against its own.
        self._now = now or (lambda: datetime.now(UTC))

    async def aclose(self) -> None:
        await self._client.aclose()

    async def report(self, transfer: ConfirmedTransfer) -> str:
        body = encode_transfer(transfer)
        msg_id = message_id(transfer.txid)
        try:
            response = await call_with_retry(
                partial(self._post, msg_id, body),
                policy=self._retry,
                transient=is_server_error,
                what=f"billing webhook for {transfer.txid}",
            )
        except (httpx.HTTPStatusError, httpx.TransportError) as error:
            status = (
                error.response.status_code
                if isinstance(error, httpx.HTTPStatusError)
                else None
            )
            raise WebhookDeliveryError(
                f"billing webhook unavailable after {self._retry.attempts} "
                f"attempts: {describe_error(error)}",
                status=status,
            ) from error
        if not response.is_success:
            logger.error(
                "billing webhook rejected transfer %s with HTTP %d: %s",
                transfer.txid,
                response.status_code,
                response.text[:300],
            )
            raise WebhookDeliveryError(
                f"billing webhook rejected the transfer: HTTP {response.status_code}",
                status=response.status_code,
            )
        return _status_of(response)

    async def _post(self, msg_id: str, body: bytes) -> httpx.Response:
        timestamp = self._now()
        headers = {
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(timestamp.timestamp())),
            "webhook-signature": self._signer.sign(msg_id, timestamp, body),
        }
        response = await self._client.post(self._url, content=body, headers=headers)
        if response.status_code >= 500:
            response.raise_for_status()
        return response


def _status_of(response: httpx.Response) -> str:
    try:
        status = response.json().get("status")
    except (ValueError, AttributeError):
        status = None
    if status not in STATUSES:
        raise WebhookDeliveryError(
            f"billing webhook responded {response.status_code} without a known "
            "status, so the transfer will be reported again",
            status=response.status_code,
        )
    return str(status)
