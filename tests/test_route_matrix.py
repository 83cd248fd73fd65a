"""Matrices over the REST route table: sign-in, tenancy, roles and request bodies.

Every case is generated from ``rest_compat.routes.ROUTES``, so a new row is
covered as soon as it is added. A route with a path parameter that no entry of
``PATH_OBJECTS`` creates fails here until a factory for it is added.
"""

import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import pytest_asyncio
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLScalarType,
    Undefined,
    get_named_type,
    type_from_ast,
)
from sqlalchemy import func, select

from db.models import TronTransfer
from rest_compat.operations import load_operations
from rest_compat.routes import ROUTES, SPREAD_BODY, RestRoute
from schema import build_schema
from tests.conftest import Server, Workspace, register, signed_headers
from tests.fakes.bot_api import FakeBotApi

SIGN_IN_MESSAGE = "Sign in to use this endpoint"
ROLE_MESSAGE = "This action needs the owner or admin role"

PRIVATE_ROUTES = [route for route in ROUTES if not route.public]
WRITE_ROUTES = [route for route in ROUTES if route.writes and not route.public]
BODY_ROUTES = [route for route in ROUTES if route.body is not None]


def route_id(route: RestRoute) -> str:
    return f"{route.method} {route.path}"


async def create_lead(client: httpx.AsyncClient) -> str:
    response = await client.post(
        "/api/leads",
        json={"fullName": f"Lead {uuid.uuid4().hex[:8]}", "tags": ["matrix"]},
    )
    assert response.status_code == 201, response.text
    lead_id: str = response.json()["id"]
    return lead_id


@dataclass(frozen=True)
class PathObject:
    """What a path parameter names: its entity, how to create one, where to read it."""

    entity: str
    create: Callable[[httpx.AsyncClient], Awaitable[str]]
    read_path: str


async def create_example_partner(client: httpx.AsyncClient) -> str:
    """Create the partner that the conversion route's example body names."""
    response = await client.post(
        "/graphql",
        json={
            "query": 'mutation { createPartner(input: {name: "Jane", '
            'code: "janes_code"}) { id } }'
        },
    )
    partner_id: str = response.json()["data"]["createPartner"]["id"]
    return partner_id


# Objects that a route's example body names, by operation, and the error
# another workspace gets for naming them.
BODY_OBJECTS: dict[str, tuple[Callable[[httpx.AsyncClient], Awaitable[str]], str]] = {
    "RecordConversion": (
        create_example_partner,
        "partnerCode 'janes_code' is not a partner",
    ),
}

# The session's fake Bot API, for factories that need a bot the fake accepts.
FAKES: dict[str, FakeBotApi] = {}


@pytest.fixture(scope="module", autouse=True)
def remember_bot_api(bot_api: FakeBotApi) -> None:
    FAKES["bot_api"] = bot_api


async def create_bot(client: httpx.AsyncClient) -> str:
    token = FAKES["bot_api"].add_bot(f"path_{uuid.uuid4().hex[:8]}_bot")
    response = await client.post("/api/onboarding/bots", json={"botToken": token})
    assert response.status_code == 201, response.text
    bot_id: str = response.json()["id"]
    return bot_id


# A GraphQL GET that reads a bot's steps; braces are percent-encoded, so the
# path survives str.format.
BOT_STEPS_PATH = (
    "/graphql?query=%7B%20botSteps(botId%3A%20%22{id}%22)%20"
    "%7B%20key%20type%20text%20%7D%20%7D"
)


async def create_signal(client: httpx.AsyncClient) -> str:
    response = await client.post(
        "/api/copy-trading/signals",
        json={
            "pair": "EURUSD",
            "direction": "long",
            "entry": "1.085",
            "stopLoss": "1.080",
            "takeProfits": ["1.090"],
        },
    )
    assert response.status_code == 201, response.text
    signal_id: str = response.json()["id"]
    return signal_id


