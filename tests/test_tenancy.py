"""The tenant-scoped session: filters every query and stamps every new row."""

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import StatementError

from db.models import Lead, PipelineStage, Tenant
from db.tenancy import TenantMismatchError, scoped_session
from tests.conftest import Server, Workspace


async def lead_in(server: Server, tenant_id: str, name: str) -> uuid.UUID:
    async with scoped_session(server.sessions, uuid.UUID(tenant_id)) as db:
        now = datetime.now(UTC)
        lead = Lead(
            full_name=name, pipeline_stage="new", source="manual", tags=[],
            created_at=now, updated_at=now,
        )  # fmt: skip
        db.add(lead)
        await db.commit()
        return lead.id


async def test_scoped_session_stamps_tenant(
    server: Server, workspace: Workspace
) -> None:
    lead_id = await lead_in(server, workspace.tenant_id, "Stamped")

    async with server.sessions() as db:
        lead = await db.get(Lead, lead_id)

    assert lead is not None
    assert str(lead.tenant_id) == workspace.tenant_id


async def test_scoped_session_hides_other_tenant(
    server: Server, workspace: Workspace, other_workspace: Workspace
) -> None:
    lead_id = await lead_in(server, workspace.tenant_id, "Private")

    async with scoped_session(
        server.sessions, uuid.UUID(other_workspace.tenant_id)
    ) as db:
        by_get = await db.get(Lead, lead_id)
        by_query = (await db.execute(select(Lead).where(Lead.id == lead_id))).all()
        changed = await db.execute(
            update(Lead).where(Lead.id == lead_id).values(full_name="Overwritten")
        )
        await db.commit()

    assert by_get is None
    assert by_query == []
    assert changed.rowcount == 0  # type: ignore[attr-defined]
    async with server.sessions() as db:
        lead = await db.get(Lead, lead_id)
    assert lead is not None
    assert lead.full_name == "Private"


async def test_scoped_session_filters_joins(
    server: Server, workspace: Workspace, other_workspace: Workspace
) -> None:
    async with scoped_session(server.sessions, uuid.UUID(workspace.tenant_id)) as db:
        keys = (
            await db.execute(select(PipelineStage.key, PipelineStage.tenant_id))
        ).all()

    assert len(keys) == 7
    assert {str(tenant_id) for _key, tenant_id in keys} == {workspace.tenant_id}


async def test_anonymous_session_sees_nothing(
    server: Server, workspace: Workspace
) -> None:
    async with scoped_session(server.sessions, None) as db:
        stages = (await db.execute(select(PipelineStage))).all()
        tenants = (
            await db.execute(select(Tenant).where(Tenant.slug == workspace.slug))
        ).all()

    assert stages == []
    assert len(tenants) == 1


async def test_writing_other_tenant_row_fails(
    server: Server, workspace: Workspace, other_workspace: Workspace
) -> None:
    async with scoped_session(server.sessions, uuid.UUID(workspace.tenant_id)) as db:
        db.add(
            PipelineStage(
                tenant_id=uuid.UUID(other_workspace.tenant_id),
                key="smuggled",
                name="Smuggled",
                position=9,
            )
        )
        with pytest.raises((TenantMismatchError, StatementError)):
            await db.flush()
