"""The payment monitor: reads incoming USDT transfers and reports confirmed ones.

Each pass handles every receiving wallet in turn. For a wallet it reads the
transfers listed since the wallet's cursor, oldest first, and for each one:

1. skips it when its txid is already in ``tron_transfers`` (a restart, or
   another monitor, handled it);
2. requests its receipt from a node, and stops the wallet's pass, without moving
   the cursor past it, while it is in no block yet or has fewer than
   ``confirmations`` blocks on top;
3. records it as ``failed``, and never reports it, when the receipt is not
   SUCCESS, the transaction called another contract than the token, or no
   ``Transfer`` event in the receipt matches what the index listed;
4. records it as ``ignored`` directly, without calling the webhook, when the
   token is not an allowed USDT contract (look-alike tokens are common);
5. otherwise reports it to the billing webhook, which records and matches it.
   A transfer the webhook did not take stops the wallet's pass, so it is
   reported again on the next one.

After each handled transfer the cursor moves to its block timestamp. The
index is read again from the cursor's timestamp inclusive, and transfers
already recorded are skipped, so a restart at any point neither skips a
transfer nor credits one twice (the txid is unique in the database as well).
"""

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from contextlib import AsyncExitStack, aclosing, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker

from db.engine import RequestSession, create_engine, create_session_factory
from db.models import MonitorCursor, TronTransfer
from domain.billing import CLOCK_SKEW, BillingConfig, IncomingTransfer, record_transfer
from domain.clock import Clock, SystemClock
from domain.tron import (
    ChainChecker,
    ConfirmedTransfer,
    ListedTransfer,
    TransactionInfo,
    TransferReporter,
    TransferSource,
    WebhookDeliveryError,
)
from integrations.billing_webhook import BillingWebhookClient
from integrations.retry import RetryPolicy
from integrations.tron_node import TronNodeClient
from integrations.trongrid import TronGridClient

logger = logging.getLogger(__name__)

# A listed transfer the node has not seen for this long is logged as an error.
STUCK_AFTER = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class PaymentMonitorConfig:
    billing: BillingConfig
    trongrid_url: str
    tron_node_url: str
    webhook_url: str
    webhook_secret: str = field(repr=False)
    trongrid_api_key: str | None = field(default=None, repr=False)
    confirmations: int = 19
    interval_seconds: float = 15.0
    page_size: int = 200
    http_timeout_seconds: float = 10.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)


@dataclass
class WalletReport:
    """Outcome of one pass over one wallet."""

    wallet: str
    # Handled transfers by outcome: the webhook's status, or "failed" and
    # "ignored" for those the monitor recorded itself.
    outcomes: Counter[str] = field(default_factory=Counter)
    skipped: int = 0
    # Why the pass stopped before the end of the listing, if it did.
    stopped: str | None = None
    error: bool = False


