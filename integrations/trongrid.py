"""TronGrid's v1 HTTP API: the TRC-20 transfers into an account, oldest first."""

import logging
import re
from collections.abc import AsyncGenerator, Mapping, Sequence
from functools import partial
from typing import Any

import httpx

from domain.tron import ListedTransfer
from integrations.retry import (
    RetryPolicy,
    call_with_retry,
    is_server_error_or_throttled,
)

logger = logging.getLogger(__name__)

API_KEY_HEADER = "TRON-PRO-API-KEY"
MAX_PAGE_SIZE = 200
_TXID = re.compile(r"[0-9a-fA-F]{64}")
_ADDRESS = re.compile(r"T[1-9A-HJ-NP-Za-km-z]{33}")
_DIGITS = re.compile(r"[0-9]{1,78}")


class TronGridError(Exception):
    """TronGrid returned a response that is not a page of transfers."""


class TronGridClient:
    """Implements ``domain.tron.TransferSource`` over httpx.

    Follows ``meta.fingerprint`` from page to page. Connection failures, 5xx
    and 429 responses are retried with backoff. The last failure propagates.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        page_size: int = MAX_PAGE_SIZE,
        timeout_seconds: float = 10.0,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
        headers = {"Accept": "application/json"}
        if api_key:
            headers[API_KEY_HEADER] = api_key
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers=headers,
            timeout=timeout_seconds,
            transport=transport,
        )
        self._page_size = page_size
        self._retry = retry or RetryPolicy()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def transfer_pages(
        self, wallet: str, *, since_ms: int
    ) -> AsyncGenerator[Sequence[ListedTransfer], None]:
        params: dict[str, str | int] = {
            "only_to": "true",
            "limit": self._page_size,
            "min_timestamp": since_ms,
            "order_by": "block_timestamp,asc",
        }
        fingerprints: set[str] = set()
        path = f"/v1/accounts/{wallet}/transactions/trc20"
        while True:
            body = await call_with_retry(
                partial(self._get, path, params),
                policy=self._retry,
                transient=is_server_error_or_throttled,
                what="TronGrid transfer listing",
            )
            yield parse_page(body, wallet)
            fingerprint = _next_fingerprint(body)
            if fingerprint is None:
                return
            if fingerprint in fingerprints:
                raise TronGridError("TronGrid repeated a page fingerprint")
            fingerprints.add(fingerprint)
            params = {**params, "fingerprint": fingerprint}

    async def _get(self, path: str, params: Mapping[str, str | int]) -> Any:
        response = await self._client.get(path, params=params)
        response.raise_for_status()
        return response.json()


def parse_page(body: Any, wallet: str) -> list[ListedTransfer]:
    """Convert one page of TronGrid's response into the transfers into ``wallet``.

    Entries that are not a ``Transfer`` (approvals) or not into the wallet
    are left out. A malformed entry raises TronGridError: skipping it could
    skip a payment.
    """
    if not isinstance(body, dict) or body.get("success") is not True:
        error = body.get("error") if isinstance(body, dict) else None
        raise TronGridError(f"TronGrid did not succeed: {error or 'unexpected body'}")
    items = body.get("data")
    if not isinstance(items, list):
        raise TronGridError("TronGrid response has no data list")
    transfers = []
    for item in items:
        transfer = _parse_item(item)
        if transfer is not None and transfer.to_address == wallet:
            transfers.append(transfer)
    return transfers


def _parse_item(item: Any) -> ListedTransfer | None:
    if not isinstance(item, dict):
        raise TronGridError("a TronGrid entry is not an object")
    if item.get("type") != "Transfer":
        return None
    token = item.get("token_info")
    if not isinstance(token, dict):
        raise TronGridError("a TronGrid entry has no token_info")
    txid = _text(item, "transaction_id", _TXID)
    value = _text(item, "value", _DIGITS)
    timestamp = _int_or_none(item.get("block_timestamp"))
    decimals = _int_or_none(token.get("decimals"))
    if timestamp is None or timestamp <= 0:
        raise TronGridError(f"entry {txid} has no valid block_timestamp")
    if decimals is None or not 0 <= decimals <= 77:
        raise TronGridError(f"entry {txid} has no valid token decimals")
    return ListedTransfer(
        txid=txid.lower(),
        contract=_text(token, "address", _ADDRESS),
        decimals=decimals,
        from_address=_text(item, "from", _ADDRESS),
        to_address=_text(item, "to", _ADDRESS),
        amount_units=int(value),
        block_timestamp_ms=timestamp,
    )


def _text(item: Mapping[str, Any], key: str, pattern: re.Pattern[str]) -> str:
    value = item.get(key)
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise TronGridError(f"a TronGrid entry has no valid {key}")
    return value


def _int_or_none(value: Any) -> int | None:
    """Return the value if it is a JSON integer (not a bool or a float), else None."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def _next_fingerprint(body: Mapping[str, Any]) -> str | None:
    meta = body.get("meta")
    if not isinstance(meta, dict):
        return None
    fingerprint = meta.get("fingerprint")
    if isinstance(fingerprint, str) and fingerprint:
        return fingerprint
    return None
