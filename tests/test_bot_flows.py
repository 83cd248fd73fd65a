"""Onboarding flows: a bot's step list is validated whole and replaced whole."""

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import pytest_asyncio

from db.models import TelegramBot
from domain.telegram_html import InvalidTelegramHtml, visible_length
from tests.conftest import (
    Server,
    Workspace,
    close_workspace,
    create_workspace,
    graphql,
)
from tests.fakes.bot_api import FakeBotApi

DEFAULT_RETRY = "That does not look right. Please try again."
STEP_KEYS = (
    "key", "type", "text", "buttons", "field", "check", "pattern", "retryText",
    "url", "next", "plan",
)  # fmt: skip

FLOW: list[dict[str, Any]] = [
    {
        "key": "welcome",
        "type": "message",
        "text": "Welcome to <b>Acme</b> &amp; <i>friends</i>",
        "buttons": [{"text": "Website", "url": "https://acme.example.com/"}],
    },
    {
        "key": "email",
        "type": "question",
        "text": "What is your email?",
        "field": "email",
        "check": "email",
    },
    {
        "key": "account",
        "type": "question",
        "text": "Your account number?",
        "field": "account",
        "check": "regex",
        "pattern": "^[0-9]{6,10}$",
        "retryText": "Six to ten <b>digits</b>, please.",
        "next": "level",
    },
    {
        "key": "level",
        "type": "choice",
        "text": "How long have you traded?",
        "buttons": [
            {"text": "New to it", "value": "new", "next": "phone"},
            {"text": "Years"},
        ],
    },
    {"key": "phone", "type": "contact", "text": "Share your phone number"},
    {
        "key": "open",
        "type": "link",
        "text": "Open your account",
        "url": "https://broker.example.com/open?ref={partnerCode}&mail={email}",
    },
    {"key": "done", "type": "end"},
]

BASELINE: list[dict[str, Any]] = [
    {"key": "hello", "type": "message", "text": "Hello"},
    {"key": "bye", "type": "end", "text": "Bye"},
]

STEP_FIELDS = """
key type text buttons { text url value next } field check pattern retryText url next
plan
"""
BOT_STEPS = f"query($botId: ID!) {{ botSteps(botId: $botId) {{ {STEP_FIELDS} }} }}"
SET_STEPS = f"""
mutation($botId: ID!, $steps: [BotStepInput!]!) {{
  setBotSteps(botId: $botId, steps: $steps) {{ {STEP_FIELDS} }}
}}
"""
MODULE_OFF = "The onboarding module is turned off for this workspace"


def returned(step: dict[str, Any]) -> dict[str, Any]:
    """Return the step as the API returns it, with every field and default filled."""
    full: dict[str, Any] = {name: step.get(name) for name in STEP_KEYS}
    full["buttons"] = [
        {name: button.get(name) for name in ("text", "url", "value", "next")}
        for button in step.get("buttons", [])
    ]
    if step["type"] == "question" and full["retryText"] is None:
        full["retryText"] = DEFAULT_RETRY
    if step["type"] == "contact" and full["field"] is None:
        full["field"] = "phone"
    if step["type"] == "subscribe":
        full["field"] = full["field"] or "subscribed"
        full["plan"] = full["plan"] or "signals"
    return full


def stored(step: dict[str, Any]) -> dict[str, Any]:
    """Return the step as the database stores it: set fields only, in snake_case."""
    full = returned(step)
    row: dict[str, Any] = {
        ("retry_text" if name == "retryText" else name): value
        for name, value in full.items()
        if value is not None and name != "buttons"
    }
    if full["buttons"]:
        row["buttons"] = [
            {name: value for name, value in button.items() if value is not None}
            for button in full["buttons"]
        ]
    return row


async def connect(client: httpx.AsyncClient, bot_api: FakeBotApi) -> str:
    token = bot_api.add_bot(f"ib_{uuid.uuid4().hex[:10]}_bot")
    response = await client.post("/api/onboarding/bots", json={"botToken": token})
    assert response.status_code == 201, response.text
    bot_id: str = response.json()["id"]
    return bot_id


