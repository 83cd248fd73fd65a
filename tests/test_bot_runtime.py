"""The onboarding bot runtime: webhook and polling, flows, captured leads, sending.

Every test drives the real aiogram client against the loopback fake Bot API,
with the Telegram workers running beside the session's server.
"""

import asyncio
import logging
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from db.models import Activity, BotConversation, BotUpdate, Job, Lead, TelegramBot
from tests.conftest import Server, TelegramWorkers, Workspace
from tests.fakes.bot_api import CAN_NOT_PARSE, FakeBotApi
from tests.support.waiting import eventually
from workers.maintenance import purge_old_updates

pytestmark = pytest.mark.usefixtures("telegram_workers")

FLOW: list[dict[str, Any]] = [
    {"key": "hello", "type": "message", "text": "Welcome to <b>Acme</b> &amp; co!"},
    {
        "key": "email",
        "type": "question",
        "text": "What is your email?",
        "field": "email",
        "check": "email",
        "retryText": "That is not an email address. Try again?",
    },
    {
        "key": "experience",
        "type": "choice",
        "text": "Have you traded before?",
        "field": "experience",
        "buttons": [
            {"text": "Yes", "value": "yes"},
            {"text": "No", "value": "no", "next": "phone"},
        ],
    },
    {"key": "account", "type": "question", "text": "Your account id?",
     "field": "accountId", "check": "regex", "pattern": "[0-9]{6,10}"},
    {"key": "phone", "type": "contact", "text": "Share your phone, please."},
    {"key": "register", "type": "link", "text": "Open your account:",
     "url": "https://broker.example/open?ib={partnerCode}&mail={email}"},
    {"key": "bye", "type": "end", "text": "All set, thank you!"},
]  # fmt: skip

USER = 4242


def unique_user() -> int:
    return 10_000 + uuid.uuid4().int % 1_000_000_000


async def connect(
    client: httpx.AsyncClient, bot_api: FakeBotApi, steps: list[dict[str, Any]] = FLOW
) -> tuple[str, str]:
    token = bot_api.add_bot(f"ib_{uuid.uuid4().hex[:10]}_bot")
    created = await client.post("/api/onboarding/bots", json={"botToken": token})
    assert created.status_code == 201, created.text
    bot_id = created.json()["id"]
    saved = await client.put(
        f"/api/onboarding/bots/{bot_id}/steps", json={"steps": steps}
    )
    assert saved.status_code == 200, saved.text
    return bot_id, token


