"""Parsing of the opaque ids that clients send back."""

import uuid

from domain.errors import NotFound


def parse_id(value: str, what: str) -> uuid.UUID:
    """Parse an id; a malformed one is as unknown as a missing one."""
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise NotFound(what) from None
