"""Workspace members through GraphQL: reading them, adding, role changes, removal."""

import asyncio
import itertools
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from db.models import Activity, AuthSession, User
from db.tenancy import scoped_session
from domain import workspaces
from domain.auth import Viewer
from domain.errors import Forbidden
from tests.conftest import (
    PASSWORD,
    Server,
    Workspace,
    add_member,
    graphql,
    sign_in,
)

ME = "{ me { id email name role } }"
WORKSPACE = "{ workspace { id name slug } }"
MEMBERS = "{ members { id email name role } }"
UPDATE_ROLE = """
mutation($id: ID!, $role: Role!) { updateMemberRole(id: $id, role: $role) { id role } }
"""
REMOVE = "mutation($id: ID!) { removeMember(id: $id) { id email } }"
ADD = """
mutation($input: AddMemberInput!) { addMember(input: $input) { id email name role } }
"""
CREATE_LEAD = """
mutation($input: LeadCreateInput!) { createLead(input: $input) { id } }
"""
ADD_ACTIVITY = """
mutation($leadId: ID!, $input: ActivityInput!) {
  addLeadActivity(leadId: $leadId, input: $input) { id author { id } }
}
"""
LEAD_AUTHORS = """
query($id: ID!) { lead(id: $id) { activities { type body author { id email } } } }
"""

_address_numbers = itertools.count(1)


def error_code(body: dict[str, Any]) -> str:
    assert "errors" in body, body
    assert len(body["errors"]) == 1, body
    code: str = body["errors"][0]["extensions"]["code"]
    return code


def error_message(body: dict[str, Any]) -> str:
    assert "errors" in body, body
    message: str = body["errors"][0]["message"]
    return message


def add_input(email: str, role: str, password: str = PASSWORD) -> dict[str, Any]:
    return {"input": {"email": email, "password": password, "role": role}}


async def role_of(server: Server, user_id: str) -> str | None:
    async with server.sessions() as db:
        role = await db.scalar(
            select(User.role).where(
                User.id == uuid.UUID(user_id), User.removed_at.is_(None)
            )
        )
    return None if role is None else str(role)


async def user_count(server: Server, email: str) -> int:
    async with server.sessions() as db:
        count = await db.scalar(
            select(func.count()).select_from(User).where(User.email == email)
        )
    return int(count or 0)


async def session_count(server: Server, user_id: str) -> int:
    async with server.sessions() as db:
        count = await db.scalar(
            select(func.count())
            .select_from(AuthSession)
            .where(AuthSession.user_id == uuid.UUID(user_id))
        )
    return int(count or 0)


async def owner_count(server: Server, tenant_id: str) -> int:
    async with server.sessions() as db:
        count = await db.scalar(
            select(func.count())
            .select_from(User)
            .where(
                User.tenant_id == uuid.UUID(tenant_id),
                User.role == "owner",
                User.removed_at.is_(None),
            )
        )
    return int(count or 0)


async def set_role(client: httpx.AsyncClient, member_id: str, role: str) -> None:
    body = await graphql(client, UPDATE_ROLE, {"id": member_id, "role": role})
    assert "errors" not in body, body
    assert body["data"]["updateMemberRole"] == {"id": member_id, "role": role}


async def create_lead(client: httpx.AsyncClient) -> dict[str, Any]:
    return await graphql(client, CREATE_LEAD, {"input": {"fullName": "Alex Morgan"}})


async def failed_sign_in(server: Server, email: str, password: str) -> httpx.Response:
    """Post credentials from an address no other test uses; check no session is set."""
    number = next(_address_numbers)
    address = f"10.200.{number // 256 % 256}.{number % 256}"
    async with server.client(headers={"X-Forwarded-For": address}) as client:
        token = (await client.get("/api/auth/csrf")).json()["csrfToken"]
        response = await client.post(
            "/api/auth/callback/credentials",
            data={"csrfToken": token, "email": email, "password": password},
        )
        assert server.settings.session_cookie_name not in client.cookies
    return response


# Reading


async def test_me_returns_each_role(workspace: Workspace) -> None:
    cases = [
        (workspace.owner, workspace.owner_id, "owner"),
        (workspace.admin, workspace.admin_id, "admin"),
        (workspace.member, workspace.member_id, "member"),
    ]
    for client, user_id, role in cases:
        body = await graphql(client, ME)
        assert "errors" not in body, body
        me = body["data"]["me"]
        assert me["id"] == user_id
        assert me["role"] == role
        assert me["email"] == f"{role}@{workspace.slug}.example.com"


