"""The sending worker: carries out the outbox's Telegram jobs.

A pass claims due jobs, at most one per chat, marks them running with a lease,
and commits before calling Telegram, so no transaction stays open across the
network. Rules it keeps:
- Jobs to one chat go out in queue order: a job waits while an earlier job to
  its chat is pending or running.
- Pacing: after a message, its chat waits ``chat_interval`` (longer for
  groups and channels) and its bot ``bot_interval``. The times live in the
  database, so several workers keep them together.
- A 429 puts the job back until Telegram's ``retry_after`` has passed, and the
  chat waits as long. Parts already sent are not sent again.
- Telegram refusing the HTML makes the job go out once more as plain text.
- Other rejections (a blocked bot, a missing chat) fail the job with
  Telegram's reason. Network and server errors retry with backoff, up to
  ``max_attempts`` tries.
- A worker that dies mid-send leaves a running job whose lease lapses; another
  worker then sends it again. That is the one case where a message can be
  sent twice: Telegram's sendMessage has no idempotency key.
"""

import asyncio
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, func, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlalchemy.orm import aliased

from db.engine import RequestSession
from db.models import Job, SendPacing, TelegramBot
from domain.clock import Clock
from domain.outbox import (
    ANSWER_CALLBACK,
    DONE,
    FAILED,
    PENDING,
    RUNNING,
    first_message_id,
    html_to_plain,
)
from domain.secrets import decrypt
from domain.telegram import (
    BotApi,
    TelegramBadFormatting,
    TelegramError,
    TelegramRejected,
    TelegramRetryAfter,
)
from workers.ingest_gate import IngestGate
from workers.passes import run_passes

logger = logging.getLogger(__name__)

BOT_PACE_KEY = 0
# A reply whose original message failed fails too, instead of standing alone.
_ORIGINAL_FAILED = -1
MAX_BACKOFF_SECONDS = 300


@dataclass(frozen=True, slots=True)
class SenderConfig:
    secret_key: bytes
    idle_seconds: float = 0.5
    batch: int = 10
    lease: timedelta = timedelta(seconds=120)
    # Telegram Bot Support's FAQ (https://telegra.ph/Hitting-limits-bot-FAQ)
    # gives about one message a second per chat, 20 a minute per group, and
    # about 30 a second in all. Short bursts may pass before 429s follow.
    chat_interval: timedelta = timedelta(seconds=1)
    group_interval: timedelta = timedelta(seconds=3)
    bot_interval: timedelta = timedelta(milliseconds=35)
    max_attempts: int = 8


@dataclass(slots=True)
class _Outcome:
    status: str
    run_after: datetime | None = None
    error: str | None = None
    # How long the chat must wait before its next message, if it was touched.
    chat_pause: timedelta | None = None


