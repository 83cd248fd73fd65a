"""POST /api/auth/register: a new workspace, its owner, a session and its stages."""

import asyncio
from typing import Any

import pytest
from sqlalchemy import func, select

from db.models import AuthSession, PipelineStage, Tenant, User
from tests.conftest import PASSWORD, Server, graphql, register, unique_slug
from tests.support.cookies import set_cookies

THIRTY_DAYS = 30 * 24 * 60 * 60


def registration(slug: str, **overrides: str) -> dict[str, str]:
    body = {
        "tenantName": f"Workspace {slug}",
        "tenantSlug": slug,
        "email": f"owner@{slug}.example.com",
        "password": PASSWORD,
    }
    body.update(overrides)
    return body


async def tenant_count(server: Server, slug: str) -> int:
    async with server.sessions() as db:
        count = await db.scalar(
            select(func.count()).select_from(Tenant).where(Tenant.slug == slug)
        )
    assert count is not None
    return int(count)


async def test_register_returns_owner_and_tenant(server: Server) -> None:
    slug = unique_slug()
    async with server.client() as client:
        response = await client.post("/api/auth/register", json=registration(slug))

    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"user", "tenant"}
    assert set(body["user"]) == {"id", "email", "name", "role"}
    assert set(body["tenant"]) == {"id", "name", "slug"}
    assert body["user"]["role"] == "owner"
    assert body["user"]["email"] == f"owner@{slug}.example.com"
    assert body["user"]["name"] == "owner"
    assert body["tenant"]["slug"] == slug
    assert body["tenant"]["name"] == f"Workspace {slug}"

    async with server.sessions() as db:
        tenant = await db.scalar(select(Tenant).where(Tenant.slug == slug))
        owner = await db.scalar(select(User).where(User.tenant_id == tenant.id))
    assert str(tenant.id) == body["tenant"]["id"]
    assert str(owner.id) == body["user"]["id"]
    assert owner.password_hash.startswith("$argon2id$")


async def test_register_sets_session_cookie(server: Server) -> None:
    slug = unique_slug()
    async with server.client() as client:
        response = await client.post("/api/auth/register", json=registration(slug))
        assert response.status_code == 201, response.text

        cookies = set_cookies(response)
        assert list(cookies) == [server.settings.session_cookie_name]
        cookie = cookies[server.settings.session_cookie_name]
        attributes = cookie.attributes
        assert cookie.value
        assert "httponly" in attributes
        assert attributes["samesite"].lower() == "lax"
        assert attributes["path"] == "/"
        assert attributes["max-age"] == str(THIRTY_DAYS)
        assert "secure" not in attributes

        session = await client.get("/api/auth/session")
    assert session.status_code == 200
    user = session.json()["user"]
    assert user["id"] == response.json()["user"]["id"]
    assert user["email"] == f"owner@{slug}.example.com"
    assert user["role"] == "owner"
    assert user["tenantId"] == response.json()["tenant"]["id"]


async def test_register_seeds_pipeline_stages(server: Server) -> None:
    client, _ = await register(server)
    try:
        body = await graphql(client, "{ pipelineStages { key position } }")
    finally:
        await client.aclose()

    assert "errors" not in body, body
    stages = body["data"]["pipelineStages"]
    assert [stage["key"] for stage in stages] == [
        "new",
        "contacted",
        "qualified",
        "registered",
        "funded",
        "active",
        "lost",
    ]
    assert [stage["position"] for stage in stages] == list(range(7))


INVALID_INPUTS = [
    pytest.param({"tenantSlug": "ab"}, "tenantSlug", id="slug-too-short"),
    pytest.param({"tenantSlug": "a" * 41}, "tenantSlug", id="slug-too-long"),
    pytest.param({"tenantSlug": "Acme-{n}"}, "tenantSlug", id="slug-uppercase"),
    pytest.param({"tenantSlug": "acme--{n}"}, "tenantSlug", id="slug-double-hyphen"),
    pytest.param({"tenantSlug": "-acme-{n}"}, "tenantSlug", id="slug-leading-hyphen"),
    pytest.param({"tenantSlug": "acme-{n}-"}, "tenantSlug", id="slug-trailing-hyphen"),
    pytest.param({"tenantSlug": "acme_{n}"}, "tenantSlug", id="slug-underscore"),
    pytest.param({"tenantSlug": "admin"}, "tenantSlug", id="slug-reserved-admin"),
    pytest.param({"tenantSlug": "api"}, "tenantSlug", id="slug-reserved-api"),
    pytest.param({"email": "not-an-email"}, "email", id="email-no-at"),
    pytest.param({"email": "owner@"}, "email", id="email-no-domain"),
    pytest.param({"password": "x" * 7}, "password", id="password-seven-chars"),
    pytest.param({"tenantName": ""}, "tenantName", id="tenant-name-empty"),
    pytest.param({"tenantName": "   "}, "tenantName", id="tenant-name-blank"),
]