async def start(client: httpx.AsyncClient, bot_id: str, mode: str) -> dict[str, Any]:
    response = await client.post(
        f"/api/onboarding/bots/{bot_id}/start", json={"mode": mode}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def texts_to(bot_api: FakeBotApi, chat_id: int, count: int) -> list[str]:
    """Wait until ``count`` messages reached the chat, and return their texts."""
    await eventually(lambda: len(bot_api.sent_to(chat_id)) >= count)
    return [message.text for message in bot_api.sent_to(chat_id)]


async def say(
    bot_api: FakeBotApi, token: str, text: str | None, user: int, **extra: Any
) -> None:
    update = bot_api.message_update(text, user_id=user, **extra)
    response = await bot_api.deliver(token, update)
    assert response.status_code == 200, response.text


async def conversation(server: Server, chat_id: int) -> BotConversation:
    async with server.sessions() as db:
        row: BotConversation = (
            await db.execute(
                select(BotConversation).where(BotConversation.chat_id == chat_id)
            )
        ).scalar_one()
        return row


async def lead_of(server: Server, telegram_user_id: int) -> list[Lead]:
    async with server.sessions() as db:
        rows = await db.execute(
            select(Lead).where(Lead.telegram_user_id == telegram_user_id)
        )
        return list(rows.scalars())


async def jobs_to(server: Server, chat_id: int) -> list[Job]:
    async with server.sessions() as db:
        rows = await db.execute(
            select(Job).where(Job.chat_id == chat_id).order_by(Job.id)
        )
        return list(rows.scalars())


async def finished_jobs(server: Server, chat_id: int) -> list[Job]:
    """Wait until every job to the chat has finished, and return them in order."""

    async def finished() -> bool:
        jobs = await jobs_to(server, chat_id)
        return bool(jobs) and all(job.finished_at for job in jobs)

    await eventually(finished)
    return await jobs_to(server, chat_id)


# Starting and stopping.


async def test_start_webhook_sets_secret_webhook(
    server: Server, workspace: Workspace, bot_api: FakeBotApi
) -> None:
    bot_id, token = await connect(workspace.owner, bot_api)

    body = await start(workspace.owner, bot_id, "webhook")

    assert body["mode"] == "webhook"
    assert body["status"] == "running"
    assert body["lastError"] is None
    fake = bot_api.bots[token]
    assert fake.webhook_url.startswith(f"{server.url}/api/telegram/webhook/")
    path = fake.webhook_url.rsplit("/", 1)[1]
    assert len(path) >= 40
    assert len(fake.webhook_secret) >= 40
    async with server.sessions() as db:
        row = await db.get(TelegramBot, uuid.UUID(bot_id))
        assert row is not None
        assert row.webhook_path == path
        # Only a digest of the secret is kept.
        assert row.webhook_secret_hash is not None
        assert fake.webhook_secret not in row.webhook_secret_hash
    listed = await workspace.owner.get("/api/onboarding/bots")
    assert fake.webhook_secret not in listed.text
    assert path not in listed.text


async def test_start_again_changes_path_and_secret(
    workspace: Workspace, bot_api: FakeBotApi
) -> None:
    bot_id, token = await connect(workspace.owner, bot_api)
    await start(workspace.owner, bot_id, "webhook")
    first = (bot_api.bots[token].webhook_url, bot_api.bots[token].webhook_secret)

    await start(workspace.owner, bot_id, "webhook")

    second = (bot_api.bots[token].webhook_url, bot_api.bots[token].webhook_secret)
    assert first[0] != second[0]
    assert first[1] != second[1]
    old = await httpx.AsyncClient().post(
        first[0],
        json=bot_api.message_update("/start"),
        headers={"X-Telegram-Bot-Api-Secret-Token": first[1]},
    )
    assert old.status_code == 401


async def test_bad_mode_is_refused(workspace: Workspace, bot_api: FakeBotApi) -> None:
    bot_id, _ = await connect(workspace.owner, bot_api)

    response = await workspace.owner.post(
        f"/api/onboarding/bots/{bot_id}/start", json={"mode": "carrier-pigeon"}
    )

    assert response.status_code == 400
    assert "mode" in response.json()["error"]


async def test_telegram_refusing_webhook_is_400_and_keeps_state(
    server: Server, workspace: Workspace, bot_api: FakeBotApi
) -> None:
    bot_id, _ = await connect(workspace.owner, bot_api)
    bot_api.fail(
        "setWebhook", 400, "Bad Request: bad webhook: HTTPS url must be provided"
    )

    response = await workspace.owner.post(
        f"/api/onboarding/bots/{bot_id}/start", json={"mode": "webhook"}
    )

    assert response.status_code == 400
    assert response.json() == {
        "error": "Telegram rejected starting the bot in webhook mode: Bad Request: "
        "bad webhook: HTTPS url must be provided"
    }
    async with server.sessions() as db:
        row = await db.get(TelegramBot, uuid.UUID(bot_id))
        assert row is not None
        assert (row.status, row.mode, row.webhook_path) == ("stopped", None, None)


async def test_telegram_down_on_start_is_503(
    workspace: Workspace, bot_api: FakeBotApi
) -> None:
    bot_id, _ = await connect(workspace.owner, bot_api)
    bot_api.fail_next = 1

    response = await workspace.owner.post(
        f"/api/onboarding/bots/{bot_id}/start", json={"mode": "polling"}
    )

    assert response.status_code == 503
    assert response.json() == {
        "error": "Telegram could not be reached to start the bot; try again shortly"
    }
    listed = (await workspace.owner.get("/api/onboarding/bots")).json()
    bot = next(b for b in listed if b["id"] == bot_id)
    # Telegram may have acted on a call that got no response.
    assert bot["status"] == "error"
    assert bot["lastError"] == (
        "Telegram did not answer while the bot was being started; whether it took "
        "effect is unknown, so start or stop the bot again"
    )
    again = await workspace.owner.post(
        f"/api/onboarding/bots/{bot_id}/start", json={"mode": "polling"}
    )
    assert again.status_code == 200


async def test_member_cannot_start_or_stop(
    workspace: Workspace, bot_api: FakeBotApi
) -> None:
    bot_id, token = await connect(workspace.owner, bot_api)

    started = await workspace.member.post(
        f"/api/onboarding/bots/{bot_id}/start", json={"mode": "webhook"}
    )
    stopped = await workspace.member.post(f"/api/onboarding/bots/{bot_id}/stop")

    assert started.status_code == 403
    assert stopped.status_code == 403
    assert bot_api.bots[token].webhook_url == ""


async def test_other_workspace_bot_is_404(
    workspace: Workspace, other_workspace: Workspace, bot_api: FakeBotApi
) -> None:
    bot_id, token = await connect(workspace.owner, bot_api)

    started = await other_workspace.owner.post(
        f"/api/onboarding/bots/{bot_id}/start", json={"mode": "webhook"}
    )
    stopped = await other_workspace.owner.post(f"/api/onboarding/bots/{bot_id}/stop")
    leads = await other_workspace.owner.get(f"/api/onboarding/bots/{bot_id}/leads")

    assert [started.status_code, stopped.status_code, leads.status_code] == [404] * 3
    assert bot_api.bots[token].webhook_url == ""


async def test_stop_removes_webhook_and_drops_updates(
    server: Server, workspace: Workspace, bot_api: FakeBotApi
) -> None:
    bot_id, token = await connect(workspace.owner, bot_api)
    await start(workspace.owner, bot_id, "webhook")
    url, secret = bot_api.bots[token].webhook_url, bot_api.bots[token].webhook_secret
    user = unique_user()

    stopped = await workspace.owner.post(f"/api/onboarding/bots/{bot_id}/stop")
    late = await httpx.AsyncClient().post(
        url,
        json=bot_api.message_update("/start", user_id=user),
        headers={"X-Telegram-Bot-Api-Secret-Token": secret},
    )

    assert stopped.status_code == 200
    assert stopped.json()["status"] == "stopped"
    assert bot_api.bots[token].webhook_url == ""
    # Acknowledged so that Telegram stops resending, but neither stored nor handled.
    assert late.status_code == 200
    async with server.sessions() as db:
        stored = await db.scalar(
            select(func.count()).select_from(BotUpdate).where(BotUpdate.chat_id == user)
        )
    assert stored == 0


# The webhook.


async def test_wrong_secret_is_401_and_touches_nothing(
    server: Server, workspace: Workspace, bot_api: FakeBotApi
) -> None:
    bot_id, token = await connect(workspace.owner, bot_api)
    await start(workspace.owner, bot_id, "webhook")
    url = bot_api.bots[token].webhook_url
    user = unique_user()
    update = bot_api.message_update("/start", user_id=user)

    async with httpx.AsyncClient() as client:
        wrong = await client.post(
            url, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": "guess"}
        )
        missing = await client.post(url, json=update)
        unknown_path = await client.post(
            f"{server.url}/api/telegram/webhook/{'x' * 43}",
            json=update,
            headers={
                "X-Telegram-Bot-Api-Secret-Token": bot_api.bots[token].webhook_secret
            },
        )

    for response in (wrong, missing, unknown_path):
        assert response.status_code == 401
        assert response.json() == {"error": "Unknown webhook or wrong secret token"}
    async with server.sessions() as db:
        stored = await db.scalar(
            select(func.count()).select_from(BotUpdate).where(BotUpdate.chat_id == user)
        )
    assert stored == 0
    await asyncio.sleep(0.2)
    assert bot_api.sent_to(user) == []


async def test_malformed_update_is_400(
    workspace: Workspace, bot_api: FakeBotApi
) -> None:
    bot_id, token = await connect(workspace.owner, bot_api)
    await start(workspace.owner, bot_id, "webhook")
    fake = bot_api.bots[token]
    headers = {"X-Telegram-Bot-Api-Secret-Token": fake.webhook_secret}

    async with httpx.AsyncClient() as client:
        not_json = await client.post(fake.webhook_url, content=b"{", headers=headers)
        no_id = await client.post(
            fake.webhook_url, json={"message": {}}, headers=headers
        )
        listed = await client.post(fake.webhook_url, json=[1], headers=headers)

    assert not_json.status_code == 400
    assert no_id.status_code == 400
    assert listed.status_code == 400
    assert "update_id" in no_id.json()["error"]


async def test_duplicate_update_is_handled_once(
    server: Server, workspace: Workspace, bot_api: FakeBotApi
) -> None:
    bot_id, token = await connect(workspace.owner, bot_api)
    await start(workspace.owner, bot_id, "webhook")
    user = unique_user()
    update = bot_api.message_update("/start", user_id=user)

    first = await bot_api.deliver(token, update)
    again = await bot_api.deliver(token, update)

    assert (first.status_code, again.status_code) == (200, 200)
    assert await texts_to(bot_api, user, 2) == [
        "Welcome to <b>Acme</b> &amp; co!",
        "What is your email?",
    ]
    await asyncio.sleep(0.3)
    assert len(bot_api.sent_to(user)) == 2
    async with server.sessions() as db:
        stored = await db.scalar(
            select(func.count()).select_from(BotUpdate).where(BotUpdate.chat_id == user)
        )
    assert stored == 1


# A whole flow.


async def run_whole_flow(
    server: Server, workspace: Workspace, bot_api: FakeBotApi, token: str, user: int
) -> None:
    async def send(text: str | None = None, **extra: Any) -> None:
        update = bot_api.message_update(text, user_id=user, **extra)
        if bot_api.bots[token].webhook_url:
            response = await bot_api.deliver(token, update)
            assert response.status_code == 200
        else:
            bot_api.queue_update(token, update)

    async def press(data: str) -> None:
        update = bot_api.callback_update(data, user_id=user)
        if bot_api.bots[token].webhook_url:
            assert (await bot_api.deliver(token, update)).status_code == 200
        else:
            bot_api.queue_update(token, update)
        await eventually(
            lambda: update["callback_query"]["id"] in bot_api.answered_callbacks
        )

    await send("/start janes_code")
    assert await texts_to(bot_api, user, 2) == [
        "Welcome to <b>Acme</b> &amp; co!",
        "What is your email?",
    ]
    assert await lead_of(server, user) == []

    await send("not an email")
    texts = await texts_to(bot_api, user, 3)
    assert texts[2] == "That is not an email address. Try again?"

    await send("Alex@Example.COM")
    await texts_to(bot_api, user, 4)
    choice = bot_api.sent_to(user)[3]
    assert choice.text == "Have you traded before?"
    assert choice.reply_markup == {
        "inline_keyboard": [
            [{"text": "Yes", "callback_data": "experience:yes"}],
            [{"text": "No", "callback_data": "experience:no"}],
        ]
    }
    (lead,) = await lead_of(server, user)
    assert lead.source == "onboarding_bot"
    assert lead.email == "alex@example.com"
    assert lead.telegram == "@alex_trader"
    assert lead.attribution == "janes_code"
    assert lead.full_name == "Alex"

    await press("experience:yes")
    assert (await texts_to(bot_api, user, 5))[4] == "Your account id?"
    await send("12ab")
    assert (await texts_to(bot_api, user, 6))[5] == (
        "That does not look right. Please try again."
    )
    await send("12345678")
    await texts_to(bot_api, user, 7)
    contact_prompt = bot_api.sent_to(user)[6]
    assert contact_prompt.text == "Share your phone, please."
    assert contact_prompt.reply_markup is not None
    assert contact_prompt.reply_markup["keyboard"] == [
        [{"text": "Share my phone number", "request_contact": True}]
    ]

    await send(
        None,
        contact={"phone_number": "447700900123", "first_name": "Alex", "user_id": user},
    )
    texts = await texts_to(bot_api, user, 10)
    assert texts[7] == "Thank you!"
    assert bot_api.sent_to(user)[7].reply_markup == {"remove_keyboard": True}
    link = "https://broker.example/open?ib=janes_code&amp;mail=alex%40example.com"
    assert texts[8] == f'Open your account:\n\n<a href="{link}">{link}</a>'
    assert texts[9] == "All set, thank you!"
    assert all(m.parse_mode == "HTML" for m in bot_api.sent_to(user))

    row = await conversation(server, user)
    assert row.status == "completed"
    assert row.step_key is None
    assert row.answers == {
        "email": "alex@example.com",
        "experience": "yes",
        "accountId": "12345678",
        "phone": "+447700900123",
    }
    (lead,) = await lead_of(server, user)
    assert lead.phone == "+447700900123"
    async with server.sessions() as db:
        bodies = list(
            (
                await db.execute(
                    select(Activity.body)
                    .where(Activity.lead_id == lead.id)
                    .order_by(Activity.created_at)
                )
            ).scalars()
        )
    assert bodies[0].startswith("Lead created (source: onboarding_bot, bot: @ib_")
    assert bodies[0].endswith(", via janes_code)")
    assert bodies[-1].startswith("Onboarding completed with @ib_")
    assert "accountId: 12345678" in bodies[-1]


async def test_whole_flow_through_webhook(
    server: Server, workspace: Workspace, bot_api: FakeBotApi
) -> None:
    bot_id, token = await connect(workspace.owner, bot_api)
    await start(workspace.owner, bot_id, "webhook")
    user = unique_user()

    await run_whole_flow(server, workspace, bot_api, token, user)

    page = await workspace.member.get(f"/api/onboarding/bots/{bot_id}/leads")
    assert page.status_code == 200
    body = page.json()
    assert (body["page"], body["pageSize"], body["total"]) == (1, 20, 1)
    (item,) = body["items"]
    (lead,) = await lead_of(server, user)
    assert item["leadId"] == str(lead.id)
    assert item["telegramUserId"] == str(user)
    assert item["username"] == "alex_trader"
    assert item["status"] == "completed"
    assert item["currentStep"] is None
    assert item["attribution"] == "janes_code"
    assert item["answers"] == [
        {"field": "email", "value": "alex@example.com"},
        {"field": "experience", "value": "yes"},
        {"field": "accountId", "value": "12345678"},
        {"field": "phone", "value": "+447700900123"},
    ]
    assert item["completedAt"].endswith("Z")
    bots = (await workspace.owner.get("/api/onboarding/bots")).json()
    assert next(b for b in bots if b["id"] == bot_id)["leadsCount"] == 1


async def test_whole_flow_through_polling(
    server: Server, workspace: Workspace, bot_api: FakeBotApi
) -> None:
    bot_id, token = await connect(workspace.owner, bot_api)
    await start(workspace.owner, bot_id, "webhook")
    body = await start(workspace.owner, bot_id, "polling")
    assert body["mode"] == "polling"
    assert bot_api.bots[token].webhook_url == ""
    user = unique_user()

    await run_whole_flow(server, workspace, bot_api, token, user)

    async with server.sessions() as db:
        row = await db.get(TelegramBot, uuid.UUID(bot_id))
        assert row is not None
        assert row.polling_offset is not None
        assert row.status == "running"


async def test_polling_stops_with_the_bot(
    server: Server, workspace: Workspace, bot_api: FakeBotApi
) -> None:
    bot_id, token = await connect(workspace.owner, bot_api)
    await start(workspace.owner, bot_id, "polling")
    user = unique_user()
    bot_api.queue_update(token, bot_api.message_update("/start", user_id=user))
    await texts_to(bot_api, user, 2)

    await workspace.owner.post(f"/api/onboarding/bots/{bot_id}/stop")
    await asyncio.sleep(1.5)
    calls = len([c for c in bot_api.calls if c == (token, "getUpdates")])
    await asyncio.sleep(1.5)

    assert len([c for c in bot_api.calls if c == (token, "getUpdates")]) == calls


async def test_switching_to_webhook_releases_poller_without_error(
    server: Server, workspace: Workspace, bot_api: FakeBotApi
) -> None:
    bot_id, token = await connect(workspace.owner, bot_api)
    await start(workspace.owner, bot_id, "polling")
    await eventually(lambda: (token, "getUpdates") in bot_api.calls)

    await start(workspace.owner, bot_id, "webhook")
    # The poller's next getUpdates meets the webhook (409) and lets go quietly.
    await asyncio.sleep(1.5)
    user = unique_user()
    await say(bot_api, token, "/start", user)

    await texts_to(bot_api, user, 2)
    listed = (await workspace.owner.get("/api/onboarding/bots")).json()
    bot = next(b for b in listed if b["id"] == bot_id)
    assert (bot["mode"], bot["status"], bot["lastError"]) == (
        "webhook",
        "running",
        None,
    )


async def test_polling_with_revoked_token_marks_error(
    server: Server, workspace: Workspace, bot_api: FakeBotApi
) -> None:
    bot_id, token = await connect(workspace.owner, bot_api)
    await start(workspace.owner, bot_id, "polling")
    bot_api.fail("getUpdates", 401, "Unauthorized")

    async def errored() -> bool:
        listed = (await workspace.owner.get("/api/onboarding/bots")).json()
        bot = next(b for b in listed if b["id"] == bot_id)
        return bool(bot["status"] == "error")

    await eventually(errored)
    listed = (await workspace.owner.get("/api/onboarding/bots")).json()
    bot = next(b for b in listed if b["id"] == bot_id)
    assert "connect the bot again" in bot["lastError"]
    assert token not in str(listed)


# Conversation rules.


async def test_same_user_is_one_lead(
    server: Server, workspace: Workspace, bot_api: FakeBotApi
) -> None:
    bot_id, token = await connect(workspace.owner, bot_api)
    second_id, second = await connect(workspace.owner, bot_api)
    await start(workspace.owner, bot_id, "webhook")
    await start(workspace.owner, second_id, "webhook")
    user = unique_user()

    await say(bot_api, token, "/start", user)
    await say(bot_api, token, "a@example.com", user)
    await texts_to(bot_api, user, 3)
    await say(bot_api, token, "/start again", user)
    await say(bot_api, token, "b@example.com", user)
    await texts_to(bot_api, user, 6)
    await say(bot_api, second, "/start", user)
    await say(bot_api, second, "c@example.com", user)
    await texts_to(bot_api, user, 9)

    (lead,) = await lead_of(server, user)
    assert lead.email == "c@example.com"
    assert str(lead.bot_id) == bot_id


async def test_cancel_starts_over_and_keeps_attribution(
    server: Server, workspace: Workspace, bot_api: FakeBotApi
) -> None:
    bot_id, token = await connect(workspace.owner, bot_api)
    await start(workspace.owner, bot_id, "webhook")
    user = unique_user()

    await say(bot_api, token, "/start spring_promo", user)
    await say(bot_api, token, "a@example.com", user)
    await texts_to(bot_api, user, 3)
    await say(bot_api, token, "/cancel", user)

    texts = await texts_to(bot_api, user, 5)
    assert texts[3:] == ["Welcome to <b>Acme</b> &amp; co!", "What is your email?"]
    row = await conversation(server, user)
    assert (row.step_key, row.answers, row.attribution) == ("email", {}, "spring_promo")


async def test_payload_over_64_characters_is_not_kept(
    server: Server, workspace: Workspace, bot_api: FakeBotApi
) -> None:
    bot_id, token = await connect(workspace.owner, bot_api)
    await start(workspace.owner, bot_id, "webhook")
    user = unique_user()

    await say(bot_api, token, "/start " + "a" * 65, user)
    await texts_to(bot_api, user, 2)

    assert (await conversation(server, user)).attribution is None


async def test_text_before_start_gets_a_hint(
    workspace: Workspace, bot_api: FakeBotApi
) -> None:
    bot_id, token = await connect(workspace.owner, bot_api)
    await start(workspace.owner, bot_id, "webhook")
    user = unique_user()

    await say(bot_api, token, "hello?", user)

    assert await texts_to(bot_api, user, 1) == ["Send /start to begin."]


async def test_stale_button_does_nothing(
    server: Server, workspace: Workspace, bot_api: FakeBotApi
) -> None:
    bot_id, token = await connect(workspace.owner, bot_api)
    await start(workspace.owner, bot_id, "webhook")
    user = unique_user()
    await say(bot_api, token, "/start", user)
    await texts_to(bot_api, user, 2)

    update = bot_api.callback_update("experience:yes", user_id=user)
    assert (await bot_api.deliver(token, update)).status_code == 200

    await eventually(
        lambda: update["callback_query"]["id"] in bot_api.answered_callbacks
    )
    assert (await conversation(server, user)).step_key == "email"
    assert len(bot_api.sent_to(user)) == 2


async def test_someone_elses_contact_is_refused(
    server: Server, workspace: Workspace, bot_api: FakeBotApi
) -> None:
    steps = [{"key": "phone", "type": "contact", "text": "Your phone?"}]
    bot_id, token = await connect(workspace.owner, bot_api, steps)
    await start(workspace.owner, bot_id, "webhook")
    user = unique_user()
    await say(bot_api, token, "/start", user)
    await texts_to(bot_api, user, 1)

    other = {"phone_number": "+15550001111", "first_name": "Sam", "user_id": 1}
    await say(bot_api, token, None, user, contact=other)

    texts = await texts_to(bot_api, user, 2)
    assert texts[1] == "Please share your own phone number with the button below."
    assert (await conversation(server, user)).answers == {}


async def test_module_off_skips_updates(
    server: Server, workspace: Workspace, bot_api: FakeBotApi
) -> None:
    bot_id, token = await connect(workspace.owner, bot_api)
    await start(workspace.owner, bot_id, "webhook")
    off = await workspace.owner.patch(
        "/api/billing/modules", json={"module": "onboarding", "enabled": False}
    )
    assert off.status_code == 200
    user = unique_user()

    await say(bot_api, token, "/start", user)

    async def skipped() -> bool:
        async with server.sessions() as db:
            status = await db.scalar(
                select(BotUpdate.status).where(BotUpdate.chat_id == user)
            )
        return bool(status == "skipped")

    await eventually(skipped)
    assert bot_api.sent_to(user) == []
    for response in (
        await workspace.owner.post(
            f"/api/onboarding/bots/{bot_id}/start", json={"mode": "polling"}
        ),
        await workspace.owner.post(f"/api/onboarding/bots/{bot_id}/stop"),
        await workspace.owner.get(f"/api/onboarding/bots/{bot_id}/leads"),
    ):
        assert response.status_code == 403
        assert response.json() == {
            "error": "The onboarding module is turned off for this workspace"
        }


async def test_leads_paging_is_checked(
    workspace: Workspace, bot_api: FakeBotApi
) -> None:
    bot_id, _ = await connect(workspace.owner, bot_api)

    too_big = await workspace.owner.get(
        f"/api/onboarding/bots/{bot_id}/leads?pageSize=101"
    )
    zero = await workspace.owner.get(f"/api/onboarding/bots/{bot_id}/leads?page=0")
    empty = await workspace.owner.get(f"/api/onboarding/bots/{bot_id}/leads")

    assert too_big.status_code == 400
    assert too_big.json() == {"error": "pageSize must be between 1 and 100"}
    assert zero.status_code == 400
    assert empty.json() == {"items": [], "page": 1, "pageSize": 20, "total": 0}


# Restarts.


async def test_restart_mid_conversation_resumes(
    server: Server,
    workspace: Workspace,
    bot_api: FakeBotApi,
    telegram_workers: TelegramWorkers,
) -> None:
    bot_id, token = await connect(workspace.owner, bot_api)
    await start(workspace.owner, bot_id, "webhook")
    user = unique_user()
    await say(bot_api, token, "/start", user)
    await texts_to(bot_api, user, 2)

    await telegram_workers.stop()
    # Stored while no worker runs; handled by the next one.
    await say(bot_api, token, "a@example.com", user)
    await asyncio.sleep(0.3)
    assert len(bot_api.sent_to(user)) == 2
    telegram_workers.start()

    texts = await texts_to(bot_api, user, 3)
    assert texts[2] == "Have you traded before?"
    assert (await conversation(server, user)).answers == {"email": "a@example.com"}


# Sending.


async def test_429_mid_flow_waits_and_sends_once(
    server: Server, workspace: Workspace, bot_api: FakeBotApi
) -> None:
    bot_id, token = await connect(workspace.owner, bot_api)
    await start(workspace.owner, bot_id, "webhook")
    user = unique_user()
    bot_api.fail(
        "sendMessage",
        429,
        "Too Many Requests: retry after 1",
        retry_after=1,
        chat_id=user,
    )
    loop = asyncio.get_running_loop()
    began = loop.time()

    await say(bot_api, token, "/start", user)
    texts = await texts_to(bot_api, user, 2)

    assert loop.time() - began >= 1.0
    assert texts == ["Welcome to <b>Acme</b> &amp; co!", "What is your email?"]
    await asyncio.sleep(0.3)
    assert len(bot_api.sent_to(user)) == 2

    first, second = await finished_jobs(server, user)
    assert (first.status, first.attempts) == ("done", 2)
    assert first.last_error is None
    assert (second.status, second.attempts) == ("done", 1)


async def test_bad_entities_are_resent_as_plain_text(
    server: Server, workspace: Workspace, bot_api: FakeBotApi
) -> None:
    bot_id, token = await connect(workspace.owner, bot_api)
    await start(workspace.owner, bot_id, "webhook")
    user = unique_user()
    bot_api.fail("sendMessage", 400, CAN_NOT_PARSE, chat_id=user)

    await say(bot_api, token, "/start", user)
    await texts_to(bot_api, user, 2)

    greeting, question = bot_api.sent_to(user)
    assert (greeting.text, greeting.parse_mode) == ("Welcome to Acme & co!", None)
    assert (question.text, question.parse_mode) == ("What is your email?", "HTML")


async def test_blocked_bot_fails_the_job_visibly(
    server: Server, workspace: Workspace, bot_api: FakeBotApi
) -> None:
    bot_id, token = await connect(workspace.owner, bot_api)
    await start(workspace.owner, bot_id, "webhook")
    user = unique_user()
    bot_api.fail(
        "sendMessage", 403, "Forbidden: bot was blocked by the user", chat_id=user
    )

    await say(bot_api, token, "/start", user)
    await texts_to(bot_api, user, 1)

    first, second = await finished_jobs(server, user)
    assert (first.status, first.attempts) == ("failed", 1)
    assert first.last_error == "Forbidden: bot was blocked by the user"
    assert first.finished_at is not None
    assert second.status == "done"


async def test_messages_to_a_chat_are_paced(
    server: Server, workspace: Workspace, bot_api: FakeBotApi
) -> None:
    bot_id, token = await connect(workspace.owner, bot_api)
    await start(workspace.owner, bot_id, "webhook")
    user = unique_user()

    await say(bot_api, token, "/start", user)
    await texts_to(bot_api, user, 2)

    first, second = await finished_jobs(server, user)
    assert first.finished_at is not None
    assert second.finished_at is not None
    # The test workers space messages to one chat by a tenth of a second.
    assert (second.finished_at - first.finished_at).total_seconds() >= 0.1


BOT_MESSAGES = """
query($botId: ID!, $status: String) {
  botMessages(botId: $botId, status: $status) {
    items { chatId status attempts lastError text }
    total
  }
}
"""


async def test_failed_messages_are_listed(
    server: Server,
    workspace: Workspace,
    other_workspace: Workspace,
    bot_api: FakeBotApi,
) -> None:
    bot_id, token = await connect(workspace.owner, bot_api)
    await start(workspace.owner, bot_id, "webhook")
    user = unique_user()
    bot_api.fail("sendMessage", 400, "Bad Request: chat not found", chat_id=user)
    await say(bot_api, token, "/start", user)
    await finished_jobs(server, user)
    variables = {"botId": bot_id, "status": "failed"}

    response = await workspace.member.post(
        "/graphql", json={"query": BOT_MESSAGES, "variables": variables}
    )
    other = await other_workspace.owner.post(
        "/graphql", json={"query": BOT_MESSAGES, "variables": variables}
    )
    bad = await workspace.owner.post(
        "/graphql",
        json={"query": BOT_MESSAGES, "variables": {"botId": bot_id, "status": "lost"}},
    )

    assert response.json()["data"]["botMessages"] == {
        "items": [
            {
                "chatId": str(user),
                "status": "failed",
                "attempts": 1,
                "lastError": "Bad Request: chat not found",
                "text": "Welcome to <b>Acme</b> &amp; co!",
            }
        ],
        "total": 1,
    }
    assert other.json()["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    assert bad.json()["errors"][0]["message"] == (
        "status must be pending, running, done or failed"
    )


SUBSCRIBE_FLOW: list[dict[str, Any]] = [
    {"key": "join", "type": "subscribe", "text": "Get our signals?", "plan": "vip"},
    {"key": "bye", "type": "end", "text": "Done."},
]


async def test_subscribe_step_adds_a_subscriber(
    server: Server, workspace: Workspace, bot_api: FakeBotApi
) -> None:
    bot_id, token = await connect(workspace.owner, bot_api, SUBSCRIBE_FLOW)
    await start(workspace.owner, bot_id, "webhook")
    user, declining = unique_user(), unique_user()

    await say(bot_api, token, "/start", user)
    await texts_to(bot_api, user, 1)
    offer = bot_api.sent_to(user)[0]
    await bot_api.deliver(token, bot_api.callback_update("join:yes", user_id=user))
    await texts_to(bot_api, user, 2)
    await say(bot_api, token, "/start", declining)
    await say(bot_api, token, "no, thanks", declining)
    await texts_to(bot_api, declining, 2)

    assert offer.reply_markup == {
        "inline_keyboard": [
            [{"text": "Subscribe", "callback_data": "join:yes"}],
            [{"text": "No, thanks", "callback_data": "join:no"}],
        ]
    }
    listed = await workspace.owner.get("/api/copy-trading/subscribers")
    assert listed.status_code == 200, listed.text
    items = listed.json()["items"]
    (subscriber,) = [i for i in items if i["telegramUserId"] == str(user)]
    assert subscriber["plan"] == "vip"
    assert subscriber["expiresAt"] is None
    assert all(i["telegramUserId"] != str(declining) for i in items)
    (lead,) = await lead_of(server, user)
    assert (await conversation(server, user)).answers == {"subscribed": "yes"}
    assert (await conversation(server, declining)).answers == {"subscribed": "no"}
    assert (await conversation(server, user)).lead_id == lead.id


async def test_old_updates_are_purged(
    server: Server, workspace: Workspace, bot_api: FakeBotApi
) -> None:
    bot_id, token = await connect(workspace.owner, bot_api, SUBSCRIBE_FLOW)
    await start(workspace.owner, bot_id, "webhook")
    user = unique_user()
    await say(bot_api, token, "/start", user)
    await bot_api.deliver(token, bot_api.callback_update("join:no", user_id=user))
    await texts_to(bot_api, user, 2)
    await finished_jobs(server, user)

    async with server.sessions() as db:
        kept = await purge_old_updates(db, now=server.clock.now())
    async with server.sessions() as db:
        purged = await purge_old_updates(db, now=server.clock.now() + timedelta(days=8))
    jobs = await jobs_to(server, user)

    assert kept == (0, 0)
    assert purged[0] >= 2
    assert purged[1] >= 1
    assert [job.kind for job in jobs] == ["send_message", "send_message"]
    async with server.sessions() as db:
        left = await db.scalar(
            select(func.count()).select_from(BotUpdate).where(BotUpdate.chat_id == user)
        )
    assert left == 0
    assert (await conversation(server, user)).answers == {"subscribed": "no"}


# Found by trying to break the runtime.


async def test_start_does_not_block_other_webhooks(
    server: Server, workspace: Workspace, bot_api: FakeBotApi
) -> None:
    slow_id, _ = await connect(workspace.owner, bot_api)
    busy_id, busy = await connect(workspace.owner, bot_api)
    await start(workspace.owner, busy_id, "webhook")
    user = unique_user()
    gate = bot_api.held["setWebhook"] = asyncio.Event()
    try:
        slow = asyncio.create_task(
            workspace.owner.post(
                f"/api/onboarding/bots/{slow_id}/start", json={"mode": "webhook"}
            )
        )
        await eventually(lambda: bot_api.calls.count((busy, "setWebhook")) == 1)
        await eventually(
            lambda: len([c for c in bot_api.calls if c[1] == "setWebhook"]) >= 2
        )

        # While the first start waits on Telegram, another bot's update is stored.
        delivered = await bot_api.deliver(
            busy, bot_api.message_update("/start", user_id=user)
        )
        assert delivered.status_code == 200
        assert not slow.done()
    finally:
        gate.set()
        del bot_api.held["setWebhook"]
    assert (await slow).status_code == 200
    await texts_to(bot_api, user, 2)


async def test_clean_stop_frees_the_poller(
    server: Server,
    workspace: Workspace,
    bot_api: FakeBotApi,
    telegram_workers: TelegramWorkers,
) -> None:
    bot_id, token = await connect(workspace.owner, bot_api)
    await start(workspace.owner, bot_id, "polling")
    await eventually(lambda: (token, "getUpdates") in bot_api.calls)

    await telegram_workers.stop()
    async with server.sessions() as db:
        row = await db.get(TelegramBot, uuid.UUID(bot_id))
        assert row is not None
        lease = row.poller_lease_until
    telegram_workers.start()
    user = unique_user()
    bot_api.queue_update(token, bot_api.message_update("/start", user_id=user))

    assert lease is None
    # The next worker polls at its first supervision pass, not after a lease.
    await texts_to(bot_api, user, 2)


async def test_loose_answers_stay_out_of_lead_fields(
    server: Server, workspace: Workspace, bot_api: FakeBotApi
) -> None:
    steps = [
        {"key": "mail", "type": "question", "text": "Email?", "field": "email",
         "check": "text"},
        {"key": "tel", "type": "question", "text": "Phone?", "field": "phone",
         "check": "text"},
        {"key": "name", "type": "question", "text": "Name?", "field": "fullName",
         "check": "text"},
        {"key": "bye", "type": "end", "text": "Bye"},
    ]  # fmt: skip
    bot_id, token = await connect(workspace.owner, bot_api, steps)
    await start(workspace.owner, bot_id, "webhook")
    user = unique_user()

    await say(bot_api, token, "/start", user)
    await say(bot_api, token, "x" * 1000, user)
    await say(bot_api, token, "call me maybe", user)
    await say(bot_api, token, "  Alex Morgan  ", user)
    await texts_to(bot_api, user, 4)

    (lead,) = await lead_of(server, user)
    assert lead.email is None
    assert lead.phone is None
    assert lead.full_name == "Alex Morgan"
    answers = (await conversation(server, user)).answers
    assert answers["email"] == "x" * 1000
    assert answers["phone"] == "call me maybe"


async def test_oversized_contact_is_asked_again(
    server: Server, workspace: Workspace, bot_api: FakeBotApi
) -> None:
    steps = [{"key": "phone", "type": "contact", "text": "Your phone?"}]
    bot_id, token = await connect(workspace.owner, bot_api, steps)
    await start(workspace.owner, bot_id, "webhook")
    user = unique_user()
    await say(bot_api, token, "/start", user)

    contact = {"phone_number": "9" * 300 + "<b>", "first_name": "A", "user_id": user}
    await say(bot_api, token, None, user, contact=contact)

    texts = await texts_to(bot_api, user, 2)
    assert texts[1] == "Please tap the button below to share your phone number."
    assert (await conversation(server, user)).answers == {}


async def test_edited_flow_restarts_a_stuck_step(
    server: Server, workspace: Workspace, bot_api: FakeBotApi
) -> None:
    bot_id, token = await connect(workspace.owner, bot_api)
    await start(workspace.owner, bot_id, "webhook")
    user = unique_user()
    await say(bot_api, token, "/start", user)
    await texts_to(bot_api, user, 2)
    edited = [
        {"key": "email", "type": "message", "text": "We no longer ask."},
        {"key": "bye", "type": "end", "text": "Bye"},
    ]
    saved = await workspace.owner.put(
        f"/api/onboarding/bots/{bot_id}/steps", json={"steps": edited}
    )
    assert saved.status_code == 200

    await say(bot_api, token, "a@example.com", user)

    texts = await texts_to(bot_api, user, 5)
    assert texts[2:] == [
        "This conversation has changed; let's start again.",
        "We no longer ask.",
        "Bye",
    ]
    assert (await conversation(server, user)).status == "completed"


async def test_command_for_another_bot_is_ignored(
    server: Server, workspace: Workspace, bot_api: FakeBotApi
) -> None:
    bot_id, token = await connect(workspace.owner, bot_api)
    await start(workspace.owner, bot_id, "webhook")
    user = unique_user()

    await say(bot_api, token, "/start@some_other_bot code_y", user)

    assert await texts_to(bot_api, user, 1) == ["Send /start to begin."]


@pytest.mark.parametrize(
    ("update", "message"),
    [
        ({"update_id": 10**30}, "an update is a JSON object with an integer update_id"),
        ({"update_id": True}, "an update is a JSON object with an integer update_id"),
        (
            {"update_id": 5, "message": {"chat": {"id": 10**30}}},
            "message.chat needs an integer id",
        ),
        ({"update_id": 6, "callback_query": "x"}, "callback_query needs a string id"),
        (
            {"update_id": 7, "message": {"chat": {"id": 1}, "text": 123}},
            "message.text must be a string",
        ),
        (
            {"update_id": 8, "message": {"chat": {"id": 1}, "from": "me"}},
            "message.from needs an integer id",
        ),
        (
            {"update_id": 9, "message": None, "callback_query": {"id": "c"}},
            "callback_query.from needs an integer id",
        ),
    ],
)
async def test_malformed_update_shapes_are_400(
    server: Server,
    workspace: Workspace,
    bot_api: FakeBotApi,
    update: dict[str, Any],
    message: str,
) -> None:
    bot_id, token = await connect(workspace.owner, bot_api)
    await start(workspace.owner, bot_id, "webhook")

    response = await bot_api.deliver(token, update)

    assert response.status_code == 400
    assert response.json() == {"error": f"The body is not a Telegram update: {message}"}
    async with server.sessions() as db:
        stored = await db.scalar(
            select(func.count())
            .select_from(BotUpdate)
            .where(BotUpdate.bot_id == uuid.UUID(bot_id))
        )
    assert stored == 0


async def test_long_link_keeps_a_short_label(
    workspace: Workspace, bot_api: FakeBotApi
) -> None:
    steps = [
        {"key": "city", "type": "question", "text": "City?", "field": "city",
         "check": "text"},
        {"key": "go", "type": "link", "text": "Open",
         "url": "https://broker.example/open?city={city}"},
    ]  # fmt: skip
    bot_id, token = await connect(workspace.owner, bot_api, steps)
    await start(workspace.owner, bot_id, "webhook")
    user = unique_user()

    await say(bot_api, token, "/start", user)
    await say(bot_api, token, "Ж" * 1000, user)
    texts = await texts_to(bot_api, user, 2)

    encoded = "%D0%96" * 256
    url = f"https://broker.example/open?city={encoded}"
    assert texts[1] == f'Open\n\n<a href="{url}">https://broker.example/open…</a>'


async def test_leads_count_counts_each_bot(
    workspace: Workspace, bot_api: FakeBotApi
) -> None:
    first_id, first = await connect(workspace.owner, bot_api)
    second_id, second = await connect(workspace.owner, bot_api)
    await start(workspace.owner, first_id, "webhook")
    await start(workspace.owner, second_id, "webhook")
    user = unique_user()

    for token in (first, second):
        await say(bot_api, token, "/start", user)
        await say(bot_api, token, "a@example.com", user)
    await texts_to(bot_api, user, 6)

    bots = {
        b["id"]: b for b in (await workspace.owner.get("/api/onboarding/bots")).json()
    }
    assert bots[first_id]["leadsCount"] == 1
    assert bots[second_id]["leadsCount"] == 1


async def test_access_log_hides_webhook_path(
    workspace: Workspace, bot_api: FakeBotApi, caplog: pytest.LogCaptureFixture
) -> None:
    bot_id, token = await connect(workspace.owner, bot_api)
    await start(workspace.owner, bot_id, "webhook")
    path = bot_api.bots[token].webhook_url.rsplit("/", 1)[1]
    caplog.set_level(logging.INFO)

    await say(bot_api, token, "/start", unique_user())

    server_lines = [
        record.getMessage()
        for record in caplog.records
        if record.name.startswith(("ibhq", "domain", "workers", "integrations"))
    ]
    assert "POST /api/telegram/webhook/... 200" in " ".join(server_lines)
    assert all(path not in line for line in server_lines)


async def test_connect_does_not_block_other_webhooks(
    workspace: Workspace, bot_api: FakeBotApi
) -> None:
    busy_id, busy = await connect(workspace.owner, bot_api)
    await start(workspace.owner, busy_id, "webhook")
    new_token = bot_api.add_bot(f"ib_{uuid.uuid4().hex[:10]}_bot")
    user = unique_user()
    gate = bot_api.held["getMe"] = asyncio.Event()
    try:
        connecting = asyncio.create_task(
            workspace.owner.post("/api/onboarding/bots", json={"botToken": new_token})
        )
        await eventually(lambda: (new_token, "getMe") in bot_api.calls)

        update = bot_api.message_update("/start", user_id=user)
        delivered = await bot_api.deliver(busy, update)
        assert delivered.status_code == 200
        assert not connecting.done()
    finally:
        gate.set()
        del bot_api.held["getMe"]
    assert (await connecting).status_code == 201


async def test_second_start_while_one_runs_is_refused(
    workspace: Workspace, bot_api: FakeBotApi
) -> None:
    bot_id, token = await connect(workspace.owner, bot_api)
    gate = bot_api.held["setWebhook"] = asyncio.Event()
    try:
        first = asyncio.create_task(
            workspace.owner.post(
                f"/api/onboarding/bots/{bot_id}/start", json={"mode": "webhook"}
            )
        )
        await eventually(lambda: (token, "setWebhook") in bot_api.calls)

        second = await workspace.owner.post(
            f"/api/onboarding/bots/{bot_id}/start", json={"mode": "polling"}
        )
        stop = await workspace.owner.post(f"/api/onboarding/bots/{bot_id}/stop")
    finally:
        gate.set()
        del bot_api.held["setWebhook"]

    busy = {
        "error": "This bot is being started or stopped by another request; "
        "try again shortly"
    }
    assert second.status_code == 400
    assert second.json() == busy
    assert stop.status_code == 400
    assert stop.json() == busy
    assert (await first).status_code == 200
    listed = (await workspace.owner.get("/api/onboarding/bots")).json()
    bot = next(b for b in listed if b["id"] == bot_id)
    assert (bot["mode"], bot["status"]) == ("webhook", "running")


async def test_many_slow_starts_leave_the_server_free(
    workspace: Workspace, bot_api: FakeBotApi
) -> None:
    busy_id, busy = await connect(workspace.owner, bot_api)
    await start(workspace.owner, busy_id, "webhook")
    slow_ids = [(await connect(workspace.owner, bot_api))[0] for _ in range(16)]
    user = unique_user()
    gate = bot_api.held["setWebhook"] = asyncio.Event()
    try:
        starts = [
            asyncio.create_task(
                workspace.owner.post(
                    f"/api/onboarding/bots/{bot_id}/start", json={"mode": "webhook"}
                )
            )
            for bot_id in slow_ids
        ]
        await eventually(
            lambda: len([c for c in bot_api.calls if c[1] == "setWebhook"]) >= 17
        )

        # Sixteen starts wait on Telegram; reads, writes and webhooks go on.
        leads = await workspace.member.get("/api/leads")
        created = await workspace.owner.post("/api/leads", json={"fullName": "Sam"})
        update = bot_api.message_update("/start", user_id=user)
        delivered = await bot_api.deliver(busy, update)
        assert not any(task.done() for task in starts)
    finally:
        gate.set()
        del bot_api.held["setWebhook"]

    assert leads.status_code == 200
    assert created.status_code == 201
    assert delivered.status_code == 200
    assert [(await task).status_code for task in starts] == [200] * 16
    await texts_to(bot_api, user, 2)


async def test_deeply_nested_update_is_400(
    workspace: Workspace, bot_api: FakeBotApi
) -> None:
    bot_id, token = await connect(workspace.owner, bot_api)
    await start(workspace.owner, bot_id, "webhook")
    fake = bot_api.bots[token]

    async with httpx.AsyncClient() as client:
        response = await client.post(
            fake.webhook_url,
            content=b"[" * 100_000 + b"]" * 100_000,
            headers={"X-Telegram-Bot-Api-Secret-Token": fake.webhook_secret},
        )

    assert response.status_code == 400
    assert response.json() == {"error": "The body is nested too deeply"}


async def test_deleted_lead_is_made_again_with_answers(
    server: Server, workspace: Workspace, bot_api: FakeBotApi
) -> None:
    steps = [
        {"key": "name", "type": "question", "text": "Name?", "field": "fullName",
         "check": "text"},
        {"key": "mail", "type": "question", "text": "Email?", "field": "email",
         "check": "email"},
        {"key": "bye", "type": "end", "text": "Bye"},
    ]  # fmt: skip
    bot_id, token = await connect(workspace.owner, bot_api, steps)
    await start(workspace.owner, bot_id, "webhook")
    user = unique_user()
    await say(bot_api, token, "/start", user)
    await say(bot_api, token, "Cleo Park", user)
    await texts_to(bot_api, user, 2)
    (first,) = await lead_of(server, user)

    deleted = await workspace.owner.delete(f"/api/leads/{first.id}")
    await say(bot_api, token, "cleo@example.com", user)
    await texts_to(bot_api, user, 3)

    assert deleted.status_code == 204
    (again,) = await lead_of(server, user)
    assert again.id != first.id
    assert again.full_name == "Cleo Park"
    assert again.email == "cleo@example.com"
    assert (await conversation(server, user)).lead_id == again.id


async def test_renamed_button_gets_the_step_again(
    server: Server, workspace: Workspace, bot_api: FakeBotApi
) -> None:
    bot_id, token = await connect(workspace.owner, bot_api)
    await start(workspace.owner, bot_id, "webhook")
    user = unique_user()
    await say(bot_api, token, "/start", user)
    await say(bot_api, token, "a@example.com", user)
    await texts_to(bot_api, user, 3)

    update = bot_api.callback_update("experience:maybe", user_id=user)
    assert (await bot_api.deliver(token, update)).status_code == 200

    texts = await texts_to(bot_api, user, 5)
    assert texts[3:] == ["Please pick one of the options.", "Have you traded before?"]
    assert (await conversation(server, user)).step_key == "experience"


async def test_client_leaving_mid_body_is_not_an_error(
    server: Server,
    workspace: Workspace,
    bot_api: FakeBotApi,
    caplog: pytest.LogCaptureFixture,
) -> None:
    bot_id, token = await connect(workspace.owner, bot_api)
    await start(workspace.owner, bot_id, "webhook")
    fake = bot_api.bots[token]
    path = "/" + fake.webhook_url.split("/", 3)[3]
    host, port = server.url.removeprefix("http://").split(":")
    caplog.set_level(logging.INFO)

    _, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\n"
        "Content-Type: application/json\r\nContent-Length: 1000\r\n"
        f"X-Telegram-Bot-Api-Secret-Token: {fake.webhook_secret}\r\n\r\n"
        '{"update_id": 1'.encode()
    )
    await writer.drain()
    writer.close()
    await writer.wait_closed()

    def logged() -> bool:
        return any(
            "ended before its body" in record.getMessage() for record in caplog.records
        )

    await eventually(logged)
    assert not any(
        record.levelno >= logging.ERROR and record.name.startswith("ibhq")
        for record in caplog.records
    )
