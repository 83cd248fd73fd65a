"""Sign-in, sessions and the failed-login throttle.

Invariants:
- A session is a random token held by the client; the database keeps only its
  SHA-256, so a leaked table cannot be replayed.
- Wrong password, unknown email, removed member and unreadable stored hash all
  fail with the same error after the same amount of hashing work.
- Once an email or a client address is over its failure limit, every attempt
  is rejected with RATE_LIMITED until the window ends, the right password too.
"""

import hashlib
import logging
import secrets
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from math import ceil

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import AuthSession, LoginThrottle, Tenant, User
from domain.errors import RateLimited, Unauthenticated
from domain.passwords import (
    dummy_hash,
    hash_in_thread,
    needs_rehash,
    verify_in_thread,
)
from domain.ratelimits import count_in_window

logger = logging.getLogger(__name__)

# A sliding session is pushed forward at most once per this interval, so that
# an active client does not cause a write on every request.
SESSION_REFRESH_INTERVAL = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Viewer:
    """The signed-in user of a request, with the workspace and role of the session."""

    user_id: uuid.UUID
    tenant_id: uuid.UUID
    role: str
    email: str
    name: str
    session_id: uuid.UUID
    session_expires_at: datetime

    @property
    def can_write(self) -> bool:
        return self.role in ("owner", "admin")


@dataclass(frozen=True, slots=True)
class IssuedSession:
    token: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    window: timedelta
    max_failures_per_email: int
    max_failures_per_address: int


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def issue_session(
    session: AsyncSession, user: User, *, now: datetime, lifetime: timedelta
) -> IssuedSession:
    token = secrets.token_urlsafe(32)
    expires_at = now + lifetime
    session.add(
        AuthSession(
            token_hash=hash_token(token),
            user_id=user.id,
            tenant_id=user.tenant_id,
            created_at=now,
            expires_at=expires_at,
        )
    )
    await session.flush()
    return IssuedSession(token=token, expires_at=expires_at)


async def resolve_session(
    session: AsyncSession, token: str, *, now: datetime, lifetime: timedelta
) -> tuple[Viewer, bool] | None:
    """Find the viewer for a session token; only reads.

    Returns the viewer and whether its expiry is due to slide forward (see
    ``extend_session``), or None when the token is unknown, expired or its
    user removed.
    """
    if not token or len(token) > 200:
        return None
    row = (
        await session.execute(
            select(AuthSession, User)
            .join(User, User.id == AuthSession.user_id)
            .where(
                AuthSession.token_hash == hash_token(token),
                AuthSession.expires_at > now,
                User.removed_at.is_(None),
            )
        )
    ).one_or_none()
    if row is None:
        return None
    auth_session, user = row

    refresh_due = now + lifetime - auth_session.expires_at >= SESSION_REFRESH_INTERVAL
    viewer = Viewer(
        user_id=user.id,
        tenant_id=user.tenant_id,
        role=user.role,
        email=user.email,
        name=user.name,
        session_id=auth_session.id,
        session_expires_at=auth_session.expires_at,
    )
    return viewer, refresh_due


async def extend_session(
    session: AsyncSession, viewer: Viewer, *, now: datetime, lifetime: timedelta
) -> Viewer:
    """Slide a session's expiry to ``now + lifetime``; return the viewer with it."""
    expires_at = now + lifetime
    await session.execute(
        update(AuthSession)
        .where(AuthSession.id == viewer.session_id)
        .values(expires_at=expires_at)
    )
    return replace(viewer, session_expires_at=expires_at)


async def end_session(session: AsyncSession, token: str) -> None:
    await session.execute(
        delete(AuthSession).where(AuthSession.token_hash == hash_token(token))
    )


async def sign_in(
    session: AsyncSession,
    *,
    email: str,
    password: str,
    client_address: str,
    now: datetime,
    policy: ThrottlePolicy,
) -> User:
    """Check credentials under the throttle and return the user.

    Raises ``RateLimited`` when the email or address is over its limit and
    ``Unauthenticated`` for any credential failure. Commits the reads before
    hashing; the caller commits the rest, failure counts included.
    """
    # The key is a digest, so an email of any length makes a short key.
    email_key = "email:" + hashlib.sha256(email.strip().lower().encode()).hexdigest()
    address_key = f"address:{client_address}"
    await _check_not_blocked(session, [email_key, address_key], now=now)

    user = await _find_active_user(session, email)
    stored_hash = user.password_hash if user else dummy_hash()
    # End the read transaction first: on SQLite it holds the write lock, and
    # the hashing below takes tens of milliseconds.
    await session.commit()
    password_ok = await verify_in_thread(stored_hash, password[:1024])
    if user is None or not password_ok:
        await _record_failure(
            session, email_key, policy.max_failures_per_email, now=now, policy=policy
        )
        await _record_failure(
            session,
            address_key,
            policy.max_failures_per_address,
            now=now,
            policy=policy,
        )
        logger.info("sign-in failed for address %s", client_address)
        raise Unauthenticated("Invalid email or password")

    if needs_rehash(user.password_hash):
        user.password_hash = await hash_in_thread(password)
    await session.execute(delete(LoginThrottle).where(LoginThrottle.key == email_key))
    return user


async def load_tenant(session: AsyncSession, tenant_id: uuid.UUID) -> Tenant:
    tenant = await session.get(Tenant, tenant_id)
    assert tenant is not None, "a user always has a tenant"
    return tenant


async def _find_active_user(session: AsyncSession, email: str) -> User | None:
    normalized = email.strip().lower()
    if not normalized or len(normalized) > 320:
        return None
    return (
        await session.execute(
            select(User).where(User.email == normalized, User.removed_at.is_(None))
        )
    ).scalar_one_or_none()


async def _check_not_blocked(
    session: AsyncSession, keys: list[str], *, now: datetime
) -> None:
    latest = await session.scalar(
        select(func.max(LoginThrottle.blocked_until)).where(
            LoginThrottle.key.in_(keys), LoginThrottle.blocked_until > now
        )
    )
    if latest is not None:
        seconds = max(1, ceil((latest - now).total_seconds()))
        raise RateLimited(
            f"Too many failed sign-in attempts; try again in {seconds} seconds",
            retry_after_seconds=seconds,
        )


async def _record_failure(
    session: AsyncSession,
    key: str,
    limit: int,
    *,
    now: datetime,
    policy: ThrottlePolicy,
) -> None:
    """Count one failure for ``key`` atomically, blocking it once at ``limit``."""
    failures, _started = await count_in_window(
        session,
        LoginThrottle,
        LoginThrottle.failures,
        key,
        now=now,
        window=policy.window,
    )
    if failures >= limit:
        await session.execute(
            update(LoginThrottle)
            .where(LoginThrottle.key == key)
            .values(blocked_until=now + policy.window)
        )
        logger.warning(
            "sign-in blocked for %s after %d failures", key.split(":")[0], failures
        )
