"""Onboarding flows: the ordered steps an onboarding bot walks a person through.

The list is validated as a whole and replaced in one transaction: a list with
any problem saves nothing, and the error names the step and the problem.
"""

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncSession

from db.models import TelegramBot
from domain.errors import InvalidInput
from domain.telegram_html import MESSAGE_LIMIT, InvalidTelegramHtml, visible_text

STEP_TYPES = ("message", "question", "choice", "contact", "link", "subscribe", "end")
# A subscribe step's buttons, unless the step gives its own two labels.
SUBSCRIBE_LABELS = ("Subscribe", "No, thanks")
DEFAULT_PLAN = "signals"
PLAN_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,40}")
CHECKS = ("email", "phone", "number", "text", "regex")
KEY_PATTERN = re.compile(r"[a-z0-9_]{1,40}")
FIELD_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,39}")
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
MAX_STEPS = 100
MAX_BUTTONS = 10
BUTTON_TEXT_LIMIT = 64
# Telegram's limit on callback data; choices send "<step key>:<value>".
CALLBACK_DATA_LIMIT = 64
DEFAULT_RETRY = "That does not look right. Please try again."


@dataclass(frozen=True, slots=True)
class Button:
    text: str
    url: str | None = None
    value: str | None = None
    next: str | None = None


@dataclass(frozen=True, slots=True)
class Step:
    key: str
    type: str
    text: str | None = None
    buttons: tuple[Button, ...] = ()
    field: str | None = None
    check: str | None = None
    pattern: str | None = None
    retry_text: str | None = None
    url: str | None = None
    next: str | None = None
    plan: str | None = None

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"key": self.key, "type": self.type}
        names = (
            "text",
            "field",
            "check",
            "pattern",
            "retry_text",
            "url",
            "next",
            "plan",
        )
        for name in names:
            if getattr(self, name) is not None:
                data[name] = getattr(self, name)
        if self.buttons:
            data["buttons"] = [
                {
                    name: value
                    for name, value in vars_of(button).items()
                    if value is not None
                }
                for button in self.buttons
            ]
        return data


def vars_of(button: Button) -> dict[str, str | None]:
    return {
        "text": button.text,
        "url": button.url,
        "value": button.value,
        "next": button.next,
    }


def step_from_json(data: Mapping[str, Any]) -> Step:
    buttons = tuple(Button(**button) for button in data.get("buttons", ()))
    fields = {name: value for name, value in data.items() if name != "buttons"}
    return Step(buttons=buttons, **fields)


def load_steps(bot: TelegramBot) -> list[Step]:
    return [step_from_json(item) for item in bot.steps]


async def replace_steps(
    session: AsyncSession, bot: TelegramBot, steps: Sequence[Step], *, now: datetime
) -> list[Step]:
    checked = validate_steps(steps)
    bot.steps = [step.as_json() for step in checked]
    bot.updated_at = now
    await session.flush()
    return checked


def validate_steps(steps: Sequence[Step]) -> list[Step]:
    if not steps:
        raise InvalidInput("steps must hold at least one step", field="steps")
    if len(steps) > MAX_STEPS:
        raise InvalidInput(f"steps must hold at most {MAX_STEPS} steps", field="steps")
    keys: list[str] = []
    for index, step in enumerate(steps, start=1):
        where = f"step {index} ('{step.key}')"
        if not KEY_PATTERN.fullmatch(step.key):
            raise _invalid(where, "key must be 1 to 40 lowercase letters, digits or _")
        if step.key in keys:
            raise _invalid(where, "key is used by an earlier step")
        keys.append(step.key)
    fields = {"partnerCode", "username", "firstName"}
    cleaned = []
    for index, step in enumerate(steps, start=1):
        where = f"step {index} ('{step.key}')"
        checked = _check_step(step, where, set(keys), fields)
        cleaned.append(checked)
        # The checked step, so a default field such as a contact's phone counts.
        if checked.field:
            fields.add(checked.field)
    _check_no_silent_loop(cleaned)
    return cleaned


def _check_no_silent_loop(steps: list[Step]) -> None:
    """Reject a loop of steps that never waits for the person: it never ends."""
    keys = [step.key for step in steps]
    by_key = {step.key: step for step in steps}
    for start in steps:
        path: list[str] = []
        key: str | None = start.key
        while key is not None:
            step = by_key[key]
            if step.type not in ("message", "link"):
                break
            if key in path:
                loop = " -> ".join([*path[path.index(key) :], key])
                raise InvalidInput(
                    f"steps {loop} loop without waiting for an answer",
                    field="steps",
                )
            path.append(key)
            index = keys.index(key) + 1
            key = step.next or (keys[index] if index < len(keys) else None)


def _check_step(step: Step, where: str, keys: set[str], fields: set[str]) -> Step:
    if step.type not in STEP_TYPES:
        raise _invalid(where, f"type must be one of {', '.join(STEP_TYPES)}")
    if step.next is not None and step.next not in keys:
        raise _invalid(where, f"next names a missing step '{step.next}'")
    needs_text = step.type != "end"
    if step.text is None:
        if needs_text:
            raise _invalid(where, "text is required")
    else:
        _check_html(step.text, where, "text")
    match step.type:
        case "message":
            _check_url_buttons(step, where)
        case "question":
            step = _check_question(step, where)
        case "choice":
            _check_choices(step, where, keys)
        case "contact":
            step = Step(**{**step.as_json(), "field": step.field or "phone"})
        case "link":
            _check_link(step, where, fields)
        case "subscribe":
            step = _check_subscribe(step, where)
    if step.type != "subscribe" and step.plan is not None:
        raise _invalid(where, "plan is only for a subscribe step")
    if step.type not in ("message", "choice", "subscribe") and step.buttons:
        raise _invalid(where, f"a {step.type} step takes no buttons")
    return step


