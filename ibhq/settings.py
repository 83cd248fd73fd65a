"""Settings, read from ``IBHQ_*`` environment variables."""

import logging
import secrets
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

logger = logging.getLogger(__name__)

SECRET_KEY_FILE = "secret_key"  # noqa: S105 - a file name, not a secret
PROJECT_ROOT = Path(__file__).resolve().parent.parent


class SettingsError(Exception):
    """A setting is missing or invalid; the message says which and how to fix it."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="IBHQ_", extra="ignore")

    env: Literal["development", "production", "test"] = "development"
    data_dir: Path = Path("var")
    database_url: str = ""
    secret_key: SecretStr | None = None
    public_url: str = "http://127.0.0.1:8000"
    assets_dir: Path = PROJECT_ROOT / "assets" / "node_modules"

    forwarded_allow_ips: str = "127.0.0.1"

    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"

    password_hash_time_cost: int = Field(default=3, ge=1, le=20)
    password_hash_memory_kib: int = Field(default=65536, ge=1024, le=4_194_304)

    session_days: int = Field(default=30, ge=1, le=365)
    login_window_minutes: int = Field(default=15, ge=1)
    login_max_failures_per_email: int = Field(default=5, ge=1)
    login_max_failures_per_address: int = Field(default=20, ge=1)

    graphql_max_depth: int = Field(default=12, ge=3)
    graphql_max_tokens: int = Field(default=5000, ge=100)
    graphql_max_aliases: int = Field(default=30, ge=1)
    max_body_bytes: int = Field(default=1_048_576, ge=1024)

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an absolute http or https URL")
        return value.rstrip("/")

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir / 'ibhq.db'}"

    @property
    def secure_cookies(self) -> bool:
        return self.public_url.startswith("https://")

    @property
    def login_window(self) -> timedelta:
        return timedelta(minutes=self.login_window_minutes)

    @property
    def session_lifetime(self) -> timedelta:
        return timedelta(days=self.session_days)

    # Auth.js names its cookies with the __Secure- and __Host- prefixes when the
    # site is served over https, and without them otherwise.
    @property
    def session_cookie_name(self) -> str:
        prefix = "__Secure-" if self.secure_cookies else ""
        return prefix + "authjs.session-token"

    @property
    def csrf_cookie_name(self) -> str:
        prefix = "__Host-" if self.secure_cookies else ""
        return prefix + "authjs.csrf-token"

    @property
    def callback_cookie_name(self) -> str:
        prefix = "__Secure-" if self.secure_cookies else ""
        return prefix + "authjs.callback-url"

    @cached_property
    def signing_key(self) -> bytes:
        """Return the secret key, generating one into the data folder if allowed."""
        if self.secret_key is not None:
            value = self.secret_key.get_secret_value()
            if len(value) < 32:
                raise SettingsError("IBHQ_SECRET_KEY must be at least 32 characters")
            return value.encode()
        if self.env == "production":
            raise SettingsError(
                "IBHQ_SECRET_KEY is required when IBHQ_ENV=production; "
                "generate one with: python -c 'import secrets; "
                "print(secrets.token_urlsafe(48))'"
            )
        return _load_or_create_key(self.data_dir / SECRET_KEY_FILE).encode()


def _load_or_create_key(path: Path) -> str:
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    try:
        with path.open("x") as handle:
            path.chmod(0o600)
            handle.write(key)
    except FileExistsError:
        # Another process created it first; use theirs.
        return path.read_text().strip()
    logger.warning(
        "IBHQ_SECRET_KEY is not set: generated one into %s. Set IBHQ_SECRET_KEY "
        "in production; sessions and encrypted secrets depend on it.",
        path,
    )
    return key


def load_settings() -> Settings:
    try:
        return Settings()
    except ValueError as error:
        raise SettingsError(f"invalid settings: {error}") from error
