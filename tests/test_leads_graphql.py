"""The CRM through GraphQL: the REST scenario again, pipeline stages, SQL counts."""

from typing import Any

import httpx

from tests.conftest import Server, Workspace, graphql

LEAD_FIELDS = "id fullName email pipelineStage source tags lostReason ownerId"

CREATE = f"""
mutation($input: LeadCreateInput!) {{ createLead(input: $input) {{ {LEAD_FIELDS} }} }}
"""
UPDATE = f"""
mutation($id: ID!, $input: LeadUpdateInput!) {{
  updateLead(id: $id, input: $input) {{ {LEAD_FIELDS} }}
}}
"""
ADD_ACTIVITY = """
mutation($leadId: ID!, $input: ActivityInput!) {
  addLeadActivity(leadId: $leadId, input: $input) { id type body author { id } }
}
"""
GET = f"""
query($id: ID!) {{
  lead(id: $id) {{ {LEAD_FIELDS} activities {{ type body author {{ name }} }} }}
}}
"""
DELETE = "mutation($id: ID!) { deleteLead(id: $id) { id } }"


async def create_lead(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    body = await graphql(
        client, CREATE, {"input": {"fullName": "Alex Morgan", **fields}}
    )
    assert "errors" not in body, body
    lead: dict[str, Any] = body["data"]["createLead"]
    return lead


def error_of(body: dict[str, Any]) -> tuple[str, str]:
    error = body["errors"][0]
    return error["extensions"]["code"], error["message"]


async def test_lead_lifecycle(workspace: Workspace) -> None:
    lead = await create_lead(workspace.owner, email="alex@example.com", tags=["vip"])

    updated = await graphql(
        workspace.admin,
        UPDATE,
        {"id": lead["id"], "input": {"pipelineStage": "qualified", "email": None}},
    )
    activity = await graphql(
        workspace.admin,
        ADD_ACTIVITY,
        {"leadId": lead["id"], "input": {"type": "note", "body": "Wants a demo"}},
    )
    fetched = await graphql(workspace.member, GET, {"id": lead["id"]})
    deleted = await graphql(workspace.owner, DELETE, {"id": lead["id"]})
    missing = await graphql(workspace.owner, GET, {"id": lead["id"]})

    assert updated["data"]["updateLead"]["pipelineStage"] == "qualified"
    assert updated["data"]["updateLead"]["email"] is None
    assert updated["data"]["updateLead"]["tags"] == ["vip"]
    assert activity["data"]["addLeadActivity"]["author"] == {"id": workspace.admin_id}
    timeline = fetched["data"]["lead"]["activities"]
    assert [entry["body"] for entry in timeline] == [
        "Wants a demo",
        "Stage changed from new to qualified",
        "Lead created (source: manual, stage: new)",
    ]
    assert [entry["author"]["name"] for entry in timeline] == [
        "admin",
        "admin",
        "owner",
    ]
    assert deleted["data"]["deleteLead"] == {"id": lead["id"]}
    assert error_of(missing) == ("NOT_FOUND", "Lead not found")


async def test_validation_error_names_field(workspace: Workspace) -> None:
    body = await graphql(
        workspace.owner, CREATE, {"input": {"fullName": "A", "email": "x@"}}
    )

    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert body["errors"][0]["extensions"]["field"] == "email"
    assert body["errors"][0]["message"].startswith("email is not a valid email address")


async def test_member_cannot_write(workspace: Workspace) -> None:
    body = await graphql(workspace.member, CREATE, {"input": {"fullName": "A"}})
    listing = await graphql(workspace.owner, "{ leads { total } }")

    assert error_of(body) == ("FORBIDDEN", "This action needs the owner or admin role")
    assert listing["data"]["leads"]["total"] == 0


async def test_other_tenant_lead_hidden(
    workspace: Workspace, other_workspace: Workspace
) -> None:
    lead = await create_lead(workspace.owner)

    read = await graphql(other_workspace.owner, GET, {"id": lead["id"]})
    write = await graphql(
        other_workspace.owner,
        UPDATE,
        {"id": lead["id"], "input": {"fullName": "Hijacked"}},
    )
    listing = await graphql(other_workspace.owner, "{ leads { total items { id } } }")
    after = await graphql(workspace.owner, GET, {"id": lead["id"]})

    assert error_of(read) == ("NOT_FOUND", "Lead not found")
    assert error_of(write) == ("NOT_FOUND", "Lead not found")
    assert listing["data"]["leads"] == {"total": 0, "items": []}
    assert after["data"]["lead"]["fullName"] == "Alex Morgan"


STAGES = "{ pipelineStages { key name position } }"


async def test_stages_add_rename_reorder(workspace: Workspace) -> None:
    added = await graphql(
        workspace.owner,
        """mutation { addPipelineStage(input: {key: "demo_call", name: "Demo call",
           position: 2}) { key position } }""",
    )
    renamed = await graphql(
        workspace.admin,
        'mutation { renamePipelineStage(key: "new", name: "Fresh") { key name } }',
    )
    keys = ["lost", "active", "funded", "registered", "demo_call", "qualified",
            "contacted", "new"]  # fmt: skip
    reordered = await graphql(
        workspace.owner,
        "mutation($keys: [String!]!) { reorderPipelineStages(keys: $keys) { key } }",
        {"keys": keys},
    )
    stages = (await graphql(workspace.member, STAGES))["data"]["pipelineStages"]

    assert added["data"]["addPipelineStage"] == {"key": "demo_call", "position": 2}
    assert renamed["data"]["renamePipelineStage"] == {"key": "new", "name": "Fresh"}
    assert [
        stage["key"] for stage in reordered["data"]["reorderPipelineStages"]
    ] == keys
    assert [stage["key"] for stage in stages] == keys
    assert [stage["position"] for stage in stages] == list(range(8))
    assert stages[-1]["name"] == "Fresh"


async def test_stage_changes_rejected(workspace: Workspace) -> None:
    cases = [
        ('mutation { addPipelineStage(input: {key: "new", name: "Again"}) { key } }',
         "key 'new' is already a stage"),
        ('mutation { addPipelineStage(input: {key: "Bad Key", name: "x"}) { key } }',
         "key must be lowercase letters and digits"),
        ('mutation { addPipelineStage(input: {key: "x", name: "x", position: 99}) '
         "{ key } }", "position must be between 0 and 7"),
        ('mutation { reorderPipelineStages(keys: ["new"]) { key } }',
         "keys must list every stage exactly once"),
        ('mutation { removePipelineStage(key: "lost") { key } }',
         "The lost stage is built in and cannot be removed"),
    ]  # fmt: skip

    for query, message in cases:
        body = await graphql(workspace.owner, query)
        code, text = error_of(body)
        assert code == "BAD_USER_INPUT", query
        assert text.startswith(message), (query, text)

    stages = (await graphql(workspace.owner, STAGES))["data"]["pipelineStages"]
    assert stages[0]["key"] == "new"
    assert len(stages) == 7


async def test_remove_stage_moves_leads(workspace: Workspace) -> None:
    lead = await create_lead(workspace.owner, pipelineStage="contacted")

    refused = await graphql(
        workspace.owner, 'mutation { removePipelineStage(key: "contacted") { key } }'
    )
    removed = await graphql(
        workspace.owner,
        'mutation { removePipelineStage(key: "contacted", moveLeadsTo: "qualified") '
        "{ key position } }",
    )
    fetched = await graphql(workspace.owner, GET, {"id": lead["id"]})

    assert error_of(refused)[1] == (
        "1 leads are in stage 'contacted'; name a stage in moveLeadsTo"
    )
    keys = [stage["key"] for stage in removed["data"]["removePipelineStage"]]
    assert keys == ["new", "qualified", "registered", "funded", "active", "lost"]
    assert fetched["data"]["lead"]["pipelineStage"] == "qualified"
    assert fetched["data"]["lead"]["activities"][0]["body"] == (
        "Stage changed from contacted to qualified because stage contacted was removed"
    )


async def test_member_cannot_change_stages(workspace: Workspace) -> None:
    body = await graphql(
        workspace.member,
        'mutation { renamePipelineStage(key: "new", name: "X") { key } }',
    )
    stages = (await graphql(workspace.owner, STAGES))["data"]["pipelineStages"]

    assert error_of(body) == ("FORBIDDEN", "This action needs the owner or admin role")
    assert stages[0]["name"] == "New"


PAGE_WITH_TIMELINES = """
query($size: Int!) {
  leads(pageSize: $size) {
    total
    items { id fullName owner { name } activities { type body author { id name } } }
  }
}
"""


async def statements_for_page(
    server: Server, client: httpx.AsyncClient, size: int
) -> int:
    server.statements.reset()
    body = await graphql(client, PAGE_WITH_TIMELINES, {"size": size})
    assert "errors" not in body, body
    assert len(body["data"]["leads"]["items"]) == size
    return server.statements.count


async def test_page_statement_count_is_fixed(
    server: Server, workspace: Workspace
) -> None:
    for index in range(50):
        lead = await create_lead(
            workspace.owner, fullName=f"Lead {index}", ownerId=workspace.admin_id
        )
        await graphql(
            workspace.admin,
            ADD_ACTIVITY,
            {"leadId": lead["id"], "input": {"type": "call", "body": f"Call {index}"}},
        )

    small = await statements_for_page(server, workspace.member, 5)
    large = await statements_for_page(server, workspace.member, 50)

    # The session lookup, the lead count, the lead page, the activities, the
    # owners, and the authors (known only once the activities are loaded).
    assert large == small
    assert large == 6, server.statements.statements
