"""Housekeeping: removes expired sessions, finished sign-in throttle windows,
and old Telegram updates and callback-query answer jobs."""

import logging
from datetime import datetime, timedelta

from sqlalchemy import delete, or_
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import AuthSession, BotUpdate, Job, LoginThrottle
from domain.outbox import ANSWER_CALLBACK

logger = logging.getLogger(__name__)

# Handled updates hold what people wrote; the conversation keeps the answers.
KEEP_UPDATES = timedelta(days=7)


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


async def purge_old_updates(
    db: AsyncSession, *, now: datetime, keep: timedelta = KEEP_UPDATES
) -> tuple[int, int]:
    """Delete handled updates and finished callback-query jobs older than ``keep``.

    Sent messages stay: a signal's replies and its delivery state need them.
    """
    updates = await db.execute(
        delete(BotUpdate).where(
            BotUpdate.status != "pending", BotUpdate.handled_at < now - keep
        )
    )
    answers = await db.execute(
        delete(Job).where(
            Job.kind == ANSWER_CALLBACK,
            Job.finished_at.is_not(None),
            Job.finished_at < now - keep,
        )
    )
    await db.commit()
    counts = (updates.rowcount or 0, answers.rowcount or 0)  # type: ignore[attr-defined]
    if any(counts):
        logger.info("purged %d old updates and %d callback-query jobs", *counts)
    return counts
