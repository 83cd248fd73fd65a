"""The Auth.js-compatible routes under /api/auth: CSRF, sign-in, sessions, sign-out."""

import hashlib
import itertools
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
from argon2 import PasswordHasher, extract_parameters
from sqlalchemy import select, update

from db.models import AuthSession, User
from domain import passwords
from domain.auth import hash_token
from ibhq.app import create_app
from tests.conftest import (
    PASSWORD,
    TEST_SECRET,
    FakeClock,
    Server,
    Workspace,
    graphql,
    make_settings,
    register,
    sign_in,
)
from tests.support.cookies import set_cookies

CSRF_COOKIE = "authjs.csrf-token"
SESSION_COOKIE = "authjs.session-token"
THIRTY_DAYS = timedelta(days=30)

# Each test that may fail a sign-in sends its own client address, so that the
# per-address throttle of one test cannot block another.
_address_numbers = itertools.count(1)


def new_address() -> str:
    number = next(_address_numbers)
    return f"10.{number // 65536 % 256}.{number // 256 % 256}.{number % 256}"


def client_at(server: Server, address: str | None = None) -> httpx.AsyncClient:
    return server.client(headers={"X-Forwarded-For": address or new_address()})


@asynccontextmanager
async def signed_in(server: Server, email: str) -> AsyncIterator[httpx.AsyncClient]:
    client = await sign_in(server, email)
    try:
        yield client
    finally:
        await client.aclose()


async def csrf_token(client: httpx.AsyncClient) -> str:
    response = await client.get("/api/auth/csrf")
    assert response.status_code == 200, response.text
    token: str = response.json()["csrfToken"]
    return token


async def post_credentials(
    client: httpx.AsyncClient,
    email: str,
    password: str = PASSWORD,
    *,
    json_body: bool = False,
    headers: dict[str, str] | None = None,
    fields: dict[str, str] | None = None,
) -> httpx.Response:
    """Fetch a CSRF token and post the credentials form, as the dashboard does."""
    body = {
        "csrfToken": await csrf_token(client),
        "email": email,
        "password": password,
        **(fields or {}),
    }
    if json_body:
        return await client.post(
            "/api/auth/callback/credentials", json=body, headers=headers
        )
    return await client.post(
        "/api/auth/callback/credentials", data=body, headers=headers
    )


async def new_owner(server: Server) -> tuple[str, str]:
    """Register a workspace and return its owner's email and user id."""
    client, body = await register(server)
    await client.aclose()
    return body["user"]["email"], body["user"]["id"]


def failure_url(server: Server) -> str:
    return f"{server.url}/api/auth/signin?error=CredentialsSignin&code=credentials"


def csrf_error_url(server: Server) -> str:
    return f"{server.url}/api/auth/error?error=MissingCSRF"


async def stored_session(server: Server, token: str) -> AuthSession | None:
    async with server.sessions() as db:
        row: AuthSession | None = await db.scalar(
            select(AuthSession).where(AuthSession.token_hash == hash_token(token))
        )
    return row


async def stored_hash(server: Server, email: str) -> str:
    async with server.sessions() as db:
        value = await db.scalar(select(User.password_hash).where(User.email == email))
    assert value is not None
    return str(value)


async def write_hash(server: Server, email: str, password_hash: str) -> None:
    async with server.sessions() as db, db.begin():
        await db.execute(
            update(User).where(User.email == email).values(password_hash=password_hash)
        )


async def leads_status(server: Server, token: str) -> int:
    async with server.client(cookies={SESSION_COOKIE: token}) as client:
        response = await client.get("/api/leads")
    return response.status_code


# CSRF and providers


async def test_csrf_sets_signed_cookie(server: Server) -> None:
    async with server.client() as client:
        response = await client.get("/api/auth/csrf")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"csrfToken"}
    token = body["csrfToken"]
    assert len(token) == 64

    cookie = set_cookies(response)[CSRF_COOKIE]
    digest = hashlib.sha256(token.encode() + TEST_SECRET.encode()).hexdigest()
    assert cookie.value == f"{token}|{digest}"
    assert "httponly" in cookie.attributes
    assert cookie.attributes["samesite"].lower() == "lax"
    assert cookie.attributes["path"] == "/"


async def test_csrf_reuses_valid_cookie(server: Server) -> None:
    async with server.client() as client:
        first = await csrf_token(client)
        second = await csrf_token(client)
    async with server.client() as other:
        third = await csrf_token(other)

    assert second == first
    assert third != first


