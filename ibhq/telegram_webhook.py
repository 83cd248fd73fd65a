"""The endpoint Telegram POSTs a webhook bot's updates to.

It is not a route of the REST reference and its body is Telegram's Update,
not ours, so it is a plain Starlette endpoint beside the route table rather
than a GraphQL operation. It stores the update and responds at once, and
the update worker handles it later. A wrong path or secret gets 401 before
the body is read or anything is written.
"""

import json
import logging

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from db.tenancy import TENANT_KEY
from domain import bot_runtime
from ibhq.bodies import BodyTooLarge, read_body
from ibhq.context import services_of
from workers.runner import Wakeups

logger = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name
MAX_UPDATE_BYTES = 1_000_000


async def telegram_webhook(request: Request) -> Response:
    services = services_of(request)
    path = request.path_params["path"]
    async with services.sessions() as db:
        await db.begin_reads()
        bot = await bot_runtime.bot_for_webhook(
            db, path, request.headers.get(SECRET_HEADER)
        )
        if bot is None:
            return _error(401, "Unknown webhook or wrong secret token")
        if bot.status != bot_runtime.RUNNING or bot.mode != "webhook":
            # A stopped bot: acknowledge so that Telegram stops resending, and drop.
            return JSONResponse({"ok": True})
        try:
            update = json.loads(await read_body(request, MAX_UPDATE_BYTES))
        except BodyTooLarge:
            return _error(413, "The update is too large")
        except ClientDisconnect:
            logger.info("a webhook call for bot %s ended before its body", bot.id)
            return _error(400, "The request ended before its body was read")
        except RecursionError:
            return _error(400, "The body is nested too deeply")
        except ValueError:
            return _error(400, "The body is not JSON")
        wakeups: Wakeups = request.app.state.wakeups
        async with wakeups.ingest.ingesting():
            await db.begin_writes()
            db.info[TENANT_KEY] = bot.tenant_id
            try:
                stored = await bot_runtime.store_update(
                    db, bot, update, now=services.clock.now()
                )
            except bot_runtime.MalformedUpdate as error:
                return _error(400, f"The body is not a Telegram update: {error}")
            await db.commit()
    if stored:
        wakeups.updates.set()
    return JSONResponse({"ok": True})


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)