# A GraphQL GET that reads a signal's state and events, encoded as above.
SIGNAL_PATH = (
    "/graphql?query=%7B%20signal(id%3A%20%22{id}%22)%20"
    "%7B%20status%20stopLoss%20events%20%7B%20type%20%7D%20%7D%20%7D"
)

PATH_OBJECTS: dict[str, PathObject] = {
    "leadId": PathObject("Lead", create_lead, "/api/leads/{id}"),
    "botId": PathObject("Bot", create_bot, BOT_STEPS_PATH),
    "signalId": PathObject("Signal", create_signal, SIGNAL_PATH),
}


@dataclass
class Objects:
    """Ids by path parameter name, of objects created to fill route paths with."""

    ids: dict[str, str]

    def path(self, route: RestRoute) -> str:
        path = route.path
        for name in route.path_params:
            path = path.replace("{" + name + "}", self.ids[name])
        return path


def path_object(name: str) -> PathObject:
    assert name in PATH_OBJECTS, f"add a factory for {{{name}}} to PATH_OBJECTS"
    return PATH_OBJECTS[name]


async def create_objects(workspace: Workspace, route: RestRoute) -> Objects:
    """Create the route's path objects, and a lead even if the path names none."""
    ids: dict[str, str] = {}
    for name in route.path_params:
        ids[name] = await path_object(name).create(workspace.owner)
    ids.setdefault("leadId", await create_lead(workspace.owner))
    return Objects(ids)


def random_ids(route: RestRoute) -> Objects:
    return Objects({name: str(uuid.uuid4()) for name in route.path_params})


def not_found_message(route: RestRoute) -> str:
    return f"{path_object(route.path_params[0]).entity} not found"


def headers_for(route: RestRoute, content: bytes, content_type: str) -> dict[str, str]:
    """Return the request headers, signing the body for signed webhook routes."""
    headers = signed_headers(content) if route.signed_webhook else {}
    headers["Content-Type"] = content_type
    return headers


async def call(
    client: httpx.AsyncClient,
    route: RestRoute,
    path: str,
    body: dict[str, Any] | None = None,
) -> httpx.Response:
    if route.body is None:
        return await client.request(route.method, path)
    content = json.dumps(body or route.example).encode()
    return await client.request(
        route.method,
        path,
        content=content,
        headers=headers_for(route, content, "application/json"),
    )


async def workspace_state(workspace: Workspace, objects: Objects) -> list[Any]:
    """Read the lead list and each object, as the workspace's owner."""
    listing = await workspace.owner.get("/api/leads", params={"pageSize": 100})
    assert listing.status_code == 200, listing.text
    state: list[Any] = [listing.json()]
    for name, object_id in objects.ids.items():
        read_path = path_object(name).read_path.format(id=object_id)
        response = await workspace.owner.get(read_path)
        state.append((response.status_code, response.json()))
    return state