async def test_csrf_replaces_forged_cookie(server: Server) -> None:
    forged = "a" * 64
    async with server.client(cookies={CSRF_COOKIE: f"{forged}|{'0' * 64}"}) as client:
        token = await csrf_token(client)

    assert token != forged


async def test_providers_lists_credentials(server: Server) -> None:
    async with server.client() as client:
        response = await client.get("/api/auth/providers")

    assert response.status_code == 200
    base = f"{server.url}/api/auth"
    assert response.json() == {
        "credentials": {
            "id": "credentials",
            "name": "Credentials",
            "type": "credentials",
            "signinUrl": f"{base}/signin/credentials",
            "callbackUrl": f"{base}/callback/credentials",
        }
    }


# Session


async def test_session_null_when_signed_out(server: Server) -> None:
    async with server.client() as client:
        response = await client.get("/api/auth/session")
    async with server.client(cookies={SESSION_COOKIE: "not-a-token"}) as client:
        unknown = await client.get("/api/auth/session")

    assert response.status_code == 200
    assert response.text == "null"
    assert response.headers["cache-control"] == "private, no-store"
    assert unknown.status_code == 200
    assert unknown.text == "null"


async def test_session_shows_signed_in_user(server: Server) -> None:
    email, user_id = await new_owner(server)
    async with signed_in(server, email) as client:
        response = await client.get("/api/auth/session")
        token = client.cookies[SESSION_COOKIE]

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"user", "expires"}
    user = body["user"]
    assert user["id"] == user_id
    assert user["email"] == email
    assert user["name"] == "owner"
    assert user["role"] == "owner"
    assert set(user) == {"id", "name", "email", "role", "tenantId"}

    row = await stored_session(server, token)
    assert row is not None
    assert str(row.tenant_id) == user["tenantId"]
    assert body["expires"].endswith("Z")
    expires = datetime.fromisoformat(body["expires"])
    assert expires == row.expires_at.replace(
        microsecond=row.expires_at.microsecond // 1000 * 1000
    )


# Sign-in


async def test_callback_form_signs_in(server: Server) -> None:
    email, user_id = await new_owner(server)
    async with client_at(server) as client:
        response = await post_credentials(
            client, email, fields={"callbackUrl": "/dashboard"}
        )
        session = await client.get("/api/auth/session")

    assert response.status_code == 302, response.text
    assert response.headers["location"] == f"{server.url}/dashboard"
    cookie = set_cookies(response)[SESSION_COOKIE]
    assert cookie.value
    assert "httponly" in cookie.attributes
    assert cookie.attributes["samesite"].lower() == "lax"
    assert cookie.attributes["path"] == "/"
    assert cookie.attributes["max-age"] == str(int(THIRTY_DAYS.total_seconds()))
    assert await stored_session(server, cookie.value) is not None
    assert session.json()["user"]["id"] == user_id


async def test_callback_json_body_signs_in(server: Server) -> None:
    email, user_id = await new_owner(server)
    async with client_at(server) as client:
        response = await post_credentials(
            client,
            email.upper(),
            json_body=True,
            fields={"callbackUrl": "/leads?page=2"},
        )
        session = await client.get("/api/auth/session")

    assert response.status_code == 302, response.text
    assert response.headers["location"] == f"{server.url}/leads?page=2"
    assert SESSION_COOKIE in set_cookies(response)
    assert session.json()["user"]["id"] == user_id


async def test_callback_without_url_goes_home(server: Server) -> None:
    email, _ = await new_owner(server)
    async with client_at(server) as client:
        response = await post_credentials(client, email)

    assert response.status_code == 302, response.text
    assert response.headers["location"] == server.url


@pytest.mark.parametrize(
    "callback_url",
    [
        pytest.param("https://evil.example/steal", id="other-origin"),
        pytest.param("//evil.example/steal", id="scheme-relative"),
        pytest.param("/\\evil.example/steal", id="backslash"),
        pytest.param("http://127.0.0.1:1/dashboard", id="other-port"),
        pytest.param("javascript:alert(1)", id="javascript"),
    ],
)
async def test_callback_rejects_open_redirect(
    server: Server, callback_url: str
) -> None:
    email, _ = await new_owner(server)
    async with client_at(server) as client:
        response = await post_credentials(
            client, email, fields={"callbackUrl": callback_url}
        )

    assert response.status_code == 302, response.text
    assert response.headers["location"] == server.url


