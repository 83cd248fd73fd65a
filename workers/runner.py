"""Runs the background workers, in the API process or on their own."""

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy.ext.asyncio import async_sessionmaker

from db.engine import RequestSession, create_engine, create_session_factory
from domain.clock import Clock, SystemClock
from integrations.telegram_bot_api import AiogramBotApi
from workers.bot_updates import Pollers, UpdateWorker, UpdateWorkerConfig
from workers.ingest_gate import IngestGate
from workers.maintenance import purge_expired, purge_old_updates
from workers.payment_monitor import PaymentMonitorConfig, run_payment_monitor
from workers.sender import Sender, SenderConfig

logger = logging.getLogger(__name__)

MAINTENANCE_INTERVAL_SECONDS = 600.0


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    login_window: timedelta
    maintenance_interval_seconds: float = MAINTENANCE_INTERVAL_SECONDS
    # None leaves the payment monitor off: no wallets, or no webhook secret.
    payment_monitor: PaymentMonitorConfig | None = None
    # None leaves the Telegram workers (sending, updates, polling) off.
    telegram: "TelegramWorkersConfig | None" = None


@dataclass(frozen=True, slots=True)
class TelegramWorkersConfig:
    api_url: str
    sender: SenderConfig
    updates: UpdateWorkerConfig


@dataclass(frozen=True, slots=True)
class Wakeups:
    """Events that let the API process wake its own workers at once."""

    updates: asyncio.Event = field(default_factory=asyncio.Event)
    jobs: asyncio.Event = field(default_factory=asyncio.Event)
    ingest: IngestGate = field(default_factory=IngestGate)


async def run_workers(
    sessions: async_sessionmaker[RequestSession],
    config: WorkerConfig,
    *,
    clock: Clock | None = None,
    wakeups: Wakeups | None = None,
) -> None:
    """Run every worker loop until cancelled."""
    clock = clock or SystemClock()
    logger.info("workers started")
    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(_maintenance_loop(sessions, config, clock))
            if config.payment_monitor is not None:
                group.create_task(
                    run_payment_monitor(sessions, config.payment_monitor, clock=clock)
                )
            if config.telegram is not None:
                group.create_task(
                    run_telegram_workers(
                        sessions, config.telegram, clock, wakeups or Wakeups()
                    )
                )
    finally:
        logger.info("workers stopped")


async def run_telegram_workers(
    sessions: async_sessionmaker[RequestSession],
    config: TelegramWorkersConfig,
    clock: Clock,
    wakeups: Wakeups,
) -> None:
    """Send the outbox's messages, handle stored updates, and poll."""
    api = AiogramBotApi(config.api_url)
    sender = Sender(
        sessions, api, config.sender, clock, wake=wakeups.jobs, gate=wakeups.ingest
    )
    updates = UpdateWorker(
        sessions,
        config.updates,
        clock,
        on_queued=wakeups.jobs.set,
        wake=wakeups.updates,
        gate=wakeups.ingest,
    )
    pollers = Pollers(sessions, api, config.updates, clock, wakeups.updates.set)
    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(sender.run())
            group.create_task(updates.run())
            group.create_task(pollers.run())
    finally:
        await api.close()


async def _maintenance_loop(
    sessions: async_sessionmaker[RequestSession], config: WorkerConfig, clock: Clock
) -> None:
    while True:
        try:
            async with sessions() as db:
                await purge_expired(
                    db, now=clock.now(), login_window=config.login_window
                )
                await purge_old_updates(db, now=clock.now())
        except Exception:
            # Keep the loop alive through a database outage; the next pass retries.
            logger.exception(
                "maintenance pass failed; retrying in %.0f s",
                config.maintenance_interval_seconds,
            )
        await asyncio.sleep(config.maintenance_interval_seconds)


async def run_standalone(database_url: str, config: WorkerConfig) -> None:
    engine = create_engine(database_url)
    try:
        await run_workers(create_session_factory(engine), config)
    finally:
        await engine.dispose()
