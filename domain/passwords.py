"""Password hashing with argon2id.

The cost parameters are set once at startup with ``configure``; hashes made
with other parameters still verify and are upgraded on the next sign-in.
"""

import asyncio
from contextlib import suppress

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from domain.errors import InvalidInput

MIN_PASSWORD_LENGTH = 8
# Hashing cost grows with length; longer passphrases are not expected.
MAX_PASSWORD_LENGTH = 1024

_hasher = PasswordHasher()
_dummy_hash: str | None = None


def configure(*, time_cost: int, memory_cost_kib: int) -> None:
    """Set the argon2id cost used for new hashes."""
    global _hasher, _dummy_hash
    _hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_cost_kib)
    _dummy_hash = None


def check_password_rules(password: str, *, field: str = "password") -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(
            f"{field} must be at least {MIN_PASSWORD_LENGTH} characters", field=field
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidInput(
            f"{field} must be at most {MAX_PASSWORD_LENGTH} characters", field=field
        )


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    """Check a password; an unreadable stored hash counts as a mismatch.

    argon2 rejects an unreadable hash before doing any hashing, so the dummy
    hash is verified instead, which makes the failure take as long as a wrong
    password does.
    """
    try:
        return _hasher.verify(stored_hash, password)
    except VerifyMismatchError:
        return False
    except (VerificationError, InvalidHashError, ValueError):
        pass
    with suppress(VerifyMismatchError):
        _hasher.verify(dummy_hash(), password)
    return False


async def hash_in_thread(password: str) -> str:
    """Hash in a worker thread: argon2 uses the CPU for tens of milliseconds."""
    return await asyncio.to_thread(hash_password, password)


async def verify_in_thread(stored_hash: str, password: str) -> bool:
    return await asyncio.to_thread(verify_password, stored_hash, password)


def needs_rehash(stored_hash: str) -> bool:
    try:
        return _hasher.check_needs_rehash(stored_hash)
    except (InvalidHashError, ValueError):
        return True


def dummy_hash() -> str:
    """Return a valid hash to verify against when the email is unknown.

    Verifying it costs as much as a real check, so the response time does not
    reveal which emails have accounts.
    """
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = _hasher.hash("not a real password, only for timing")
    return _dummy_hash
