"""Fixed-window request counters kept in the database.

The database is the only state the service keeps, so limits hold across
processes. Each call counts atomically with an upsert.
"""

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, literal
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import RateCounter
from db.types import UTCDateTime
from domain.errors import RateLimited


@dataclass(frozen=True, slots=True)
class Limit:
    max_requests: int
    window: timedelta


async def hit(
    session: AsyncSession, key: str, limit: Limit, *, now: datetime, message: str
) -> None:
    """Count one request for ``key``; raise RateLimited once over the limit."""
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    stale = RateCounter.window_started_at <= now - limit.window
    statement = (
        insert(RateCounter)
        .values(key=key, window_started_at=now, count=1)
        .on_conflict_do_update(
            index_elements=[RateCounter.key],
            set_={
                "count": case((stale, 1), else_=RateCounter.count + 1),
                "window_started_at": case(
                    (stale, literal(now, UTCDateTime())),
                    else_=RateCounter.window_started_at,
                ),
            },
        )
        .returning(RateCounter.count, RateCounter.window_started_at)
    )
    count, started = (await session.execute(statement)).one()
    if count > limit.max_requests:
        retry_after = max(1, math.ceil((started + limit.window - now).total_seconds()))
        raise RateLimited(message, retry_after_seconds=retry_after)
