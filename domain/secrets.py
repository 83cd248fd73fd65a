"""Encryption at rest for secrets the product must use later, such as bot tokens.

The key is derived from IBHQ_SECRET_KEY with HKDF, so changing that key makes
stored secrets unreadable: rotate it only together with re-entering them.
"""

import base64
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

KEY_INFO = b"ibhq stored secrets v1"


class SecretUnreadable(Exception):
    """A stored secret cannot be decrypted with the current secret key."""


@lru_cache(maxsize=4)
def _fernet(secret_key: bytes) -> Fernet:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=KEY_INFO)
    return Fernet(base64.urlsafe_b64encode(derived.derive(secret_key)))


def encrypt(secret_key: bytes, plaintext: str) -> str:
    return _fernet(secret_key).encrypt(plaintext.encode()).decode()


def decrypt(secret_key: bytes, token: str) -> str:
    try:
        return _fernet(secret_key).decrypt(token.encode()).decode()
    except InvalidToken:
        raise SecretUnreadable("stored secret does not match IBHQ_SECRET_KEY") from None
