"""Reading request bodies with a size limit and exact decimals."""

import json
import re
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


class UnusableJson(ValueError):
    """JSON that the service cannot take although its syntax may be valid.

    The message is a predicate, so callers prefix what was parsed:
    ``f"Request body {error}"``.
    """


# Python's json module joins each valid surrogate pair into one character, so
# any surrogate left in a parsed string came from an unpaired escape such as
# "\ud800". Such a string cannot be encoded as UTF-8, so the database driver,
# the password hasher and the response encoder would all fail on it.
_SURROGATE = re.compile("[\ud800-\udfff]")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def loads_exact(data: str | bytes) -> Any:
    """Parse JSON with every number that has a fraction or exponent as Decimal.

    Raises ValueError for broken JSON and for NaN or Infinity, and its
    subclass UnusableJson for nesting too deep to parse and for strings with
    an unpaired UTF-16 surrogate escape.
    """
    try:
        parsed = json.loads(data, parse_float=Decimal, parse_constant=_reject_constant)
    except RecursionError:
        raise UnusableJson("is nested too deeply") from None
    _check_strings(parsed)
    return parsed


def _check_strings(value: Any) -> None:
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if not item.isascii() and _SURROGATE.search(item):
                raise UnusableJson(
                    "has a string with an unpaired UTF-16 surrogate escape"
                )
        elif isinstance(item, dict):
            pending.extend(item)
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