async def test_me_requires_sign_in(server: Server) -> None:
    async with server.client() as client:
        body = await graphql(client, ME)

    assert error_code(body) == "UNAUTHENTICATED"
    assert body["data"] is None


async def test_workspace_returns_own_tenant(
    workspace: Workspace, other_workspace: Workspace
) -> None:
    for client in (workspace.owner, workspace.member):
        body = await graphql(client, WORKSPACE)
        assert "errors" not in body, body
        assert body["data"]["workspace"] == {
            "id": workspace.tenant_id,
            "name": f"Workspace {workspace.slug}",
            "slug": workspace.slug,
        }
    other = await graphql(other_workspace.owner, WORKSPACE)
    assert other["data"]["workspace"]["id"] == other_workspace.tenant_id


async def test_members_lists_own_workspace(
    workspace: Workspace, other_workspace: Workspace
) -> None:
    body = await graphql(workspace.member, MEMBERS)

    assert "errors" not in body, body
    members = body["data"]["members"]
    assert [(m["id"], m["role"]) for m in members] == [
        (workspace.owner_id, "owner"),
        (workspace.admin_id, "admin"),
        (workspace.member_id, "member"),
    ]
    ids = {member["id"] for member in members}
    assert other_workspace.owner_id not in ids
    assert other_workspace.member_id not in ids


# Adding


async def test_add_member_by_owner(server: Server, workspace: Workspace) -> None:
    email = f"new@{workspace.slug}.example.com"
    body = await graphql(
        workspace.owner,
        ADD,
        {
            "input": {
                "email": f"  NEW@{workspace.slug}.example.com ",
                "password": "another good password",
                "role": "member",
                "name": "  New Person ",
            }
        },
    )

    assert "errors" not in body, body
    added = body["data"]["addMember"]
    assert added["email"] == email
    assert added["name"] == "New Person"
    assert added["role"] == "member"
    assert await role_of(server, added["id"]) == "member"
    client = await sign_in(server, email, "another good password")
    try:
        me = await graphql(client, ME)
    finally:
        await client.aclose()
    assert me["data"]["me"]["id"] == added["id"]


async def test_add_member_by_admin(server: Server, workspace: Workspace) -> None:
    email = f"helper@{workspace.slug}.example.com"
    body = await graphql(workspace.admin, ADD, add_input(email, "admin"))

    assert "errors" not in body, body
    added = body["data"]["addMember"]
    assert added["role"] == "admin"
    assert added["name"] == "helper"
    members = await graphql(workspace.owner, MEMBERS)
    assert added["id"] in {member["id"] for member in members["data"]["members"]}


async def test_add_member_forbidden_for_member(
    server: Server, workspace: Workspace
) -> None:
    email = f"sneaky@{workspace.slug}.example.com"
    body = await graphql(workspace.member, ADD, add_input(email, "member"))

    assert error_code(body) == "FORBIDDEN"
    assert body["data"] is None
    assert await user_count(server, email) == 0


async def test_add_member_rejects_active_email(workspace: Workspace) -> None:
    email = f"admin@{workspace.slug}.example.com"
    body = await graphql(workspace.owner, ADD, add_input(email, "member"))

    assert error_code(body) == "BAD_USER_INPUT"
    assert error_message(body) == "email is already registered"


async def test_add_member_rejects_other_workspace_email(
    server: Server, workspace: Workspace, other_workspace: Workspace
) -> None:
    for email in (
        other_workspace.owner_email,
        other_workspace.owner_email.upper(),
        f"member@{other_workspace.slug}.example.com",
    ):
        body = await graphql(workspace.owner, ADD, add_input(email, "member"))
        assert error_code(body) == "BAD_USER_INPUT"
        assert error_message(body) == "email is already registered"

    # The other workspace's owner keeps its role.
    assert await role_of(server, other_workspace.owner_id) == "owner"
    members = await graphql(workspace.owner, MEMBERS)
    assert len(members["data"]["members"]) == 3


