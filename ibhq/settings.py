"""Settings, read from ``IBHQ_*`` environment variables."""

import logging
import secrets
from datetime import timedelta
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from domain.billing import (
    DEFAULT_PRICES,
    MAINNET_USDT,
    MODULES,
    TRON_ADDRESS,
    UNITS_PER_USDT,
    BillingConfig,
    parse_usdt,
)
from domain.errors import InvalidInput
from domain.ratelimits import Limit
from domain.referral_apply import ApplyLimits

logger = logging.getLogger(__name__)

SECRET_KEY_FILE = "secret_key"  # noqa: S105 - a file name, not a secret
PROJECT_ROOT = Path(__file__).resolve().parent.parent


class SettingsError(Exception):
    """A setting is missing or invalid; the message names it and the fix."""


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

    trial_days: int = Field(default=14, ge=0, le=365)
    module_prices: str = ""
    tron_wallets: str = ""
    payment_expiry_minutes: int = Field(default=30, ge=1, le=1440)
    payment_late_window_hours: int = Field(default=24, ge=0, le=720)
    payment_amount_step: Decimal = Decimal("0.0001")
    payment_amount_max_offset: Decimal = Decimal("0.0999")
    usdt_contracts: str = MAINNET_USDT
    billing_webhook_secret: SecretStr | None = None
    billing_webhook_url: str = ""
    trongrid_url: str = "https://api.trongrid.io"
    trongrid_api_key: SecretStr | None = None
    tron_node_url: str = "https://api.trongrid.io"
    tron_confirmations: int = Field(default=19, ge=0, le=1000)
    payment_monitor_interval_seconds: float = Field(default=15, gt=0)
    apply_limit_per_address: int = Field(default=10, ge=1)
    apply_limit_per_workspace: int = Field(default=300, ge=1)
    apply_window_minutes: int = Field(default=60, ge=1)
    telegram_api_url: str = "https://api.telegram.org"
    subscription_poll_seconds: float = Field(default=1, gt=0, le=60)

    graphql_max_depth: int = Field(default=12, ge=3)
    graphql_max_tokens: int = Field(default=5000, ge=100)
    graphql_max_aliases: int = Field(default=30, ge=1)
    graphql_max_selections: int = Field(default=500, ge=250)
    max_body_bytes: int = Field(default=1_048_576, ge=1024)

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an absolute http or https URL")
        return value.rstrip("/")

    @cached_property
    def billing(self) -> BillingConfig:
        """Return the billing configuration, checked; raises SettingsError."""
        try:
            step = parse_usdt(str(self.payment_amount_step), field="step")
            max_offset = parse_usdt(str(self.payment_amount_max_offset), field="offset")
        except InvalidInput as error:
            raise SettingsError(
                "IBHQ_PAYMENT_AMOUNT_STEP and IBHQ_PAYMENT_AMOUNT_MAX_OFFSET must be "
                f"positive with at most 6 decimals: {error.message}"
            ) from None
        if max_offset < step or max_offset >= UNITS_PER_USDT:
            raise SettingsError(
                "IBHQ_PAYMENT_AMOUNT_MAX_OFFSET must be at least the step and below 1"
            )
        return BillingConfig(
            prices=_module_prices(self.module_prices),
            trial=timedelta(days=self.trial_days),
            wallets=_addresses(self.tron_wallets, "IBHQ_TRON_WALLETS"),
            expiry=timedelta(minutes=self.payment_expiry_minutes),
            late_window=timedelta(hours=self.payment_late_window_hours),
            step_units=step,
            max_offset_units=max_offset,
            usdt_contracts=frozenset(
                _addresses(self.usdt_contracts, "IBHQ_USDT_CONTRACTS")
            ),
        )

    @property
    def apply_limits(self) -> ApplyLimits:
        window = timedelta(minutes=self.apply_window_minutes)
        return ApplyLimits(
            per_address=Limit(self.apply_limit_per_address, window),
            per_workspace=Limit(self.apply_limit_per_workspace, window),
        )

    @property
    def webhook_url(self) -> str:
        return self.billing_webhook_url or f"{self.public_url}/api/billing/webhook"

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


def _module_prices(text: str) -> dict[str, Decimal]:
    """Parse ``module=price,...`` over the default catalog."""
    prices = dict(DEFAULT_PRICES)
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, value = item.partition("=")
        if name.strip() not in MODULES:
            raise SettingsError(
                f"IBHQ_MODULE_PRICES names an unknown module '{name.strip()}'; "
                f"modules are {', '.join(MODULES)}"
            )
        try:
            units = parse_usdt(value.strip(), field=f"price of {name.strip()}")
        except InvalidInput as error:
            raise SettingsError(f"IBHQ_MODULE_PRICES: {error.message}") from None
        prices[name.strip()] = Decimal(units) / UNITS_PER_USDT
    return prices


def _addresses(text: str, variable: str) -> tuple[str, ...]:
    addresses = tuple(filter(None, (part.strip() for part in text.split(","))))
    for address in addresses:
        if not TRON_ADDRESS.fullmatch(address):
            raise SettingsError(f"{variable}: '{address}' is not a TRON base58 address")
    return addresses


def load_settings() -> Settings:
    try:
        return Settings()
    except ValueError as error:
        raise SettingsError(f"invalid settings: {error}") from error