async def test_callback_keeps_same_origin_url(server: Server) -> None:
    email, _ = await new_owner(server)
    target = f"{server.url}/leads/123"
    async with client_at(server) as client:
        response = await post_credentials(client, email, fields={"callbackUrl": target})

    assert response.status_code == 302, response.text
    assert response.headers["location"] == target


@pytest.mark.parametrize(
    ("headers", "fields"),
    [
        pytest.param({"X-Auth-Return-Redirect": "1"}, {}, id="header"),
        pytest.param({}, {"json": "true"}, id="json-field"),
    ],
)
async def test_callback_returns_url_as_json(
    server: Server, headers: dict[str, str], fields: dict[str, str]
) -> None:
    email, _ = await new_owner(server)
    async with client_at(server) as client:
        response = await post_credentials(
            client,
            email,
            headers=headers,
            fields={"callbackUrl": "/dashboard", **fields},
        )

    assert response.status_code == 200, response.text
    assert response.json() == {"url": f"{server.url}/dashboard"}
    assert SESSION_COOKIE in set_cookies(response)


async def test_callback_json_failure_returns_url(server: Server) -> None:
    email, _ = await new_owner(server)
    async with client_at(server) as client:
        response = await post_credentials(
            client, email, "wrong password", headers={"X-Auth-Return-Redirect": "1"}
        )

    assert response.status_code == 200, response.text
    assert response.json() == {"url": failure_url(server)}
    assert "set-cookie" not in response.headers


async def test_callback_rejects_wrong_password(server: Server) -> None:
    email, user_id = await new_owner(server)
    async with client_at(server) as client:
        response = await post_credentials(client, email, "wrong password")

    assert response.status_code == 302, response.text
    assert response.headers["location"] == failure_url(server)
    assert "set-cookie" not in response.headers
    async with server.sessions() as db:
        sessions = (
            await db.scalars(
                select(AuthSession.id).where(AuthSession.user_id == uuid.UUID(user_id))
            )
        ).all()
    # Only the session that registration opened.
    assert len(sessions) == 1


async def test_callback_rejects_unknown_email(server: Server) -> None:
    async with client_at(server) as client:
        response = await post_credentials(client, "nobody@unknown.example.com")

    assert response.status_code == 302, response.text
    assert response.headers["location"] == failure_url(server)
    assert "set-cookie" not in response.headers


async def test_callback_rejects_removed_member(
    server: Server, workspace: Workspace
) -> None:
    removed = await graphql(
        workspace.owner,
        "mutation($id: ID!) { removeMember(id: $id) { id } }",
        {"id": workspace.member_id},
    )
    assert "errors" not in removed, removed

    async with client_at(server) as client:
        response = await post_credentials(
            client, f"member@{workspace.slug}.example.com"
        )

    assert response.status_code == 302, response.text
    assert response.headers["location"] == failure_url(server)
    assert "set-cookie" not in response.headers


async def test_callback_rejects_garbage_hash(server: Server) -> None:
    email, _ = await new_owner(server)
    await write_hash(server, email, "not an argon2 hash at all")

    async with client_at(server) as client:
        response = await post_credentials(client, email)

    assert response.status_code == 302, response.text
    assert response.headers["location"] == failure_url(server)
    assert "set-cookie" not in response.headers
    assert await stored_hash(server, email) == "not an argon2 hash at all"


async def test_callback_rejects_missing_fields(server: Server) -> None:
    async with client_at(server) as client:
        token = await csrf_token(client)
        response = await client.post(
            "/api/auth/callback/credentials", data={"csrfToken": token}
        )

    assert response.status_code == 302, response.text
    assert response.headers["location"] == failure_url(server)
    assert "set-cookie" not in response.headers


# CSRF on sign-in


async def test_callback_rejects_missing_csrf(server: Server) -> None:
    email, _ = await new_owner(server)
    async with client_at(server) as client:
        await csrf_token(client)
        response = await client.post(
            "/api/auth/callback/credentials",
            data={"email": email, "password": PASSWORD},
        )

    assert response.status_code == 302, response.text
    assert response.headers["location"] == csrf_error_url(server)
    assert "set-cookie" not in response.headers


async def test_callback_rejects_wrong_csrf(server: Server) -> None:
    email, _ = await new_owner(server)
    async with client_at(server) as client:
        token = await csrf_token(client)
        response = await client.post(
            "/api/auth/callback/credentials",
            data={"csrfToken": token[::-1], "email": email, "password": PASSWORD},
        )

    assert response.status_code == 302, response.text
    assert response.headers["location"] == csrf_error_url(server)
    assert "set-cookie" not in response.headers


