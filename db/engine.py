"""Engines and session factories for SQLite (the embedded default) and PostgreSQL."""

import asyncio
from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

SQLITE_BUSY_TIMEOUT_MS = 30_000
# Execution option that picks how a SQLite transaction begins: "immediate"
# (the default) takes the write lock at once, "deferred" reads without it.
BEGIN_MODE = "sqlite_begin"


def is_sqlite(url: str | URL) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def create_engine(
    url: str, *, sqlite_foreign_keys: bool = True, **options: Any
) -> AsyncEngine:
    """Create the async engine, tuned for SQLite's single writer when needed.

    Migrations turn SQLite's foreign keys off: a batch migration recreates a
    table, and dropping the old copy would otherwise cascade to its children.
    """
    if not is_sqlite(url):
        options.setdefault("pool_pre_ping", True)
        return create_async_engine(url, **options)

    engine = create_async_engine(
        url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, **options
    )
    _configure_sqlite(engine, foreign_keys=sqlite_foreign_keys)
    return engine


def _configure_sqlite(engine: AsyncEngine, *, foreign_keys: bool) -> None:
    # The pysqlite driver opens transactions lazily and on its own terms. Taking
    # control lets a transaction start with BEGIN IMMEDIATE (the default), so
    # writers queue on the busy timeout instead of failing with SQLITE_BUSY when
    # a read transaction later tries to write. A session that only reads requests
    # a deferred BEGIN (RequestSession.begin_reads) and takes no lock.
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()
        # SQLite's own lower() folds only ASCII, so case-insensitive search
        # (ILIKE compiles to lower() on SQLite) would miss "Иван" for "иван".
        dbapi_connection.create_function("lower", 1, _lower, deterministic=True)

    @event.listens_for(sync_engine, "begin")
    def on_begin(connection: Any) -> None:
        mode = connection.get_execution_options().get(BEGIN_MODE, "immediate")
        connection.exec_driver_sql("BEGIN" if mode == "deferred" else "BEGIN IMMEDIATE")


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


class RequestSession(AsyncSession):
    """An AsyncSession that serialises its own database calls.

    GraphQL resolves sibling fields and data loader batches concurrently, but a
    session uses one connection that can run one statement at a time.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lock = asyncio.Lock()

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        async with self._lock:
            return await super().execute(*args, **kwargs)

    async def scalar(self, *args: Any, **kwargs: Any) -> Any:
        async with self._lock:
            return await super().scalar(*args, **kwargs)

    async def get(self, *args: Any, **kwargs: Any) -> Any:
        async with self._lock:
            return await super().get(*args, **kwargs)

    async def flush(self, *args: Any, **kwargs: Any) -> None:
        async with self._lock:
            await super().flush(*args, **kwargs)

    async def commit(self) -> None:
        async with self._lock:
            await super().commit()

    async def rollback(self) -> None:
        async with self._lock:
            await super().rollback()

    async def delete(self, instance: object) -> None:
        async with self._lock:
            await super().delete(instance)

    async def begin_reads(self) -> None:
        """End the current transaction; the next one only reads.

        On SQLite it begins deferred, so it neither waits for nor holds the
        write lock. A write inside it could fail with SQLITE_BUSY under
        contention, so code that writes calls ``begin_writes`` first.
        """
        await self._next_begin("deferred")

    async def begin_writes(self) -> None:
        """End the current transaction; the next one takes the write lock."""
        await self._next_begin("immediate")

    async def _next_begin(self, mode: str) -> None:
        await self.commit()
        # Session-level execution options reach the connection of every
        # transaction the session begins from now on.
        sync = self.sync_session
        sync.execution_options = sync.execution_options.union({BEGIN_MODE: mode})


SessionFactory = Callable[[], RequestSession]


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[RequestSession]:
    return async_sessionmaker(engine, class_=RequestSession, expire_on_commit=False)
