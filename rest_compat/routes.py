"""The REST route table: each documented route names the GraphQL operation it runs.

Later modules add rows here and operations under ``operations/``; the
executor, the OpenAPI document and the test matrices all read this table.
"""

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class RestRoute:
    method: str
    path: str
    operation: str
    summary: str
    # The operation's variable that receives the JSON body, if the route has one;
    # SPREAD_BODY passes each field of the body as a variable of its own.
    body: str | None = None
    status: int = 200
    # A route whose status is 204 sends no body, whatever the operation returns.
    public: bool = False
    writes: bool = False
    tag: str = "CRM"
    example: dict[str, Any] | None = None
    query_params: tuple[str, ...] = field(default=())
    # A public route that only signed Standard Webhooks calls may use.
    signed_webhook: bool = False
    # Leave null fields out of the response body.
    omit_nulls: bool = False
    # Browsers may call it cross-site, from the origins the workspace allows.
    cors: bool = False
    # A smaller body limit than the service's, for public endpoints.
    max_body_bytes: int | None = None

    @property
    def path_params(self) -> tuple[str, ...]:
        return tuple(
            part[1:-1] for part in self.path.split("/") if part.startswith("{")
        )


SPREAD_BODY = "*"

ROUTES: tuple[RestRoute, ...] = (
    RestRoute(
        "POST",
        "/api/auth/register",
        "Register",
        "Register a new workspace and its owner, and sign the owner in.",
        body="input",
        status=201,
        public=True,
        writes=True,
        tag="Authentication",
        example={
            "tenantName": "Acme Partners",
            "tenantSlug": "acme-partners",
            "email": "owner@acme.example",
            "password": "correct horse battery",
        },
    ),
    RestRoute(
        "GET",
        "/api/leads",
        "ListLeads",
        "List the workspace's leads, newest first.",
        query_params=("stage", "q", "page", "pageSize"),
    ),
    RestRoute(
        "POST",
        "/api/leads",
        "CreateLead",
        "Create a lead.",
        body="input",
        status=201,
        writes=True,
        example={
            "fullName": "Alex Morgan",
            "email": "alex@example.com",
            "pipelineStage": "new",
        },
    ),
    RestRoute(
        "GET",
        "/api/leads/{leadId}",
        "GetLead",
        "Fetch one lead with its activity timeline, newest first.",
    ),
    RestRoute(
        "PATCH",
        "/api/leads/{leadId}",
        "UpdateLead",
        "Update the given fields of a lead; absent fields stay, null clears.",
        body="input",
        writes=True,
        example={"pipelineStage": "contacted", "tags": ["vip"]},
    ),
    RestRoute(
        "DELETE",
        "/api/leads/{leadId}",
        "DeleteLead",
        "Delete a lead and its timeline.",
        status=204,
        writes=True,
    ),
    RestRoute(
        "POST",
        "/api/leads/{leadId}/activities",
        "AddLeadActivity",
        "Log a note, call or email on a lead.",
        body="input",
        status=201,
        writes=True,
        example={"type": "call", "body": "Called about the demo account"},
    ),
    RestRoute(
        "POST",
        "/api/billing/create-payment",
        "CreatePayment",
        "Quote a unique USDT amount and a wallet for months of a module.",
        body="input",
        status=201,
        writes=True,
        tag="Billing",
        example={"module": "forwarder", "months": 1},
    ),
    RestRoute(
        "POST",
        "/api/billing/webhook",
        "RecordTronTransfer",
        "Record a TRC-20 transfer; called by the payment monitor, signed with "
        "Standard Webhooks.",
        body="input",
        public=True,
        writes=True,
        tag="Billing",
        signed_webhook=True,
        omit_nulls=True,
        example={
            "txid": "a" * 64,
            "contract": "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t",
            "from": "TJRabPrwbZy45sbavfcjinPJC18kjpRTv8",
            "to": "TJRabPrwbZy45sbavfcjinPJC18kjpRTv8",
            "amount": "49.0037",
            "blockNumber": 60000000,
            "blockTimestamp": 1733300000000,
        },
    ),
    RestRoute(
        "PATCH",
        "/api/billing/modules",
        "SetModuleEnabled",
        "Switch an add-on module on or off.",
        body=SPREAD_BODY,
        writes=True,
        tag="Billing",
        example={"module": "forwarder", "enabled": True},
    ),
    RestRoute(
        "GET",
        "/api/referrals/partners",
        "ListPartners",
        "List the workspace's referral partners with their levels and earnings.",
        tag="Referrals",
    ),
    RestRoute(
        "POST",
        "/api/referrals/conversions",
        "RecordConversion",
        "Record a conversion; commissions follow the partner's chain.",
        body="input",
        status=201,
        writes=True,
        tag="Referrals",
        example={"partnerCode": "janes_code", "convertedName": "Alex", "value": 500},
    ),
    RestRoute(
        "POST",
        "/api/referrals/apply",
        "ApplyReferral",
        "Public: an application from a referral landing page; creates a lead and "
        "a pending conversion.",
        body="input",
        status=201,
        public=True,
        writes=True,
        tag="Referrals",
        cors=True,
        max_body_bytes=16_384,
        example={
            "tenantSlug": "acme-partners",
            "partnerCode": "janes_code",
            "fullName": "Alex Morgan",
            "email": "alex@example.com",
            "phone": "+44 20 7946 0958",
            "telegram": "@alex_fx",
        },
    ),
    RestRoute(
        "GET",
        "/api/onboarding/bots",
        "ListBots",
        "List the workspace's onboarding bots.",
        tag="Onboarding bots",
    ),
    RestRoute(
        "POST",
        "/api/onboarding/bots",
        "ConnectBot",
        "Connect a Telegram bot: the token is checked with getMe and stored encrypted.",
        body="input",
        status=201,
        writes=True,
        tag="Onboarding bots",
        example={"botToken": "123456789:AAExampleExampleExampleExample1234"},
    ),
    RestRoute(
        "PUT",
        "/api/onboarding/bots/{botId}/steps",
        "SetBotSteps",
        "Replace the bot's whole step list; an invalid list saves nothing.",
        body=SPREAD_BODY,
        writes=True,
        tag="Onboarding bots",
        example={
            "steps": [
                {"key": "hello", "type": "message", "text": "Welcome to <b>Acme</b>!"},
                {
                    "key": "email",
                    "type": "question",
                    "text": "What is your email?",
                    "field": "email",
                    "check": "email",
                },
                {"key": "bye", "type": "end", "text": "Thanks, we will be in touch."},
            ]
        },
    ),
    RestRoute(
        "POST",
        "/api/onboarding/bots/{botId}/start",
        "StartBot",
        "Start the bot: webhook (Telegram calls IBHQ_PUBLIC_URL) or polling (the "
        "worker long-polls); starting again switches modes.",
        body=SPREAD_BODY,
        writes=True,
        tag="Onboarding bots",
        example={"mode": "webhook"},
    ),
    RestRoute(
        "POST",
        "/api/onboarding/bots/{botId}/stop",
        "StopBot",
        "Stop the bot.",
        writes=True,
        tag="Onboarding bots",
    ),
    RestRoute(
        "GET",
        "/api/onboarding/bots/{botId}/leads",
        "BotLeads",
        "The people the bot has talked to, newest first, with their answers, "
        "progress and lead id.",
        tag="Onboarding bots",
        query_params=("page", "pageSize"),
    ),
    RestRoute(
        "GET",
        "/api/copy-trading/signals",
        "ListSignals",
        "List signals, newest first. status is open (pending or open), pending, "
        "closed or cancelled; from (included) and to (excluded) bound createdAt.",
        tag="Copy trading",
        query_params=("status", "pair", "from", "to", "page", "pageSize"),
    ),
    RestRoute(
        "POST",
        "/api/copy-trading/signals",
        "CreateSignal",
        "Create a signal; each destination listed gets the formatted post. Prices "
        "keep the exact digits sent.",
        body="input",
        status=201,
        writes=True,
        tag="Copy trading",
        example={
            "pair": "EURUSD",
            "direction": "long",
            "entry": 1.085,
            "stopLoss": 1.080,
            "takeProfits": [1.090, 1.095],
        },
    ),
    RestRoute(
        "PATCH",
        "/api/copy-trading/signals/{signalId}",
        "RecordSignalEvent",
        "Record a lifecycle event (activate, tp_hit with level, sl_hit, breakeven, "
        "close with price, cancel); each destination gets a reply to the post.",
        body="input",
        writes=True,
        tag="Copy trading",
        example={"event": "tp_hit", "level": 1},
    ),
    RestRoute(
        "GET",
        "/api/copy-trading/subscribers",
        "ListSubscribers",
        "List subscribers, newest first; status is active or expired.",
        tag="Copy trading",
        query_params=("status", "page", "pageSize"),
    ),
    RestRoute(
        "GET",
        "/api/copy-trading/stats",
        "GetSignalStats",
        "Counts, win rate (wins over closed signals), pips and average R, overall "
        "and by pair. Pips: 0.01 for fiat pairs quoted in JPY, 0.1 for XAUUSD, "
        "0.0001 for other fiat pairs; other pairs in percent.",
        tag="Copy trading",
        query_params=("pair", "from", "to"),
    ),
)
