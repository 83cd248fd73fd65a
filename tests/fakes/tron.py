"""A loopback fake of TronGrid's v1 API and of a TRON full node's HTTP API.

One Starlette app serves both, from in-memory state that the test controls:
the chain's height, and TRC-20 transfers with their receipts. It speaks the
wire format that TronGrid and java-tron do:

- ``GET /v1/accounts/{address}/transactions/trc20`` with ``only_to``,
  ``only_from``, ``only_confirmed``, ``contract_address``, ``min_timestamp``,
  ``max_timestamp``, ``order_by`` and ``limit`` (at most 200), in snake_case
  or camelCase, paged with an opaque ``meta.fingerprint``;
- ``POST /wallet/gettransactioninfobyid`` (and ``/walletsolidity/...``),
  ``/wallet/getnodeinfo`` and ``/wallet/getnowblock``, with ``visible``.

The node routes are served under ``/trongrid`` as well, so a client can be
pointed at a URL that contains "trongrid", which is when tronpy sends its API
key. Blocks come every 3 seconds; a transfer's block decides its timestamp.
The node returns a transaction only once its block is at or below the height.
"""

import hashlib
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from tronpy.keys import to_base58check_address, to_hex_address

from domain.tron import TRANSFER_TOPIC
from tests.fakes.loopback import serve_loopback

BLOCK_MS = 3000
SOLID_LAG = 19
MAX_LIMIT = 200
Service = Literal["trongrid", "node"]


@dataclass
class ChainTransfer:
    """A TRC-20 transfer on the fake chain, with the content of its receipt."""

    txid: str
    contract: str
    from_address: str
    to_address: str
    value: int
    block_number: int
    block_timestamp_ms: int
    # The receipt's result: "SUCCESS", or "REVERT", "OUT_OF_ENERGY"...
    result: str = "SUCCESS"
    # The contract the transaction called; the token's own when None.
    called_contract: str | None = None
    # TronGrid's "type": "Transfer", or "Approval".
    kind: str = "Transfer"
    symbol: str = "USDT"
    decimals: int = 6
    # Whether the receipt's log contains the Transfer event.
    logged: bool = True


@dataclass
class SeenRequest:
    service: Service
    path: str
    api_key: str | None
    params: dict[str, Any]


