"""Regressions for the abuse cases found by a review: costly documents, log
forging, unbounded metric labels, framing, and loose REST input."""

import logging

import pytest
from strawberry.extensions import validation_cache

from schema import build_schema
from tests.conftest import Server, Workspace, graphql


def fragment_bomb(levels: int) -> str:
    """A short document whose fragments double at each level when expanded."""
    fragments = " ".join(
        f"fragment F{i} on Query {{ __typename ...F{i + 1} ...F{i + 1} }}"
        for i in range(levels)
    )
    return f"{{ ...F0 }} {fragments} fragment F{levels} on Query {{ __typename }}"


async def test_fragment_bomb_rejected(server: Server) -> None:
    # Expanded, this document has 2**40 selections, so a response within the
    # client's timeout shows that the guard rejected it without expanding it.
    async with server.client() as client:
        response = await client.post("/graphql", json={"query": fragment_bomb(40)})

    assert response.status_code == 200
    error = response.json()["errors"][0]
    assert error["message"] == (
        "The document selects more than 500 fields once its fragments are "
        "expanded; split it into smaller queries"
    )
    assert error["extensions"]["code"] == "BAD_USER_INPUT"


async def test_fragment_bomb_over_get(server: Server) -> None:
    async with server.client() as client:
        response = await client.get("/graphql", params={"query": fragment_bomb(40)})

    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_many_fields_refused(workspace: Workspace) -> None:
    body = await graphql(workspace.owner, "{ " + "me { id } " * 300 + "}")

    assert body["errors"][0]["message"].startswith("The document selects more than 500")


async def test_selection_limit_allows_normal(workspace: Workspace) -> None:
    body = await graphql(workspace.owner, "{ " + "__typename " * 400 + "}")

    assert "errors" not in body
    assert body["data"] == {"__typename": "Query"}


async def test_unnamed_multiple_operations(workspace: Workspace) -> None:
    document = (
        'mutation B { createLead(input: {fullName: "x"}) { id } } query A { me { id } }'
    )

    refused = await graphql(workspace.owner, document)
    listing = await graphql(workspace.owner, "{ leads { total } }")
    named = await workspace.owner.post(
        "/graphql", json={"query": document, "operationName": "A"}
    )

    assert refused["errors"][0]["message"] == (
        "The document has several operations: name the one to run in operationName"
    )
    assert listing["data"]["leads"]["total"] == 0
    assert named.json()["data"]["me"]["id"]


async def test_access_log_escapes_path(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="ibhq.access"):
        async with server.client() as client:
            await client.get("/nope%0aFORGED%20CRITICAL")

    lines = [
        record.getMessage() for record in caplog.records if record.name == "ibhq.access"
    ]
    assert lines == ["GET /nope%0aFORGED%20CRITICAL 404 " + lines[0].rsplit(" ", 1)[1]]
    assert all("\n" not in line for line in lines)


async def test_metrics_fold_unknown_methods(server: Server) -> None:
    async with server.client() as client:
        for index in range(3):
            await client.request(f"BOGUS{index}", "/healthz")
        metrics = (await client.get("/metrics")).text

    assert "BOGUS" not in metrics
    assert 'method="other"' in metrics


async def test_responses_forbid_framing(server: Server) -> None:
    async with server.client() as client:
        page = await client.get("/api/auth/signin")

    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["content-security-policy"] == "frame-ancestors 'none'"
    assert page.headers["x-content-type-options"] == "nosniff"


async def test_provider_signin_url_serves_form(server: Server) -> None:
    async with server.client() as client:
        providers = (await client.get("/api/auth/providers")).json()
        page = await client.get(providers["credentials"]["signinUrl"])

    assert page.status_code == 200
    assert 'action="/api/auth/callback/credentials"' in page.text


async def test_rest_list_needs_array(workspace: Workspace) -> None:
    response = await workspace.owner.post(
        "/api/leads", json={"fullName": "Alex", "tags": "vip"}
    )

    assert response.status_code == 400
    assert response.json() == {"error": "Field 'tags' must be a JSON array"}
    assert (await workspace.owner.get("/api/leads")).json()["total"] == 0


async def test_lost_reason_needs_lost_stage(workspace: Workspace) -> None:
    created = await workspace.owner.post(
        "/api/leads", json={"fullName": "Alex", "lostReason": "No budget"}
    )

    assert created.status_code == 400
    assert created.json() == {
        "error": "lostReason can only be set on a lead in the lost stage"
    }


async def test_empty_patch_changes_nothing(workspace: Workspace) -> None:
    lead = (await workspace.owner.post("/api/leads", json={"fullName": "Alex"})).json()

    response = await workspace.owner.patch(f"/api/leads/{lead['id']}", json={})

    assert response.status_code == 200
    assert response.json() == lead


async def test_search_folds_unicode_case(workspace: Workspace) -> None:
    await workspace.owner.post("/api/leads", json={"fullName": "Иван Петров"})
    await workspace.owner.post("/api/leads", json={"fullName": "Ünïcödé Trader"})

    cyrillic = await workspace.owner.get("/api/leads", params={"q": "иван"})
    latin = await workspace.owner.get("/api/leads", params={"q": "ÜNÏ"})

    assert [item["fullName"] for item in cyrillic.json()["items"]] == ["Иван Петров"]
    assert [item["fullName"] for item in latin.json()["items"]] == ["Ünïcödé Trader"]


def test_validation_cache_hits() -> None:
    # Strawberry keeps the cache at module level; its key includes the rule
    # classes, which must therefore be the same objects on every request.
    schema = build_schema()
    cache = validation_cache._get_validate_cache(256)
    schema.execute_sync("{ __typename }")
    hits = cache.cache_info().hits

    schema.execute_sync("{ __typename }")

    assert cache.cache_info().hits == hits + 1
