"""ASGI middleware: request ids, the access log, metrics and the body size limit."""

import logging
import re
import time
import uuid
from typing import Any

from prometheus_client import Counter, Histogram
from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from domain.bot_runtime import WEBHOOK_PREFIX
from ibhq.logs import request_id_var, tenant_id_var

logger = logging.getLogger("ibhq.access")

REQUEST_ID_HEADER = b"x-request-id"
KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
)
# No page of ours is meant to be framed, and no response is to be sniffed.
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"frame-ancestors 'none'"),
]
VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")

REQUESTS = Counter(
    "ibhq_http_requests_total", "HTTP requests handled", ["method", "route", "status"]
)
LATENCY = Histogram(
    "ibhq_http_request_duration_seconds",
    "Time from request start to the last byte of the response",
    ["method", "route"],
)


class RequestIdMiddleware:
    """Give each request an id (a valid incoming X-Request-ID is kept) and echo it.

    Also logs one access line per request and records its metrics.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        request_id = _incoming_id(scope) or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        request_token = request_id_var.set(request_id)
        tenant_token = tenant_id_var.set("-")
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER, request_id.encode()))
                headers.extend(SECURITY_HEADERS)
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except ClientDisconnect:
            # The client left before sending its whole body; nobody is waiting
            # for a response, and nothing went wrong on this side.
            status = 499
            logger.info(
                "client disconnected during %s %s",
                scope["method"],
                _printable_path(scope),
            )
        except Exception:
            logger.exception(
                "unhandled error in %s %s", scope["method"], _printable_path(scope)
            )
            if response_started:
                raise
            await _internal_error(request_id)(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = _route_template(scope)
            method = scope["method"] if scope["method"] in KNOWN_METHODS else "other"
            REQUESTS.labels(method, route, str(status)).inc()
            LATENCY.labels(method, route).observe(elapsed)
            logger.info(
                "%s %s %d %.1fms",
                method,
                _printable_path(scope),
                status,
                elapsed * 1000,
            )
            request_id_var.reset(request_token)
            tenant_id_var.reset(tenant_token)


def _internal_error(request_id: str) -> JSONResponse:
    # The message names the request id, so an operator can find the traceback.
    body = {"error": f"Internal server error (request id {request_id})"}
    return JSONResponse(body, status_code=500)


def _printable_path(scope: Scope) -> str:
    # The raw path keeps its percent-escapes, so a %0a in a URL cannot start a
    # forged line in the log.
    raw: bytes = scope.get("raw_path") or scope["path"].encode()
    path = raw.decode("ascii", "backslashreplace")[:500]
    if path.startswith(WEBHOOK_PREFIX):
        # The path is half of a Telegram webhook's credentials.
        return f"{WEBHOOK_PREFIX}..."
    return path


def _incoming_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == REQUEST_ID_HEADER:
            text = value.decode("latin-1")
            return text if VALID_REQUEST_ID.fullmatch(text) else None
    return None


def _route_template(scope: Scope) -> str:
    # Label by the matched route's path template, so ids do not explode the
    # number of metric series.
    route: Any = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"
