"""The ``ibhq`` command: serve, worker, payment-monitor, migrate and payments."""

import argparse
import asyncio
import logging
import signal
import sys
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import TypeVar

import uvicorn
from sqlalchemy import select

from db.engine import RequestSession, create_engine, create_session_factory, is_sqlite
from db.migrate import current_revision, head_revision, upgrade_to_head
from db.models import Payment, Tenant, TronTransfer
from db.tenancy import unscoped_session
from domain import billing
from domain.clock import SystemClock
from domain.errors import DomainError
from ibhq.logs import configure_logging
from ibhq.settings import Settings, SettingsError, load_settings

logger = logging.getLogger("ibhq")

T = TypeVar("T")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        configure_logging(settings.log_level, settings.log_format)
        result: int = args.run(settings, args)
    except SettingsError as error:
        print(f"ibhq: {error}", file=sys.stderr)
        return 2
    except SchemaBehind as error:
        print(f"ibhq: {error}", file=sys.stderr)
        return 3
    except DomainError as error:
        print(f"ibhq: {error.message}", file=sys.stderr)
        return 1
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ibhq",
        description="IBHQ backend. Settings come from IBHQ_* environment variables; "
        "see the README.",
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="run the API (and, unless --no-workers, the workers)",
        description="Run the HTTP API. On SQLite the database is migrated to the "
        "latest schema first; on PostgreSQL a schema that is behind stops the "
        "start, so run `ibhq migrate` first.",
    )
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    serve.add_argument(
        "--port", type=int, default=8000, help="TCP port to listen on (default 8000)"
    )
    serve.add_argument(
        "--no-workers",
        action="store_true",
        help="serve the API only; run the workers elsewhere with `ibhq worker`",
    )
    serve.set_defaults(run=_serve)

    worker = commands.add_parser(
        "worker",
        help="run the background workers only",
        description="Run the background workers without the HTTP API: "
        "housekeeping, the Telegram workers (sending queued messages, handling "
        "bot updates, polling bots in polling mode) and, when IBHQ_TRON_WALLETS "
        "is set, the payment monitor. SIGTERM or Ctrl-C stops them cleanly.",
    )
    worker.set_defaults(run=_worker)

    monitor = commands.add_parser(
        "payment-monitor",
        help="watch the receiving wallets and report USDT transfers",
        description="Run the payment monitor alone: every "
        "IBHQ_PAYMENT_MONITOR_INTERVAL_SECONDS it reads the TRC-20 transfers into "
        "each wallet of IBHQ_TRON_WALLETS from TronGrid (IBHQ_TRONGRID_URL), "
        "checks each on a node (IBHQ_TRON_NODE_URL) until it has "
        "IBHQ_TRON_CONFIRMATIONS confirmations, and reports it to the billing "
        "webhook (IBHQ_BILLING_WEBHOOK_URL, by default IBHQ_PUBLIC_URL followed "
        "by /api/billing/webhook) signed with IBHQ_BILLING_WEBHOOK_SECRET.",
    )
    monitor.add_argument(
        "--once",
        action="store_true",
        help="run one pass over every wallet, print what it did, and exit "
        "(status 1 if a wallet failed or a transfer was not delivered)",
    )
    monitor.set_defaults(run=_payment_monitor)

    migrate = commands.add_parser(
        "migrate",
        help="migrate the database to the latest schema",
        description="Apply every pending database migration, then exit.",
    )
    migrate.set_defaults(run=_migrate)

    payments = commands.add_parser(
        "payments",
        help="list payments and transfers; credit a transfer by hand",
        description="Operator commands over every workspace's payments and "
        "the USDT transfers the payment monitor recorded.",
    )
    actions = payments.add_subparsers(required=True, metavar="ACTION")
    listing = actions.add_parser(
        "list",
        help="list every workspace's payments, newest first",
        description="List every workspace's payments, newest first: id, "
        "workspace slug, module, months, amount in USDT, wallet, status, created.",
    )
    listing.set_defaults(run=_payments_list)
    unmatched = actions.add_parser(
        "unmatched",
        help="list transfers that matched no payment",
        description="List the recorded transfers that matched no payment, newest "
        "first: txid, receiving wallet, amount in USDT, block time. Credit one "
        "with `ibhq payments resolve`.",
    )
    unmatched.set_defaults(run=_payments_unmatched)
    resolve = actions.add_parser(
        "resolve",
        help="credit an unmatched transfer to a payment",
        description="Credit an unmatched transfer to a payment that is not paid "
        "yet, after checking by hand that it pays for it (for example, the payer "
        "sent a slightly different amount). Extends the payment's module.",
    )
    resolve.add_argument("txid", metavar="TXID", help="the transfer's transaction id")
    resolve.add_argument(
        "payment_id", metavar="PAYMENT_ID", help="the payment's id, from `list`"
    )
    resolve.set_defaults(run=_payments_resolve)
    return parser


class SchemaBehind(Exception):
    pass


def _prepare_database(settings: Settings) -> None:
    url = settings.resolved_database_url
    if is_sqlite(url):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        upgrade_to_head(url)
        return
    current = asyncio.run(current_revision(url))
    head = head_revision()
    if current != head:
        raise SchemaBehind(
            f"the database schema is at revision {current or 'none'} but this "
            f"version needs {head}: run `ibhq migrate` first"
        )


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    from ibhq.app import create_app

    _prepare_database(settings)
    app = create_app(settings, workers=not args.no_workers)
    logger.info("serving on http://%s:%d", args.host, args.port)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_config=None,
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
    )
    return 0


