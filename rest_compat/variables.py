"""Building GraphQL variables from a REST request, with REST-shaped error messages."""

import re
from collections.abc import Mapping
from typing import Any

from graphql import (
    GraphQLError,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLSchema,
    get_named_type,
    type_from_ast,
)
from graphql.utilities.validate_input_value import validate_input_value
from starlette.datastructures import QueryParams

from rest_compat.operations import Operation


class BadRequest(Exception):
    """The request cannot become valid variables; the message explains why."""


UNKNOWN_FIELD = re.compile(r"not to include unknown field '(\w+)'")
MISSING_FIELD = re.compile(r"to include required field '(\w+)'")
FOUND_SUFFIX = re.compile(r"[;,.]? ?found: .*$", re.DOTALL)


def query_variables(
    operation: Operation,
    params: Mapping[str, str],
    schema: GraphQLSchema,
    *,
    accepted: tuple[str, ...],
) -> dict[str, Any]:
    """Turn query-string parameters into typed variables of the operation."""
    variables: dict[str, Any] = {}
    if isinstance(params, QueryParams):
        for name in params:
            if len(params.getlist(name)) > 1:
                raise BadRequest(f"Query parameter '{name}' is given more than once")
    for name, raw in params.items():
        spec = operation.variables.get(name)
        if spec is None or name not in accepted:
            allowed = ", ".join(accepted) or "none"
            raise BadRequest(
                f"Unknown query parameter '{name}'; this route accepts: {allowed}"
            )
        type_ = type_from_ast(schema, spec.type)
        named = get_named_type(type_).name if type_ else "String"
        variables[name] = _from_query_string(name, raw, named)
    return variables


def _from_query_string(name: str, raw: str, type_name: str) -> Any:
    if type_name == "Int":
        if not re.fullmatch(r"-?[0-9]{1,9}", raw.strip()):
            raise BadRequest(f"{name} must be an integer, not '{raw[:40]}'")
        return int(raw)
    if type_name == "Boolean":
        if raw not in ("true", "false"):
            raise BadRequest(f"{name} must be true or false, not '{raw[:40]}'")
        return raw == "true"
    return raw


def check_variables(
    operation: Operation,
    variables: Mapping[str, Any],
    schema: GraphQLSchema,
    *,
    body_variable: str | None = None,
) -> None:
    """Coerce each variable as GraphQL will, raising BadRequest with a clear message.

    Messages name fields as the client wrote them: inside the body for the
    ``body_variable``, and by the variable's own name for the others.
    """
    for name, spec in operation.variables.items():
        type_ = type_from_ast(schema, spec.type)
        assert type_ is not None, f"unknown type in operation {operation.name}"
        if name not in variables:
            if spec.has_default or not _is_required(type_):
                continue
            raise BadRequest(f"Missing required field '{name}'")
        prefix = [] if name == body_variable else [name]
        _coerce(prefix, variables[name], type_)  # type: ignore[arg-type]


def _is_required(type_: Any) -> bool:
    return isinstance(type_, GraphQLNonNull)


def _coerce(prefix: list[str | int], value: Any, type_: GraphQLInputType) -> None:
    problems: list[str] = []

    def on_error(error: GraphQLError, path: list[str | int]) -> None:
        problems.append(_describe([*prefix, *path], error))

    _check_arrays(value, type_, prefix, problems)
    if not problems:
        # GraphQL would also describe a lone value in its own words.
        validate_input_value(value, type_, on_error, hide_suggestions=True)
    if problems:
        raise BadRequest("; ".join(problems[:5]))


def _check_arrays(
    value: Any, type_: Any, path: list[str | int], problems: list[str]
) -> None:
    """Reject a single value where a list is expected.

    GraphQL input coercion turns a lone value into a one-item list; JSON has
    arrays, so REST clients are held to them.
    """
    if isinstance(type_, GraphQLNonNull):
        type_ = type_.of_type
    if value is None:
        return
    if isinstance(type_, GraphQLList):
        if not isinstance(value, list):
            where = ".".join(str(part) for part in path)
            problems.append(f"Field '{where}' must be a JSON array")
            return
        for index, item in enumerate(value):
            _check_arrays(item, type_.of_type, [*path, index], problems)
    elif isinstance(type_, GraphQLInputObjectType) and isinstance(value, dict):
        for name, field in type_.fields.items():
            if name in value:
                _check_arrays(value[name], field.type, [*path, name], problems)


def _describe(path: list[str | int], error: GraphQLError) -> str:
    """Rewrite a GraphQL coercion error for REST, without echoing the input."""
    where = ".".join(str(part) for part in path)
    message = error.message
    if match := UNKNOWN_FIELD.search(message):
        return f"Unknown field '{_join(where, match.group(1))}'"
    if match := MISSING_FIELD.search(message):
        return f"Missing required field '{_join(where, match.group(1))}'"
    if "to be provided" in message:
        return f"Missing required field '{where}'"
    if "not to be None" in message:
        return f"Field '{where}' must not be null"
    if "to be an object" in message:
        return f"Field '{where}' must be a JSON object"
    detail = str(error.original_error) if error.original_error else message
    return f"Invalid value for '{where}': {strip_echo(detail)}"


def strip_echo(message: str) -> str:
    """Drop graphql-core's echo of the whole input value, which may hold secrets."""
    return FOUND_SUFFIX.sub("", message).rstrip(".")


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name