@pytest.mark.parametrize(("overrides", "field"), INVALID_INPUTS)
async def test_register_rejects_invalid_input(
    server: Server, overrides: dict[str, str], field: str
) -> None:
    slug = unique_slug()
    suffix = slug.rsplit("-", 1)[1]
    values = {key: value.replace("{n}", suffix) for key, value in overrides.items()}
    body = registration(slug, **values)

    async with server.client() as client:
        response = await client.post("/api/auth/register", json=body)

    assert response.status_code == 400, response.text
    assert set(response.json()) == {"error"}
    assert field in response.json()["error"]
    assert "set-cookie" not in response.headers
    assert await tenant_count(server, body["tenantSlug"]) == 0
    assert await tenant_count(server, slug) == 0


async def test_register_rejects_taken_slug(server: Server) -> None:
    client, first = await register(server)
    await client.aclose()
    slug = first["tenant"]["slug"]

    body = registration(slug, email=f"second@{slug}.example.com")
    async with server.client() as other:
        response = await other.post("/api/auth/register", json=body)

    assert response.status_code == 400, response.text
    assert response.json() == {"error": f"tenantSlug '{slug}' is already taken"}
    assert "set-cookie" not in response.headers
    assert await tenant_count(server, slug) == 1
    async with server.sessions() as db:
        second = await db.scalar(
            select(User).where(User.email == f"second@{slug}.example.com")
        )
    assert second is None


@pytest.mark.parametrize(
    "email",
    [
        pytest.param("owner@{slug}.example.com", id="same-case"),
        pytest.param("OWNER@{slug}.EXAMPLE.COM", id="upper-case"),
        pytest.param("  Owner@{slug}.example.com ", id="mixed-case-padded"),
    ],
)
async def test_register_rejects_taken_email(server: Server, email: str) -> None:
    client, first = await register(server)
    await client.aclose()
    taken_email = email.format(slug=first["tenant"]["slug"])
    new_slug = unique_slug()

    async with server.client() as other:
        response = await other.post(
            "/api/auth/register", json=registration(new_slug, email=taken_email)
        )

    assert response.status_code == 400, response.text
    assert response.json() == {"error": "email is already registered"}
    assert "set-cookie" not in response.headers
    assert await tenant_count(server, new_slug) == 0


async def test_register_same_slug_concurrently(server: Server) -> None:
    slug = unique_slug()
    attempts = 5
    clients = [server.client() for _ in range(attempts)]
    try:
        responses = await asyncio.gather(
            *(
                client.post(
                    "/api/auth/register",
                    json=registration(slug, email=f"owner{i}@{slug}.example.com"),
                )
                for i, client in enumerate(clients)
            )
        )
    finally:
        for client in clients:
            await client.aclose()

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [201] + [400] * (attempts - 1), [r.text for r in responses]
    for response in responses:
        if response.status_code == 400:
            assert response.json() == {"error": f"tenantSlug '{slug}' is already taken"}
    assert await tenant_count(server, slug) == 1

    winner = next(r.json() for r in responses if r.status_code == 201)
    async with server.sessions() as db:
        owners = (
            await db.scalars(
                select(User.email).where(User.email.like(f"%@{slug}.example.com"))
            )
        ).all()
        stages = await db.scalar(
            select(func.count())
            .select_from(PipelineStage)
            .where(PipelineStage.tenant_id == Tenant.id, Tenant.slug == slug)
        )
        sessions = await db.scalar(
            select(func.count())
            .select_from(AuthSession)
            .where(
                AuthSession.user_id.in_(select(User.id).where(User.email.in_(owners)))
            )
        )
    assert owners == [winner["user"]["email"]]
    assert stages == 7
    assert sessions == 1


async def test_register_same_email_concurrently(server: Server) -> None:
    email = f"owner@{unique_slug()}.example.com"
    slugs = [unique_slug() for _ in range(4)]
    clients = [server.client() for _ in slugs]
    try:
        responses = await asyncio.gather(
            *(
                client.post("/api/auth/register", json=registration(slug, email=email))
                for slug, client in zip(slugs, clients, strict=True)
            )
        )
    finally:
        for client in clients:
            await client.aclose()

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [201, 400, 400, 400], [r.text for r in responses]
    for response in responses:
        if response.status_code == 400:
            assert response.json() == {"error": "email is already registered"}
    created = [await tenant_count(server, slug) for slug in slugs]
    assert sorted(created) == [0, 0, 0, 1]


def response_texts(*responses: Any) -> str:
    return "\n".join(response.text for response in responses)


async def test_register_never_echoes_password(server: Server) -> None:
    password = "a-very-distinctive-passphrase-42"
    slug = unique_slug()
    async with server.client() as client:
        created = await client.post(
            "/api/auth/register", json=registration(slug, password=password)
        )
        duplicate = await client.post(
            "/api/auth/register", json=registration(slug, password=password)
        )
        invalid = await client.post(
            "/api/auth/register",
            json=registration(unique_slug(), email="bad", password=password),
        )
        graphql_body = await graphql(
            client,
            "mutation($input: RegisterInput!) { register(input: $input) "
            "{ user { id } } }",
            {"input": {**registration(slug, password=password), "tenantSlug": 5}},
        )

    assert created.status_code == 201
    assert duplicate.status_code == 400
    assert invalid.status_code == 400
    assert "errors" in graphql_body
    assert password not in response_texts(created, duplicate, invalid)
    assert password not in str(graphql_body)
