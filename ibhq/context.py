"""Builds the per-request Context that GraphQL and REST execute with.

The tenant and role come only from the session cookie, resolved here against
the database; no request field or header can choose them.
"""

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import async_sessionmaker
from starlette.requests import HTTPConnection
from starlette.responses import Response

from db.engine import RequestSession
from db.tenancy import TENANT_KEY
from domain.auth import extend_session, resolve_session
from domain.clock import Clock
from domain.telegram import BotApi
from ibhq.logs import tenant_id_var
from ibhq.settings import Settings
from resolvers.context import Context, PendingCookie, ResponseEffects
from resolvers.loaders import Loaders


@dataclass(frozen=True, slots=True)
class Services:
    """The services an app shares across requests."""

    settings: Settings
    sessions: async_sessionmaker[RequestSession]
    clock: Clock
    bot_api: BotApi


def services_of(connection: HTTPConnection) -> Services:
    services: Services = connection.app.state.services
    return services


@asynccontextmanager
async def request_context(connection: HTTPConnection) -> AsyncIterator[Context]:
    """Open the request's database session and yield its Context.

    The session is rolled back and closed on the way out; mutations commit
    their own work.
    """
    services = services_of(connection)
    settings = services.settings
    db = services.sessions()
    effects = ResponseEffects()
    try:
        viewer = None
        token = connection.cookies.get(settings.session_cookie_name)
        # The lookup and the operation read without SQLite's write lock;
        # mutations, and the once-a-day session refresh, take it.
        await db.begin_reads()
        if token:
            now = services.clock.now()
            lifetime = settings.session_lifetime
            found = await resolve_session(db, token, now=now, lifetime=lifetime)
            if found is not None:
                viewer, refresh_due = found
                if refresh_due:
                    await db.begin_writes()
                    viewer = await extend_session(
                        db, viewer, now=now, lifetime=lifetime
                    )
                    await db.begin_reads()
                    effects.cookies.append(
                        PendingCookie(
                            settings.session_cookie_name,
                            token,
                            int(settings.session_lifetime.total_seconds()),
                        )
                    )
        db.info[TENANT_KEY] = viewer.tenant_id if viewer else None
        if viewer:
            tenant_id_var.set(str(viewer.tenant_id))
        yield Context(
            request_id=getattr(connection.state, "request_id", None)
            or uuid.uuid4().hex,
            db=db,
            viewer=viewer,
            loaders=Loaders.for_request(db, settings.billing),
            settings=settings,
            clock=services.clock,
            client_address=connection.client.host if connection.client else "unknown",
            origin=connection.headers.get("origin"),
            effects=effects,
            sessions=services.sessions,
            bot_api=services.bot_api,
        )
    finally:
        await db.rollback()
        await db.close()


def set_cookie(response: Response, settings: Settings, cookie: PendingCookie) -> None:
    """Set a cookie the way Auth.js does: HttpOnly, SameSite=Lax, path /."""
    if cookie.max_age <= 0:
        response.delete_cookie(
            cookie.name,
            path="/",
            secure=settings.secure_cookies,
            httponly=True,
            samesite="lax",
        )
        return
    response.set_cookie(
        cookie.name,
        cookie.value,
        max_age=cookie.max_age,
        path="/",
        secure=settings.secure_cookies,
        httponly=True,
        samesite="lax",
    )


def apply_effects(response: Response, settings: Settings, context: Context) -> None:
    for cookie in context.effects.cookies:
        set_cookie(response, settings, cookie)
    if context.effects.cors_origin is not None:
        response.headers["Access-Control-Allow-Origin"] = context.effects.cors_origin
        response.headers["Vary"] = "Origin"
