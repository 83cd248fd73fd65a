"""Decimal, BigInt and DateTime scalars, on a small schema of their own."""

from datetime import datetime
from decimal import Decimal

import pytest
import strawberry
from strawberry.schema.config import StrawberryConfig

from ibhq.bodies import loads_exact
from schema.scalars import SCALAR_MAP, BigInt

EXACT_VALUES = ["1.085", "1.08512", "151.234", "2345.67", "0.000000812", "68000.5"]


@strawberry.type
class Query:
    @strawberry.field
    def decimal(self, value: Decimal) -> Decimal:
        return value

    @strawberry.field
    def big(self, value: BigInt) -> BigInt:
        return value

    @strawberry.field
    def moment(self, value: datetime) -> datetime:
        return value

    @strawberry.field
    def tiny(self) -> Decimal:
        return Decimal("8.12E-7")


schema = strawberry.Schema(Query, config=StrawberryConfig(scalar_map=SCALAR_MAP))


@pytest.mark.parametrize("text", EXACT_VALUES)
def test_decimal_literal_keeps_digits(text: str) -> None:
    result = schema.execute_sync(f"{{ decimal(value: {text}) }}")

    assert result.errors is None
    assert result.data == {"decimal": text}


@pytest.mark.parametrize("text", EXACT_VALUES)
def test_decimal_string_literal(text: str) -> None:
    result = schema.execute_sync(f'{{ decimal(value: "{text}") }}')

    assert result.data == {"decimal": text}


@pytest.mark.parametrize("text", EXACT_VALUES)
def test_decimal_json_number_variable(text: str) -> None:
    variables = loads_exact(f'{{"value": {text}}}')

    result = schema.execute_sync(
        "query($value: Decimal!) { decimal(value: $value) }", variable_values=variables
    )

    assert isinstance(variables["value"], Decimal)
    assert result.data == {"decimal": text}


def test_decimal_serializes_fixed_point() -> None:
    result = schema.execute_sync("{ tiny }")

    assert result.data == {"tiny": "0.000000812"}


@pytest.mark.parametrize("bad", ['"NaN"', '"Infinity"', '"1e"', "true", '"abc"'])
def test_decimal_rejects_non_numbers(bad: str) -> None:
    result = schema.execute_sync(f"{{ decimal(value: {bad}) }}")

    assert result.data is None
    assert result.errors is not None


def test_json_rejects_nan_constant() -> None:
    with pytest.raises(ValueError, match="NaN is not valid JSON"):
        loads_exact('{"value": NaN}')


def test_bigint_round_trips_as_string() -> None:
    telegram_chat = "-1001234567890123"

    literal = schema.execute_sync(f"{{ big(value: {telegram_chat}) }}")
    from_string = schema.execute_sync(
        "query($v: BigInt!) { big(value: $v) }", variable_values={"v": telegram_chat}
    )

    assert literal.data == {"big": telegram_chat}
    assert from_string.data == {"big": telegram_chat}


def test_bigint_rejects_fraction() -> None:
    result = schema.execute_sync(
        "query($v: BigInt!) { big(value: $v) }", variable_values={"v": Decimal("1.5")}
    )

    assert result.errors is not None


def test_datetime_renders_utc_with_z() -> None:
    result = schema.execute_sync('{ moment(value: "2026-12-04T18:30:00+02:00") }')

    assert result.data == {"moment": "2026-12-04T16:30:00Z"}


def test_datetime_needs_time_zone() -> None:
    result = schema.execute_sync('{ moment(value: "2026-12-04T18:30:00") }')

    assert result.errors is not None
    assert "time zone" in result.errors[0].message