@pytest.fixture
async def anonymous(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    async with server.client() as client:
        yield client


@pytest.mark.parametrize("cookie", [None, "forged-token"], ids=["none", "forged"])
@pytest.mark.parametrize("route", PRIVATE_ROUTES, ids=route_id)
async def test_route_without_session(
    server: Server, anonymous: httpx.AsyncClient, route: RestRoute, cookie: str | None
) -> None:
    if cookie is not None:
        anonymous.cookies.set(server.settings.session_cookie_name, cookie)

    response = await call(anonymous, route, random_ids(route).path(route))

    assert response.status_code == 401
    assert response.json() == {"error": SIGN_IN_MESSAGE}


@pytest.mark.parametrize(
    "route", [route for route in PRIVATE_ROUTES if route.body], ids=route_id
)
async def test_route_session_before_body(
    anonymous: httpx.AsyncClient, route: RestRoute
) -> None:
    # Without a session, even a broken body gets 401: nothing about the
    # input is checked, or reported, before the caller is known.
    response = await anonymous.request(
        route.method,
        random_ids(route).path(route),
        content=b"{broken",
        headers={"Content-Type": "text/plain"},
    )

    assert response.status_code == 401
    assert response.json() == {"error": SIGN_IN_MESSAGE}


def fresh_body(route: RestRoute, bot_api: FakeBotApi) -> dict[str, Any] | None:
    """Return a body that can succeed once, for routes whose example cannot."""
    if route.operation == "ConnectBot":
        # A bot connects to one workspace only, so each call needs a new one.
        return {"botToken": bot_api.add_bot(f"matrix_{uuid.uuid4().hex[:8]}_bot")}
    return None


@pytest.mark.parametrize("route", PRIVATE_ROUTES, ids=route_id)
async def test_route_as_other_tenant(
    workspace: Workspace,
    other_workspace: Workspace,
    route: RestRoute,
    bot_api: FakeBotApi,
) -> None:
    objects = await create_objects(workspace, route)
    body_object = BODY_OBJECTS.get(route.operation)
    if body_object is not None:
        await body_object[0](workspace.owner)
    before = await workspace_state(workspace, objects)

    response = await call(
        other_workspace.owner, route, objects.path(route), fresh_body(route, bot_api)
    )

    if body_object is not None:
        assert response.status_code == 400, response.text
        assert response.json() == {"error": body_object[1]}
    elif route.path_params:
        assert response.status_code == 404, response.text
        assert response.json() == {"error": not_found_message(route)}
        absent = await call(other_workspace.owner, route, random_ids(route).path(route))
        assert (absent.status_code, absent.json()) == (404, response.json())
    elif route.method == "GET":
        assert response.status_code == 200, response.text
        for foreign in (*objects.ids.values(), workspace.tenant_id, workspace.slug):
            assert foreign not in response.text
    else:
        assert response.status_code == route.status, response.text
    assert await workspace_state(workspace, objects) == before


@pytest.mark.parametrize("route", WRITE_ROUTES, ids=route_id)
async def test_write_route_as_member(workspace: Workspace, route: RestRoute) -> None:
    objects = await create_objects(workspace, route)
    before = await workspace_state(workspace, objects)

    response = await call(workspace.member, route, objects.path(route))

    assert response.status_code == 403, response.text
    assert response.json() == {"error": ROLE_MESSAGE}
    assert await workspace_state(workspace, objects) == before


# Request bodies. The cases of fixed_bad_bodies fit any route, and
# derived_bad_bodies builds the others from a route's input type and example.

GRAPHQL_SCHEMA = build_schema()._schema


@dataclass(frozen=True)
class BadBody:
    name: str
    content: bytes
    message: str


def fixed_bad_bodies() -> list[BadBody]:
    not_object = "Request body must be a JSON object, not "
    return [
        BadBody("broken-json", b'{"fullName": ', "Request body is not valid JSON"),
        BadBody("empty", b"", "Request body must be a JSON object, and it is empty"),
        BadBody(
            "blank", b"  \n", "Request body must be a JSON object, and it is empty"
        ),
        BadBody("array", b"[]", not_object + "an array"),
        BadBody("null", b"null", not_object + "null"),
        BadBody("number", b"5", not_object + "a number"),
        BadBody("string", b'"text"', not_object + "a string"),
        BadBody("boolean", b"true", not_object + "a boolean"),
        BadBody("nan", b'{"fullName": NaN}', "Request body is not valid JSON"),
        BadBody(
            "unpaired-surrogate",
            b'{"text": "a\\ud800b"}',
            "Request body has a string with an unpaired UTF-16 surrogate escape",
        ),
        BadBody(
            "deep-nesting",
            # Deeper than Python's recursion limit, yet within every body limit.
            b'{"a": ' * 1500 + b"1" + b"}" * 1500,
            "Request body is nested too deeply",
        ),
    ]


@dataclass(frozen=True)
class BodyField:
    type: Any
    has_default: bool


def body_fields(route: RestRoute) -> dict[str, BodyField]:
    """Return the fields a route's body may carry, with their GraphQL types."""
    assert route.body is not None
    operation = load_operations()[route.operation]
    if route.body == SPREAD_BODY:
        return {
            name: BodyField(type_from_ast(GRAPHQL_SCHEMA, spec.type), spec.has_default)
            for name, spec in operation.variables.items()
            if name not in route.path_params
        }
    type_ = get_named_type(
        type_from_ast(GRAPHQL_SCHEMA, operation.variables[route.body].type)
    )
    assert isinstance(type_, GraphQLInputObjectType)
    return {
        name: BodyField(field.type, field.default_value is not Undefined)
        for name, field in type_.fields.items()
    }


def derived_bad_bodies(route: RestRoute) -> list[BadBody]:
    assert route.example is not None, f"{route_id(route)} needs an example body"
    fields = body_fields(route)
    cases = [
        BadBody(
            "unknown-field",
            json.dumps({**route.example, "bogusField": 1}).encode(),
            "Unknown field 'bogusField'",
        )
    ]
    required = [
        name
        for name, field in fields.items()
        if isinstance(field.type, GraphQLNonNull) and not field.has_default
    ]
    if required:
        body = {k: v for k, v in route.example.items() if k != required[0]}
        cases.append(
            BadBody(
                "missing-required",
                json.dumps(body).encode(),
                f"Missing required field '{required[0]}'",
            )
        )
        cases.append(
            BadBody(
                "null-required",
                json.dumps({**route.example, required[0]: None}).encode(),
                f"Field '{required[0]}' must not be null",
            )
        )
    for name in route.example:
        named = get_named_type(fields[name].type)
        field_type = fields[name].type
        if isinstance(field_type, GraphQLNonNull):
            field_type = field_type.of_type
        if isinstance(field_type, GraphQLList):
            cases.append(
                BadBody(
                    "wrong-type",
                    json.dumps({**route.example, name: 12345}).encode(),
                    f"Field '{name}' must be a JSON array",
                )
            )
            break
        if isinstance(named, GraphQLScalarType) and named.name == "String":
            message = "String cannot represent a non string value: 12345"
        elif isinstance(named, GraphQLEnumType):
            message = f"Enum '{named.name}' cannot represent non-string value: 12345"
        else:
            continue
        cases.append(
            BadBody(
                "wrong-type",
                json.dumps({**route.example, name: 12345}).encode(),
                f"Invalid value for '{name}': {message}",
            )
        )
        break
    return cases


BAD_BODY_CASES = [
    pytest.param(route, case, id=f"{route_id(route)} {case.name}")
    for route in BODY_ROUTES
    for case in [*fixed_bad_bodies(), *derived_bad_bodies(route)]
]


def test_bad_body_cases_cover_routes() -> None:
    # Each body route gets the fixed cases plus an unknown and a wrongly typed
    # field, so a route whose example has no String or enum field shows here.
    names = {(route_id(p.values[0]), p.values[1].name) for p in BAD_BODY_CASES}
    for route in BODY_ROUTES:
        assert (route_id(route), "unknown-field") in names
        assert (route_id(route), "wrong-type") in names


@dataclass
class SharedClients:
    """Clients shared by the tests below, since a rejected request changes nothing."""

    anonymous: httpx.AsyncClient
    owner: httpx.AsyncClient
    objects: Objects

    def target(self, route: RestRoute) -> tuple[httpx.AsyncClient, str]:
        client = self.anonymous if route.public else self.owner
        return client, self.objects.path(route)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def shared(server: Server) -> AsyncIterator[SharedClients]:
    owner, _ = await register(server)
    ids: dict[str, str] = {}
    for route in BODY_ROUTES:
        for name in route.path_params:
            if name not in ids:
                ids[name] = await path_object(name).create(owner)
    async with server.client() as anonymous:
        yield SharedClients(anonymous, owner, Objects(ids))
    await owner.aclose()


PATH_ROUTES = [route for route in ROUTES if route.path_params]


@pytest.mark.parametrize("route", PATH_ROUTES, ids=route_id)
async def test_route_malformed_id(shared: SharedClients, route: RestRoute) -> None:
    path = Objects(dict.fromkeys(route.path_params, "not-a-uuid")).path(route)

    response = await call(shared.owner, route, path)

    assert response.status_code == 404, response.text
    assert response.json() == {"error": not_found_message(route)}


@pytest.mark.parametrize(("route", "case"), BAD_BODY_CASES)
async def test_route_bad_body(
    shared: SharedClients, route: RestRoute, case: BadBody
) -> None:
    client, path = shared.target(route)

    response = await client.request(
        route.method,
        path,
        content=case.content,
        headers=headers_for(route, case.content, "application/json"),
    )

    assert response.status_code == 400, response.text
    assert response.json() == {"error": case.message}


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "", "application/jsonx"],
)
@pytest.mark.parametrize("route", BODY_ROUTES, ids=route_id)
async def test_route_wrong_content_type(
    shared: SharedClients, route: RestRoute, content_type: str
) -> None:
    client, path = shared.target(route)

    content = json.dumps(route.example).encode()
    response = await client.request(
        route.method,
        path,
        content=content,
        headers=headers_for(route, content, content_type),
    )

    assert response.status_code == 415, response.text
    assert response.json() == {"error": "Content-Type must be application/json"}


