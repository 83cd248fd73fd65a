"""The ASGI application factory: the composition root of the service."""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from db.engine import create_engine, create_session_factory, is_sqlite
from domain import passwords
from domain.bot_runtime import WEBHOOK_PREFIX
from domain.clock import Clock, SystemClock
from ibhq.context import Services, services_of
from ibhq.graphiql import asset_endpoint
from ibhq.graphql_view import GraphQLView
from ibhq.middleware import RequestIdMiddleware
from ibhq.settings import Settings
from ibhq.telegram_webhook import telegram_webhook
from ibhq.worker_config import worker_config
from integrations.telegram_bot_api import AiogramBotApi
from rest_compat.authjs import authjs_routes, fallback_route
from rest_compat.cors import preflight
from rest_compat.errors import error_response
from rest_compat.executor import route_endpoint
from rest_compat.openapi import openapi_document
from rest_compat.routes import ROUTES
from schema import IbhqSchema, QueryLimits, build_schema
from workers.ingest_gate import IngestGate
from workers.runner import Wakeups, run_workers

logger = logging.getLogger(__name__)


def create_app(
    settings: Settings, *, clock: Clock | None = None, workers: bool = False
) -> Starlette:
    """Build the app; with ``workers``, the background workers run in its lifespan."""
    settings.signing_key  # noqa: B018 - fail at startup, not on the first sign-in
    passwords.configure(
        time_cost=settings.password_hash_time_cost,
        memory_cost_kib=settings.password_hash_memory_kib,
    )
    schema = build_schema(
        QueryLimits(
            max_depth=settings.graphql_max_depth,
            max_tokens=settings.graphql_max_tokens,
            max_aliases=settings.graphql_max_aliases,
            max_selections=settings.graphql_max_selections,
        )
    )
    engine = create_engine(settings.resolved_database_url)
    sessions = create_session_factory(engine)
    bot_api = AiogramBotApi(settings.telegram_api_url)
    wakeups = Wakeups(
        ingest=IngestGate(enabled=is_sqlite(settings.resolved_database_url))
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = None
        if workers:
            config = worker_config(settings)
            task = asyncio.create_task(
                run_workers(sessions, config, clock=clock, wakeups=wakeups)
            )
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with suppress(asyncio.CancelledError):
                    await task
            await bot_api.close()
            await engine.dispose()

    app = Starlette(
        routes=_routes(settings, schema),
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error},
    )
    app.state.services = Services(
        settings=settings,
        sessions=sessions,
        clock=clock or SystemClock(),
        bot_api=bot_api,
    )
    app.state.wakeups = wakeups
    app.state.engine = engine
    app.state.schema = schema
    app.add_middleware(RequestIdMiddleware)
    return app


def _routes(settings: Settings, schema: IbhqSchema) -> list[BaseRoute]:
    graphql = GraphQLView(
        schema,
        graphql_ide="graphiql",
        multipart_uploads_enabled=False,
        allowed_origins=[settings.public_url],
    )
    routes: list[Route] = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/graphql", graphql, methods=["GET", "POST"]),
        Route(
            "/static/graphiql/{name}",
            asset_endpoint(settings.assets_dir),
            methods=["GET"],
        ),
        Route("/api/openapi.json", openapi, methods=["GET"]),
        Route(f"{WEBHOOK_PREFIX}{{path}}", telegram_webhook, methods=["POST"]),
        *authjs_routes(),
    ]
    routes += [
        Route(route.path, route_endpoint(route, schema), methods=[route.method])
        for route in ROUTES
    ]
    routes += [
        Route(route.path, preflight, methods=["OPTIONS"])
        for route in ROUTES
        if route.cors
    ]
    return [
        *_one_route_per_path(routes),
        WebSocketRoute("/graphql", graphql),
        fallback_route(),
    ]


class _MethodDispatch:
    """An ASGI app that runs the handler for the request's method.

    Other methods raise 405 with every method of the path in Allow. Because
    the route takes every method, a method missing on a path under /api/auth/
    gets that 405 instead of falling through to the Auth.js fallback's 404.
    """

    def __init__(self, handlers: dict[str, ASGIApp]) -> None:
        self.handlers = handlers
        self.allow = ", ".join(sorted(handlers))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = self.handlers.get(scope["method"])
        if handler is None:
            raise HTTPException(405, headers={"Allow": self.allow})
        await handler(scope, receive, send)


def _one_route_per_path(routes: list[Route]) -> list[BaseRoute]:
    handlers: dict[str, dict[str, ASGIApp]] = {}
    for route in routes:
        table = handlers.setdefault(route.path, {})
        for method in route.methods or ():
            if method in table:
                raise ValueError(f"two routes serve {method} {route.path}")
            table[method] = route.app
    return [
        Route(path, _MethodDispatch(table), methods=None, name=path)
        for path, table in handlers.items()
    ]


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    try:
        async with services_of(request).sessions() as db:
            await db.execute(text("SELECT 1"))
    except Exception:
        logger.exception("readiness check failed: database unreachable")
        return JSONResponse(
            {"status": "unavailable", "database": "unreachable"}, status_code=503
        )
    return JSONResponse({"status": "ok", "database": "ok"})


async def metrics(request: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


async def openapi(request: Request) -> Response:
    schema: IbhqSchema = request.app.state.schema
    settings = services_of(request).settings
    return JSONResponse(
        openapi_document(schema._schema, server_url=settings.public_url)
    )


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    messages = {404: "Not found", 405: "Method not allowed"}
    message = messages.get(error.status_code, str(error.detail))
    headers = dict(error.headers) if error.headers else None
    return error_response(error.status_code, message, headers=headers)