async def test_add_member_rejects_removed_elsewhere(
    workspace: Workspace, other_workspace: Workspace
) -> None:
    removed = await graphql(
        other_workspace.owner, REMOVE, {"id": other_workspace.member_id}
    )
    assert "errors" not in removed, removed

    email = f"member@{other_workspace.slug}.example.com"
    body = await graphql(workspace.owner, ADD, add_input(email, "member"))

    assert error_code(body) == "BAD_USER_INPUT"
    assert error_message(body) == "email is already registered"


async def test_add_member_rejects_short_password(
    server: Server, workspace: Workspace
) -> None:
    email = f"short@{workspace.slug}.example.com"
    body = await graphql(workspace.owner, ADD, add_input(email, "member", "x" * 7))

    assert error_code(body) == "BAD_USER_INPUT"
    assert error_message(body) == "password must be at least 8 characters"
    assert await user_count(server, email) == 0


# The owner role


async def test_admin_cannot_grant_owner(server: Server, workspace: Workspace) -> None:
    email = f"boss@{workspace.slug}.example.com"
    added = await graphql(workspace.admin, ADD, add_input(email, "owner"))
    promoted = await graphql(
        workspace.admin, UPDATE_ROLE, {"id": workspace.member_id, "role": "owner"}
    )
    promoted_self = await graphql(
        workspace.admin, UPDATE_ROLE, {"id": workspace.admin_id, "role": "owner"}
    )

    assert error_code(added) == "FORBIDDEN"
    assert await user_count(server, email) == 0
    assert error_code(promoted) == "FORBIDDEN"
    assert await role_of(server, workspace.member_id) == "member"
    assert error_code(promoted_self) == "FORBIDDEN"
    assert await role_of(server, workspace.admin_id) == "admin"


async def test_admin_cannot_change_owner(server: Server, workspace: Workspace) -> None:
    demoted = await graphql(
        workspace.admin, UPDATE_ROLE, {"id": workspace.owner_id, "role": "member"}
    )
    removed = await graphql(workspace.admin, REMOVE, {"id": workspace.owner_id})

    assert error_code(demoted) == "FORBIDDEN"
    assert error_code(removed) == "FORBIDDEN"
    assert await role_of(server, workspace.owner_id) == "owner"
    assert await session_count(server, workspace.owner_id) == 1


async def test_member_cannot_change_roles(server: Server, workspace: Workspace) -> None:
    promoted = await graphql(
        workspace.member, UPDATE_ROLE, {"id": workspace.member_id, "role": "admin"}
    )
    removed = await graphql(workspace.member, REMOVE, {"id": workspace.admin_id})

    assert error_code(promoted) == "FORBIDDEN"
    assert error_code(removed) == "FORBIDDEN"
    assert await role_of(server, workspace.member_id) == "member"
    assert await role_of(server, workspace.admin_id) == "admin"


# Role changes


async def test_role_change_applies_next_request(
    server: Server, workspace: Workspace
) -> None:
    before = await create_lead(workspace.admin)
    assert "errors" not in before, before

    await set_role(workspace.owner, workspace.admin_id, "member")

    after = await create_lead(workspace.admin)
    assert error_code(after) == "FORBIDDEN"
    me = await graphql(workspace.admin, ME)
    assert me["data"]["me"]["role"] == "member"


async def test_promotion_applies_next_request(workspace: Workspace) -> None:
    before = await create_lead(workspace.member)
    assert error_code(before) == "FORBIDDEN"

    await set_role(workspace.admin, workspace.member_id, "admin")

    after = await create_lead(workspace.member)
    assert "errors" not in after, after


async def test_last_owner_cannot_be_demoted(
    server: Server, workspace: Workspace
) -> None:
    for role in ("admin", "member"):
        body = await graphql(
            workspace.owner, UPDATE_ROLE, {"id": workspace.owner_id, "role": role}
        )
        assert error_code(body) == "BAD_USER_INPUT"
        assert error_message(body) == (
            "Cannot demote the last owner; make another member an owner first"
        )
    assert await role_of(server, workspace.owner_id) == "owner"


async def test_last_owner_cannot_be_removed(
    server: Server, workspace: Workspace
) -> None:
    body = await graphql(workspace.owner, REMOVE, {"id": workspace.owner_id})

    assert error_code(body) == "BAD_USER_INPUT"
    assert error_message(body) == (
        "Cannot remove the last owner; make another member an owner first"
    )
    assert await role_of(server, workspace.owner_id) == "owner"
    assert await session_count(server, workspace.owner_id) == 1