async def test_callback_rejects_csrf_without_cookie(server: Server) -> None:
    email, _ = await new_owner(server)
    async with client_at(server) as client:
        token = await csrf_token(client)
        client.cookies.clear()
        response = await client.post(
            "/api/auth/callback/credentials",
            data={"csrfToken": token, "email": email, "password": PASSWORD},
        )

    assert response.status_code == 302, response.text
    assert response.headers["location"] == csrf_error_url(server)
    assert "set-cookie" not in response.headers


@pytest.mark.parametrize(
    "digest",
    [
        pytest.param("0" * 64, id="zero-hash"),
        pytest.param("", id="empty-hash"),
        pytest.param(None, id="no-hash"),
        pytest.param("other-secret", id="other-secret"),
    ],
)
async def test_callback_rejects_forged_csrf_cookie(
    server: Server, digest: str | None
) -> None:
    email, _ = await new_owner(server)
    token = "f" * 64
    if digest is None:
        value = token
    elif digest == "other-secret":
        other = b"another-secret-key-that-is-long-enough-too"
        value = f"{token}|{hashlib.sha256(token.encode() + other).hexdigest()}"
    else:
        value = f"{token}|{digest}"

    async with client_at(server) as client:
        client.cookies.set(CSRF_COOKIE, value)
        response = await client.post(
            "/api/auth/callback/credentials",
            data={"csrfToken": token, "email": email, "password": PASSWORD},
        )

    assert response.status_code == 302, response.text
    assert response.headers["location"] == csrf_error_url(server)
    assert "set-cookie" not in response.headers


# Sign-out


async def test_signout_ends_session(server: Server) -> None:
    email, _ = await new_owner(server)
    async with signed_in(server, email) as client:
        token = client.cookies[SESSION_COOKIE]
        assert await stored_session(server, token) is not None
        assert await leads_status(server, token) == 200

        response = await client.post(
            "/api/auth/signout", data={"csrfToken": await csrf_token(client)}
        )

        assert response.status_code == 302, response.text
        assert response.headers["location"] == server.url
        cleared = set_cookies(response)[SESSION_COOKIE]
        assert cleared.value in ("", '""')
        assert cleared.attributes["max-age"] == "0"
        assert SESSION_COOKIE not in client.cookies
        session = await client.get("/api/auth/session")

    assert await stored_session(server, token) is None
    assert session.text == "null"
    assert await leads_status(server, token) == 401


async def test_signout_requires_csrf(server: Server) -> None:
    email, _ = await new_owner(server)
    async with signed_in(server, email) as client:
        token = client.cookies[SESSION_COOKIE]
        response = await client.post("/api/auth/signout", data={"csrfToken": "x"})

    assert response.status_code == 302, response.text
    assert response.headers["location"] == csrf_error_url(server)
    assert "set-cookie" not in response.headers
    assert await stored_session(server, token) is not None
    assert await leads_status(server, token) == 200


# Password rehash


async def test_signin_rehashes_weak_hash(server: Server) -> None:
    email, _ = await new_owner(server)
    weak = PasswordHasher(time_cost=1, memory_cost=8192).hash(PASSWORD)
    await write_hash(server, email, weak)

    client = await sign_in(server, email)
    await client.aclose()

    # The server hashes with the cost from its settings, which the tests set low.
    rehashed = await stored_hash(server, email)
    configured = PasswordHasher(
        time_cost=server.settings.password_hash_time_cost,
        memory_cost=server.settings.password_hash_memory_kib,
    )
    assert rehashed != weak
    assert rehashed.startswith("$argon2id$")
    parameters = extract_parameters(rehashed)
    assert parameters.time_cost == server.settings.password_hash_time_cost
    assert parameters.memory_cost == server.settings.password_hash_memory_kib
    assert not configured.check_needs_rehash(rehashed)
    assert configured.verify(rehashed, PASSWORD)


async def test_signin_keeps_current_hash(server: Server) -> None:
    email, _ = await new_owner(server)
    before = await stored_hash(server, email)

    client = await sign_in(server, email)
    await client.aclose()

    assert await stored_hash(server, email) == before


class CountingHasher(PasswordHasher):
    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=1024)
        self.verified: list[str] = []

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
        self.verified.append(str(hash))
        return super().verify(hash, password)


