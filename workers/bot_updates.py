"""Handles stored Telegram updates, and long-polls for bots in polling mode.

The update worker takes pending updates one at a time, oldest first, never
one whose chat has an earlier update still pending, and handles each in one
transaction with the replies it queues. An update whose handling fails is
marked failed with the reason, so one bad update cannot stall its chat.

A poller runs per bot in polling mode. It claims the bot with a lease in the
database, so two worker processes never poll one bot (Telegram would reject
the second with 409), and gives the bot up when it is stopped or switched.
"""

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, exists, or_, select, update
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlalchemy.orm import aliased

from db.engine import RequestSession
from db.models import BotUpdate, TelegramBot
from db.tenancy import TENANT_KEY
from domain import bot_runtime
from domain.billing import BillingConfig, module_states
from domain.clock import Clock
from domain.conversations import handle_update
from domain.secrets import decrypt
from domain.telegram import (
    BotApi,
    TelegramConflict,
    TelegramError,
    TelegramRejected,
)
from workers.ingest_gate import IngestGate
from workers.passes import run_passes

logger = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class UpdateWorkerConfig:
    secret_key: bytes
    idle_seconds: float = 0.5
    # How long getUpdates waits for an update before returning an empty list.
    poll_wait_seconds: int = 25
    # A poller's claim on a bot, longer than one getUpdates call can take (its
    # wait plus the request timeout). It is renewed before each call and freed
    # on shutdown, so only after a crash does another worker wait this long.
    lease: timedelta = timedelta(seconds=60)
    # To skip the updates of a workspace whose onboarding module is off.
    billing: BillingConfig | None = None


class UpdateWorker:
    def __init__(
        self,
        sessions: async_sessionmaker[RequestSession],
        config: UpdateWorkerConfig,
        clock: Clock,
        on_queued: Callable[[], None] = lambda: None,
        wake: asyncio.Event | None = None,
        gate: IngestGate | None = None,
    ) -> None:
        self._sessions = sessions
        self._config = config
        self._clock = clock
        self._on_queued = on_queued
        self.wake = wake or asyncio.Event()
        self._gate = gate or IngestGate()

    async def run(self) -> None:
        await run_passes(
            "update", self.run_pass, self.wake, self._rest, after_work=self._on_queued
        )

    async def _rest(self) -> float:
        return self._config.idle_seconds

    async def run_pass(self, limit: int = 50) -> int:
        handled = 0
        while handled < limit and await self._handle_next():
            handled += 1
        return handled

    async def _handle_next(self) -> bool:
        earlier = aliased(BotUpdate)
        query = (
            select(BotUpdate)
            .where(
                BotUpdate.status == "pending",
                ~exists().where(
                    earlier.bot_id == BotUpdate.bot_id,
                    earlier.chat_id == BotUpdate.chat_id,
                    earlier.id < BotUpdate.id,
                    earlier.status == "pending",
                ),
            )
            .order_by(BotUpdate.id)
            .limit(1)
        )
        async with self._sessions() as db:
            await db.begin_reads()
            if not (await db.execute(select(query.exists()))).scalar():
                return False
            await self._gate.wait_idle()
            await db.begin_writes()
            if db.get_bind().dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True, of=BotUpdate)
            row = (await db.execute(query)).scalar_one_or_none()
            if row is None:
                return False
            update_id, row_id = row.id, row.id
            now = self._clock.now()
            try:
                bot = await db.get(TelegramBot, row.bot_id)
                row.status = "done"
                row.handled_at = now
                if bot is not None:
                    # From here on, reads and new rows belong to the bot's tenant.
                    db.info[TENANT_KEY] = bot.tenant_id
                    if await self._module_on(db, bot):
                        await handle_update(
                            db, bot, row.payload, update_key=f"update:{row_id}", now=now
                        )
                    else:
                        row.status = "skipped"
                        row.error = "the onboarding module is off for this workspace"
                await db.commit()
            except Exception as error:
                await db.rollback()
                logger.exception("update %s could not be handled", update_id)
                db.info.pop(TENANT_KEY, None)
                await db.begin_writes()
                await db.execute(
                    update(BotUpdate)
                    .where(BotUpdate.id == row_id)
                    .values(
                        status="failed",
                        error=f"{type(error).__name__}"[:500],
                        handled_at=now,
                    )
                )
                await db.commit()
            return True

    async def _module_on(self, db: RequestSession, bot: TelegramBot) -> bool:
        if self._config.billing is None:
            return True
        states = await module_states(db, bot.tenant_id, self._config.billing)
        return states["onboarding"].active(self._clock.now())


