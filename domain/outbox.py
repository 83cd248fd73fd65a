"""The outbox: every Telegram message the product sends is first a job row.

A job is written in the transaction of the change that causes it, so a change
and its messages commit together or not at all. The sending worker
(``workers.sender``) carries jobs out. Invariants:
- ``key`` is unique: queueing the same message twice keeps the first job.
- Jobs to one chat of one bot go out in the order they were queued.
- A text longer than Telegram's limit is split at paragraph boundaries when
  queued. The parts go out in order, and a retry of a later part does not
  send an earlier one again.
"""

import html
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Job
from domain.errors import InvalidInput
from domain.paging import check_paging, count_rows, one_page
from domain.telegram_html import MESSAGE_LIMIT

SEND_MESSAGE = "send_message"
ANSWER_CALLBACK = "answer_callback"
PENDING, RUNNING, DONE, FAILED = "pending", "running", "done", "failed"

# A tag, an entity, or one character of text.
_ATOM = re.compile(r"<[^>]*>|&#?[A-Za-z0-9]+;|[\s\S]")
_TAG_NAME = re.compile(r"</?([A-Za-z][A-Za-z0-9-]*)")


async def enqueue_message(
    session: AsyncSession,
    *,
    key: str,
    bot_id: uuid.UUID,
    chat_id: int,
    text: str,
    now: datetime,
    html_mode: bool = True,
    reply_markup: dict[str, Any] | None = None,
    reply_to_job_id: int | None = None,
) -> Job:
    """Queue a message and return its job; a job with the same key is kept.

    ``text`` is Telegram HTML (escape plain values with
    ``domain.telegram_html.escape``) unless ``html_mode`` is false.
    ``reply_to_job_id`` makes the message a reply to the first message that
    job sent, once it has been sent.
    """
    existing = await _existing(session, key)
    if existing is not None:
        return existing
    payload: dict[str, Any] = {
        "parts": split_message(text, html_mode=html_mode),
        "html": html_mode,
    }
    if reply_markup is not None:
        payload["reply_markup"] = reply_markup
    if reply_to_job_id is not None:
        payload["reply_to_job_id"] = reply_to_job_id
    return await _add(session, key, SEND_MESSAGE, bot_id, chat_id, payload, now)


async def enqueue_callback_answer(
    session: AsyncSession,
    *,
    bot_id: uuid.UUID,
    chat_id: int,
    callback_query_id: str,
    now: datetime,
) -> Job:
    """Queue the answerCallbackQuery call that stops a pressed button's spinner."""
    key = f"callback:{bot_id}:{callback_query_id}"
    existing = await _existing(session, key)
    if existing is not None:
        return existing
    payload = {"callback_query_id": callback_query_id}
    return await _add(session, key, ANSWER_CALLBACK, bot_id, chat_id, payload, now)


async def _existing(session: AsyncSession, key: str) -> Job | None:
    return (
        await session.execute(select(Job).where(Job.key == key))
    ).scalar_one_or_none()


async def _add(
    session: AsyncSession,
    key: str,
    kind: str,
    bot_id: uuid.UUID,
    chat_id: int,
    payload: dict[str, Any],
    now: datetime,
) -> Job:
    job = Job(
        key=key,
        kind=kind,
        bot_id=bot_id,
        chat_id=chat_id,
        payload=payload,
        status=PENDING,
        attempts=0,
        run_after=now,
        created_at=now,
    )
    session.add(job)
    await session.flush()
    return job


@dataclass(frozen=True, slots=True)
class JobPage:
    items: list[Job]
    page: int
    page_size: int
    total: int


async def list_jobs(
    session: AsyncSession,
    bot_id: uuid.UUID,
    *,
    status: str | None,
    page: int,
    page_size: int,
) -> JobPage:
    """Return a bot's queued and sent messages, newest first."""
    if status is not None and status not in (PENDING, RUNNING, DONE, FAILED):
        raise InvalidInput(
            "status must be pending, running, done or failed", field="status"
        )
    check_paging(page, page_size)
    conditions = [Job.bot_id == bot_id, Job.kind == SEND_MESSAGE]
    if status is not None:
        conditions.append(Job.status == status)
    total = await count_rows(session, Job, conditions)
    rows = await session.execute(
        one_page(
            select(Job).where(*conditions).order_by(Job.id.desc()), page, page_size
        )
    )
    return JobPage(list(rows.scalars()), page, page_size, total)


def first_message_id(job: Job) -> int | None:
    """Return the id of the first message a sent job produced, for replies."""
    ids = (job.result or {}).get("message_ids") or []
    return int(ids[0]) if ids else None


def html_to_plain(text: str) -> str:
    """Return the visible text of Telegram HTML, for a plain-text resend."""
    return html.unescape(re.sub(r"<[^>]*>", "", text))


@dataclass(slots=True)
class _Cut:
    index: int
    priority: int


def split_message(
    text: str, *, html_mode: bool = True, limit: int = MESSAGE_LIMIT
) -> list[str]:
    """Split a text into parts of at most ``limit`` visible characters.

    Cuts fall at a blank line when one is in reach, else at a line break,
    else at a space, else anywhere. A tag open at a cut is closed at the end
    of one part and opened again at the start of the next.
    """
    atoms = list(_atoms(text, html_mode))
    if sum(visible for _, visible in atoms) <= limit:
        return [text]
    parts = []
    start = 0
    while start < len(atoms):
        end, resume = _next_cut(atoms, start, limit)
        opening = _open_tags(atoms, 0, start) if html_mode else []
        closing = _open_tags(atoms, 0, end) if html_mode else []
        body = "".join(atom for atom, _ in atoms[start:end]).strip("\n ")
        if body:
            names = [_TAG_NAME.match(tag).group(1) for tag in closing]  # type: ignore[union-attr]
            parts.append(
                "".join(opening) + body + "".join(f"</{n}>" for n in reversed(names))
            )
        start = resume
    return parts


def _atoms(text: str, html_mode: bool) -> Iterator[tuple[str, int]]:
    if not html_mode:
        yield from ((char, 1) for char in text)
        return
    for match in _ATOM.finditer(text):
        atom = match.group(0)
        yield atom, 0 if atom.startswith("<") and len(atom) > 1 else 1


def _next_cut(atoms: list[tuple[str, int]], start: int, limit: int) -> tuple[int, int]:
    """Return where the part from ``start`` ends and where the next begins."""
    visible = 0
    best: _Cut | None = None
    index = start
    while index < len(atoms):
        atom, width = atoms[index]
        if visible + width > limit:
            break
        visible += width
        index += 1
        if atom == "\n" and index < len(atoms) and atoms[index][0] == "\n":
            priority = 3
        elif atom == "\n":
            priority = 2
        elif atom == " ":
            priority = 1
        else:
            continue
        if best is None or priority >= best.priority:
            best = _Cut(index, priority)
    if index >= len(atoms):
        return len(atoms), len(atoms)
    if best is None:
        return index, index
    return best.index, best.index


def _open_tags(atoms: list[tuple[str, int]], start: int, end: int) -> list[str]:
    stack: list[str] = []
    for atom, width in atoms[start:end]:
        if width or not atom.startswith("<"):
            continue
        if atom.startswith("</"):
            if stack:
                stack.pop()
        else:
            stack.append(atom)
    return stack
