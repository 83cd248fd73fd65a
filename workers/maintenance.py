"""Housekeeping: removes expired sessions and finished sign-in throttle windows."""

import logging
from datetime import datetime, timedelta

from sqlalchemy import delete, or_
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import AuthSession, LoginThrottle

logger = logging.getLogger(__name__)


async def purge_expired(
    db: AsyncSession, *, now: datetime, login_window: timedelta
) -> tuple[int, int]:
    """Delete expired sessions and stale throttle rows; return both counts."""
    sessions = await db.execute(
        delete(AuthSession).where(AuthSession.expires_at <= now)
    )
    throttles = await db.execute(
        delete(LoginThrottle).where(
            LoginThrottle.window_started_at < now - login_window,
            or_(
                LoginThrottle.blocked_until.is_(None),
                LoginThrottle.blocked_until <= now,
            ),
        )
    )
    await db.commit()
    counts = (sessions.rowcount or 0, throttles.rowcount or 0)  # type: ignore[attr-defined]
    if any(counts):
        logger.info("purged %d expired sessions and %d throttle rows", *counts)
    return counts
