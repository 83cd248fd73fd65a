"""Turns settings into the workers' configuration, the payment monitor's included."""

import logging
from ipaddress import ip_address
from urllib.parse import urlsplit

from ibhq.settings import Settings, SettingsError
from integrations.billing_webhook import secret_problem
from workers.bot_updates import UpdateWorkerConfig
from workers.payment_monitor import PaymentMonitorConfig
from workers.runner import TelegramWorkersConfig, WorkerConfig
from workers.sender import SenderConfig

logger = logging.getLogger(__name__)

HOW_TO_GENERATE = (
    "generate one with: python -c 'import base64, secrets; "
    'print("whsec_" + base64.b64encode(secrets.token_bytes(32)).decode())\' '
    "and give the API the same value"
)


def worker_config(settings: Settings) -> WorkerConfig:
    """Build the workers' configuration, with the payment monitor only if it can run.

    Without receiving wallets the monitor is off. Without a usable webhook
    secret it is off too, with an error in the log; the rest keeps running.
    """
    monitor = None
    if settings.billing.wallets:
        try:
            monitor = payment_monitor_config(settings)
        except SettingsError as error:
            logger.error("payment monitor not started: %s", error)
    else:
        logger.info("payment monitor off: IBHQ_TRON_WALLETS is empty")
    telegram = TelegramWorkersConfig(
        api_url=settings.telegram_api_url,
        sender=SenderConfig(secret_key=settings.signing_key),
        updates=UpdateWorkerConfig(
            secret_key=settings.signing_key, billing=settings.billing
        ),
    )
    return WorkerConfig(
        login_window=settings.login_window,
        payment_monitor=monitor,
        telegram=telegram,
    )


def payment_monitor_config(settings: Settings) -> PaymentMonitorConfig:
    """Build the monitor's configuration; raise SettingsError when it cannot run."""
    billing = settings.billing
    if not billing.wallets:
        raise SettingsError(
            "IBHQ_TRON_WALLETS is empty: there is no wallet to watch; set it to "
            "the comma-separated TRON addresses that receive payments"
        )
    if settings.billing_webhook_secret is None:
        raise SettingsError(
            "IBHQ_BILLING_WEBHOOK_SECRET is not set; the monitor signs its "
            f"reports with it; {HOW_TO_GENERATE}"
        )
    secret = settings.billing_webhook_secret.get_secret_value()
    problem = secret_problem(secret)
    if problem is not None:
        raise SettingsError(f"IBHQ_BILLING_WEBHOOK_SECRET {problem}; {HOW_TO_GENERATE}")
    if settings.env == "test":
        # A test must never reach the real TRON network, not even by default.
        for name, url in (
            ("IBHQ_TRONGRID_URL", settings.trongrid_url),
            ("IBHQ_TRON_NODE_URL", settings.tron_node_url),
        ):
            if not _is_loopback(url):
                raise SettingsError(f"{name} must be a loopback URL when IBHQ_ENV=test")
    api_key = settings.trongrid_api_key
    return PaymentMonitorConfig(
        billing=billing,
        trongrid_url=settings.trongrid_url,
        tron_node_url=settings.tron_node_url,
        webhook_url=settings.webhook_url,
        webhook_secret=secret,
        trongrid_api_key=api_key.get_secret_value() if api_key else None,
        confirmations=settings.tron_confirmations,
        interval_seconds=settings.payment_monitor_interval_seconds,
    )


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False
