"""Resolvers of the workspace: registration, the viewer and members."""

from db.models import Tenant, User
from domain import workspaces
from domain.auth import issue_session
from domain.workspaces import Registration
from resolvers.context import Context, PendingCookie
from resolvers.ids import parse_id


async def register(ctx: Context, registration: Registration) -> tuple[Tenant, User]:
    """Create a workspace and its owner, and sign the owner in."""
    now = ctx.now()
    async with ctx.sessions() as db, db.begin():
        tenant, owner = await workspaces.register(
            db, registration, trial=ctx.settings.billing.trial, now=now
        )
        issued = await issue_session(
            db, owner, now=now, lifetime=ctx.settings.session_lifetime
        )
    ctx.effects.cookies.append(
        PendingCookie(
            name=ctx.settings.session_cookie_name,
            value=issued.token,
            max_age=int(ctx.settings.session_lifetime.total_seconds()),
        )
    )
    return tenant, owner


async def me(ctx: Context) -> User:
    return await workspaces.get_member(ctx.db, ctx.signed_in.user_id)


async def workspace(ctx: Context) -> Tenant:
    return await workspaces.get_tenant(ctx.db, ctx.tenant_id)


async def members(ctx: Context) -> list[User]:
    return await workspaces.list_members(ctx.db)


async def add_member(
    ctx: Context, *, email: str, password: str, name: str | None, role: str
) -> User:
    return await workspaces.add_member(
        ctx.db,
        ctx.signed_in,
        email=email,
        password=password,
        name=name,
        role=role,
        now=ctx.now(),
    )


async def update_member_role(ctx: Context, member_id: str, role: str) -> User:
    return await workspaces.update_member_role(
        ctx.db, ctx.signed_in, parse_id(member_id, "Member"), role
    )


async def remove_member(ctx: Context, member_id: str) -> User:
    return await workspaces.remove_member(
        ctx.db, ctx.signed_in, parse_id(member_id, "Member"), now=ctx.now()
    )
