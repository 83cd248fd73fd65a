"""The /graphql endpoint over HTTP: transports, malformed requests, limits, errors."""

import json
import re
from collections.abc import AsyncIterator, Iterator
from html.parser import HTMLParser
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import pytest_asyncio
import strawberry
from graphql import get_introspection_query
from strawberry.extensions import SchemaExtension

from schema.extensions import ErrorCodes
from tests.conftest import Server, Workspace, graphql, register

LEAD_TOTAL = "{ leads { total } }"
CREATE_LEAD = 'mutation { createLead(input: {fullName: "Over GET"}) { id } }'


@pytest.fixture
async def anonymous(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    async with server.client() as client:
        yield client


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def owner(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    """An owner shared by the tests whose requests are rejected or only read."""
    client, _ = await register(server)
    yield client
    await client.aclose()


async def post_raw(
    client: httpx.AsyncClient, content: bytes, content_type: str = "application/json"
) -> httpx.Response:
    return await client.post(
        "/graphql", content=content, headers={"Content-Type": content_type}
    )


def bad_request(message: str) -> dict[str, Any]:
    return {"errors": [{"message": message, "extensions": {"code": "BAD_USER_INPUT"}}]}


def only_error(body: dict[str, Any]) -> dict[str, Any]:
    assert body["data"] is None, body
    assert len(body["errors"]) == 1, body
    error: dict[str, Any] = body["errors"][0]
    return error


async def lead_total(client: httpx.AsyncClient) -> int:
    body = await graphql(client, LEAD_TOTAL)
    total: int = body["data"]["leads"]["total"]
    return total


async def test_post_json_query(workspace: Workspace) -> None:
    body = await graphql(workspace.owner, "{ me { id email role } }")

    assert body == {
        "data": {
            "me": {
                "id": workspace.owner_id,
                "email": workspace.owner_email,
                "role": "owner",
            }
        }
    }


async def test_get_query_string(workspace: Workspace) -> None:
    response = await workspace.owner.get(
        "/graphql",
        params={
            "query": "query($n: Int!) { me { id } leads(pageSize: $n) { pageSize } }",
            "variables": '{"n": 7}',
        },
        headers={"Accept": "application/json"},
    )

    assert response.status_code == 200, response.text
    assert response.json() == {
        "data": {"me": {"id": workspace.owner_id}, "leads": {"pageSize": 7}}
    }


async def test_get_mutation_rejected(workspace: Workspace) -> None:
    response = await workspace.owner.get(
        "/graphql",
        params={"query": CREATE_LEAD},
        headers={"Accept": "application/json"},
    )

    assert response.status_code == 400
    assert response.json() == bad_request("mutations are not allowed when using GET")
    assert await lead_total(workspace.owner) == 0


@pytest.mark.parametrize(
    "content",
    [b'{"query": "{ me { id } }"', b"{'query': 1}", b"", b"\xff\xfe", b"NaN"],
    ids=["truncated", "single-quotes", "empty", "not-utf8", "nan"],
)
async def test_malformed_json_body(owner: httpx.AsyncClient, content: bytes) -> None:
    response = await post_raw(owner, content)

    assert response.status_code == 400
    assert response.json() == bad_request("Unable to parse request body as JSON")


@pytest.mark.parametrize(
    "content",
    [b"[]", b'[{"query": "{ me { id } }"}]', b"5", b'"{ me { id } }"', b"null"],
    ids=["empty-array", "batch", "number", "string", "null"],
)
async def test_non_object_body(owner: httpx.AsyncClient, content: bytes) -> None:
    response = await post_raw(owner, content)

    assert response.status_code == 400
    assert response.json() == bad_request("The request body must be a JSON object")


@pytest.mark.parametrize("variables", [[], "x", 5, True], ids=repr)
async def test_variables_not_object(owner: httpx.AsyncClient, variables: Any) -> None:
    content = json.dumps({"query": "{ me { id } }", "variables": variables})

    response = await post_raw(owner, content.encode())

    assert response.status_code == 400
    assert response.json() == bad_request(
        "The GraphQL operation's `variables` must be an object or null, if provided."
    )


async def test_deeply_nested_json(owner: httpx.AsyncClient) -> None:
    nested = b'{"a":' * 5000 + b"1" + b"}" * 5000
    content = b'{"query": "{ me { id } }", "variables": ' + nested + b"}"

    response = await post_raw(owner, content)

    assert response.status_code == 400
    assert response.json() == bad_request("Request body is nested too deeply")


async def test_unpaired_surrogate_variable(workspace: Workspace) -> None:
    query = "mutation($i: LeadCreateInput!) { createLead(input: $i) { id } }"
    content = json.dumps({"query": query, "variables": {"i": {"fullName": "\ud800"}}})

    response = await post_raw(workspace.owner, content.encode())

    assert response.status_code == 400
    assert response.json() == bad_request(
        "Request body has a string with an unpaired UTF-16 surrogate escape"
    )
    assert await lead_total(workspace.owner) == 0


async def test_unknown_operation_name(owner: httpx.AsyncClient) -> None:
    content = json.dumps(
        {"query": "query Me { me { id } }", "operationName": "Missing"}
    )

    response = await post_raw(owner, content.encode())

    assert response.status_code == 400
    assert response.json() == bad_request('Unknown operation named "Missing".')


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/graphql",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "",
    ],
)
async def test_non_json_content_type(
    owner: httpx.AsyncClient, content_type: str
) -> None:
    response = await post_raw(owner, b'{"query": "{ me { id } }"}', content_type)

    assert response.status_code == 400
    assert response.json() == bad_request("Unsupported content type")