async def test_second_owner_demotes_first(server: Server, workspace: Workspace) -> None:
    await set_role(workspace.owner, workspace.admin_id, "owner")
    await set_role(workspace.admin, workspace.owner_id, "admin")

    assert await role_of(server, workspace.owner_id) == "admin"
    assert await role_of(server, workspace.admin_id) == "owner"
    me = await graphql(workspace.owner, ME)
    assert me["data"]["me"]["role"] == "admin"
    # The new sole owner is now the last one.
    last = await graphql(
        workspace.admin, UPDATE_ROLE, {"id": workspace.admin_id, "role": "admin"}
    )
    assert error_code(last) == "BAD_USER_INPUT"


async def test_owners_demote_each_other_concurrently(
    server: Server, workspace: Workspace
) -> None:
    await set_role(workspace.owner, workspace.admin_id, "owner")
    assert await owner_count(server, workspace.tenant_id) == 2

    results = await asyncio.gather(
        graphql(
            workspace.owner, UPDATE_ROLE, {"id": workspace.admin_id, "role": "admin"}
        ),
        graphql(
            workspace.admin, UPDATE_ROLE, {"id": workspace.owner_id, "role": "admin"}
        ),
    )

    failed = [body for body in results if "errors" in body]
    assert len(failed) == 1, results
    # The request that runs second finds its own role already demoted.
    assert error_code(failed[0]) == "FORBIDDEN"
    assert await owner_count(server, workspace.tenant_id) == 1


# Removal


async def test_remove_member_ends_sessions(
    server: Server, workspace: Workspace
) -> None:
    assert await session_count(server, workspace.admin_id) == 1
    assert (await workspace.admin.get("/api/leads")).status_code == 200

    body = await graphql(workspace.owner, REMOVE, {"id": workspace.admin_id})

    assert "errors" not in body, body
    assert body["data"]["removeMember"]["id"] == workspace.admin_id
    assert await session_count(server, workspace.admin_id) == 0
    assert (await workspace.admin.get("/api/leads")).status_code == 401
    me = await graphql(workspace.admin, ME)
    assert error_code(me) == "UNAUTHENTICATED"
    members = await graphql(workspace.owner, MEMBERS)
    ids = [member["id"] for member in members["data"]["members"]]
    assert ids == [workspace.owner_id, workspace.member_id]
    again = await graphql(workspace.owner, REMOVE, {"id": workspace.admin_id})
    assert error_code(again) == "NOT_FOUND"


async def test_removed_member_keeps_authorship(
    server: Server, workspace: Workspace
) -> None:
    lead = await create_lead(workspace.admin)
    assert "errors" not in lead, lead
    lead_id = lead["data"]["createLead"]["id"]
    note = await graphql(
        workspace.admin,
        ADD_ACTIVITY,
        {"leadId": lead_id, "input": {"type": "note", "body": "Called back"}},
    )
    assert "errors" not in note, note
    assert note["data"]["addLeadActivity"]["author"]["id"] == workspace.admin_id

    removed = await graphql(workspace.owner, REMOVE, {"id": workspace.admin_id})
    assert "errors" not in removed, removed

    body = await graphql(workspace.owner, LEAD_AUTHORS, {"id": lead_id})
    assert "errors" not in body, body
    activities = body["data"]["lead"]["activities"]
    assert len(activities) == 2
    for activity in activities:
        assert activity["author"] == {
            "id": workspace.admin_id,
            "email": f"admin@{workspace.slug}.example.com",
        }
    async with server.sessions() as db:
        authors = (
            await db.scalars(
                select(Activity.author_id).where(Activity.lead_id == uuid.UUID(lead_id))
            )
        ).all()
    assert authors == [uuid.UUID(workspace.admin_id)] * 2