class Pollers:
    """Keeps one long-polling task per bot in polling mode that this process holds."""

    def __init__(
        self,
        sessions: async_sessionmaker[RequestSession],
        api: BotApi,
        config: UpdateWorkerConfig,
        clock: Clock,
        on_update: Callable[[], None],
    ) -> None:
        self._sessions = sessions
        self._api = api
        self._config = config
        self._clock = clock
        self._on_update = on_update
        self._tasks: dict[uuid.UUID, asyncio.Task[None]] = {}
        # The lease end this process last wrote for each bot it polls.
        self._leases: dict[uuid.UUID, datetime] = {}

    async def run(self) -> None:
        try:
            while True:
                try:
                    await self.supervise()
                except Exception:
                    logger.exception("poller supervision failed")
                await asyncio.sleep(self._config.idle_seconds * 4)
        finally:
            for task in self._tasks.values():
                task.cancel()
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)
            await asyncio.shield(self._release_leases())

    async def _release_leases(self) -> None:
        """Free this process's claims, so a new process polls at once."""
        try:
            async with self._sessions() as db:
                await db.begin_writes()
                for bot_id, lease in self._leases.items():
                    await db.execute(
                        update(TelegramBot)
                        .where(
                            TelegramBot.id == bot_id,
                            TelegramBot.poller_lease_until == lease,
                        )
                        .values(poller_lease_until=None)
                    )
                await db.commit()
        except Exception:
            logger.exception("could not release the polling leases on shutdown")

    async def supervise(self) -> None:
        """Start a poller for each polling bot whose lease is free."""
        for bot_id, task in list(self._tasks.items()):
            if task.done():
                del self._tasks[bot_id]
        for bot_id in await self._claim_free_bots():
            self._tasks[bot_id] = asyncio.create_task(self._poll(bot_id))

    async def _claim_free_bots(self) -> list[uuid.UUID]:
        now = self._clock.now()
        free = and_(
            TelegramBot.status == bot_runtime.RUNNING,
            TelegramBot.mode == "polling",
            or_(
                TelegramBot.poller_lease_until.is_(None),
                TelegramBot.poller_lease_until < now,
            ),
            TelegramBot.id.not_in(list(self._tasks)),
        )
        async with self._sessions() as db:
            await db.begin_reads()
            ids = list((await db.execute(select(TelegramBot.id).where(free))).scalars())
            claimed = []
            for bot_id in ids:
                lease = now + self._config.lease
                await db.begin_writes()
                result = await db.execute(
                    update(TelegramBot)
                    .where(TelegramBot.id == bot_id, free)
                    .values(poller_lease_until=lease)
                )
                await db.commit()
                if result.rowcount:
                    self._leases[bot_id] = lease
                    claimed.append(bot_id)
            return claimed

    async def _poll(self, bot_id: uuid.UUID) -> None:
        failures = 0
        while True:
            bot = await self._renew(bot_id)
            if bot is None:
                return
            token = decrypt(self._config.secret_key, bot.token_encrypted)
            try:
                updates = await self._api.get_updates(
                    token, bot.polling_offset, self._config.poll_wait_seconds
                )
            except TelegramConflict as error:
                reason = f"Telegram refused polling: {error.description}"
                await self._give_up(bot, reason)
                return
            except TelegramRejected as error:
                await self._give_up(bot, bot_runtime.rejected_reason(error))
                return
            except TelegramError as error:
                failures += 1
                delay = min(2.0**failures, MAX_BACKOFF_SECONDS)
                logger.warning(
                    "getUpdates failed (%s); retrying in %.0f s", error, delay
                )
                await asyncio.sleep(delay)
                continue
            failures = 0
            if updates:
                await self._store(bot_id, updates)
                self._on_update()

    async def _renew(self, bot_id: uuid.UUID) -> TelegramBot | None:
        """Extend the lease; None when the bot is no longer polling."""
        now = self._clock.now()
        async with self._sessions() as db:
            await db.begin_writes()
            bot: TelegramBot | None = await db.get(TelegramBot, bot_id)
            if (
                bot is None
                or bot.status != bot_runtime.RUNNING
                or bot.mode != "polling"
                or bot.poller_lease_until is None
            ):
                await db.commit()
                self._leases.pop(bot_id, None)
                return None
            if bot.poller_lease_until != self._leases.get(bot_id):
                await db.commit()
                return None  # another process has claimed it meanwhile
            bot.poller_lease_until = now + self._config.lease
            self._leases[bot_id] = bot.poller_lease_until
            await db.commit()
            return bot

    async def _store(self, bot_id: uuid.UUID, updates: list[dict[str, object]]) -> None:
        now = self._clock.now()
        async with self._sessions() as db:
            await db.begin_writes()
            bot = await db.get(TelegramBot, bot_id)
            if bot is None:
                return
            for item in updates:
                try:
                    await bot_runtime.store_update(db, bot, item, now=now)
                except bot_runtime.MalformedUpdate as error:
                    logger.warning("skipped an update of bot %s: %s", bot_id, error)
            last = max(int(str(item.get("update_id", 0))) for item in updates)
            bot.polling_offset = max(bot.polling_offset or 0, last + 1)
            await db.commit()

    async def _give_up(self, held: TelegramBot, reason: str) -> None:
        async with self._sessions() as db:
            await db.begin_writes()
            bot = await db.get(TelegramBot, held.id)
            # A bot switched to webhook mode, or started again, meanwhile makes
            # getUpdates fail with 409; that is the switch working, not an error.
            still_ours = (
                bot is not None
                and bot.mode == "polling"
                and bot.status == bot_runtime.RUNNING
                and bot.poller_lease_until == held.poller_lease_until
            )
            if bot is not None and still_ours:
                logger.warning("bot %s stopped polling: %s", bot.id, reason)
                await bot_runtime.mark_error(db, bot, reason, now=self._clock.now())
            await db.commit()