class _Stop(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Height:
    """Latest block number of the chain, fetched on first use and then reused.

    ``check_wallet`` makes one per wallet pass.
    """

    def __init__(self, chain: ChainChecker) -> None:
        self._chain = chain
        self._value: int | None = None

    async def get(self) -> int:
        if self._value is None:
            self._value = await self._chain.latest_block_number()
        return self._value


class PaymentMonitor:
    def __init__(
        self,
        sessions: async_sessionmaker[RequestSession],
        *,
        source: TransferSource,
        chain: ChainChecker,
        reporter: TransferReporter,
        billing: BillingConfig,
        confirmations: int,
        clock: Clock | None = None,
    ) -> None:
        self._sessions = sessions
        self._source = source
        self._chain = chain
        self._reporter = reporter
        self._billing = billing
        self._confirmations = confirmations
        self._clock = clock or SystemClock()
        # Without a cursor, read back as far as a transfer could still pay a
        # payment that is reserved now.
        self._lookback = billing.expiry + billing.late_window + CLOCK_SKEW

    async def run_pass(self) -> list[WalletReport]:
        """Handle every wallet once; one wallet's failure does not stop the others."""
        reports = []
        for wallet in self._billing.wallets:
            try:
                reports.append(await self.check_wallet(wallet))
            except Exception:
                logger.exception(
                    "payment monitor: pass for wallet %s failed; retrying next pass",
                    wallet,
                )
                reports.append(WalletReport(wallet, error=True))
        return reports

    async def check_wallet(self, wallet: str) -> WalletReport:
        report = WalletReport(wallet)
        cursor = await self._read_cursor(wallet)
        height = _Height(self._chain)
        pages = self._source.transfer_pages(wallet, since_ms=cursor)
        async with aclosing(pages):
            async for page in pages:
                known = await self._recorded_txids(transfer.txid for transfer in page)
                for transfer in page:
                    if transfer.txid in known:
                        report.skipped += 1
                    else:
                        try:
                            outcome = await self._handle(transfer, height)
                        except _Stop as stop:
                            report.stopped = stop.reason
                            return report
                        known.add(transfer.txid)
                        report.outcomes[outcome] += 1
                    cursor = await self._advance(wallet, cursor, transfer)
        return report

    async def _handle(self, transfer: ListedTransfer, height: _Height) -> str:
        info = await self._chain.transaction_info(transfer.txid)
        if info is None:
            age = self._clock.now() - _datetime(transfer.block_timestamp_ms)
            if age > STUCK_AFTER:
                # Maybe an index that lists a transaction of an abandoned fork;
                # an operator has to look, the monitor will not guess.
                logger.error(
                    "transfer %s was listed %d minutes ago and the node still "
                    "has no record of it; wallet %s waits behind it",
                    transfer.txid,
                    age // timedelta(minutes=1),
                    transfer.to_address,
                )
            else:
                logger.info("transfer %s is in no block yet; waiting", transfer.txid)
            raise _Stop("pending")
        depth = await height.get() - info.block_number
        if depth < self._confirmations:
            logger.info(
                "transfer %s has %d of %d confirmations; waiting",
                transfer.txid,
                max(depth, 0),
                self._confirmations,
            )
            raise _Stop("pending")

        problem = _mismatch(transfer, info)
        if problem is not None:
            logger.warning("transfer %s recorded as failed: %s", transfer.txid, problem)
            await self._record_failed(transfer, info, problem)
            return "failed"
        confirmed = ConfirmedTransfer(
            txid=transfer.txid,
            contract=transfer.contract,
            from_address=transfer.from_address,
            to_address=transfer.to_address,
            amount_units=transfer.amount_units,
            block_number=info.block_number,
            block_timestamp_ms=info.block_timestamp_ms,
        )
        if transfer.contract not in self._billing.usdt_contracts:
            await self._record_ignored(confirmed)
            return "ignored"
        try:
            status = await self._reporter.report(confirmed)
        except WebhookDeliveryError as error:
            logger.error(
                "transfer %s not delivered to the billing webhook (%s); "
                "it is reported again next pass",
                transfer.txid,
                error,
            )
            raise _Stop("undelivered") from error
        logger.info(
            "transfer %s of %d units to %s reported: %s",
            transfer.txid,
            transfer.amount_units,
            transfer.to_address,
            status,
        )
        return status

    async def _read_cursor(self, wallet: str) -> int:
        async with self._sessions() as db:
            row: MonitorCursor | None = await db.get(MonitorCursor, wallet)
            if row is not None:
                return row.last_timestamp_ms
        return _milliseconds(self._clock.now() - self._lookback)

    async def _advance(self, wallet: str, cursor: int, transfer: ListedTransfer) -> int:
        """Move the wallet's cursor to the transfer's timestamp; never back."""
        timestamp = transfer.block_timestamp_ms
        if timestamp <= cursor:
            return cursor
        async with self._sessions() as db:
            row: MonitorCursor | None = await db.get(MonitorCursor, wallet)
            if row is None:
                db.add(
                    MonitorCursor(
                        wallet=wallet,
                        last_timestamp_ms=timestamp,
                        updated_at=self._clock.now(),
                    )
                )
            elif timestamp > row.last_timestamp_ms:
                row.last_timestamp_ms = timestamp
                row.updated_at = self._clock.now()
            try:
                await db.commit()
            except IntegrityError:
                # Another monitor made the row first; its cursor will do.
                await db.rollback()
        return timestamp

    async def _recorded_txids(self, txids: Iterable[str]) -> set[str]:
        wanted = {txid.lower() for txid in txids}
        if not wanted:
            return set()
        async with self._sessions() as db:
            result = await db.execute(
                select(TronTransfer.txid).where(TronTransfer.txid.in_(wanted))
            )
            return set(result.scalars())

    async def _record_failed(
        self, transfer: ListedTransfer, info: TransactionInfo, problem: str
    ) -> None:
        row = TronTransfer(
            txid=transfer.txid.lower(),
            contract=transfer.contract,
            from_address=transfer.from_address,
            to_address=transfer.to_address,
            amount_units=transfer.amount_units,
            block_number=info.block_number,
            block_timestamp=_datetime(info.block_timestamp_ms),
            status="failed",
            detail=problem[:200],
            received_at=self._clock.now(),
        )
        async with self._sessions() as db:
            db.add(row)
            try:
                await db.commit()
            except IntegrityError:
                await db.rollback()

    async def _record_ignored(self, transfer: ConfirmedTransfer) -> None:
        """Record a transfer of a token that is not an allowed USDT contract."""
        async with self._sessions() as db:
            outcome = await record_transfer(
                db,
                IncomingTransfer(
                    txid=transfer.txid,
                    contract=transfer.contract,
                    from_address=transfer.from_address,
                    to_address=transfer.to_address,
                    amount_units=transfer.amount_units,
                    block_number=transfer.block_number,
                    block_timestamp=_datetime(transfer.block_timestamp_ms),
                ),
                config=self._billing,
                now=self._clock.now(),
            )
            await db.commit()
        logger.info(
            "transfer %s of token %s is not USDT: %s",
            transfer.txid,
            transfer.contract,
            outcome.status,
        )


def _mismatch(transfer: ListedTransfer, info: TransactionInfo) -> str | None:
    """Why the chain does not bear out the listed transfer, or None if it does."""
    if not info.succeeded:
        return f"the transaction did not succeed on chain: {info.result}"
    if info.contract != transfer.contract:
        return f"the transaction called {info.contract}, not the token contract"
    for event in info.events:
        if (
            event.contract == transfer.contract
            and event.from_address == transfer.from_address
            and event.to_address == transfer.to_address
            and event.amount_units == transfer.amount_units
        ):
            return None
    return "no Transfer event in the receipt matches the listed transfer"


def _milliseconds(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _datetime(milliseconds: int) -> datetime:
    seconds, remainder = divmod(milliseconds, 1000)
    return datetime.fromtimestamp(seconds, UTC) + timedelta(milliseconds=remainder)


@asynccontextmanager
async def open_payment_monitor(
    sessions: async_sessionmaker[RequestSession],
    config: PaymentMonitorConfig,
    *,
    clock: Clock | None = None,
) -> AsyncIterator[PaymentMonitor]:
    """Build the monitor with its real adapters, closing them afterwards."""
    async with AsyncExitStack() as stack:
        source = TronGridClient(
            config.trongrid_url,
            api_key=config.trongrid_api_key,
            page_size=config.page_size,
            timeout_seconds=config.http_timeout_seconds,
            retry=config.retry,
        )
        stack.push_async_callback(source.aclose)
        chain = TronNodeClient(
            config.tron_node_url,
            api_key=config.trongrid_api_key,
            timeout_seconds=config.http_timeout_seconds,
            retry=config.retry,
        )
        stack.push_async_callback(chain.aclose)
        reporter = BillingWebhookClient(
            config.webhook_url,
            config.webhook_secret,
            timeout_seconds=config.http_timeout_seconds,
            retry=config.retry,
        )
        stack.push_async_callback(reporter.aclose)
        yield PaymentMonitor(
            sessions,
            source=source,
            chain=chain,
            reporter=reporter,
            billing=config.billing,
            confirmations=config.confirmations,
            clock=clock,
        )


async def run_payment_monitor(
    sessions: async_sessionmaker[RequestSession],
    config: PaymentMonitorConfig,
    *,
    clock: Clock | None = None,
) -> None:
    """Run a pass every ``interval_seconds`` until cancelled, surviving errors."""
    logger.info(
        "payment monitor started: %d wallet(s), %d confirmations, every %.3g s",
        len(config.billing.wallets),
        config.confirmations,
        config.interval_seconds,
    )
    async with open_payment_monitor(sessions, config, clock=clock) as monitor:
        while True:
            try:
                await monitor.run_pass()
            except Exception:
                logger.exception("payment monitor pass failed; retrying next pass")
            await asyncio.sleep(config.interval_seconds)


async def run_payment_monitor_standalone(
    database_url: str, config: PaymentMonitorConfig, *, once: bool = False
) -> list[WalletReport]:
    """Run the monitor on its own engine: one pass with ``once``, else forever."""
    engine = create_engine(database_url)
    try:
        sessions = create_session_factory(engine)
        if not once:
            await run_payment_monitor(sessions, config)
            return []
        async with open_payment_monitor(sessions, config) as monitor:
            return await monitor.run_pass()
    finally:
        await engine.dispose()