@pytest.mark.parametrize(
    "garbage",
    [
        pytest.param("not an argon2 hash at all", id="no-prefix"),
        pytest.param("$argon2id$v=19$m=1024,t=1,p=4$zz$zz", id="bad-fields"),
        pytest.param("", id="empty"),
    ],
)
def test_garbage_hash_verifies_dummy(
    monkeypatch: pytest.MonkeyPatch, garbage: str
) -> None:
    # argon2 rejects a stored hash it cannot read without hashing, so the
    # dummy hash must be verified to keep the failure as slow as a mismatch.
    hasher = CountingHasher()
    monkeypatch.setattr(passwords, "_hasher", hasher)
    monkeypatch.setattr(passwords, "_dummy_hash", None)

    assert passwords.verify_password(garbage, PASSWORD) is False
    assert hasher.verified == [garbage, passwords.dummy_hash()]


# Throttling


async def test_throttle_blocks_email(server: Server, clock: FakeClock) -> None:
    email, _ = await new_owner(server)
    limit = server.settings.login_max_failures_per_email
    async with client_at(server) as client:
        for _ in range(limit):
            failed = await post_credentials(client, email, "wrong password")
            assert failed.status_code == 302
            assert failed.headers["location"] == failure_url(server)

        blocked = await post_credentials(client, email)
    # Another address is blocked too, because the count belongs to the email.
    async with client_at(server) as elsewhere:
        blocked_elsewhere = await post_credentials(elsewhere, email)

    assert blocked.status_code == 429, blocked.text
    retry_after = int(blocked.headers["retry-after"])
    assert 0 < retry_after <= server.settings.login_window_minutes * 60
    assert "set-cookie" not in blocked.headers
    assert set(blocked.json()) == {"error"}
    assert blocked_elsewhere.status_code == 429
    assert "set-cookie" not in blocked_elsewhere.headers

    clock.advance(timedelta(minutes=16))
    async with client_at(server) as client:
        allowed = await post_credentials(client, email)
    assert allowed.status_code == 302, allowed.text
    assert SESSION_COOKIE in set_cookies(allowed)


async def test_throttle_counts_below_limit(server: Server) -> None:
    email, _ = await new_owner(server)
    limit = server.settings.login_max_failures_per_email
    async with client_at(server) as client:
        for _ in range(limit - 1):
            failed = await post_credentials(client, email, "wrong password")
            assert failed.status_code == 302
        allowed = await post_credentials(client, email)
        # A success clears the email's count, so the limit starts over.
        for _ in range(limit - 1):
            failed = await post_credentials(client, email, "wrong password")
            assert failed.status_code == 302
        allowed_again = await post_credentials(client, email)

    assert allowed.status_code == 302, allowed.text
    assert SESSION_COOKIE in set_cookies(allowed)
    assert allowed_again.status_code == 302, allowed_again.text
    assert SESSION_COOKIE in set_cookies(allowed_again)


async def test_throttle_blocks_address(server: Server, clock: FakeClock) -> None:
    email, _ = await new_owner(server)
    address = new_address()
    limit = server.settings.login_max_failures_per_address
    async with client_at(server, address) as client:
        for number in range(limit):
            failed = await post_credentials(
                client, f"nobody{number}@unknown.example.com", "wrong password"
            )
            assert failed.status_code == 302
            assert failed.headers["location"] == failure_url(server)

        blocked = await post_credentials(client, email)
    async with client_at(server) as elsewhere:
        allowed_elsewhere = await post_credentials(elsewhere, email)

    assert blocked.status_code == 429, blocked.text
    assert int(blocked.headers["retry-after"]) > 0
    assert "set-cookie" not in blocked.headers
    assert allowed_elsewhere.status_code == 302, allowed_elsewhere.text

    clock.advance(timedelta(minutes=16))
    async with client_at(server, address) as client:
        allowed = await post_credentials(client, email)
    assert allowed.status_code == 302, allowed.text
    assert SESSION_COOKIE in set_cookies(allowed)


# Sliding sessions


