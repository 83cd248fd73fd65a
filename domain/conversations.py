"""Onboarding conversations: a bot walks each person through its flow.

Each stored Telegram update is handled once, in one transaction that moves
the conversation and queues the replies in the outbox, so a crash leaves
either both or neither. Invariants:
- A conversation is one row per bot and chat. Its step and answers live in
  the database, so a restart resumes every conversation where it was.
- ``/start [payload]`` and ``/cancel`` start the flow over; the payload (up
  to 64 characters) is kept as the attribution.
- The first accepted answer makes the person a CRM lead (source
  ``onboarding_bot``); a Telegram user is one lead per workspace, found again
  by the Telegram user id on a later visit or through another bot.
- Finishing the flow marks the conversation completed and writes a timeline
  entry on the lead.
"""

import logging
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote, urlsplit

import regex
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import BotConversation, Lead, Partner, TelegramBot
from domain import outbox
from domain.errors import InvalidInput, NotFound
from domain.flows import (
    DEFAULT_PLAN,
    DEFAULT_RETRY,
    PLACEHOLDER,
    SUBSCRIBE_LABELS,
    Step,
    load_steps,
)
from domain.leads import PHONE_PATTERN, default_stage, lead_of_telegram_user
from domain.paging import check_paging, count_rows, one_page
from domain.subscribers import subscribe_from_bot
from domain.telegram_html import escape
from domain.timeline import add_system_entry
from domain.validation import normalize_email

logger = logging.getLogger(__name__)

ACTIVE, COMPLETED = "active", "completed"
SOURCE = "onboarding_bot"
PAYLOAD = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_ANSWER = 1000
# A flow's own regular expressions run against strangers' text: bounded.
PATTERN_TIMEOUT_SECONDS = 0.1
SHARE_CONTACT = "Share my phone number"
START_HINT = "Send /start to begin."
CHOICE_HINT = "Please pick one of the options."
CONTACT_HINT = "Please tap the button below to share your phone number."
OWN_CONTACT = "Please share your own phone number with the button below."
CONTACT_THANKS = "Thank you!"
FLOW_CHANGED = "This conversation has changed; let's start again."
EMPTY_FLOW = "This bot has no onboarding flow yet."
# A link longer than this shows a short label, so the message never splits it.
SHOWN_URL_LIMIT = 200
# Each captured value put into a link is cut to this many characters.
MAX_URL_VALUE = 256
LEAD_FIELDS = {"email": "email", "phone": "phone", "fullName": "full_name"}
WAITING_STEPS = ("question", "choice", "contact", "subscribe")
YES, NO = "yes", "no"


@dataclass(slots=True)
class _Turn:
    """The state of handling one update: the bot, the chat and the replies queued."""

    bot: TelegramBot
    chat_id: int
    update_key: str
    now: datetime
    queued: int = 0
    steps: list[Step] = field(default_factory=list)

    async def send(
        self,
        session: AsyncSession,
        text: str,
        *,
        markup: dict[str, Any] | None = None,
    ) -> None:
        self.queued += 1
        await outbox.enqueue_message(
            session,
            key=f"{self.update_key}:{self.queued}",
            bot_id=self.bot.id,
            chat_id=self.chat_id,
            text=text,
            now=self.now,
            reply_markup=markup,
        )


def update_chat_id(update: Mapping[str, Any]) -> int | None:
    """Return the chat an update belongs to, or None for other kinds of update."""
    if update.get("message") is not None:
        return int(update["message"]["chat"]["id"])
    callback = update.get("callback_query")
    if callback is not None:
        message = callback.get("message")
        if message is not None:
            return int(message["chat"]["id"])
        return int(callback["from"]["id"])
    return None