async def test_removed_member_can_be_readded(
    server: Server, workspace: Workspace
) -> None:
    email = f"member@{workspace.slug}.example.com"
    removed = await graphql(workspace.owner, REMOVE, {"id": workspace.member_id})
    assert "errors" not in removed, removed

    body = await graphql(
        workspace.owner, ADD, add_input(email, "admin", "a brand new password")
    )

    assert "errors" not in body, body
    added = body["data"]["addMember"]
    assert added["id"] == workspace.member_id
    assert added["role"] == "admin"
    assert await role_of(server, workspace.member_id) == "admin"
    assert await user_count(server, email) == 1

    old_password = await failed_sign_in(server, email, PASSWORD)
    assert old_password.status_code == 302
    assert "error=CredentialsSignin" in old_password.headers["location"]
    client = await sign_in(server, email, "a brand new password")
    try:
        me = await graphql(client, ME)
        lead = await create_lead(client)
    finally:
        await client.aclose()
    assert me["data"]["me"] == {
        "id": workspace.member_id,
        "email": email,
        "name": "member",
        "role": "admin",
    }
    assert "errors" not in lead, lead


async def test_admin_cannot_readd_as_owner(
    server: Server, workspace: Workspace
) -> None:
    email = f"member@{workspace.slug}.example.com"
    removed = await graphql(workspace.owner, REMOVE, {"id": workspace.member_id})
    assert "errors" not in removed, removed

    body = await graphql(workspace.admin, ADD, add_input(email, "owner"))

    assert error_code(body) == "FORBIDDEN"
    assert await role_of(server, workspace.member_id) is None


# Other workspaces


async def test_other_tenant_member_not_found(
    server: Server, workspace: Workspace, other_workspace: Workspace
) -> None:
    targets = [other_workspace.member_id, other_workspace.owner_id, "not-an-id"]
    for target in targets:
        promoted = await graphql(
            workspace.owner, UPDATE_ROLE, {"id": target, "role": "admin"}
        )
        removed = await graphql(workspace.owner, REMOVE, {"id": target})
        assert error_code(promoted) == "NOT_FOUND"
        assert error_message(promoted) == "Member not found"
        assert error_code(removed) == "NOT_FOUND"

    assert await role_of(server, other_workspace.member_id) == "member"
    assert await role_of(server, other_workspace.owner_id) == "owner"
    assert await session_count(server, other_workspace.member_id) == 1


async def test_add_member_helper_stays_in_tenant(
    server: Server, workspace: Workspace, other_workspace: Workspace
) -> None:
    member_id = await add_member(
        workspace.owner, f"extra@{workspace.slug}.example.com", "member"
    )
    async with server.sessions() as db:
        tenant_id = await db.scalar(
            select(User.tenant_id).where(User.id == uuid.UUID(member_id))
        )
    assert str(tenant_id) == workspace.tenant_id
    others = await graphql(other_workspace.owner, MEMBERS)
    assert member_id not in {m["id"] for m in others["data"]["members"]}


async def test_stale_owner_role_rejected(server: Server, workspace: Workspace) -> None:
    # A request resolves its viewer before it runs. Replay the admin's request
    # that started while it was still an owner, after another owner demoted it.
    await set_role(workspace.owner, workspace.admin_id, "owner")
    stale = Viewer(
        user_id=uuid.UUID(workspace.admin_id),
        tenant_id=uuid.UUID(workspace.tenant_id),
        role="owner",
        email=f"admin@{workspace.slug}.example.com",
        name="admin",
        session_id=uuid.uuid4(),
        session_expires_at=server.clock.now(),
    )
    await set_role(workspace.owner, workspace.admin_id, "admin")

    db = scoped_session(server.sessions, stale.tenant_id)
    try:
        with pytest.raises(Forbidden):
            await workspaces.update_member_role(
                db, stale, uuid.UUID(workspace.member_id), "owner"
            )
        await db.rollback()
        with pytest.raises(Forbidden):
            await workspaces.remove_member(
                db, stale, uuid.UUID(workspace.owner_id), now=server.clock.now()
            )
        await db.rollback()
        with pytest.raises(Forbidden):
            await workspaces.add_member(
                db,
                stale,
                email=f"boss@{workspace.slug}.example.com",
                password=PASSWORD,
                name=None,
                role="owner",
                now=server.clock.now(),
            )
    finally:
        await db.rollback()
        await db.close()

    assert await role_of(server, workspace.member_id) == "member"
    assert await role_of(server, workspace.owner_id) == "owner"
    assert await user_count(server, f"boss@{workspace.slug}.example.com") == 0
