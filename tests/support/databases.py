"""Test databases: a SQLite file, or a fresh PostgreSQL database when configured."""

import asyncio
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from db.migrate import upgrade_to_head

POSTGRES_URL_VARIABLE = "IBHQ_TEST_POSTGRES_URL"


def postgres_url() -> str | None:
    return os.environ.get(POSTGRES_URL_VARIABLE) or None


@contextmanager
def test_database(folder: Path) -> Iterator[str]:
    """Yield the URL of a migrated, empty database that is removed afterwards."""
    base = postgres_url()
    if base is None:
        url = f"sqlite+aiosqlite:///{folder / 'test.db'}"
        upgrade_to_head(url)
        yield url
        return

    name = f"ibhq_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(base, f'CREATE DATABASE "{name}"'))
    url = make_url(base).set(drivername="postgresql+asyncpg", database=name)
    rendered = url.render_as_string(hide_password=False)
    try:
        upgrade_to_head(rendered)
        yield rendered
    finally:
        asyncio.run(_admin(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextmanager
def empty_postgres_database() -> Iterator[str]:
    """Yield the URL of a PostgreSQL database with no schema at all."""
    base = postgres_url()
    assert base is not None
    name = f"ibhq_empty_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(base, f'CREATE DATABASE "{name}"'))
    url = make_url(base).set(drivername="postgresql+asyncpg", database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        asyncio.run(_admin(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _admin(base: str, statement: str) -> None:
    url = make_url(base)
    connection = await asyncpg.connect(
        host=url.host,
        port=url.port or 5432,
        user=url.username,
        password=url.password,
        database=url.database or "postgres",
    )
    try:
        await connection.execute(statement)
    finally:
        await connection.close()
