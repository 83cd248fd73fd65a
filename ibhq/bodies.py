"""Reading request bodies with a size limit and exact decimals."""

import json
from decimal import Decimal
from typing import Any

from starlette.requests import Request


class BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"Request body is larger than {limit} bytes")


async def read_body(request: Request, limit: int) -> bytes:
    """Read the whole body, failing as soon as it passes ``limit`` bytes.

    The body is cached on the request, so later readers get the same bytes.
    """
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
    body = b"".join(chunks)
    request._body = body  # Starlette's cache, read by request.body().
    return body


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def loads_exact(data: str | bytes) -> Any:
    """Parse JSON with every number that has a fraction or exponent as Decimal.

    Raises ValueError for broken JSON and for NaN or Infinity.
    """
    return json.loads(data, parse_float=Decimal, parse_constant=_reject_constant)
