"""Fixed-window request counters kept in the database.

The database is the only state the service keeps, so limits hold across
processes. Each call counts atomically with an upsert.
"""

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, literal
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

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
    count, started = await count_in_window(
        session, RateCounter, RateCounter.count, key, now=now, window=limit.window
    )
    if count > limit.max_requests:
        retry_after = max(1, math.ceil((started + limit.window - now).total_seconds()))
        raise RateLimited(message, retry_after_seconds=retry_after)


async def count_in_window(
    session: AsyncSession,
    model: Any,
    count_column: InstrumentedAttribute[int],
    key: str,
    *,
    now: datetime,
    window: timedelta,
) -> tuple[int, datetime]:
    """Add one to ``key``'s count in its fixed window, atomically.

    ``model`` has a primary key ``key``, a ``window_started_at`` time and the
    ``count_column``. A window that has ended starts again at one. Returns the
    new count and when its window started.
    """
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    stale = model.window_started_at <= now - window
    statement = (
        insert(model)
        .values({"key": key, "window_started_at": now, count_column.key: 1})
        .on_conflict_do_update(
            index_elements=[model.key],
            set_={
                count_column.key: case((stale, 1), else_=count_column + 1),
                "window_started_at": case(
                    (stale, literal(now, UTCDateTime())),
                    else_=model.window_started_at,
                ),
            },
        )
        .returning(count_column, model.window_started_at)
    )
    count, started = (await session.execute(statement)).one()
    return int(count), started
