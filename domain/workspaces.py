"""Workspaces (tenants) and their members.

Invariants:
- Emails are unique across the product, since signing in takes no workspace.
- A workspace always keeps at least one owner: the last one can be neither
  demoted nor removed. Role changes lock the tenant row first on PostgreSQL
  (SQLite serialises writers already), so two concurrent demotions cannot
  both pass the check.
- Only an owner can grant the owner role or change an owner. Member changes
  check the acting member's role as stored once the tenant row is locked, not
  the role the request's session saw when it started.
"""

import re
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import AuthSession, Tenant, User
from db.tenancy import lock_tenant
from domain.auth import Viewer
from domain.billing import seed_entitlements
from domain.errors import Forbidden, InvalidInput, NotFound
from domain.passwords import check_password_rules, hash_in_thread
from domain.pipeline import seed_default_stages
from domain.validation import check_pattern, clean_text, normalize_email

ROLES = ("owner", "admin", "member")
SLUG_PATTERN = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
RESERVED_SLUGS = frozenset(
    {
        "admin", "api", "app", "assets", "auth", "billing", "dashboard", "docs",
        "graphql", "healthz", "help", "ibhq", "login", "logout", "mail",
        "metrics", "readyz", "register", "root", "settings", "signin",
        "signout", "static", "status", "support", "system", "www",
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Registration:
    tenant_name: str
    tenant_slug: str
    email: str
    password: str
    name: str | None = None


async def register(
    session: AsyncSession,
    registration: Registration,
    *,
    trial: timedelta,
    now: datetime,
) -> tuple[Tenant, User]:
    """Create a workspace with its owner, pipeline stages and module trials."""
    tenant_name = clean_text(
        registration.tenant_name, field="tenantName", max_length=100
    )
    slug = _check_slug(registration.tenant_slug)
    email = normalize_email(registration.email)
    check_password_rules(registration.password)
    name = _member_name(registration.name, email)
    # Hash before the first query, so no transaction waits on it.
    password_hash = await hash_in_thread(registration.password)

    if await session.scalar(select(Tenant.id).where(Tenant.slug == slug)):
        raise _slug_taken(slug)
    await _check_email_free(session, email)

    tenant = Tenant(id=uuid.uuid4(), name=tenant_name, slug=slug, created_at=now)
    owner = User(
        tenant_id=tenant.id,
        email=email,
        name=name,
        role="owner",
        password_hash=password_hash,
        created_at=now,
    )
    # A concurrent registration can take the slug or the email between the
    # checks above and these inserts (on PostgreSQL, the second insert waits
    # for the first transaction and then fails). The tenant row is flushed on
    # its own, because a unique violation there can only mean the slug is taken.
    # The caller rolls the transaction back.
    session.add(tenant)
    try:
        await session.flush()
    except IntegrityError:
        raise _slug_taken(slug) from None
    session.add(owner)
    seed_default_stages(session, tenant.id)
    seed_entitlements(session, tenant.id, trial=trial, now=now)
    try:
        await session.flush()
    except IntegrityError:
        raise _email_taken() from None
    return tenant, owner


async def get_tenant(session: AsyncSession, tenant_id: uuid.UUID) -> Tenant:
    tenant = await session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound("Workspace")
    return tenant


async def list_members(session: AsyncSession) -> list[User]:
    result = await session.execute(
        select(User).where(User.removed_at.is_(None)).order_by(User.created_at, User.id)
    )
    return list(result.scalars())


async def get_member(session: AsyncSession, member_id: uuid.UUID) -> User:
    """Fetch an active member of the session's workspace, or raise NOT_FOUND."""
    user = await session.get(User, member_id)
    if user is None or user.removed_at is not None:
        raise NotFound("Member")
    return user


async def add_member(
    session: AsyncSession,
    viewer: Viewer,
    *,
    email: str,
    password: str,
    name: str | None,
    role: str,
    now: datetime,
) -> User:
    email = normalize_email(email)
    check_password_rules(password)
    role = _check_role(role)
    member_name = _member_name(name, email)
    # Hash before the tenant lock is taken, so no transaction waits on it.
    password_hash = await hash_in_thread(password)
    viewer = await _lock_as_current(session, viewer)
    _check_may_assign(viewer, role)

    existing = (
        await session.execute(select(User).where(User.email == email))
    ).scalar_one_or_none()
    if existing is not None and existing.removed_at is not None:
        # A removed member of this workspace comes back with fresh credentials.
        existing.removed_at = None
        existing.role = role
        existing.name = member_name
        existing.password_hash = password_hash
        await session.flush()
        return existing
    if existing is not None:
        raise _email_taken()
    await _check_email_free(session, email)

    user = User(
        email=email,
        name=member_name,
        role=role,
        password_hash=password_hash,
        created_at=now,
    )
    session.add(user)
    try:
        await session.flush()
    except IntegrityError:
        raise _email_taken() from None
    return user


async def update_member_role(
    session: AsyncSession, viewer: Viewer, member_id: uuid.UUID, role: str
) -> User:
    role = _check_role(role)
    viewer = await _lock_as_current(session, viewer)
    member = await get_member(session, member_id)
    if member.role == role:
        return member
    _check_may_assign(viewer, role)
    _check_may_assign(viewer, member.role)
    if member.role == "owner":
        await _check_not_last_owner(session, "demote")
    member.role = role
    await session.flush()
    return member


async def remove_member(
    session: AsyncSession, viewer: Viewer, member_id: uuid.UUID, *, now: datetime
) -> User:
    """Remove a member: their sessions end at once, their history stays."""
    viewer = await _lock_as_current(session, viewer)
    member = await get_member(session, member_id)
    _check_may_assign(viewer, member.role)
    if member.role == "owner":
        await _check_not_last_owner(session, "remove")
    member.removed_at = now
    await session.execute(delete(AuthSession).where(AuthSession.user_id == member.id))
    await session.flush()
    return member


def _check_slug(value: str) -> str:
    slug = value.strip()
    if not 3 <= len(slug) <= 40:
        raise InvalidInput("tenantSlug must be 3 to 40 characters", field="tenantSlug")
    check_pattern(
        slug,
        SLUG_PATTERN,
        field="tenantSlug",
        rule="lowercase letters, digits and single hyphens, "
        "not starting or ending with a hyphen",
    )
    if slug in RESERVED_SLUGS:
        raise InvalidInput(f"tenantSlug '{slug}' is reserved", field="tenantSlug")
    return slug


def _check_role(role: str) -> str:
    if role not in ROLES:
        raise InvalidInput(
            f"role must be one of {', '.join(ROLES)}, not '{role}'", field="role"
        )
    return role


def _check_may_assign(viewer: Viewer, role: str) -> None:
    if role == "owner" and viewer.role != "owner":
        raise Forbidden("Only an owner can grant or change the owner role")


def _member_name(name: str | None, email: str) -> str:
    if name is None or not name.strip():
        return email.split("@", 1)[0][:100]
    return clean_text(name, field="name", max_length=100)


async def _check_email_free(session: AsyncSession, email: str) -> None:
    # Emails are unique across workspaces, so this must see every tenant's users.
    taken = await session.scalar(
        select(func.count()).select_from(User).where(User.email == email),
        execution_options={"skip_tenant_scope": True},
    )
    if taken:
        raise _email_taken()


async def _check_not_last_owner(session: AsyncSession, action: str) -> None:
    owners = await session.scalar(
        select(func.count())
        .select_from(User)
        .where(User.role == "owner", User.removed_at.is_(None))
    )
    if (owners or 0) <= 1:
        raise InvalidInput(
            f"Cannot {action} the last owner; make another member an owner first",
            field="role",
        )


async def _lock_as_current(session: AsyncSession, viewer: Viewer) -> Viewer:
    """Lock the tenant row, then return the viewer with its role as now stored.

    The viewer was resolved when the request started, so a role change that
    another request committed since then is not in it.
    """
    await lock_tenant(session, viewer.tenant_id)
    role = await session.scalar(
        select(User.role).where(User.id == viewer.user_id, User.removed_at.is_(None))
    )
    if role not in ("owner", "admin"):
        raise Forbidden("This action needs the owner or admin role")
    return replace(viewer, role=role)


def _slug_taken(slug: str) -> InvalidInput:
    return InvalidInput(f"tenantSlug '{slug}' is already taken", field="tenantSlug")


def _email_taken() -> InvalidInput:
    return InvalidInput("email is already registered", field="email")
