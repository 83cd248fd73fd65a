"""Password hashing with argon2id."""

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from domain.errors import InvalidInput

MIN_PASSWORD_LENGTH = 8
# Hashing cost grows with length; nobody types a passphrase this long.
MAX_PASSWORD_LENGTH = 1024

_hasher = PasswordHasher()


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
    """Check a password; an unreadable stored hash counts as a mismatch."""
    try:
        return _hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError, ValueError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    try:
        return _hasher.check_needs_rehash(stored_hash)
    except (InvalidHashError, ValueError):
        return True


# A valid hash to verify against when the email is unknown, so that the
# response time does not reveal which emails have accounts.
DUMMY_HASH = hash_password("not a real password, only for timing")
