"""Operational endpoints: health, metrics, request ids, OpenAPI, 404 and 405."""

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from graphql import (
    GraphQLInputObjectType,
    GraphQLNonNull,
    Undefined,
    get_named_type,
    type_from_ast,
)

from rest_compat.authjs import authjs_routes
from rest_compat.operations import load_operations
from rest_compat.routes import ROUTES, SPREAD_BODY, RestRoute
from schema import build_schema
from tests.conftest import Server, Workspace

HEX_ID = re.compile(r"[0-9a-f]{32}")


@pytest.fixture
async def anonymous(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    async with server.client() as client:
        yield client


async def test_healthz_ok(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_database_ok(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


def counter_value(metrics: str, labels: str) -> float:
    """Return the ibhq_http_requests_total sample with exactly these labels."""
    prefix = "ibhq_http_requests_total{" + labels + "} "
    for line in metrics.splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix) :])
    return 0.0


async def test_metrics_count_requests(
    anonymous: httpx.AsyncClient, workspace: Workspace
) -> None:
    labels = 'method="GET",route="/api/leads/{leadId}",status="404"'
    before = (await anonymous.get("/metrics")).text

    await workspace.owner.get("/api/leads/00000000-0000-0000-0000-000000000000")
    await workspace.owner.get("/api/leads/11111111-1111-1111-1111-111111111111")
    response = await anonymous.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "# TYPE ibhq_http_requests_total counter" in response.text
    # Labelled by the route template, so ids do not create new series.
    assert counter_value(response.text, labels) == counter_value(before, labels) + 2
    assert "00000000-0000-0000-0000-000000000000" not in response.text


async def test_request_id_valid_kept(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get("/healthz", headers={"X-Request-ID": "abc-1.2_Z"})

    assert response.headers["x-request-id"] == "abc-1.2_Z"


@pytest.mark.parametrize(
    "incoming",
    ["bad id!", "x" * 65, "", "a\tb", "über"],
    ids=["space", "too-long", "empty", "tab", "non-ascii"],
)
async def test_request_id_invalid_replaced(
    anonymous: httpx.AsyncClient, incoming: str
) -> None:
    response = await anonymous.get(
        "/healthz", headers={"X-Request-ID": incoming.encode()}
    )

    assert response.status_code == 200
    assert HEX_ID.fullmatch(response.headers["x-request-id"])
    assert response.headers.get_list("x-request-id") == [
        response.headers["x-request-id"]
    ]


async def test_request_id_generated(anonymous: httpx.AsyncClient) -> None:
    first = await anonymous.get("/healthz")
    second = await anonymous.get("/healthz")

    assert HEX_ID.fullmatch(first.headers["x-request-id"])
    assert HEX_ID.fullmatch(second.headers["x-request-id"])
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


@pytest.fixture
async def openapi(anonymous: httpx.AsyncClient) -> dict[str, Any]:
    response = await anonymous.get("/api/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    document: dict[str, Any] = response.json()
    return document


def documented(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
    }


async def test_openapi_lists_routes(openapi: dict[str, Any]) -> None:
    expected = {(route.method, route.path) for route in ROUTES}
    expected |= {
        (method, route.path)
        for route in authjs_routes()
        for method in route.methods or ()
        if method != "HEAD"
    }

    assert documented(openapi) == expected


async def test_openapi_top_level(server: Server, openapi: dict[str, Any]) -> None:
    assert openapi["openapi"] == "3.1.0"
    assert openapi["info"] == {
        "title": "IBHQ REST API",
        "version": "1.0",
        "description": openapi["info"]["description"],
    }
    assert openapi["servers"] == [{"url": server.settings.public_url}]


async def test_openapi_lead_body(openapi: dict[str, Any]) -> None:
    operation = openapi["paths"]["/api/leads"]["post"]
    body = operation["requestBody"]
    schema = body["content"]["application/json"]["schema"]

    assert body["required"] is True
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["fullName"]
    assert schema["properties"]["fullName"] == {"type": "string"}
    assert operation["security"] == [{"session": []}]


def required_fields(operation_name: str, variable: str) -> list[str]:
    graphql_schema = build_schema()._schema
    variables = load_operations()[operation_name].variables
    if variable == SPREAD_BODY:
        path_params = next(
            route.path_params for route in ROUTES if route.operation == operation_name
        )
        return [
            name
            for name, spec in variables.items()
            if isinstance(type_from_ast(graphql_schema, spec.type), GraphQLNonNull)
            and not spec.has_default
            and name not in path_params
        ]
    spec = variables[variable]
    type_ = get_named_type(type_from_ast(graphql_schema, spec.type))
    assert isinstance(type_, GraphQLInputObjectType)
    return [
        name
        for name, field in type_.fields.items()
        if isinstance(field.type, GraphQLNonNull) and field.default_value is Undefined
    ]


@pytest.mark.parametrize(
    "route",
    [route for route in ROUTES if route.body is not None],
    ids=lambda route: f"{route.method} {route.path}",
)
async def test_openapi_body_schemas(openapi: dict[str, Any], route: RestRoute) -> None:
    assert route.body is not None
    operation = openapi["paths"][route.path][route.method.lower()]
    media = operation["requestBody"]["content"]["application/json"]
    schema = media["schema"]
    required = required_fields(route.operation, route.body)

    assert schema["additionalProperties"] is False
    assert schema.get("required", []) == required
    assert set(media["example"]) <= set(schema["properties"])
    assert "415" in operation["responses"]


@pytest.mark.parametrize(
    "path", ["/nope", "/api/nope", "/api/leads/1/nope", "/graphql/x"]
)
async def test_unknown_path_404(anonymous: httpx.AsyncClient, path: str) -> None:
    response = await anonymous.get(path)

    assert response.status_code == 404
    assert response.json() == {"error": "Not found"}


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "/api/leads", "GET, HEAD, POST"),
        ("PUT", "/api/leads/x", "DELETE, GET, HEAD, PATCH"),
        ("GET", "/api/leads/x/activities", "POST"),
        ("POST", "/healthz", "GET, HEAD"),
        ("DELETE", "/graphql", "GET, HEAD, POST"),
        ("GET", "/api/auth/register", "POST"),
        ("POST", "/api/auth/csrf", "GET, HEAD"),
        ("GET", "/api/auth/callback/credentials", "POST"),
    ],
)
async def test_wrong_method_405(
    anonymous: httpx.AsyncClient, method: str, path: str, allow: str
) -> None:
    response = await anonymous.request(method, path)

    assert response.status_code == 405
    assert response.json() == {"error": "Method not allowed"}
    assert response.headers["allow"] == allow
