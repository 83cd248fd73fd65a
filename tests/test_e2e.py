"""End to end: a real `ibhq serve` process, driven the way a script would drive it."""

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.databases import empty_postgres_database, postgres_url

IBHQ = str(Path(sys.executable).parent / "ibhq")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def command_env(
    data_dir: Path, database_url: str | None = None, **extra: str
) -> dict[str, str]:
    env = {
        key: value for key, value in os.environ.items() if not key.startswith("IBHQ_")
    }
    env["IBHQ_DATA_DIR"] = str(data_dir)
    env["IBHQ_PASSWORD_HASH_TIME_COST"] = "1"
    env["IBHQ_PASSWORD_HASH_MEMORY_KIB"] = "1024"
    if database_url:
        env["IBHQ_DATABASE_URL"] = database_url
    env.update(extra)
    return env


def run_ibhq(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [IBHQ, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    """Start `ibhq serve` on a free loopback port and yield its base URL."""
    with empty_or_sqlite(tmp_path) as database_url:
        env = command_env(tmp_path / "var", database_url)
        if database_url:
            migrated = run_ibhq("migrate", env=env)
            assert migrated.returncode == 0, migrated.stderr
        port = free_port()
        log = (tmp_path / "serve.log").open("w")
        process = subprocess.Popen(
            [IBHQ, "serve", "--host", "127.0.0.1", "--port", str(port)],
            env={**env, "IBHQ_PUBLIC_URL": f"http://127.0.0.1:{port}"},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_healthy(url, process)
            yield url
        finally:
            process.terminate()
            process.wait(timeout=20)
            log.close()
        output = (tmp_path / "serve.log").read_text()
        assert "Traceback" not in output, output
        assert "correct horse" not in output


def wait_until_healthy(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, "ibhq serve exited during startup"
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("ibhq serve did not become healthy within 30 seconds")


class empty_or_sqlite:
    """An empty PostgreSQL database when configured, else None (SQLite default)."""

    def __init__(self, _folder: Path) -> None:
        self._context = empty_postgres_database() if postgres_url() else None

    def __enter__(self) -> str | None:
        return self._context.__enter__() if self._context else None

    def __exit__(self, *exc: object) -> None:
        if self._context:
            self._context.__exit__(*exc)


def test_script_walkthrough(served: str) -> None:
    body = {
        "tenantName": "Acme Partners",
        "tenantSlug": "acme-partners",
        "email": "owner@acme.example",
        "password": "correct horse",
    }
    with httpx.Client(base_url=served) as registrar:
        registered = registrar.post("/api/auth/register", json=body)
    assert registered.status_code == 201, registered.text
    assert registered.json()["tenant"]["slug"] == "acme-partners"

    with httpx.Client(base_url=served) as client:
        csrf = client.get("/api/auth/csrf").json()["csrfToken"]
        signed_in = client.post(
            "/api/auth/callback/credentials",
            data={
                "csrfToken": csrf,
                "email": body["email"],
                "password": body["password"],
            },
        )
        assert signed_in.status_code == 302
        assert client.get("/api/auth/session").json()["user"]["email"] == body["email"]

        created = client.post(
            "/api/leads",
            json={
                "fullName": "Alex Morgan",
                "email": "alex@example.com",
                "pipelineStage": "new",
            },
        )
        assert created.status_code == 201, created.text
        lead_id = created.json()["id"]

        listed = client.get("/api/leads")
        assert listed.status_code == 200
        assert [item["id"] for item in listed.json()["items"]] == [lead_id]

        updated = client.patch(
            f"/api/leads/{lead_id}", json={"pipelineStage": "contacted"}
        )
        assert updated.status_code == 200
        assert updated.json()["pipelineStage"] == "contacted"

        activity = client.post(
            f"/api/leads/{lead_id}/activities",
            json={"type": "call", "body": "Intro call"},
        )
        assert activity.status_code == 201
        timeline = client.get(f"/api/leads/{lead_id}").json()["activities"]
        assert [entry["type"] for entry in timeline] == ["call", "system", "system"]

        assert client.delete(f"/api/leads/{lead_id}").status_code == 204
        assert client.get(f"/api/leads/{lead_id}").status_code == 404
        assert client.get("/api/leads").json()["total"] == 0

        graphql = client.post("/graphql", json={"query": "{ me { email role } }"})
        assert graphql.json() == {
            "data": {"me": {"email": body["email"], "role": "owner"}}
        }


def test_help_for_each_command(tmp_path: Path) -> None:
    env = command_env(tmp_path)
    for command in ([], ["serve"], ["migrate"], ["worker"]):
        result = run_ibhq(*command, "--help", env=env)
        assert result.returncode == 0, result.stderr
        assert "usage: ibhq" in result.stdout
    serve_help = run_ibhq("serve", "--help", env=env).stdout
    assert "--no-workers" in serve_help
    assert "--port" in serve_help


def test_production_needs_secret_key(tmp_path: Path) -> None:
    result = run_ibhq("migrate", env=command_env(tmp_path, IBHQ_ENV="production"))
    serve = run_ibhq("serve", env=command_env(tmp_path, IBHQ_ENV="production"))

    assert result.returncode == 0
    assert serve.returncode == 2
    assert "IBHQ_SECRET_KEY is required when IBHQ_ENV=production" in serve.stderr


def test_generated_secret_key_is_kept(tmp_path: Path) -> None:
    env = command_env(tmp_path / "var")
    # `serve` generates the key before it binds, so a taken port still leaves it.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        first = run_ibhq("serve", "--port", port, env=env)
        key = (tmp_path / "var" / "secret_key").read_text()
        run_ibhq("serve", "--port", port, env=env)

    assert "IBHQ_SECRET_KEY is not set" in first.stderr
    assert (tmp_path / "var" / "secret_key").read_text() == key
    assert oct((tmp_path / "var" / "secret_key").stat().st_mode & 0o777) == "0o600"


@pytest.mark.skipif(postgres_url() is None, reason="needs IBHQ_TEST_POSTGRES_URL")
def test_postgres_schema_behind_refused(tmp_path: Path) -> None:
    with empty_postgres_database() as url:
        result = run_ibhq(
            "serve", "--port", str(free_port()), env=command_env(tmp_path, url)
        )

    assert result.returncode == 3
    assert "run `ibhq migrate` first" in result.stderr