async def handle_update(
    session: AsyncSession,
    bot: TelegramBot,
    update: Mapping[str, Any],
    *,
    update_key: str,
    now: datetime,
) -> None:
    """Handle one update in the caller's transaction (scoped to the bot's tenant)."""
    message = update.get("message")
    callback = update.get("callback_query")
    if message is not None:
        chat = message.get("chat") or {}
        sender = message.get("from") or {}
        if chat.get("type") != "private" or sender.get("is_bot"):
            return  # onboarding happens in private chats only
        turn = _Turn(bot, int(chat["id"]), update_key, now, steps=load_steps(bot))
        await _on_message(session, turn, sender, message)
    elif callback is not None:
        chat_id = update_chat_id(update)
        if chat_id is None:
            return
        await outbox.enqueue_callback_answer(
            session,
            bot_id=bot.id,
            chat_id=chat_id,
            callback_query_id=str(callback["id"]),
            now=now,
        )
        turn = _Turn(bot, chat_id, update_key, now, steps=load_steps(bot))
        await _on_button(session, turn, callback.get("from") or {}, callback)


async def _on_message(
    session: AsyncSession,
    turn: _Turn,
    sender: Mapping[str, Any],
    message: Mapping[str, Any],
) -> None:
    raw = message.get("text")
    text = raw.strip() if isinstance(raw, str) else ""
    command, _, argument = text.partition(" ")
    command, _, addressee = command.partition("@")
    if addressee and addressee.casefold() != turn.bot.username.casefold():
        command = ""  # a command for another bot
    conversation = await _conversation(session, turn)

    if command == "/start":
        payload = argument.strip()
        attribution = payload if PAYLOAD.fullmatch(payload) else None
        await _restart(session, turn, sender, conversation, attribution)
        return
    if command == "/cancel":
        await _restart(session, turn, sender, conversation, None)
        return

    if conversation is None or conversation.step_key is None:
        await turn.send(session, START_HINT)
        return
    step = _step(turn, conversation.step_key)
    if step is None or step.type not in WAITING_STEPS:
        # The flow was edited under the person: the step is gone or waits no more.
        await turn.send(session, FLOW_CHANGED)
        await _restart(session, turn, sender, conversation, None)
        return

    _refresh_identity(conversation, sender)
    match step.type:
        case "question":
            value = check_answer(step, text)
            if value is None:
                await turn.send(session, step.retry_text or DEFAULT_RETRY)
                return
            await _accept(
                session, turn, conversation, step, value, _following(turn, step)
            )
        case "choice":
            chosen = next(
                (b for b in step.buttons if b.text.casefold() == text.casefold()), None
            )
            if chosen is None:
                await turn.send(session, CHOICE_HINT)
                await _prompt(session, turn, step)
                return
            value = chosen.value or chosen.text
            target = chosen.next or _following(turn, step)
            await _accept(session, turn, conversation, step, value, target)
        case "contact":
            await _on_contact(session, turn, conversation, step, sender, message)
        case "subscribe":
            labels = [label.casefold() for label in _subscribe_labels(step)]
            if text.casefold() not in labels:
                await turn.send(session, CHOICE_HINT)
                await _prompt(session, turn, step)
                return
            answer = YES if labels.index(text.casefold()) == 0 else NO
            await _subscribe(session, turn, conversation, step, answer)


async def _on_contact(
    session: AsyncSession,
    turn: _Turn,
    conversation: BotConversation,
    step: Step,
    sender: Mapping[str, Any],
    message: Mapping[str, Any],
) -> None:
    contact = message.get("contact")
    if contact is not None:
        if contact.get("user_id") != sender.get("id"):
            await turn.send(session, OWN_CONTACT, markup=_contact_keyboard())
            return
        shared = str(contact.get("phone_number", "")).strip()
        phone = _phone(shared if shared.startswith("+") else "+" + shared) or ""
    else:
        # Telegram Desktop cannot share a contact; a typed number is fine too.
        phone = _phone(message.get("text") or "") or ""
    if not phone:
        await turn.send(session, CONTACT_HINT, markup=_contact_keyboard())
        return
    await turn.send(session, CONTACT_THANKS, markup={"remove_keyboard": True})
    await _accept(session, turn, conversation, step, phone, _following(turn, step))