@dataclass
class FakeTron:
    url: str = ""
    latest_block: int = 70_000_000
    transfers: list[ChainTransfer] = field(default_factory=list)
    requests: list[SeenRequest] = field(default_factory=list)
    _anchor_ms: int = field(default_factory=lambda: int(time.time() * 1000))
    _anchor_block: int = 70_000_000
    _failures: dict[str, int] = field(
        default_factory=lambda: {"trongrid": 0, "node": 0}
    )
    _pages: dict[str, tuple[tuple[Any, ...], int]] = field(default_factory=dict)

    # State the test controls.

    def reset(self) -> None:
        """Forget every transfer, request and failure; restart the clock at now."""
        fresh = FakeTron(url=self.url)
        for name in ("latest_block", "transfers", "requests", "_anchor_ms"):
            setattr(self, name, getattr(fresh, name))
        self._anchor_block = fresh._anchor_block
        self._failures = fresh._failures
        self._pages = fresh._pages

    def block_time(self, number: int) -> int:
        return self._anchor_ms + (number - self._anchor_block) * BLOCK_MS

    def mine(self, blocks: int = 1) -> None:
        self.latest_block += blocks

    def add(
        self,
        *,
        contract: str,
        from_address: str,
        to_address: str,
        value: int,
        block_number: int | None = None,
        txid: str | None = None,
        **details: Any,
    ) -> ChainTransfer:
        """Put a transfer on the chain, by default in the latest block."""
        number = self.latest_block if block_number is None else block_number
        transfer = ChainTransfer(
            txid=txid or secrets.token_hex(32),
            contract=contract,
            from_address=from_address,
            to_address=to_address,
            value=value,
            block_number=number,
            block_timestamp_ms=details.pop(
                "block_timestamp_ms", self.block_time(number)
            ),
            **details,
        )
        self.transfers.append(transfer)
        return transfer

    def fail_next(self, count: int, service: Service = "trongrid") -> None:
        """Fail the next ``count`` requests to ``service`` with HTTP 500."""
        self._failures[service] = count

    def calls(self, service: Service, path_end: str = "") -> list[SeenRequest]:
        return [
            seen
            for seen in self.requests
            if seen.service == service and seen.path.endswith(path_end)
        ]

    # The app.

    def app(self) -> Starlette:
        node = [
            Route(
                "/wallet/gettransactioninfobyid", self._transaction_info, methods=_BOTH
            ),
            Route(
                "/walletsolidity/gettransactioninfobyid",
                self._solid_transaction_info,
                methods=_BOTH,
            ),
            Route("/wallet/getnodeinfo", self._node_info, methods=_BOTH),
            Route("/wallet/getnowblock", self._now_block, methods=_BOTH),
        ]
        return Starlette(
            routes=[
                Route(
                    "/v1/accounts/{address}/transactions/trc20",
                    self._trc20_transactions,
                    methods=["GET"],
                ),
                *node,
                Mount("/trongrid", routes=node),
            ]
        )

    async def _seen(self, request: Request, service: Service) -> Response | None:
        params: dict[str, Any] = dict(request.query_params)
        if request.method == "POST":
            body = await request.body()
            if body:
                try:
                    params.update(await request.json())
                except ValueError:
                    return JSONResponse({"Error": "invalid json"}, status_code=400)
        self.requests.append(
            SeenRequest(
                service=service,
                path=request.url.path,
                api_key=request.headers.get("tron-pro-api-key"),
                params=params,
            )
        )
        request.state.params = params
        if self._failures[service] > 0:
            self._failures[service] -= 1
            if service == "trongrid":
                return JSONResponse(
                    {
                        "success": False,
                        "error": "Internal server error",
                        "statusCode": 500,
                    },
                    status_code=500,
                )
            return PlainTextResponse("Internal Server Error", status_code=500)
        return None

    # TronGrid.

    async def _trc20_transactions(self, request: Request) -> Response:
        failure = await self._seen(request, "trongrid")
        if failure is not None:
            return failure
        query = _snake_case(request.state.params)
        address = request.path_params["address"]
        try:
            address = to_base58check_address(address)
            limit = int(query.get("limit", 20))
            min_ts = int(query.get("min_timestamp", 0))
            max_ts = int(query.get("max_timestamp", 2**63))
        except ValueError as error:
            return _grid_error(str(error) or "invalid parameter")
        if not 1 <= limit <= MAX_LIMIT:
            return _grid_error(f"limit must be between 1 and {MAX_LIMIT}")
        order = query.get("order_by", "block_timestamp,desc")
        if order not in ("block_timestamp,asc", "block_timestamp,desc"):
            return _grid_error("invalid order_by")
        contract = query.get("contract_address")

        selected = [
            transfer
            for transfer in self.transfers
            if _involves(transfer, address, query)
            and min_ts <= transfer.block_timestamp_ms <= max_ts
            and (contract is None or transfer.contract == contract)
            and (
                not _flag(query, "only_confirmed")
                or transfer.block_number <= self.latest_block - SOLID_LAG
            )
            and (
                not _flag(query, "only_unconfirmed")
                or transfer.block_number > self.latest_block - SOLID_LAG
            )
        ]
        # Stable within a timestamp: the order the transfers were added in.
        selected.sort(
            key=lambda transfer: transfer.block_timestamp_ms,
            reverse=order.endswith("desc"),
        )

        # A fingerprint is valid only for the query it was made for.
        key = tuple(sorted((k, v) for k, v in query.items() if k != "fingerprint"))
        offset = 0
        if "fingerprint" in query:
            page = self._pages.get(query["fingerprint"])
            if page is None or page[0] != (address, *key):
                return _grid_error("invalid fingerprint")
            offset = page[1]
        data = selected[offset : offset + limit]
        meta: dict[str, Any] = {"at": int(time.time() * 1000), "page_size": len(data)}
        if offset + limit < len(selected):
            fingerprint = secrets.token_urlsafe(24)
            self._pages[fingerprint] = ((address, *key), offset + limit)
            meta["fingerprint"] = fingerprint
            next_query = "&".join(
                f"{k}={v}" for k, v in [*key, ("fingerprint", fingerprint)]
            )
            meta["links"] = {"next": f"{request.url.replace(query=next_query)}"}
        return JSONResponse(
            {
                "data": [_grid_item(transfer) for transfer in data],
                "success": True,
                "meta": meta,
            }
        )

    # The node.

    async def _transaction_info(self, request: Request) -> Response:
        return await self._info(request, solid=False)

    async def _solid_transaction_info(self, request: Request) -> Response:
        return await self._info(request, solid=True)

    async def _info(self, request: Request, *, solid: bool) -> Response:
        failure = await self._seen(request, "node")
        if failure is not None:
            return failure
        params = request.state.params
        txid = str(params.get("value", "")).lower()
        height = self.latest_block - (SOLID_LAG if solid else 0)
        for transfer in self.transfers:
            if transfer.txid == txid and transfer.block_number <= height:
                return JSONResponse(_receipt(transfer, _visible(params)))
        return JSONResponse({})

    async def _node_info(self, request: Request) -> Response:
        failure = await self._seen(request, "node")
        if failure is not None:
            return failure
        latest = self.latest_block
        solid = latest - SOLID_LAG
        return JSONResponse(
            {
                "beginSyncNum": latest - 100,
                "block": f"Num:{latest},ID:{_block_id(latest)}",
                "solidityBlock": f"Num:{solid},ID:{_block_id(solid)}",
                "currentConnectCount": 30,
                "activeConnectCount": 12,
                "passiveConnectCount": 18,
                "totalFlow": 0,
                "peerInfoList": [],
                "configNodeInfo": {"codeVersion": "4.7.6", "p2pVersion": "11111"},
                "machineInfo": {"threadCount": 64, "cpuCount": 8},
                "cheatWitnessInfoMap": {},
            }
        )

    async def _now_block(self, request: Request) -> Response:
        failure = await self._seen(request, "node")
        if failure is not None:
            return failure
        latest = self.latest_block
        return JSONResponse(
            {
                "blockID": _block_id(latest),
                "block_header": {
                    "raw_data": {
                        "number": latest,
                        "txTrieRoot": "0" * 64,
                        "witness_address": "41" + "0" * 40,
                        "parentHash": _block_id(latest - 1),
                        "version": 31,
                        "timestamp": self.block_time(latest),
                    },
                    "witness_signature": "0" * 130,
                },
            }
        )