class Sender:
    def __init__(
        self,
        sessions: async_sessionmaker[RequestSession],
        api: BotApi,
        config: SenderConfig,
        clock: Clock,
        wake: asyncio.Event | None = None,
        gate: IngestGate | None = None,
    ) -> None:
        self._sessions = sessions
        self._api = api
        self._config = config
        self._clock = clock
        self.wake = wake or asyncio.Event()
        self._gate = gate or IngestGate()

    async def run(self) -> None:
        await run_passes("sending", self.run_pass, self.wake, self._idle_wait)

    async def _idle_wait(self) -> float:
        """Return how long to sleep: until the next paced or delayed job is due."""
        now = self._clock.now()
        try:
            async with self._sessions() as db:
                await db.begin_reads()
                pending = (
                    await db.execute(
                        select(func.min(Job.run_after)).where(
                            Job.status == PENDING, Job.run_after > now
                        )
                    )
                ).scalar()
                paced = (
                    await db.execute(
                        select(func.min(SendPacing.next_at)).where(
                            SendPacing.next_at > now,
                            exists().where(
                                Job.bot_id == SendPacing.bot_id, Job.status == PENDING
                            ),
                        )
                    )
                ).scalar()
        except Exception:
            logger.exception("could not read when the next job is due")
            return self._config.idle_seconds
        times = [moment for moment in (pending, paced) if moment is not None]
        if not times:
            return self._config.idle_seconds
        seconds: float = (min(times) - now).total_seconds()
        return max(0.001, min(self._config.idle_seconds, seconds))

    async def run_pass(self) -> int:
        """Claim and carry out the due jobs; return how many were handled."""
        jobs = await self._claim()
        if not jobs:
            return 0
        outcomes = await asyncio.gather(*(self._carry_out(job) for job in jobs))
        await self._finish(list(zip(jobs, outcomes, strict=True)))
        return len(jobs)

    async def _claim(self) -> list[Job]:
        now = self._clock.now()
        earlier = aliased(Job)
        pacing = aliased(SendPacing)
        blocked_by_earlier = exists().where(
            earlier.bot_id == Job.bot_id,
            earlier.chat_id == Job.chat_id,
            earlier.id < Job.id,
            earlier.status.in_((PENDING, RUNNING)),
        )
        paced = exists().where(
            pacing.bot_id == Job.bot_id,
            pacing.chat_id.in_((Job.chat_id, BOT_PACE_KEY)),
            pacing.next_at > now,
        )
        query = (
            select(Job)
            .where(
                or_(
                    and_(Job.status == PENDING, Job.run_after <= now),
                    and_(Job.status == RUNNING, Job.lease_until < now),
                ),
                ~blocked_by_earlier,
                or_(Job.kind == ANSWER_CALLBACK, ~paced),
            )
            .order_by(Job.id)
            .limit(self._config.batch)
        )
        async with self._sessions() as db:
            await db.begin_reads()
            if not (await db.execute(select(query.exists()))).scalar():
                return []
            await self._gate.wait_idle()
            await db.begin_writes()
            if db.get_bind().dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True, of=Job)
            jobs = list((await db.execute(query)).scalars())
            for job in jobs:
                job.status = RUNNING
                job.attempts += 1
                job.lease_until = now + self._config.lease
            await db.commit()
            return jobs

    async def _carry_out(self, job: Job) -> _Outcome:
        try:
            token = await self._token(job.bot_id)
            if job.kind == ANSWER_CALLBACK:
                await self._api.answer_callback_query(
                    token, job.payload["callback_query_id"]
                )
                return _Outcome(DONE)
            return await self._send(job, token)
        except TelegramRetryAfter as error:
            pause = timedelta(seconds=error.seconds)
            return _Outcome(
                PENDING,
                run_after=self._clock.now() + pause,
                error=error.description,
                chat_pause=pause,
            )
        except TelegramRejected as error:
            return _Outcome(FAILED, error=error.description)
        except TelegramError as error:
            return self._retry_later(job, error.description)
        except Exception as error:
            logger.exception("job %s failed unexpectedly", job.id)
            return self._retry_later(job, f"unexpected error: {type(error).__name__}")

    async def _send(self, job: Job, token: str) -> _Outcome:
        payload = dict(job.payload)
        parts: list[str] = list(payload["parts"])
        sent: list[int] = list((job.result or {}).get("message_ids", []))
        reply_to = await self._reply_target(payload.get("reply_to_job_id"))
        if reply_to is _ORIGINAL_FAILED:
            return _Outcome(
                FAILED, error="The message this replies to was not delivered"
            )
        try:
            while len(sent) < len(parts):
                index = len(sent)
                last = index == len(parts) - 1
                try:
                    message_id = await self._api.send_message(
                        token,
                        job.chat_id,
                        parts[index],
                        html=payload["html"],
                        reply_markup=payload.get("reply_markup") if last else None,
                        reply_to_message_id=reply_to if index == 0 else None,
                    )
                except TelegramBadFormatting as error:
                    if not payload["html"]:
                        raise
                    logger.warning(
                        "job %s: Telegram rejected the HTML (%s), so it is resent "
                        "as plain text",
                        job.id,
                        error.description,
                    )
                    payload["html"] = False
                    payload["parts"] = parts = [html_to_plain(p) for p in parts]
                    job.payload = payload
                    continue
                sent.append(message_id)
        finally:
            job.result = {"message_ids": sent}
        return _Outcome(DONE, chat_pause=self._chat_interval(job.chat_id))

    async def _reply_target(self, job_id: int | None) -> int | None:
        """Return the message id to reply to, or _ORIGINAL_FAILED."""
        if job_id is None:
            return None
        async with self._sessions() as db:
            await db.begin_reads()
            original = await db.get(Job, job_id)
            if original is None:
                return None
            if original.status == FAILED:
                return _ORIGINAL_FAILED
            return first_message_id(original)

    async def _token(self, bot_id: uuid.UUID) -> str:
        async with self._sessions() as db:
            await db.begin_reads()
            bot = await db.get(TelegramBot, bot_id)
            if bot is None:
                raise TelegramRejected("the bot is no longer connected")
            return decrypt(self._config.secret_key, bot.token_encrypted)

    def _retry_later(self, job: Job, error: str) -> _Outcome:
        if job.attempts >= self._config.max_attempts:
            return _Outcome(
                FAILED, error=f"{error} (gave up after {job.attempts} tries)"
            )
        delay = timedelta(seconds=min(2**job.attempts, MAX_BACKOFF_SECONDS))
        return _Outcome(PENDING, run_after=self._clock.now() + delay, error=error)

    def _chat_interval(self, chat_id: int) -> timedelta:
        # Private chats have positive ids; groups and channels negative ones.
        return (
            self._config.chat_interval if chat_id > 0 else self._config.group_interval
        )

    async def _finish(self, results: list[tuple[Job, _Outcome]]) -> None:
        await self._gate.wait_idle()
        now = self._clock.now()
        async with self._sessions() as db:
            await db.begin_writes()
            sent_by_bot: dict[uuid.UUID, int] = {}
            for job, outcome in results:
                row = await db.get(Job, job.id)
                if row is None:
                    continue  # its bot was removed meanwhile
                row.payload = job.payload
                row.result = job.result
                row.status = outcome.status
                row.lease_until = None
                row.last_error = outcome.error[:500] if outcome.error else None
                if outcome.run_after is not None:
                    row.run_after = outcome.run_after
                if outcome.status in (DONE, FAILED):
                    row.finished_at = now
                if outcome.status == FAILED:
                    logger.warning("job %s failed: %s", job.id, outcome.error)
                if outcome.chat_pause is not None:
                    await _pace(db, job.bot_id, job.chat_id, now + outcome.chat_pause)
                if job.kind != ANSWER_CALLBACK and outcome.status == DONE:
                    sent_by_bot[job.bot_id] = sent_by_bot.get(job.bot_id, 0) + 1
            for bot_id, count in sent_by_bot.items():
                await _pace(
                    db, bot_id, BOT_PACE_KEY, now + self._config.bot_interval * count
                )
            await db.commit()


async def _pace(db: RequestSession, bot_id: uuid.UUID, chat_id: int, at: Any) -> None:
    insert = pg_insert if db.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = insert(SendPacing).values(bot_id=bot_id, chat_id=chat_id, next_at=at)
    await db.execute(
        statement.on_conflict_do_update(
            index_elements=[SendPacing.bot_id, SendPacing.chat_id],
            set_={"next_at": statement.excluded.next_at},
        )
    )