def _worker(settings: Settings, args: argparse.Namespace) -> int:
    from ibhq.worker_config import worker_config
    from workers.runner import run_standalone

    _prepare_database(settings)
    config = worker_config(settings)
    try:
        asyncio.run(
            _until_terminated(run_standalone(settings.resolved_database_url, config))
        )
    except KeyboardInterrupt:
        logger.info("worker interrupted")
    return 0


async def _until_terminated(work: Awaitable[object]) -> None:
    """Run ``work`` until done, or until SIGTERM or SIGINT cancels it cleanly.

    Cancelling lets the workers finish their shutdown: the sender ends its
    pass and the pollers free their leases, so another worker takes over
    at once.
    """
    task = asyncio.ensure_future(work)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        logger.info("stopped by a signal")
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    url = settings.resolved_database_url
    if is_sqlite(url):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade_to_head(url)
    logger.info("database migrated to revision %s", head_revision())
    return 0


def _payment_monitor(settings: Settings, args: argparse.Namespace) -> int:
    from ibhq.worker_config import payment_monitor_config
    from workers.payment_monitor import run_payment_monitor_standalone

    config = payment_monitor_config(settings)
    _prepare_database(settings)
    url = settings.resolved_database_url
    if not args.once:
        try:
            asyncio.run(_until_terminated(run_payment_monitor_standalone(url, config)))
        except KeyboardInterrupt:
            logger.info("payment monitor interrupted")
        return 0
    reports = asyncio.run(run_payment_monitor_standalone(url, config, once=True))
    failed = False
    for report in reports:
        parts = [
            f"{count} {outcome}" for outcome, count in sorted(report.outcomes.items())
        ]
        if report.skipped:
            parts.append(f"{report.skipped} already recorded")
        if report.error:
            parts.append("failed, see the log")
        elif report.stopped:
            parts.append(f"stopped: {report.stopped}")
        print(f"{report.wallet}: {', '.join(parts) or 'nothing new'}")
        failed = failed or report.error or report.stopped == "undelivered"
    return 1 if failed else 0


async def _in_session(
    settings: Settings, work: Callable[[RequestSession], Awaitable[T]]
) -> T:
    """Run ``work`` in a session that no tenant scopes, on an engine of its own."""
    engine = create_engine(settings.resolved_database_url)
    try:
        async with unscoped_session(create_session_factory(engine)) as db:
            return await work(db)
    finally:
        await engine.dispose()


def _payments_list(settings: Settings, args: argparse.Namespace) -> int:
    _prepare_database(settings)

    async def load(db: RequestSession) -> tuple[list[Payment], dict[uuid.UUID, str]]:
        payments = await billing.list_all_payments(db)
        tenant_ids = {payment.tenant_id for payment in payments}
        slugs = await db.execute(
            select(Tenant.id, Tenant.slug).where(Tenant.id.in_(tenant_ids))
        )
        return payments, {row.id: row.slug for row in slugs}

    payments, slugs = asyncio.run(_in_session(settings, load))
    if not payments:
        print("No payments.")
        return 0
    now = SystemClock().now()
    rows = [
        [
            str(payment.id),
            slugs.get(payment.tenant_id, "?"),
            payment.module,
            str(payment.months),
            billing.format_units(payment.amount_units),
            payment.wallet,
            billing.payment_status(payment, now),
            _utc(payment.created_at),
        ]
        for payment in payments
    ]
    headers = ["ID", "WORKSPACE", "MODULE", "MONTHS", "AMOUNT", "WALLET", "STATUS"]
    print(_table([*headers, "CREATED"], rows, right={3, 4}))
    return 0


def _payments_unmatched(settings: Settings, args: argparse.Namespace) -> int:
    _prepare_database(settings)

    async def load(db: RequestSession) -> list[TronTransfer]:
        return await billing.list_transfers(db, status="unmatched")

    transfers = asyncio.run(_in_session(settings, load))
    if not transfers:
        print("No unmatched transfers.")
        return 0
    rows = [
        [
            transfer.txid,
            transfer.to_address,
            billing.format_units(transfer.amount_units),
            _utc(transfer.block_timestamp),
        ]
        for transfer in transfers
    ]
    print(_table(["TXID", "TO", "AMOUNT", "BLOCK TIME"], rows, right={2}))
    return 0


def _payments_resolve(settings: Settings, args: argparse.Namespace) -> int:
    try:
        payment_id = uuid.UUID(args.payment_id)
    except ValueError:
        print(
            f"ibhq: '{args.payment_id}' is not a payment id; "
            "`ibhq payments list` shows them",
            file=sys.stderr,
        )
        return 2
    config = settings.billing
    _prepare_database(settings)

    async def resolve(db: RequestSession) -> tuple[Payment, str]:
        payment = await billing.resolve_transfer(
            db, args.txid, payment_id, config=config, now=SystemClock().now()
        )
        slug = await db.scalar(
            select(Tenant.slug).where(Tenant.id == payment.tenant_id)
        )
        await db.commit()
        return payment, str(slug)

    payment, slug = asyncio.run(_in_session(settings, resolve))
    print(
        f"Transfer {args.txid.lower()} credited to payment {payment.id} of "
        f"workspace {slug}: {payment.module} for {payment.months} month(s), "
        f"now {payment.status}."
    )
    return 0


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _table(headers: list[str], rows: list[list[str]], *, right: set[int]) -> str:
    """Columns padded to their widest cell; those in ``right`` aligned right."""
    widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(len(headers))]

    def line(cells: list[str]) -> str:
        padded = [
            cell.rjust(width) if i in right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(padded).rstrip()

    return "\n".join(line(row) for row in [headers, *rows])
