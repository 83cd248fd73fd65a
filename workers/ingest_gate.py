"""Lets Telegram's webhook calls write ahead of the workers on SQLite.

SQLite has one writer at a time, and a connection waiting for the lock
sleeps and retries. Workers that write back to back can keep a webhook call
waiting for seconds. Within one process the gate fixes the order: while a
webhook call is storing an update, the workers hold their next write.
"""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class IngestGate:
    def __init__(self, *, enabled: bool = False) -> None:
        self.enabled = enabled
        self._pending = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._turn = asyncio.Lock()

    @asynccontextmanager
    async def ingesting(self) -> AsyncIterator[None]:
        """Mark a webhook write as in progress for the length of the block.

        With the gate on, the webhook writes of this process also take turns
        in arrival order, instead of racing for SQLite's lock.
        """
        self._pending += 1
        self._idle.clear()
        try:
            if self.enabled:
                async with self._turn:
                    yield
            else:
                yield
        finally:
            self._pending -= 1
            if self._pending == 0:
                self._idle.set()

    async def wait_idle(self) -> None:
        """Wait until no webhook write is in progress, when the gate is on."""
        if self.enabled:
            await self._idle.wait()