async def test_body_over_limit(server: Server, owner: httpx.AsyncClient) -> None:
    limit = server.settings.max_body_bytes
    content = json.dumps({"query": "{ me { id } }", "padding": "x" * limit})

    response = await post_raw(owner, content.encode())

    assert response.status_code == 413
    assert response.json() == bad_request(f"Request body is larger than {limit} bytes")


def nested_query(depth: int) -> str:
    # Real fields for the first levels, then made-up ones: no type of the
    # schema nests deeply enough, and the depth rule counts fields regardless.
    names = ["leads", "items", "activities", "author"]
    names += [f"level{n}" for n in range(len(names), depth)]
    selection = "id"
    for name in reversed(names[:depth]):
        selection = f"{name} {{ {selection} }}"
    return f"query Deep {{ {selection} }}"


async def test_depth_over_limit(server: Server, owner: httpx.AsyncClient) -> None:
    limit = server.settings.graphql_max_depth

    over = await graphql(owner, nested_query(limit + 1))
    at_limit = await graphql(owner, nested_query(limit))

    message = f"'Deep' exceeds maximum operation depth of {limit}"
    assert over["data"] is None
    assert {"message": message, "code": "BAD_USER_INPUT"} in [
        {"message": e["message"], "code": e["extensions"]["code"]}
        for e in over["errors"]
    ]
    assert message not in json.dumps(at_limit)
    assert "depth" not in json.dumps(at_limit)


async def test_aliases_over_limit(server: Server, owner: httpx.AsyncClient) -> None:
    limit = server.settings.graphql_max_aliases

    def aliased(count: int) -> str:
        return "{ " + " ".join(f"a{n}: __typename" for n in range(count)) + " }"

    over = await graphql(owner, aliased(limit + 1))
    at_limit = await graphql(owner, aliased(limit))

    error = only_error(over)
    assert error["message"] == f"{limit + 1} aliases found. Allowed: {limit}"
    assert error["extensions"] == {"code": "BAD_USER_INPUT"}
    assert at_limit == {"data": {f"a{n}": "Query" for n in range(limit)}}


async def test_tokens_over_limit(server: Server, owner: httpx.AsyncClient) -> None:
    limit = server.settings.graphql_max_tokens
    # Braces add two tokens, so this document has limit + 1 tokens.
    query = "{ " + " ".join(["__typename"] * (limit - 1)) + " }"

    body = await graphql(owner, query)

    error = only_error(body)
    assert error["message"] == (
        f"Syntax Error: Document contains more than {limit} tokens. Parsing aborted."
    )
    assert error["extensions"] == {"code": "BAD_USER_INPUT"}


@pytest.mark.parametrize("full", [False, True], ids=["default", "all-options"])
async def test_introspection_within_limits(
    anonymous: httpx.AsyncClient, full: bool
) -> None:
    options: dict[str, bool] = {}
    if full:
        options = {
            "descriptions": True,
            "specified_by_url": True,
            "directive_is_repeatable": True,
            "schema_description": True,
            "input_value_deprecation": True,
        }

    body = await graphql(anonymous, get_introspection_query(**options))

    assert "errors" not in body, body["errors"]
    schema = body["data"]["__schema"]
    assert schema["queryType"]["name"] == "Query"
    assert "Lead" in {type_["name"] for type_ in schema["types"]}


