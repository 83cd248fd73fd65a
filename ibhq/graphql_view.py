"""The /graphql endpoint: Strawberry's ASGI view with our context and limits."""

import json
from typing import Any

from cross_web import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL

from ibhq.bodies import BodyTooLarge, UnusableJson, loads_exact, read_body
from ibhq.context import apply_effects, request_context, services_of
from ibhq.graphiql import graphiql_page


class GraphQLView(GraphQL[Any, None]):
    """Strawberry's view, with the typed per-request Context and exact decimals."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            # Subscriptions over graphql-transport-ws: the context comes from the
            # handshake's session cookie, like any other request's.
            websocket = WebSocket(scope, receive, send)
            async with request_context(websocket) as context:
                await self.run(websocket, context=context)
            return
        request = Request(scope, receive)
        response = await self._handle(request)
        await response(scope, receive, send)

    async def _handle(self, request: Request) -> Response:
        settings = services_of(request).settings
        try:
            await read_body(request, settings.max_body_bytes)
        except BodyTooLarge as error:
            return _error_response(413, str(error))

        async with request_context(request) as context:
            try:
                response = await self.run(request, context=context)
            except HTTPException as error:
                return _error_response(error.status_code, error.reason)
            apply_effects(response, settings, context)
            return response

    def decode_json(self, data: str | bytes) -> object:
        try:
            parsed = loads_exact(data)
        except UnusableJson as error:
            raise HTTPException(400, f"Request body {error}") from error
        except ValueError as error:
            raise HTTPException(400, "Unable to parse request body as JSON") from error
        if not isinstance(parsed, dict):
            raise HTTPException(400, "The request body must be a JSON object")
        return parsed

    def encode_json(self, data: object) -> str:
        return json.dumps(data, separators=(",", ":"))

    async def render_graphql_ide(self, request: Request) -> HTMLResponse:
        return HTMLResponse(graphiql_page())


def _error_response(status: int, message: str) -> JSONResponse:
    body = {"errors": [{"message": message, "extensions": {"code": "BAD_USER_INPUT"}}]}
    return JSONResponse(body, status_code=status)