async def _on_button(
    session: AsyncSession,
    turn: _Turn,
    sender: Mapping[str, Any],
    callback: Mapping[str, Any],
) -> None:
    key, _, value = str(callback.get("data") or "").partition(":")
    conversation = await _conversation(session, turn)
    if conversation is None or conversation.step_key != key:
        return  # a button of an earlier message: the flow has moved on
    step = _step(turn, key)
    if step is not None and step.type == "subscribe" and value in (YES, NO):
        _refresh_identity(conversation, sender)
        await _subscribe(session, turn, conversation, step, value)
        return
    if step is None or step.type != "choice":
        return
    chosen = next((b for b in step.buttons if (b.value or b.text) == value), None)
    if chosen is None:
        # A button of an earlier version of this step.
        await turn.send(session, CHOICE_HINT)
        await _prompt(session, turn, step)
        return
    _refresh_identity(conversation, sender)
    target = chosen.next or _following(turn, step)
    await _accept(session, turn, conversation, step, value, target)


async def _subscribe(
    session: AsyncSession,
    turn: _Turn,
    conversation: BotConversation,
    step: Step,
    answer: str,
) -> None:
    if answer == YES:
        lead = await _lead_for(session, turn, conversation)
        await subscribe_from_bot(
            session,
            telegram_user_id=conversation.telegram_user_id,
            username=conversation.username,
            lead_id=lead.id,
            plan=step.plan or DEFAULT_PLAN,
            now=turn.now,
        )
    await _accept(session, turn, conversation, step, answer, _following(turn, step))


def _subscribe_labels(step: Step) -> tuple[str, str]:
    if len(step.buttons) == 2:
        return step.buttons[0].text, step.buttons[1].text
    return SUBSCRIBE_LABELS


async def _restart(
    session: AsyncSession,
    turn: _Turn,
    sender: Mapping[str, Any],
    conversation: BotConversation | None,
    attribution: str | None,
) -> None:
    """Start the flow over; a new payload replaces the attribution, else it stays."""
    if not turn.steps:
        await turn.send(session, EMPTY_FLOW)
        return
    if conversation is None:
        conversation = BotConversation(
            bot_id=turn.bot.id,
            chat_id=turn.chat_id,
            telegram_user_id=int(sender.get("id", turn.chat_id)),
            answers={},
            status=ACTIVE,
            started_at=turn.now,
            updated_at=turn.now,
        )
        session.add(conversation)
    if attribution is not None:
        conversation.attribution = attribution
    _refresh_identity(conversation, sender)
    conversation.answers = {}
    conversation.status = ACTIVE
    conversation.started_at = turn.now
    conversation.completed_at = None
    await _run_from(session, turn, conversation, turn.steps[0].key)


async def _accept(
    session: AsyncSession,
    turn: _Turn,
    conversation: BotConversation,
    step: Step,
    value: str,
    target: str | None,
) -> None:
    name = step.field or step.key
    conversation.answers = {**conversation.answers, name: value}
    lead = await _lead_for(session, turn, conversation)
    if _fill_lead(lead, name, value):
        lead.updated_at = turn.now
    await _run_from(session, turn, conversation, target)


def _fill_lead(lead: Lead, name: str, value: str) -> bool:
    """Copy an answer into the lead's own field when it is valid there.

    The flow's check may be looser than the lead's (free text for an email,
    say), and then the answer stays in the conversation only.
    """
    column = LEAD_FIELDS.get(name)
    if column == "email":
        try:
            lead.email = normalize_email(value)
        except InvalidInput:
            return False
    elif column == "phone":
        phone = _phone(value)
        if phone is None:
            return False
        lead.phone = phone
    elif column == "full_name" and value.strip():
        lead.full_name = value.strip()[:200]
    else:
        return False
    return True


async def _run_from(
    session: AsyncSession,
    turn: _Turn,
    conversation: BotConversation,
    key: str | None,
) -> None:
    """Send steps from ``key`` until one waits for an answer or the flow ends."""
    seen: set[str] = set()
    while key is not None and key not in seen:
        seen.add(key)
        step = _step(turn, key)
        if step is None:
            break
        if step.type in WAITING_STEPS:
            await _prompt(session, turn, step)
            conversation.step_key = step.key
            conversation.updated_at = turn.now
            return
        if step.type == "end":
            if step.text:
                await turn.send(session, step.text)
            break
        await _prompt(session, turn, step, conversation)
        key = _following(turn, step)
    await _complete(session, turn, conversation)