def _check_question(step: Step, where: str) -> Step:
    if step.field is None or not FIELD_PATTERN.fullmatch(step.field):
        raise _invalid(where, "field must name where the answer is saved, like email")
    if step.check not in CHECKS:
        raise _invalid(where, f"check must be one of {', '.join(CHECKS)}")
    if step.check == "regex":
        if not step.pattern:
            raise _invalid(where, "pattern is required for the regex check")
        if len(step.pattern) > 500:
            raise _invalid(where, "pattern must be at most 500 characters")
        try:
            re.compile(step.pattern)
        except re.error as error:
            raise _invalid(
                where, f"pattern is not a valid regular expression: {error}"
            ) from None
    elif step.pattern is not None:
        raise _invalid(where, "pattern is only for the regex check")
    retry = step.retry_text or DEFAULT_RETRY
    _check_html(retry, where, "retryText")
    return Step(**{**step.as_json(), "retry_text": retry})


def _check_subscribe(step: Step, where: str) -> Step:
    plan = step.plan or DEFAULT_PLAN
    if not PLAN_PATTERN.fullmatch(plan):
        raise _invalid(where, "plan must be 1 to 40 letters, digits, _ or -")
    if step.buttons:
        if len(step.buttons) != 2:
            raise _invalid(
                where, "a subscribe step takes two buttons: subscribe, then decline"
            )
        for button in step.buttons:
            _check_button_text(button, where)
            if button.url or button.value or button.next:
                raise _invalid(where, "subscribe buttons take a text only")
    if step.field is not None and not FIELD_PATTERN.fullmatch(step.field):
        raise _invalid(where, "field must be a name like subscribed")
    return replace(step, plan=plan, field=step.field or "subscribed")


def _check_url_buttons(step: Step, where: str) -> None:
    if len(step.buttons) > MAX_BUTTONS:
        raise _invalid(where, f"at most {MAX_BUTTONS} buttons are allowed")
    for button in step.buttons:
        _check_button_text(button, where)
        if button.url is None or not _is_web_url(button.url):
            raise _invalid(where, f"button '{button.text}' needs an http or https url")
        if button.value is not None or button.next is not None:
            raise _invalid(where, "message buttons are links: give url only")


def _check_choices(step: Step, where: str, keys: set[str]) -> None:
    if not 1 <= len(step.buttons) <= MAX_BUTTONS:
        raise _invalid(where, f"a choice needs 1 to {MAX_BUTTONS} buttons")
    values = []
    for button in step.buttons:
        _check_button_text(button, where)
        value = button.value or button.text
        data = f"{step.key}:{value}".encode()
        if len(data) > CALLBACK_DATA_LIMIT:
            raise _invalid(
                where,
                f"button '{button.text}' value is too long: Telegram allows "
                f"{CALLBACK_DATA_LIMIT} bytes of callback data, with the step key",
            )
        if value in values:
            raise _invalid(where, f"two buttons share the value '{value}'")
        values.append(value)
        if button.next is not None and button.next not in keys:
            raise _invalid(
                where, f"button '{button.text}' jumps to a missing step '{button.next}'"
            )
        if button.url is not None:
            raise _invalid(where, "choice buttons answer the question: give no url")


def _check_link(step: Step, where: str, fields: set[str]) -> None:
    if step.url is None:
        raise _invalid(where, "url is required")
    for name in PLACEHOLDER.findall(step.url):
        if name not in fields:
            raise _invalid(
                where, f"url uses {{{name}}}, which no earlier step captures"
            )
    if not _is_web_url(PLACEHOLDER.sub("x", step.url)):
        raise _invalid(where, "url must be an http or https address")


def _check_button_text(button: Button, where: str) -> None:
    if not button.text.strip() or len(button.text) > BUTTON_TEXT_LIMIT:
        raise _invalid(
            where, f"button text must be 1 to {BUTTON_TEXT_LIMIT} characters"
        )


def _check_html(text: str, where: str, name: str) -> None:
    try:
        visible = visible_text(text)
    except InvalidTelegramHtml as error:
        raise _invalid(
            where, f"{name} is not HTML that Telegram accepts: {error}"
        ) from None
    # Telegram rejects as empty a text of nothing but spaces and invisible
    # format characters, such as the zero-width space.
    printed = "".join(c for c in visible if unicodedata.category(c) != "Cf")
    if not printed.strip():
        raise _invalid(where, f"{name} has no visible characters")
    length = len(visible)
    if not 1 <= length <= MESSAGE_LIMIT:
        raise _invalid(
            where, f"{name} must be 1 to {MESSAGE_LIMIT} characters, not {length}"
        )


def _is_web_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _invalid(where: str, problem: str) -> InvalidInput:
    return InvalidInput(f"{where}: {problem}", field="steps")