def oversized_body(route: RestRoute, limit: int) -> bytes:
    body = {**(route.example or {}), "padding": "x" * limit}
    return json.dumps(body).encode()


@pytest.mark.parametrize("chunked", [False, True], ids=["length", "chunked"])
@pytest.mark.parametrize("route", BODY_ROUTES, ids=route_id)
async def test_route_body_too_large(
    server: Server, shared: SharedClients, route: RestRoute, chunked: bool
) -> None:
    client, path = shared.target(route)
    limit = route.max_body_bytes or server.settings.max_body_bytes
    content = oversized_body(route, limit)

    async def stream() -> AsyncIterator[bytes]:
        for start in range(0, len(content), 65536):
            yield content[start : start + 65536]

    response = await client.request(
        route.method,
        path,
        content=stream() if chunked else content,
        headers=headers_for(route, content, "application/json"),
    )

    assert response.status_code == 413, response.text
    assert response.json() == {"error": f"Request body is larger than {limit} bytes"}


SIGNED_ROUTES = [route for route in ROUTES if route.signed_webhook]


def unsigned(content: bytes) -> dict[str, str]:
    return {"Content-Type": "application/json"}


def wrong_secret(content: bytes) -> dict[str, str]:
    other = "whsec_" + "b3RoZXIgc2VjcmV0IG9mIGVub3VnaCBsZW5ndGg="
    return signed_headers(content, secret=other)


def tampered(content: bytes) -> dict[str, str]:
    return signed_headers(content + b" ")


def stale(content: bytes) -> dict[str, str]:
    headers = signed_headers(content)
    headers["webhook-timestamp"] = str(int(headers["webhook-timestamp"]) - 301)
    return headers


@pytest.mark.parametrize(
    "make_headers",
    [unsigned, wrong_secret, tampered, stale],
    ids=["unsigned", "wrong-secret", "tampered", "stale"],
)
@pytest.mark.parametrize("route", SIGNED_ROUTES, ids=route_id)
async def test_signed_route_refuses_bad_signature(
    server: Server,
    shared: SharedClients,
    route: RestRoute,
    make_headers: Callable[[bytes], dict[str, str]],
) -> None:
    content = json.dumps(route.example).encode()

    response = await shared.anonymous.request(
        route.method, route.path, content=content, headers=make_headers(content)
    )

    assert response.status_code == 401, response.text
    assert response.json()["error"].startswith("Invalid webhook signature")
    async with server.sessions() as db:
        recorded = await db.scalar(
            select(func.count())
            .select_from(TronTransfer)
            .where(TronTransfer.txid == route.example["txid"])
        )
    assert recorded == 0
