"""The typed context every resolver receives, one per request."""

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from sqlalchemy.ext.asyncio import async_sessionmaker

from db.engine import RequestSession
from domain.auth import Viewer
from domain.billing import BillingConfig
from domain.clock import Clock
from domain.errors import Unauthenticated
from domain.referral_apply import ApplyLimits
from domain.telegram import BotApi

if TYPE_CHECKING:
    from resolvers.loaders import Loaders


class ContextSettings(Protocol):
    """The settings resolvers read; the app's Settings object provides them."""

    @property
    def session_lifetime(self) -> timedelta: ...

    @property
    def session_cookie_name(self) -> str: ...

    @property
    def billing(self) -> BillingConfig: ...

    @property
    def subscription_poll_seconds(self) -> float: ...

    @property
    def apply_limits(self) -> ApplyLimits: ...

    @property
    def signing_key(self) -> bytes: ...

    @property
    def public_url(self) -> str: ...


@dataclass(frozen=True, slots=True)
class PendingCookie:
    name: str
    value: str
    max_age: int


@dataclass(slots=True)
class ResponseEffects:
    """Cookies and headers that a resolver adds to the HTTP response."""

    cookies: list[PendingCookie] = field(default_factory=list)
    # The browser origin to grant with Access-Control-Allow-Origin, if any.
    cors_origin: str | None = None


@dataclass(frozen=True, slots=True)
class Context:
    request_id: str
    db: RequestSession
    viewer: Viewer | None
    loaders: "Loaders"
    settings: ContextSettings
    clock: Clock
    client_address: str
    effects: ResponseEffects
    # Makes sessions that no tenant scopes, for the public use cases that find
    # their tenant themselves, such as registration.
    sessions: async_sessionmaker[RequestSession]
    bot_api: BotApi
    # Set by the REST layer once a route's webhook signature has been verified.
    webhook_verified: bool = False
    # The request's Origin header, for endpoints that browsers call cross-site.
    origin: str | None = None

    def now(self) -> datetime:
        return self.clock.now()

    @property
    def signed_in(self) -> Viewer:
        """Return the viewer; permissions have run, so a missing one is a bug."""
        if self.viewer is None:
            raise Unauthenticated()
        return self.viewer

    @property
    def tenant_id(self) -> uuid.UUID:
        return self.signed_in.tenant_id

    async def before_slow_call(self) -> None:
        """End the request's transaction before a mutation calls Telegram.

        A mutation's permission checks already ran inside its write
        transaction, and on SQLite that holds the database-wide write lock.
        Nothing is written yet, so committing only lets other requests and
        the workers write during the Telegram call.
        """
        await self.db.commit()