async def test_session_slides_after_a_day(server: Server, clock: FakeClock) -> None:
    email, _ = await new_owner(server)
    async with signed_in(server, email) as client:
        token = client.cookies[SESSION_COOKIE]
        first = await stored_session(server, token)
        assert first is not None

        fresh = await client.get("/api/auth/session")
        assert "set-cookie" not in fresh.headers

        clock.advance(timedelta(days=2))
        before = clock.now()
        response = await client.get("/api/auth/session")
        after = clock.now()

    assert response.status_code == 200
    cookie = set_cookies(response)[SESSION_COOKIE]
    assert cookie.value == token
    assert cookie.attributes["max-age"] == str(int(THIRTY_DAYS.total_seconds()))

    moved = await stored_session(server, token)
    assert moved is not None
    assert moved.expires_at > first.expires_at
    assert before + THIRTY_DAYS <= moved.expires_at <= after + THIRTY_DAYS


async def test_session_slides_on_rest_routes(server: Server, clock: FakeClock) -> None:
    email, _ = await new_owner(server)
    async with signed_in(server, email) as client:
        token = client.cookies[SESSION_COOKIE]
        clock.advance(timedelta(days=2))
        response = await client.get("/api/leads")

    assert response.status_code == 200, response.text
    assert set_cookies(response)[SESSION_COOKIE].value == token


async def test_session_expires_unused(server: Server, clock: FakeClock) -> None:
    email, _ = await new_owner(server)
    async with signed_in(server, email) as client:
        token = client.cookies[SESSION_COOKIE]
        clock.advance(timedelta(days=31))
        session = await client.get("/api/auth/session")
        leads = await client.get("/api/leads")

    row = await stored_session(server, token)
    assert row is not None
    assert row.expires_at < clock.now()

    assert session.status_code == 200
    assert session.text == "null"
    assert "set-cookie" not in session.headers
    assert leads.status_code == 401


# Cookie names over https


async def test_https_uses_prefixed_cookies(
    server: Server, tmp_path: Path, clock: FakeClock
) -> None:
    email, _ = await new_owner(server)
    settings = make_settings(
        server.settings.database_url, tmp_path, public_url="https://127.0.0.1"
    )
    app = create_app(settings, clock=clock)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(
            transport=transport, base_url="https://127.0.0.1"
        ) as client:
            csrf = await client.get("/api/auth/csrf")
            token = csrf.json()["csrfToken"]
            signed_in = await client.post(
                "/api/auth/callback/credentials",
                data={"csrfToken": token, "email": email, "password": PASSWORD},
            )
            session = await client.get("/api/auth/session")
    finally:
        await app.state.engine.dispose()

    csrf_cookies = set_cookies(csrf)
    assert list(csrf_cookies) == ["__Host-authjs.csrf-token"]
    csrf_cookie = csrf_cookies["__Host-authjs.csrf-token"]
    assert "secure" in csrf_cookie.attributes
    assert csrf_cookie.attributes["path"] == "/"
    assert "domain" not in csrf_cookie.attributes

    assert signed_in.status_code == 302, signed_in.text
    assert signed_in.headers["location"] == "https://127.0.0.1"
    session_cookies = set_cookies(signed_in)
    assert list(session_cookies) == ["__Secure-authjs.session-token"]
    assert "secure" in session_cookies["__Secure-authjs.session-token"].attributes
    assert session.json()["user"]["email"] == email


# Logs


# The test's own HTTP client logs the headers it sends and receives.
CLIENT_LOGGERS = ("httpx", "httpcore")


def server_log_text(records: list[logging.LogRecord]) -> str:
    lines: list[Any] = []
    for record in records:
        if record.name.split(".")[0] in CLIENT_LOGGERS:
            continue
        lines.append(record.getMessage())
        if record.exc_text:
            lines.append(record.exc_text)
    return "\n".join(str(line) for line in lines)


async def test_signin_logs_no_secrets(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    email, _ = await new_owner(server)
    wrong = "distinctive-wrong-passphrase-77"
    # INFO is the level the service logs at unless configured otherwise.
    caplog.set_level(logging.INFO)

    async with client_at(server) as client:
        failed = await post_credentials(client, email, wrong)
        response = await post_credentials(client, email)
        token = client.cookies[SESSION_COOKIE]
        csrf_cookie = client.cookies[CSRF_COOKIE]
        await client.get("/api/auth/session")
        await client.post(
            "/api/auth/signout", data={"csrfToken": await csrf_token(client)}
        )

    assert failed.status_code == 302
    assert response.status_code == 302
    text = server_log_text(caplog.records)
    assert "signed in user" in text
    assert "sign-in failed" in text
    assert TEST_SECRET not in text
    assert PASSWORD not in text
    assert wrong not in text
    assert token not in text
    assert hash_token(token) not in text
    assert csrf_cookie.split("|")[0] not in text
