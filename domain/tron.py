"""Ports of the payment monitor: the transfer index, the chain, the billing webhook.

The monitor reads incoming TRC-20 transfers of a receiving wallet from an
index (TronGrid), checks each one on a node before it trusts it, and reports
the confirmed ones to the billing webhook, which matches them to payments.

Invariants:
- Amounts are integer base units of the token, never floats.
- Times on the chain are Unix milliseconds, as TRON reports them.
- Addresses are base58check strings (``T...``).
"""

from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import Protocol

# keccak256("Transfer(address,address,uint256)"), the first topic of the event.
TRANSFER_TOPIC = "ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"


@dataclass(frozen=True, slots=True)
class ListedTransfer:
    """A TRC-20 transfer as the index lists it; not yet checked on chain."""

    txid: str
    contract: str
    decimals: int
    from_address: str
    to_address: str
    amount_units: int
    block_timestamp_ms: int


@dataclass(frozen=True, slots=True)
class TransferEvent:
    """A ``Transfer`` event in a transaction's log."""

    contract: str
    from_address: str
    to_address: str
    amount_units: int


@dataclass(frozen=True, slots=True)
class TransactionInfo:
    """A node's receipt of a transaction that is in a block."""

    txid: str
    # "SUCCESS" when the contract call went through; "REVERT", "OUT_OF_ENERGY"
    # and others when it did not.
    result: str
    contract: str | None
    block_number: int
    block_timestamp_ms: int
    events: tuple[TransferEvent, ...]

    @property
    def succeeded(self) -> bool:
        return self.result == "SUCCESS"


@dataclass(frozen=True, slots=True)
class ConfirmedTransfer:
    """A transfer checked on chain and buried under enough blocks."""

    txid: str
    contract: str
    from_address: str
    to_address: str
    amount_units: int
    block_number: int
    block_timestamp_ms: int


class TransferSource(Protocol):
    """Lists the TRC-20 transfers into a wallet, oldest first."""

    def transfer_pages(
        self, wallet: str, *, since_ms: int
    ) -> AsyncGenerator[Sequence[ListedTransfer], None]:
        """Yield pages of transfers into ``wallet`` stamped at or after ``since_ms``."""
        ...


class ChainChecker(Protocol):
    async def transaction_info(self, txid: str) -> TransactionInfo | None:
        """Return the transaction's receipt, or None while no block holds it."""
        ...

    async def latest_block_number(self) -> int: ...


class WebhookDeliveryError(Exception):
    """The webhook did not take a transfer: it refused it or stayed unreachable."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class TransferReporter(Protocol):
    async def report(self, transfer: ConfirmedTransfer) -> str:
        """Deliver the transfer; return the webhook's status for it.

        The status is "matched", "unmatched", "duplicate" or "ignored". Raises
        WebhookDeliveryError when the transfer was not delivered.
        """
        ...
