"""Tenant scoping for ORM sessions.

Invariants:
- A session made by ``scoped_session(tenant_id)`` reads and writes only rows of
  that tenant: every ORM SELECT, UPDATE and DELETE on a ``TenantScoped`` model
  gets ``tenant_id = :tenant`` added, and new rows are stamped with it.
- A session scoped to ``None`` (an anonymous request) sees no tenant rows at all.
- A session made without scoping (``unscoped_session``) is for code that
  resolves the tenant itself from a verified input: sign-in, registration,
  public webhooks.
"""

import uuid
from typing import Any

from sqlalchemy import event, false, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import ORMExecuteState, Session, with_loader_criteria

from db.engine import RequestSession
from db.models import Tenant, TenantScoped

TENANT_KEY = "tenant_id"
# Execution option for the rare read that must see every tenant, such as the
# check that an email is free across the product. Grep for it when auditing.
SKIP_SCOPE_OPTION = "skip_tenant_scope"


class TenantMismatchError(RuntimeError):
    """A row of one tenant was about to be written through another tenant's session."""


def scoped_session(
    factory: async_sessionmaker[RequestSession], tenant_id: uuid.UUID | None
) -> RequestSession:
    session = factory()
    session.info[TENANT_KEY] = tenant_id
    return session


async def lock_tenant(session: AsyncSession, tenant_id: uuid.UUID) -> None:
    """Lock the tenant's row until the transaction ends (PostgreSQL).

    Writes that check a workspace-wide invariant first take this lock, so two
    of them cannot both pass the check. SQLite already serialises writers.
    """
    await session.execute(
        select(Tenant.id).where(Tenant.id == tenant_id).with_for_update()
    )


def unscoped_session(factory: async_sessionmaker[RequestSession]) -> RequestSession:
    return factory()


@event.listens_for(Session, "do_orm_execute")
def _add_tenant_criteria(state: ORMExecuteState) -> None:
    if TENANT_KEY not in state.session.info:
        return
    if state.is_column_load or state.is_relationship_load:
        return
    if state.execution_options.get(SKIP_SCOPE_OPTION):
        return
    if not (state.is_select or state.is_update or state.is_delete):
        return

    tenant_id = state.session.info[TENANT_KEY]
    if tenant_id is None:
        option = with_loader_criteria(TenantScoped, false(), include_aliases=True)
    else:
        option = with_loader_criteria(
            TenantScoped,
            lambda cls: cls.tenant_id == tenant_id,
            include_aliases=True,
        )
    state.statement = state.statement.options(option)


@event.listens_for(Session, "before_flush")
def _stamp_tenant(session: Session, _context: Any, _instances: Any) -> None:
    if TENANT_KEY not in session.info:
        return
    tenant_id = session.info[TENANT_KEY]
    if tenant_id is None:
        if any(isinstance(row, TenantScoped) for row in session.new):
            raise TenantMismatchError("an anonymous session cannot create tenant rows")
        return

    for row in session.new:
        if not isinstance(row, TenantScoped):
            continue
        if row.tenant_id is None:
            row.tenant_id = tenant_id
        elif row.tenant_id != tenant_id:
            raise TenantMismatchError(f"new {type(row).__name__} has another tenant")

    for row in session.dirty:
        if isinstance(row, TenantScoped) and row.tenant_id != tenant_id:
            raise TenantMismatchError(f"{type(row).__name__} belongs to another tenant")
