"""On-chain checks through a TRON full node's HTTP API, with tronpy.

tronpy sends ``TRON-PRO-API-KEY`` only when the node's URL contains
"trongrid", and otherwise uses a list of shared keys built into it. Here the
configured key goes to a TronGrid node URL only, so it never reaches another
provider, and tronpy's built-in keys are never used.
"""

import logging
import re
from functools import partial
from typing import Any

import httpx
from tronpy import AsyncTron
from tronpy.exceptions import BadAddress, TransactionNotFound
from tronpy.keys import to_base58check_address
from tronpy.providers.async_http import AsyncHTTPProvider

from domain.tron import TRANSFER_TOPIC, TransactionInfo, TransferEvent
from integrations.retry import (
    RetryPolicy,
    call_with_retry,
    is_server_error_or_throttled,
)

logger = logging.getLogger(__name__)

_HEX = re.compile(r"[0-9a-fA-F]*")


class TronNodeError(Exception):
    """The node returned a response that this client cannot parse."""


class TronNodeClient:
    """Implements ``domain.tron.ChainChecker`` with tronpy's ``AsyncTron``."""

    def __init__(
        self,
        endpoint_uri: str,
        *,
        api_key: str | None = None,
        timeout_seconds: float = 10.0,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        client = httpx.AsyncClient(timeout=timeout_seconds, transport=transport)
        # urljoin drops the last path segment of a base without a slash.
        provider = AsyncHTTPProvider(
            endpoint_uri=endpoint_uri.rstrip("/") + "/",
            api_key=api_key or None,
            client=client,
            timeout=timeout_seconds,
        )
        if not api_key:
            provider.use_api_key = False
        self._tron = AsyncTron(provider=provider)
        self._retry = retry or RetryPolicy()

    async def aclose(self) -> None:
        await self._tron.close()

    async def transaction_info(self, txid: str) -> TransactionInfo | None:
        try:
            info = await call_with_retry(
                partial(self._tron.get_transaction_info, txid),
                policy=self._retry,
                transient=is_server_error_or_throttled,
                what="TRON node transaction lookup",
            )
        except TransactionNotFound:
            return None
        return parse_transaction_info(info, txid)

    async def latest_block_number(self) -> int:
        try:
            number = await call_with_retry(
                self._tron.get_latest_block_number,
                policy=self._retry,
                transient=is_server_error_or_throttled,
                what="TRON node block height",
            )
        except (KeyError, ValueError, AttributeError) as error:
            raise TronNodeError("the node's getnodeinfo has no block number") from error
        if not isinstance(number, int) or number < 0:
            raise TronNodeError("the node's getnodeinfo has no block number")
        return number


def parse_transaction_info(info: Any, txid: str) -> TransactionInfo:
    """Read ``wallet/gettransactioninfobyid`` as asked with ``visible: true``."""
    if not isinstance(info, dict):
        raise TronNodeError(f"transaction info of {txid} is not an object")
    if str(info.get("id", "")).lower() != txid.lower():
        raise TronNodeError(
            f"the node returned information about another transaction than {txid}"
        )
    block_number = _int_or_none(info.get("blockNumber"))
    block_timestamp = _int_or_none(info.get("blockTimeStamp"))
    if block_number is None or block_timestamp is None:
        raise TronNodeError(f"transaction info of {txid} has no block")
    receipt = info.get("receipt")
    result = receipt.get("result") if isinstance(receipt, dict) else None
    if info.get("result") == "FAILED":
        # The top-level FAILED flag overrides a receipt result of SUCCESS.
        result = result if result and result != "SUCCESS" else "FAILED"
    logs = info.get("log", [])
    return TransactionInfo(
        txid=txid.lower(),
        result=result if isinstance(result, str) else "UNKNOWN",
        contract=_address_or_none(info.get("contract_address")),
        block_number=block_number,
        block_timestamp_ms=block_timestamp,
        events=tuple(
            event
            for entry in (logs if isinstance(logs, list) else [])
            if (event := _transfer_event(entry)) is not None
        ),
    )


def _transfer_event(entry: Any) -> TransferEvent | None:
    """Decode a ``Transfer(address,address,uint256)`` log entry, or None."""
    if not isinstance(entry, dict):
        return None
    topics = entry.get("topics")
    data = entry.get("data")
    if (
        not isinstance(topics, list)
        or len(topics) != 3
        or not all(isinstance(topic, str) and len(topic) == 64 for topic in topics)
        or topics[0].lower() != TRANSFER_TOPIC
        or not isinstance(data, str)
        or len(data) != 64
        or not _HEX.fullmatch(data)
    ):
        return None
    contract = _address_or_none(entry.get("address"))
    sender = _address_or_none(topics[1][24:])
    recipient = _address_or_none(topics[2][24:])
    if contract is None or sender is None or recipient is None:
        return None
    return TransferEvent(
        contract=contract,
        from_address=sender,
        to_address=recipient,
        amount_units=int(data, 16),
    )


def _address_or_none(value: Any) -> str | None:
    """Base58check form of an address given as base58, 41-hex or 20-byte hex."""
    if not isinstance(value, str) or not value:
        return None
    if len(value) == 40 and _HEX.fullmatch(value):
        value = "41" + value
    try:
        address: str = to_base58check_address(value)
    except (BadAddress, ValueError):
        return None
    return address


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None