class AssetLinks(HTMLParser):
    """Collects the src of script tags and the href of link tags."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        wanted = {"script": "src", "link": "href"}.get(tag)
        for name, value in attrs:
            if name == wanted and value is not None:
                self.urls.append(value)


def asset_urls(page: str) -> Iterator[str]:
    parser = AssetLinks()
    parser.feed(page)
    yield from parser.urls


async def test_graphiql_page_offline(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get("/graphql", headers={"Accept": "text/html"})

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert re.findall(r"(?:https?:)?//[\w.-]+", response.text) == []
    urls = list(asset_urls(response.text))
    assert len(urls) == 4
    kinds = {"js": ("text/javascript", "application/javascript"), "css": ("text/css",)}
    for url in urls:
        assert url.startswith("/static/graphiql/"), url
        asset = await anonymous.get(url)
        assert asset.status_code == 200, url
        media_type = asset.headers["content-type"].split(";")[0]
        assert media_type in kinds[url.rsplit(".", 1)[1]], (url, media_type)
        assert len(asset.content) > 1000, url


async def test_graphiql_unknown_asset(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get("/static/graphiql/..%2Fpackage.json")

    assert response.status_code == 404
    assert "dependencies" not in response.text


async def test_validation_error_code(owner: httpx.AsyncClient) -> None:
    body = await graphql(owner, "{ noSuchField }")

    error = only_error(body)
    assert error["message"] == "Cannot query field 'noSuchField' on type 'Query'."
    assert error["extensions"] == {"code": "BAD_USER_INPUT"}


async def test_syntax_error_code(owner: httpx.AsyncClient) -> None:
    body = await graphql(owner, "{ me { id }")

    error = only_error(body)
    assert error["message"] == "Syntax Error: Expected Name, found <EOF>."
    assert error["extensions"] == {"code": "BAD_USER_INPUT"}


async def test_anonymous_me_unauthenticated(anonymous: httpx.AsyncClient) -> None:
    body = await graphql(anonymous, "{ me { id } }")

    error = only_error(body)
    assert error["message"] == "Sign in to use this endpoint"
    assert error["extensions"] == {"code": "UNAUTHENTICATED"}
    assert error["path"] == ["me"]


async def test_member_create_forbidden(workspace: Workspace) -> None:
    body = await graphql(
        workspace.member,
        "mutation($i: LeadCreateInput!) { createLead(input: $i) { id } }",
        {"i": {"fullName": "Member's lead"}},
    )

    error = only_error(body)
    assert error["message"] == "This action needs the owner or admin role"
    assert error["extensions"] == {"code": "FORBIDDEN"}
    assert await lead_total(workspace.owner) == 0


async def test_other_tenant_lead_missing(
    workspace: Workspace, other_workspace: Workspace
) -> None:
    created = await graphql(
        workspace.owner,
        "mutation($i: LeadCreateInput!) { createLead(input: $i) { id } }",
        {"i": {"fullName": "Private lead"}},
    )
    lead_id = created["data"]["createLead"]["id"]

    body = await graphql(
        other_workspace.owner,
        "query($id: ID!) { lead(id: $id) { id fullName } }",
        {"id": lead_id},
    )

    error = only_error(body)
    assert error["message"] == "Lead not found"
    assert error["extensions"] == {"code": "NOT_FOUND"}
    assert "Private lead" not in json.dumps(body)


# Masking, on a schema of its own, so the failing resolver needs no product code.

SECRET = "secret detail"


@strawberry.type
class FailingQuery:
    @strawberry.field
    def boom(self) -> str:
        raise RuntimeError(SECRET)

    @strawberry.field
    def fine(self) -> str:
        return "ok"


class FailingHook(SchemaExtension):
    def on_validate(self) -> Iterator[None]:
        raise RuntimeError(SECRET)
        yield  # pragma: no cover - makes this a generator hook


def masked(request_id: str) -> dict[str, Any]:
    return {
        "message": f"Internal server error (request id {request_id})",
        "code": "INTERNAL",
    }


async def test_resolver_error_masked() -> None:
    schema = strawberry.Schema(query=FailingQuery, extensions=[ErrorCodes])

    result = await schema.execute(
        "{ boom fine }", context_value=SimpleNamespace(request_id="req-1")
    )

    assert result.errors is not None
    assert len(result.errors) == 1
    error = result.errors[0]
    assert {"message": error.message, **(error.extensions or {})} == {
        **masked("req-1"),
        "requestId": "req-1",
    }
    assert SECRET not in json.dumps([e.formatted for e in result.errors])


async def test_hook_error_masked() -> None:
    schema = strawberry.Schema(query=FailingQuery, extensions=[FailingHook, ErrorCodes])

    result = await schema.execute(
        "{ fine }", context_value=SimpleNamespace(request_id="req-2")
    )

    assert result.data is None
    assert result.errors is not None
    assert [{"message": e.message, **(e.extensions or {})} for e in result.errors] == [
        {**masked("req-2"), "requestId": "req-2"}
    ]
    assert SECRET not in json.dumps([e.formatted for e in result.errors])
