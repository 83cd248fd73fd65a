"""CORS preflight for the REST routes that browsers call cross-site.

A preflight carries no body, so it cannot name a workspace: it is granted to
an origin that any workspace allows. The request that follows is checked
against its own workspace's list, and refused there if the origin is not on it.
"""

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import Response

from db.models import ReferralSettings
from ibhq.context import services_of
from rest_compat.errors import error_response

MAX_AGE_SECONDS = 600


async def preflight(request: Request) -> Response:
    origin = request.headers.get("origin")
    if not origin or not await _allowed_anywhere(request, origin):
        return error_response(403, "This origin is not allowed")
    return Response(
        status_code=204,
        headers={
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Methods": "POST",
            "Access-Control-Allow-Headers": "Content-Type",
            "Access-Control-Max-Age": str(MAX_AGE_SECONDS),
            "Vary": "Origin",
        },
    )


async def _allowed_anywhere(request: Request, origin: str) -> bool:
    # NOTE: each preflight reads every workspace's list. An indexed table of
    # origins should replace this before there are thousands of workspaces.
    async with services_of(request).sessions() as db:
        lists = (await db.execute(select(ReferralSettings.allowed_origins))).scalars()
        return any(origin in allowed for allowed in lists)
