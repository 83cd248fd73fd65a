"""The loop the Telegram workers share: run a pass, then rest until there is work."""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

logger = logging.getLogger(__name__)

# How long a pass under way may take to finish once its worker is stopped.
SHUTDOWN_GRACE_SECONDS = 20.0


async def run_passes(
    name: str,
    run_pass: Callable[[], Coroutine[Any, Any, int]],
    wake: asyncio.Event,
    rest: Callable[[], Awaitable[float]],
    after_work: Callable[[], None] = lambda: None,
) -> None:
    """Run passes until cancelled.

    After a pass that handled something the next starts at once; otherwise
    the loop sleeps for ``rest()`` seconds, or until ``wake`` is set. A pass
    that fails is logged and the loop goes on.
    """
    while True:
        try:
            handled = await finish_before_stopping(run_pass())
        except Exception:
            logger.exception("%s pass failed", name)
            handled = 0
        if handled:
            after_work()
            continue
        wake.clear()
        seconds = await rest()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), seconds)


async def finish_before_stopping(work: Coroutine[Any, Any, int]) -> int:
    """Run one pass; when cancelled meanwhile, let the pass end, then stop.

    A pass cut short would leave claimed jobs running until their lease
    lapses, and a message Telegram already took would be sent again.
    """
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, SHUTDOWN_GRACE_SECONDS)
        raise