async def put_steps(
    client: httpx.AsyncClient, bot_id: str, steps: list[dict[str, Any]]
) -> httpx.Response:
    return await client.put(
        f"/api/onboarding/bots/{bot_id}/steps", json={"steps": steps}
    )


async def db_steps(server: Server, bot_id: str) -> list[dict[str, Any]]:
    async with server.sessions() as db:
        bot = await db.get(TelegramBot, uuid.UUID(bot_id))
        assert bot is not None
        return list(bot.steps)


async def read_steps(client: httpx.AsyncClient, bot_id: str) -> list[dict[str, Any]]:
    body = await graphql(client, BOT_STEPS, {"botId": bot_id})
    assert "errors" not in body, body
    steps: list[dict[str, Any]] = body["data"]["botSteps"]
    return steps


@dataclass
class SavedBot:
    workspace: Workspace
    bot_id: str


@pytest_asyncio.fixture(scope="module")
async def saved_bot(server: Server, bot_api: FakeBotApi) -> AsyncIterator[SavedBot]:
    """A bot whose steps are BASELINE, which tests that use it must keep."""
    created = await create_workspace(server)
    bot_id = await connect(created.owner, bot_api)
    response = await put_steps(created.owner, bot_id, BASELINE)
    assert response.status_code == 200, response.text
    yield SavedBot(created, bot_id)
    await close_workspace(created)


async def assert_baseline(server: Server, saved: SavedBot) -> None:
    assert await read_steps(saved.workspace.owner, saved.bot_id) == [
        returned(step) for step in BASELINE
    ]
    assert await db_steps(server, saved.bot_id) == [stored(s) for s in BASELINE]


async def test_rest_flow_round_trips(
    server: Server, workspace: Workspace, bot_api: FakeBotApi
) -> None:
    bot_id = await connect(workspace.owner, bot_api)

    response = await put_steps(workspace.admin, bot_id, FLOW)

    assert response.status_code == 200, response.text
    assert response.json() == [returned(step) for step in FLOW]
    assert await read_steps(workspace.member, bot_id) == response.json()
    assert await db_steps(server, bot_id) == [stored(step) for step in FLOW]


async def test_graphql_flow_round_trips(
    server: Server, workspace: Workspace, bot_api: FakeBotApi
) -> None:
    bot_id = await connect(workspace.owner, bot_api)

    body = await graphql(workspace.owner, SET_STEPS, {"botId": bot_id, "steps": FLOW})

    assert "errors" not in body, body
    assert body["data"]["setBotSteps"] == [returned(step) for step in FLOW]
    assert await read_steps(workspace.owner, bot_id) == [returned(s) for s in FLOW]
    assert await db_steps(server, bot_id) == [stored(step) for step in FLOW]


async def test_new_bot_has_no_steps(workspace: Workspace, bot_api: FakeBotApi) -> None:
    bot_id = await connect(workspace.owner, bot_api)

    assert await read_steps(workspace.owner, bot_id) == []


async def test_replace_drops_old_steps(
    server: Server, workspace: Workspace, bot_api: FakeBotApi
) -> None:
    bot_id = await connect(workspace.owner, bot_api)
    first = await put_steps(workspace.owner, bot_id, FLOW)
    replacement = [{"key": "only", "type": "end", "text": "All done"}]

    second = await put_steps(workspace.owner, bot_id, replacement)

    assert first.status_code == 200, first.text
    assert second.status_code == 200, second.text
    assert second.json() == [returned(replacement[0])]
    assert await read_steps(workspace.owner, bot_id) == second.json()
    assert await db_steps(server, bot_id) == [stored(replacement[0])]


def message(key: str, text: str = "Hi", **extra: Any) -> dict[str, Any]:
    return {"key": key, "type": "message", "text": text, **extra}


def choice(key: str, buttons: list[dict[str, Any]]) -> dict[str, Any]:
    return {"key": key, "type": "choice", "text": "Pick one", "buttons": buttons}


def question(**extra: Any) -> dict[str, Any]:
    return {"key": "ask", "type": "question", "text": "Your code?", **extra}