async def _prompt(
    session: AsyncSession,
    turn: _Turn,
    step: Step,
    conversation: BotConversation | None = None,
) -> None:
    text = step.text or ""
    match step.type:
        case "message" if step.buttons:
            rows = [[{"text": b.text, "url": b.url}] for b in step.buttons]
            await turn.send(session, text, markup={"inline_keyboard": rows})
        case "choice":
            rows = [
                [{"text": b.text, "callback_data": f"{step.key}:{b.value or b.text}"}]
                for b in step.buttons
            ]
            await turn.send(session, text, markup={"inline_keyboard": rows})
        case "contact":
            await turn.send(session, text, markup=_contact_keyboard())
        case "subscribe":
            rows = [
                [{"text": label, "callback_data": f"{step.key}:{answer}"}]
                for label, answer in zip(
                    _subscribe_labels(step), (YES, NO), strict=True
                )
            ]
            await turn.send(session, text, markup={"inline_keyboard": rows})
        case "link":
            url = fill_url(step.url or "", conversation)
            shown = url if len(url) <= SHOWN_URL_LIMIT else link_label(url)
            link = f'<a href="{escape(url)}">{escape(shown)}</a>'
            await turn.send(session, f"{text}\n\n{link}")
        case _:
            await turn.send(session, text)


async def _complete(
    session: AsyncSession, turn: _Turn, conversation: BotConversation
) -> None:
    conversation.step_key = None
    conversation.status = COMPLETED
    conversation.completed_at = turn.now
    conversation.updated_at = turn.now
    lead = await _lead_for(session, turn, conversation)
    answers = ", ".join(f"{k}: {v}" for k, v in conversation.answers.items())
    add_system_entry(
        session,
        lead,
        f"Onboarding completed with @{turn.bot.username}"
        + (f" ({answers})" if answers else ""),
        author_id=None,
        now=turn.now,
    )


async def _lead_for(
    session: AsyncSession, turn: _Turn, conversation: BotConversation
) -> Lead:
    """Return the person's lead in this workspace, creating it when missing."""
    if conversation.lead_id is not None:
        lead = await session.get(Lead, conversation.lead_id)
        if lead is not None:
            return lead
    lead = await lead_of_telegram_user(session, conversation.telegram_user_id)
    if lead is None:
        lead = await _new_lead(session, turn, conversation)
    conversation.lead_id = lead.id
    return lead


async def _new_lead(
    session: AsyncSession, turn: _Turn, conversation: BotConversation
) -> Lead:
    partner_id = None
    if conversation.attribution:
        partner_id = (
            await session.execute(
                select(Partner.id).where(
                    Partner.code == conversation.attribution,
                    Partner.status == "active",
                )
            )
        ).scalar_one_or_none()
    name = conversation.first_name or conversation.username
    lead = Lead(
        full_name=name or f"Telegram user {conversation.telegram_user_id}",
        telegram=f"@{conversation.username}" if conversation.username else None,
        telegram_user_id=conversation.telegram_user_id,
        attribution=conversation.attribution,
        partner_id=partner_id,
        bot_id=turn.bot.id,
        pipeline_stage=await default_stage(session),
        source=SOURCE,
        tags=[],
        created_at=turn.now,
        updated_at=turn.now,
    )
    try:
        async with session.begin_nested():
            session.add(lead)
            await session.flush()
    except IntegrityError:
        # Another bot of the workspace made the lead a moment ago.
        existing = await lead_of_telegram_user(session, conversation.telegram_user_id)
        if existing is None:
            raise
        return existing
    # Answers given before the lead existed (it may have been deleted).
    for name, value in conversation.answers.items():
        _fill_lead(lead, name, value)
    via = f", via {conversation.attribution}" if conversation.attribution else ""
    add_system_entry(
        session,
        lead,
        f"Lead created (source: {SOURCE}, bot: @{turn.bot.username}{via})",
        author_id=None,
        now=turn.now,
    )
    return lead


