"""The CRM through its documented REST paths, with the session cookie."""

import uuid
from typing import Any

import httpx
from sqlalchemy import func, select

from db.models import Activity, Lead
from tests.conftest import Server, Workspace

LEAD_KEYS = {
    "id", "fullName", "email", "phone", "telegram", "pipelineStage", "source",
    "tags", "notes", "lostReason", "ownerId", "createdAt", "updatedAt",
}  # fmt: skip


async def create(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    response = await client.post(
        "/api/leads", json={"fullName": "Alex Morgan", **fields}
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def count_rows(server: Server, model: Any, lead_id: str) -> int:
    column = model.id if model is Lead else model.lead_id
    async with server.sessions() as db:
        return (
            await db.scalar(
                select(func.count())
                .select_from(model)
                .where(column == uuid.UUID(lead_id))
            )
            or 0
        )


async def test_create_returns_lead(workspace: Workspace) -> None:
    response = await workspace.owner.post(
        "/api/leads",
        json={
            "fullName": "Alex Morgan",
            "email": "Alex@Example.com",
            "pipelineStage": "new",
        },
    )

    assert response.status_code == 201
    body = response.json()
    assert set(body) == LEAD_KEYS
    assert body["fullName"] == "Alex Morgan"
    assert body["email"] == "alex@example.com"
    assert body["pipelineStage"] == "new"
    assert body["source"] == "manual"
    assert body["tags"] == []
    assert body["ownerId"] is None
    assert body["createdAt"].endswith("Z")


async def test_create_defaults_to_first_stage(workspace: Workspace) -> None:
    body = await create(workspace.admin)

    assert body["pipelineStage"] == "new"


async def test_create_normalises_fields(workspace: Workspace) -> None:
    body = await create(
        workspace.owner,
        telegram="alex_trader",
        phone="+44 20 7946 0958",
        tags=["vip", " vip ", "forex"],
        source="import",
        notes="  met at expo  ",
        ownerId=workspace.admin_id,
    )

    assert body["telegram"] == "@alex_trader"
    assert body["phone"] == "+44 20 7946 0958"
    assert body["tags"] == ["vip", "forex"]
    assert body["source"] == "import"
    assert body["notes"] == "met at expo"
    assert body["ownerId"] == workspace.admin_id


async def test_create_writes_system_entry(server: Server, workspace: Workspace) -> None:
    lead = await create(workspace.owner)

    response = await workspace.owner.get(f"/api/leads/{lead['id']}")

    activities = response.json()["activities"]
    assert len(activities) == 1
    assert activities[0]["type"] == "system"
    assert activities[0]["body"] == "Lead created (source: manual, stage: new)"
    assert activities[0]["author"] == {"id": workspace.owner_id, "name": "owner"}
    assert await count_rows(server, Activity, lead["id"]) == 1


async def test_create_rejects_invalid_fields(
    server: Server, workspace: Workspace
) -> None:
    cases = [
        ({"fullName": "   "}, "fullName must not be empty"),
        ({"fullName": "x" * 201}, "fullName must be at most 200 characters"),
        (
            {"fullName": "A", "email": "not-an-email"},
            "email is not a valid email address",
        ),
        ({"fullName": "A", "phone": "call me"}, "phone must be a phone number"),
        ({"fullName": "A", "telegram": "a b"}, "telegram must be a username"),
        (
            {"fullName": "A", "pipelineStage": "nowhere"},
            "pipelineStage 'nowhere' is not",
        ),
        ({"fullName": "A", "pipelineStage": "lost"}, "lostReason is required"),
        ({"fullName": "A", "ownerId": str(uuid.uuid4())}, "ownerId is not a member"),
        ({"fullName": "A", "ownerId": "nope"}, "ownerId is not a member"),
        ({"fullName": "A", "tags": ["x" * 51]}, "tags must be at most 50 characters"),
    ]
    before = (await workspace.owner.get("/api/leads")).json()["total"]

    for body, message in cases:
        response = await workspace.owner.post("/api/leads", json=body)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["error"].startswith(message), (body, response.text)

    assert (await workspace.owner.get("/api/leads")).json()["total"] == before


async def test_owner_from_other_workspace(
    workspace: Workspace, other_workspace: Workspace
) -> None:
    response = await workspace.owner.post(
        "/api/leads", json={"fullName": "A", "ownerId": other_workspace.owner_id}
    )

    assert response.status_code == 400
    assert response.json() == {"error": "ownerId is not a member of this workspace"}


async def test_get_returns_activities_newest_first(workspace: Workspace) -> None:
    lead = await create(workspace.owner)
    for body in ("first call", "second call"):
        response = await workspace.admin.post(
            f"/api/leads/{lead['id']}/activities", json={"type": "call", "body": body}
        )
        assert response.status_code == 201

    response = await workspace.member.get(f"/api/leads/{lead['id']}")

    assert response.status_code == 200
    bodies = [activity["body"] for activity in response.json()["activities"]]
    assert bodies == [
        "second call",
        "first call",
        "Lead created (source: manual, stage: new)",
    ]


async def test_activity_response(workspace: Workspace) -> None:
    lead = await create(workspace.owner)

    response = await workspace.owner.post(
        f"/api/leads/{lead['id']}/activities",
        json={
            "type": "email",
            "body": "Sent the welcome pack",
            "occurredAt": "2026-01-02T03:04:05Z",
        },
    )

    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "type", "body", "occurredAt", "createdAt", "author"}
    assert body["type"] == "email"
    assert body["occurredAt"] == "2026-01-02T03:04:05Z"
    assert body["author"] == {"id": workspace.owner_id, "name": "owner"}


async def test_activity_rejects_system_type(
    server: Server, workspace: Workspace
) -> None:
    lead = await create(workspace.owner)

    response = await workspace.owner.post(
        f"/api/leads/{lead['id']}/activities", json={"type": "system", "body": "forged"}
    )

    assert response.status_code == 400
    assert response.json() == {
        "error": "type must be one of note, call, email, not 'system'"
    }
    assert await count_rows(server, Activity, lead["id"]) == 1


async def test_activity_rejects_empty_body(workspace: Workspace) -> None:
    lead = await create(workspace.owner)

    response = await workspace.owner.post(
        f"/api/leads/{lead['id']}/activities", json={"type": "note", "body": "  "}
    )

    assert response.status_code == 400
    assert response.json() == {"error": "body must not be empty"}


async def test_patch_changes_given_fields(workspace: Workspace) -> None:
    lead = await create(workspace.owner, email="a@example.com", phone="+1 555 0100")

    response = await workspace.owner.patch(
        f"/api/leads/{lead['id']}", json={"phone": None, "tags": ["hot"]}
    )

    assert response.status_code == 200
    body = response.json()
    assert body["phone"] is None
    assert body["tags"] == ["hot"]
    assert body["email"] == "a@example.com"
    assert body["fullName"] == "Alex Morgan"
    assert body["updatedAt"] >= lead["updatedAt"]


async def test_patch_stage_writes_entry(workspace: Workspace) -> None:
    lead = await create(workspace.owner)

    response = await workspace.admin.patch(
        f"/api/leads/{lead['id']}", json={"pipelineStage": "contacted"}
    )

    assert response.status_code == 200
    timeline = (await workspace.owner.get(f"/api/leads/{lead['id']}")).json()[
        "activities"
    ]
    assert timeline[0]["type"] == "system"
    assert timeline[0]["body"] == "Stage changed from new to contacted"
    assert timeline[0]["author"]["id"] == workspace.admin_id


async def test_patch_owner_writes_entry(workspace: Workspace) -> None:
    lead = await create(workspace.owner)

    response = await workspace.owner.patch(
        f"/api/leads/{lead['id']}", json={"ownerId": workspace.admin_id}
    )

    assert response.status_code == 200
    assert response.json()["ownerId"] == workspace.admin_id
    timeline = (await workspace.owner.get(f"/api/leads/{lead['id']}")).json()[
        "activities"
    ]
    assert timeline[0]["body"] == "Owner changed from nobody to admin"


async def test_lost_needs_reason(server: Server, workspace: Workspace) -> None:
    lead = await create(workspace.owner)

    refused = await workspace.owner.patch(
        f"/api/leads/{lead['id']}", json={"pipelineStage": "lost"}
    )
    accepted = await workspace.owner.patch(
        f"/api/leads/{lead['id']}",
        json={"pipelineStage": "lost", "lostReason": "Chose another broker"},
    )

    assert refused.status_code == 400
    assert refused.json() == {
        "error": "lostReason is required to move a lead to the lost stage"
    }
    assert accepted.status_code == 200
    assert accepted.json()["lostReason"] == "Chose another broker"
    timeline = (await workspace.owner.get(f"/api/leads/{lead['id']}")).json()[
        "activities"
    ]
    assert timeline[0]["body"] == "Stage changed from new to lost: Chose another broker"
    assert await count_rows(server, Activity, lead["id"]) == 2


async def test_leaving_lost_clears_reason(workspace: Workspace) -> None:
    lead = await create(workspace.owner, pipelineStage="lost", lostReason="No budget")

    response = await workspace.owner.patch(
        f"/api/leads/{lead['id']}", json={"pipelineStage": "qualified"}
    )

    assert response.status_code == 200
    assert response.json()["lostReason"] is None


async def test_patch_rejects_null_name(workspace: Workspace) -> None:
    lead = await create(workspace.owner)

    response = await workspace.owner.patch(
        f"/api/leads/{lead['id']}", json={"fullName": None}
    )

    assert response.status_code == 400
    assert response.json() == {"error": "fullName must not be empty"}
    after = (await workspace.owner.get(f"/api/leads/{lead['id']}")).json()
    assert after["fullName"] == "Alex Morgan"


async def test_patch_is_all_or_nothing(workspace: Workspace) -> None:
    lead = await create(workspace.owner)

    response = await workspace.owner.patch(
        f"/api/leads/{lead['id']}", json={"tags": ["new-tag"], "email": "broken"}
    )

    assert response.status_code == 400
    after = (await workspace.owner.get(f"/api/leads/{lead['id']}")).json()
    assert after["tags"] == []
    assert len(after["activities"]) == 1


async def test_delete_removes_lead_and_timeline(
    server: Server, workspace: Workspace
) -> None:
    lead = await create(workspace.owner)

    response = await workspace.owner.delete(f"/api/leads/{lead['id']}")

    assert response.status_code == 204
    assert response.content == b""
    assert (await workspace.owner.get(f"/api/leads/{lead['id']}")).status_code == 404
    assert await count_rows(server, Lead, lead["id"]) == 0
    assert await count_rows(server, Activity, lead["id"]) == 0


async def test_delete_twice_is_not_found(workspace: Workspace) -> None:
    lead = await create(workspace.owner)
    await workspace.owner.delete(f"/api/leads/{lead['id']}")

    response = await workspace.owner.delete(f"/api/leads/{lead['id']}")

    assert response.status_code == 404
    assert response.json() == {"error": "Lead not found"}


async def test_malformed_id_is_not_found(workspace: Workspace) -> None:
    response = await workspace.owner.get("/api/leads/not-a-uuid")

    assert response.status_code == 404
    assert response.json() == {"error": "Lead not found"}


async def test_list_pages(workspace: Workspace) -> None:
    names = [f"Lead {index:02d}" for index in range(7)]
    for name in names:
        await create(workspace.owner, fullName=name)

    first = await workspace.owner.get("/api/leads", params={"page": 1, "pageSize": 3})
    last = await workspace.owner.get("/api/leads", params={"page": 3, "pageSize": 3})

    assert first.status_code == 200
    assert [item["fullName"] for item in first.json()["items"]] == names[::-1][:3]
    assert first.json()["total"] == 7
    assert first.json()["page"] == 1
    assert first.json()["pageSize"] == 3
    assert [item["fullName"] for item in last.json()["items"]] == names[:1]


async def test_list_filters_stage_and_query(workspace: Workspace) -> None:
    await create(workspace.owner, fullName="Maria Lopez", email="maria@fx.example")
    await create(workspace.owner, fullName="Ivan Petrov", pipelineStage="qualified")
    await create(workspace.owner, fullName="Chen 100%_done", telegram="@chen_fx")

    by_stage = await workspace.owner.get("/api/leads", params={"stage": "qualified"})
    by_email = await workspace.owner.get("/api/leads", params={"q": "FX.EXAMPLE"})
    by_telegram = await workspace.owner.get("/api/leads", params={"q": "chen_fx"})
    literal_wildcards = await workspace.owner.get("/api/leads", params={"q": "100%_"})
    percent_only = await workspace.owner.get("/api/leads", params={"q": "%"})

    assert [item["fullName"] for item in by_stage.json()["items"]] == ["Ivan Petrov"]
    assert [item["fullName"] for item in by_email.json()["items"]] == ["Maria Lopez"]
    assert [item["fullName"] for item in by_telegram.json()["items"]] == [
        "Chen 100%_done"
    ]
    assert [item["fullName"] for item in literal_wildcards.json()["items"]] == [
        "Chen 100%_done"
    ]
    assert [item["fullName"] for item in percent_only.json()["items"]] == [
        "Chen 100%_done"
    ]


async def test_list_rejects_bad_paging(workspace: Workspace) -> None:
    cases = [
        ({"page": "0"}, "page must be 1 or more"),
        ({"pageSize": "101"}, "pageSize must be between 1 and 100"),
        ({"page": "two"}, "page must be an integer, not 'two'"),
        ({"stage": "nowhere"}, "stage 'nowhere' is not a pipeline stage"),
        (
            {"page_size": "5"},
            "Unknown query parameter 'page_size'; "
            "this route accepts: stage, q, page, pageSize",
        ),
    ]

    for params, message in cases:
        response = await workspace.owner.get("/api/leads", params=params)
        assert response.status_code == 400, params
        assert response.json() == {"error": message}, params
