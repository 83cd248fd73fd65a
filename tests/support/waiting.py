"""Waiting for something the workers do in the background."""

import asyncio
import inspect
from collections.abc import Awaitable, Callable


async def eventually(
    check: Callable[[], object | Awaitable[object]],
    timeout: float = 5.0,  # noqa: ASYNC109 - a deadline for polling, not a call
) -> None:
    """Wait until ``check`` returns a true value, or fail after ``timeout`` seconds.

    ``check`` may be a plain function or a coroutine function. An
    AssertionError it raises counts as not yet, and the last one is raised
    again when the time is up.
    """
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            result = check()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return
            failure: AssertionError | None = None
        except AssertionError as error:
            failure = error
        if asyncio.get_running_loop().time() >= deadline:
            if failure is not None:
                raise failure
            raise AssertionError(f"still false after {timeout} s: {check}")
        await asyncio.sleep(0.02)