def link(url: str | None) -> dict[str, Any]:
    step: dict[str, Any] = {"key": "go", "type": "link", "text": "Open"}
    if url is not None:
        step["url"] = url
    return step


def html_case(text: str, problem: str) -> tuple[list[dict[str, Any]], str]:
    return (
        [message("hello", text)],
        f"step 1 ('hello'): text is not HTML that Telegram accepts: {problem}",
    )


ENTITY_HINT = "use &amp;, &lt;, &gt;, &quot; or a numeric one"
INVALID: dict[str, tuple[list[dict[str, Any]], str]] = {
    "duplicate key": (
        [message("hello"), message("hello")],
        "step 2 ('hello'): key is used by an earlier step",
    ),
    "next to missing step": (
        [message("hello", next="nowhere")],
        "step 1 ('hello'): next names a missing step 'nowhere'",
    ),
    "button to missing step": (
        [choice("pick", [{"text": "Yes", "next": "gone"}])],
        "step 1 ('pick'): button 'Yes' jumps to a missing step 'gone'",
    ),
    "empty list": ([], "steps must hold at least one step"),
    "101 steps": (
        [message(f"s{n}") for n in range(101)],
        "steps must hold at most 100 steps",
    ),
    "question without field": (
        [question(check="text")],
        "step 1 ('ask'): field must name where the answer is saved, like email",
    ),
    "regex without pattern": (
        [question(field="code", check="regex")],
        "step 1 ('ask'): pattern is required for the regex check",
    ),
    "invalid regex": (
        [question(field="code", check="regex", pattern="(")],
        "step 1 ('ask'): pattern is not a valid regular expression: "
        "missing ), unterminated subpattern at position 0",
    ),
    "pattern on text check": (
        [question(field="code", check="text", pattern="^a$")],
        "step 1 ('ask'): pattern is only for the regex check",
    ),
    "choice without buttons": (
        [choice("pick", [])],
        "step 1 ('pick'): a choice needs 1 to 10 buttons",
    ),
    "choice with 11 buttons": (
        [choice("pick", [{"text": f"Option {n}"} for n in range(11)])],
        "step 1 ('pick'): a choice needs 1 to 10 buttons",
    ),
    "callback data too long": (
        # "pick:" is 5 bytes and each euro sign 3, so 5 + 60 = 65 bytes.
        [choice("pick", [{"text": "Euro", "value": "€" * 20}])],
        "step 1 ('pick'): button 'Euro' value is too long: Telegram allows "
        "64 bytes of callback data, with the step key",
    ),
    "duplicate button value": (
        [
            choice(
                "pick", [{"text": "Yes", "value": "y"}, {"text": "Sure", "value": "y"}]
            )
        ],
        "step 1 ('pick'): two buttons share the value 'y'",
    ),
    "button url not web": (
        [message("hello", buttons=[{"text": "Chat", "url": "tg://resolve?domain=x"}])],
        "step 1 ('hello'): button 'Chat' needs an http or https url",
    ),
    "button without url": (
        [message("hello", buttons=[{"text": "Chat"}])],
        "step 1 ('hello'): button 'Chat' needs an http or https url",
    ),
    "placeholder captured later": (
        [
            link("https://broker.example.com/?mail={email}"),
            question(field="email", check="email"),
        ],
        "step 1 ('go'): url uses {email}, which no earlier step captures",
    ),
    "link without url": ([link(None)], "step 1 ('go'): url is required"),
    "text of 4097 characters": (
        [message("hello", "<b>" + "x" * 4097 + "</b>")],
        "step 1 ('hello'): text must be 1 to 4096 characters, not 4097",
    ),
    "div tag": html_case("<div>hi</div>", "the tag <div> is not one Telegram accepts"),
    "unclosed bold": html_case("<b>hi", "<b> is never closed"),
    "misnested tags": html_case(
        "<b><i>hi</b></i>", "</b> closes nothing open here; </i> expected"
    ),
    "link without href": html_case("<a>site</a>", "a link <a> needs an href"),
    "nbsp entity": html_case(
        "10&nbsp;pips", f"&nbsp; is not an entity Telegram accepts; {ENTITY_HINT}"
    ),
    "bare ampersand": html_case("Tom & Jerry", "a bare & must be written &amp;"),
    "bare less-than": html_case("1 < 2", "a bare < must be written &lt;"),
    "only a zero-width space": (
        [message("a", text="\u200b")],
        "step 1 ('a'): text has no visible characters",
    ),
    "only spaces in bold": (
        [message("a", text="<b> </b>")],
        "step 1 ('a'): text has no visible characters",
    ),
    "messages that loop": (
        [message("a", next="b"), message("b", next="a")],
        "steps a -> b -> a loop without waiting for an answer",
    ),
    "message that jumps to itself": (
        [message("a", next="a")],
        "steps a -> a loop without waiting for an answer",
    ),
    "subscribe with one button": (
        [
            {
                "key": "sub",
                "type": "subscribe",
                "text": "Join?",
                "buttons": [{"text": "Y"}],
            }
        ],
        "step 1 ('sub'): a subscribe step takes two buttons: subscribe, then decline",
    ),
    "subscribe plan with spaces": (
        [{"key": "sub", "type": "subscribe", "text": "Join?", "plan": "vip plan"}],
        "step 1 ('sub'): plan must be 1 to 40 letters, digits, _ or -",
    ),
    "plan on a message": (
        [message("a", plan="vip")],
        "step 1 ('a'): plan is only for a subscribe step",
    ),
}


