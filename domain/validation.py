"""Field checks shared by the use cases; each error names the field it is about."""

import re

from email_validator import EmailNotValidError, validate_email

from domain.errors import InvalidInput

MAX_EMAIL_LENGTH = 320


def clean_text(
    value: str, *, field: str, max_length: int, required: bool = True
) -> str:
    """Strip ``value`` and check it is non-empty (when required) and short enough."""
    text = value.strip()
    if required and not text:
        raise InvalidInput(f"{field} must not be empty", field=field)
    if len(text) > max_length:
        raise InvalidInput(
            f"{field} must be at most {max_length} characters", field=field
        )
    if "\x00" in text:
        raise InvalidInput(f"{field} must not contain NUL characters", field=field)
    return text


def optional_text(value: str | None, *, field: str, max_length: int) -> str | None:
    if value is None:
        return None
    text = clean_text(value, field=field, max_length=max_length, required=False)
    return text or None


def normalize_email(value: str, *, field: str = "email") -> str:
    """Check the syntax of an email address and return it in lowercase."""
    text = value.strip()
    if len(text) > MAX_EMAIL_LENGTH:
        raise InvalidInput(f"{field} is too long", field=field)
    try:
        result = validate_email(text, check_deliverability=False)
    except EmailNotValidError as error:
        raise InvalidInput(
            f"{field} is not a valid email address: {error}", field=field
        ) from None
    return result.normalized.lower()


def check_pattern(
    value: str, pattern: re.Pattern[str], *, field: str, rule: str
) -> str:
    if not pattern.fullmatch(value):
        raise InvalidInput(f"{field} must be {rule}", field=field)
    return value