_BOTH = ["GET", "POST"]


def _snake_case(params: dict[str, Any]) -> dict[str, str]:
    renamed = {}
    for key, value in params.items():
        snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in key)
        renamed[snake] = str(value)
    return renamed


def _flag(query: dict[str, str], name: str) -> bool:
    return query.get(name, "false").lower() == "true"


def _involves(transfer: ChainTransfer, address: str, query: dict[str, str]) -> bool:
    if _flag(query, "only_to"):
        return transfer.to_address == address
    if _flag(query, "only_from"):
        return transfer.from_address == address
    return address in (transfer.to_address, transfer.from_address)


def _grid_error(message: str) -> Response:
    return JSONResponse(
        {"success": False, "error": message, "statusCode": 400}, status_code=400
    )


def _grid_item(transfer: ChainTransfer) -> dict[str, Any]:
    return {
        "transaction_id": transfer.txid,
        "token_info": {
            "symbol": transfer.symbol,
            "address": transfer.contract,
            "decimals": transfer.decimals,
            "name": "Tether USD" if transfer.symbol == "USDT" else transfer.symbol,
        },
        "block_timestamp": transfer.block_timestamp_ms,
        "from": transfer.from_address,
        "to": transfer.to_address,
        "type": transfer.kind,
        "value": str(transfer.value),
    }


def _visible(params: dict[str, Any]) -> bool:
    value = params.get("visible", False)
    return value is True or str(value).lower() == "true"


def _receipt(transfer: ChainTransfer, visible: bool) -> dict[str, Any]:
    called = transfer.called_contract or transfer.contract
    info: dict[str, Any] = {
        "id": transfer.txid,
        "fee": 13_844_850,
        "blockNumber": transfer.block_number,
        "blockTimeStamp": transfer.block_timestamp_ms,
        "contractResult": [""],
        "contract_address": called if visible else to_hex_address(called),
        "receipt": {
            "energy_fee": 13_499_850,
            "energy_usage_total": 64_285,
            "net_fee": 345_000,
            "result": transfer.result,
            "energy_penalty_total": 49_635,
        },
    }
    if transfer.result != "SUCCESS":
        info["result"] = "FAILED"
        info["resMessage"] = b"REVERT opcode executed".hex()
        return info
    info["contractResult"] = [f"{1:064x}"]
    if transfer.logged and transfer.kind == "Transfer":
        info["log"] = [
            {
                # Log addresses are 20-byte hex, without the 41 prefix, even
                # when visible is true.
                "address": _tvm_hex(transfer.contract),
                "topics": [
                    TRANSFER_TOPIC,
                    _tvm_hex(transfer.from_address).rjust(64, "0"),
                    _tvm_hex(transfer.to_address).rjust(64, "0"),
                ],
                "data": f"{transfer.value:064x}",
            }
        ]
    return info


def _tvm_hex(address: str) -> str:
    return to_hex_address(address)[2:]


def _block_id(number: int) -> str:
    return f"{number:016x}" + hashlib.sha256(str(number).encode()).hexdigest()[:48]


@asynccontextmanager
async def serve_fake_tron() -> AsyncIterator[FakeTron]:
    """Serve a fresh fake TRON on a free loopback port; ``url`` is its base."""
    fake = FakeTron()
    async with serve_loopback(fake.app()) as url:
        fake.url = url
        yield fake