@pytest.mark.parametrize(("steps", "error"), INVALID.values(), ids=INVALID.keys())
async def test_invalid_list_saves_nothing(
    server: Server, saved_bot: SavedBot, steps: list[dict[str, Any]], error: str
) -> None:
    response = await put_steps(saved_bot.workspace.owner, saved_bot.bot_id, steps)

    assert response.status_code == 400, response.text
    assert response.json() == {"error": error}
    await assert_baseline(server, saved_bot)


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        (
            "type",
            "Invalid value for 'steps.0.type': "
            "Value 'quiz' does not exist in 'StepType' enum",
        ),
        (
            "check",
            "Invalid value for 'steps.0.check': "
            "Value 'shape' does not exist in 'AnswerCheck' enum",
        ),
    ],
)
async def test_unknown_enum_rejected(
    server: Server, saved_bot: SavedBot, kind: str, error: str
) -> None:
    step = question(field="code", check="text")
    step[kind] = {"type": "quiz", "check": "shape"}[kind]

    response = await put_steps(saved_bot.workspace.owner, saved_bot.bot_id, [step])

    assert response.status_code == 400, response.text
    assert response.json() == {"error": error}
    await assert_baseline(server, saved_bot)


async def test_text_limits_count_visible(
    server: Server, workspace: Workspace, bot_api: FakeBotApi
) -> None:
    bot_id = await connect(workspace.owner, bot_api)
    text = '<b>x</b><a href="https://acme.example.com/">' + "y" * 4094 + "</a>z"
    steps = [message("hello", text), message("plain", "EUR_USD 1.085 [TP1] *x*")]

    response = await put_steps(workspace.owner, bot_id, steps)

    assert response.status_code == 200, response.text
    assert [step["text"] for step in response.json()] == [
        text,
        "EUR_USD 1.085 [TP1] *x*",
    ]
    assert await db_steps(server, bot_id) == [stored(step) for step in steps]


async def test_escaped_less_than_accepted(
    workspace: Workspace, bot_api: FakeBotApi
) -> None:
    bot_id = await connect(workspace.owner, bot_api)
    # An escaped < is a visible "<" once parsed, which is what Telegram expects.
    steps = [message("hello", "Spread &lt; 1 pip &amp; fast &#60;3")]

    response = await put_steps(workspace.owner, bot_id, steps)

    assert response.status_code == 200, response.text
    assert response.json() == [returned(steps[0])]


async def test_contact_phone_usable_later(
    workspace: Workspace, bot_api: FakeBotApi
) -> None:
    bot_id = await connect(workspace.owner, bot_api)
    # A contact step without a field saves the phone number into "phone".
    steps = [
        {"key": "phone", "type": "contact", "text": "Share your phone"},
        link("https://broker.example.com/?p={phone}&u={username}&n={firstName}"),
    ]

    response = await put_steps(workspace.owner, bot_id, steps)

    assert response.status_code == 200, response.text
    assert response.json() == [returned(step) for step in steps]