async def _conversation(session: AsyncSession, turn: _Turn) -> BotConversation | None:
    return (
        await session.execute(
            select(BotConversation).where(
                BotConversation.bot_id == turn.bot.id,
                BotConversation.chat_id == turn.chat_id,
            )
        )
    ).scalar_one_or_none()


def _refresh_identity(conversation: BotConversation, sender: Mapping[str, Any]) -> None:
    username = sender.get("username")
    if username:
        conversation.username = str(username)[:64]
    names = [sender.get("first_name"), sender.get("last_name")]
    full = " ".join(str(part) for part in names if part)
    if full:
        conversation.first_name = full[:128]


def _step(turn: _Turn, key: str) -> Step | None:
    return next((step for step in turn.steps if step.key == key), None)


def _following(turn: _Turn, step: Step) -> str | None:
    """Return the key of the step after ``step``: its ``next``, else the one below."""
    if step.next is not None:
        return step.next
    keys = [s.key for s in turn.steps]
    index = keys.index(step.key) + 1
    return keys[index] if index < len(keys) else None


def _contact_keyboard() -> dict[str, Any]:
    return {
        "keyboard": [[{"text": SHARE_CONTACT, "request_contact": True}]],
        "resize_keyboard": True,
        "one_time_keyboard": True,
    }


def fill_url(url: str, conversation: BotConversation | None) -> str:
    """Put the captured fields into a link step's url, each one URL-encoded.

    ``{partnerCode}`` is the /start payload the person came with.
    """
    values: dict[str, str] = {}
    if conversation is not None:
        values = dict(conversation.answers)
        values["partnerCode"] = conversation.attribution or ""
        values["username"] = conversation.username or ""
        values["firstName"] = conversation.first_name or ""
    return PLACEHOLDER.sub(
        lambda m: quote(values.get(m.group(1), "")[:MAX_URL_VALUE], safe=""), url
    )


def link_label(url: str) -> str:
    """Return a short label for a long link: its address up to the path."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path[:60]}…"


def check_answer(step: Step, text: str) -> str | None:
    """Return the answer as saved, or None when the step's check refuses it."""
    text = text.strip()
    if not text or len(text) > MAX_ANSWER or text.startswith("/"):
        return None
    match step.check:
        case "email":
            try:
                return normalize_email(text)
            except InvalidInput:
                return None
        case "phone":
            return _phone(text)
        case "number":
            try:
                number = Decimal(text.replace(",", "."))
            except InvalidOperation:
                return None
            return text if number.is_finite() else None
        case "regex":
            try:
                matched = regex.fullmatch(
                    step.pattern or "", text, timeout=PATTERN_TIMEOUT_SECONDS
                )
            except TimeoutError:
                logger.warning("the pattern of step %s took too long", step.key)
                return None
            return text if matched else None
        case _:
            return text


def _phone(text: str) -> str | None:
    text = text.strip()
    digits = sum(character.isdigit() for character in text)
    if not PHONE_PATTERN.fullmatch(text) or not 7 <= digits <= 15:
        return None
    return text


@dataclass(frozen=True, slots=True)
class CapturedPage:
    items: list[BotConversation]
    page: int
    page_size: int
    total: int


async def captured(
    session: AsyncSession, bot_id: uuid.UUID, *, page: int, page_size: int
) -> CapturedPage:
    """List the people a bot has talked to, newest first."""
    check_paging(page, page_size)
    if await session.get(TelegramBot, bot_id) is None:
        raise NotFound("Bot")
    conditions = [BotConversation.bot_id == bot_id]
    total = await count_rows(session, BotConversation, conditions)
    rows = await session.execute(
        one_page(
            select(BotConversation)
            .where(*conditions)
            .order_by(BotConversation.started_at.desc(), BotConversation.id.desc()),
            page,
            page_size,
        )
    )
    return CapturedPage(list(rows.scalars()), page, page_size, total)
