"""Scalars: Decimal and BigInt travel as fixed-point strings, times in UTC with Z."""

import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, NewType

import strawberry
from graphql import FloatValueNode, IntValueNode, StringValueNode, ValueNode
from strawberry.types.scalar import ScalarDefinition


def format_decimal(value: Decimal) -> str:
    """Render a decimal in fixed-point form with the digits it carries."""
    return format(value, "f")


# The form of a Decimal string: ASCII digits, no underscores, no NaN.
DECIMAL_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
# Bounds on the size of a decimal, so that writing it out stays cheap:
# 1e-999999999 is a short input but a billion characters in fixed point.
MAX_DECIMAL_EXPONENT = 100


def _to_decimal(value: object) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        raise ValueError("Decimal must be a number or a numeric string")
    if isinstance(value, str):
        value = value.strip(" \t\r\n")
        if not DECIMAL_TEXT.fullmatch(value):
            raise ValueError(f"Decimal cannot represent {value[:40]!r}")
    try:
        result = Decimal(value)
    except InvalidOperation:
        raise ValueError(f"Decimal cannot represent {str(value)[:40]!r}") from None
    if not result.is_finite():
        raise ValueError("Decimal must be a finite number")
    exponent = result.as_tuple().exponent
    assert isinstance(exponent, int)
    if (
        exponent < -MAX_DECIMAL_EXPONENT
        or result.adjusted() > MAX_DECIMAL_EXPONENT
        or len(result.as_tuple().digits) > 2 * MAX_DECIMAL_EXPONENT
    ):
        raise ValueError(
            f"Decimal must be between 1e-{MAX_DECIMAL_EXPONENT} and "
            f"1e{MAX_DECIMAL_EXPONENT} in size"
        )
    return result


def _decimal_literal(node: ValueNode, _variables: Any = None) -> Decimal:
    if isinstance(node, (IntValueNode, FloatValueNode, StringValueNode)):
        # The literal's source text, so 1.085 stays 1.085 and never passes a float.
        return _to_decimal(node.value)
    raise ValueError("Decimal must be a number or a numeric string")


DECIMAL = strawberry.scalar(
    name="Decimal",
    description="An exact decimal number, sent as a fixed-point string.",
    serialize=format_decimal,
    parse_value=_to_decimal,
    parse_literal=_decimal_literal,
)


MAX_BIGINT_DIGITS = 40
BIGINT_TEXT = re.compile(rf"-?[0-9]{{1,{MAX_BIGINT_DIGITS}}}")


def _to_bigint(value: object) -> int:
    if isinstance(value, bool):
        raise ValueError("BigInt must be an integer")
    if isinstance(value, int):
        return value
    if (
        isinstance(value, Decimal)
        and value.is_finite()
        and value.adjusted() <= MAX_BIGINT_DIGITS
        and value == value.to_integral_value()
    ):
        return int(value)
    if isinstance(value, str) and BIGINT_TEXT.fullmatch(value.strip()):
        return int(value.strip())
    raise ValueError("BigInt must be an integer or a string of digits")


def _bigint_literal(node: ValueNode, _variables: Any = None) -> int:
    if isinstance(node, (IntValueNode, StringValueNode)):
        return _to_bigint(node.value)
    raise ValueError("BigInt must be an integer or a string of digits")


BigInt = NewType("BigInt", int)

BIGINT = strawberry.scalar(
    name="BigInt",
    description="A 64-bit or larger integer, sent as a string of digits.",
    serialize=str,
    parse_value=_to_bigint,
    parse_literal=_bigint_literal,
)


def format_datetime(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _to_datetime(value: object) -> datetime:
    if not isinstance(value, str):
        raise ValueError("DateTime must be an ISO 8601 string")
    try:
        result = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"DateTime cannot represent {value[:40]!r}") from None
    if result.tzinfo is None:
        raise ValueError("DateTime must include a time zone, such as Z")
    return result.astimezone(UTC)


def _datetime_literal(node: ValueNode, _variables: Any = None) -> datetime:
    return _to_datetime(node.value if isinstance(node, StringValueNode) else None)


DATETIME = strawberry.scalar(
    name="DateTime",
    description="A point in time, as ISO 8601 in UTC with a Z suffix.",
    serialize=format_datetime,
    parse_value=_to_datetime,
    parse_literal=_datetime_literal,
)

# Python types and the GraphQL scalars they become, for StrawberryConfig.
SCALAR_MAP: dict[object, ScalarDefinition] = {
    Decimal: DECIMAL,
    BigInt: BIGINT,
    datetime: DATETIME,
}