async def test_callback_data_of_64_bytes(
    workspace: Workspace, bot_api: FakeBotApi
) -> None:
    bot_id = await connect(workspace.owner, bot_api)
    # "pick:" and 59 single-byte characters make exactly 64 bytes.
    steps = [choice("pick", [{"text": "Long", "value": "v" * 59}])]

    response = await put_steps(workspace.owner, bot_id, steps)

    assert response.status_code == 200, response.text
    assert response.json() == [returned(steps[0])]


async def test_graphql_invalid_list_refused(
    server: Server, saved_bot: SavedBot
) -> None:
    body = await graphql(
        saved_bot.workspace.owner,
        SET_STEPS,
        {"botId": saved_bot.bot_id, "steps": [message("a"), message("a")]},
    )

    assert body["data"] is None
    (error,) = body["errors"]
    assert error["message"] == "step 2 ('a'): key is used by an earlier step"
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    await assert_baseline(server, saved_bot)


async def test_other_workspace_bot_hidden(
    server: Server, saved_bot: SavedBot, other_workspace: Workspace
) -> None:
    response = await put_steps(other_workspace.owner, saved_bot.bot_id, FLOW)
    body = await graphql(other_workspace.owner, BOT_STEPS, {"botId": saved_bot.bot_id})

    assert response.status_code == 404
    assert response.json() == {"error": "Bot not found"}
    assert body["data"] is None
    assert body["errors"][0]["message"] == "Bot not found"
    assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    await assert_baseline(server, saved_bot)


@pytest.mark.parametrize("bot_id", ["not-a-uuid", "12345", str(uuid.uuid4())])
async def test_unknown_bot_id_404(saved_bot: SavedBot, bot_id: str) -> None:
    response = await put_steps(saved_bot.workspace.owner, bot_id, BASELINE)

    assert response.status_code == 404
    assert response.json() == {"error": "Bot not found"}


async def test_member_cannot_set_steps(server: Server, saved_bot: SavedBot) -> None:
    response = await put_steps(saved_bot.workspace.member, saved_bot.bot_id, FLOW)

    assert response.status_code == 403
    assert response.json() == {"error": "This action needs the owner or admin role"}
    await assert_baseline(server, saved_bot)


async def test_module_off_blocks_steps(
    server: Server, workspace: Workspace, bot_api: FakeBotApi
) -> None:
    bot_id = await connect(workspace.owner, bot_api)
    saved = await put_steps(workspace.owner, bot_id, BASELINE)
    switched = await workspace.owner.patch(
        "/api/billing/modules", json={"module": "onboarding", "enabled": False}
    )

    response = await put_steps(workspace.owner, bot_id, FLOW)
    body = await graphql(workspace.owner, BOT_STEPS, {"botId": bot_id})

    assert saved.status_code == 200, saved.text
    assert switched.status_code == 200, switched.text
    assert response.status_code == 403
    assert response.json() == {"error": MODULE_OFF}
    assert body["data"] is None
    assert body["errors"][0]["message"] == MODULE_OFF
    assert await db_steps(server, bot_id) == [stored(step) for step in BASELINE]


@pytest.mark.parametrize(
    ("text", "length"),
    [
        ("plain text", 10),
        ("<b>bold</b> and <i>it</i>", 11),
        ("&lt;b&gt; &amp; &quot;", 7),
        ("&#65;&#x42;", 2),
        ('<a href="https://acme.example.com/">site</a>', 4),
        ('<span class="tg-spoiler">s</span><tg-spoiler>t</tg-spoiler>', 2),
        ("", 0),
    ],
)
def test_visible_length_counts(text: str, length: int) -> None:
    assert visible_length(text) == length


@pytest.mark.parametrize(
    "text", ["<div>x</div>", "<b>x", "a & b", "&nbsp;", "&amp", "<br/>", "<!-- c -->"]
)
def test_visible_length_rejects(text: str) -> None:
    with pytest.raises(InvalidTelegramHtml):
        visible_length(text)
