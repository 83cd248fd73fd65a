"""Runs a REST route: request to variables, the named operation, result to response.

A route's response is its operation's root field, with the status the table
gives. Errors become ``{"error": message}`` with the status of their code.
"""

import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ibhq.bodies import BodyTooLarge, UnusableJson, loads_exact, read_body
from ibhq.context import apply_effects, request_context, services_of
from rest_compat.errors import STATUS_BY_CODE, error_response
from rest_compat.operations import Operation, load_operations
from rest_compat.routes import SPREAD_BODY, RestRoute
from rest_compat.variables import BadRequest, check_variables, query_variables
from schema import IbhqSchema

logger = logging.getLogger(__name__)

Endpoint = Callable[[Request], Awaitable[Response]]


def route_endpoint(route: RestRoute, schema: IbhqSchema) -> Endpoint:
    operation = load_operations()[route.operation]

    async def endpoint(request: Request) -> Response:
        async with request_context(request) as context:
            if not route.public and context.viewer is None:
                return error_response(401, "Sign in to use this endpoint")
            if route.signed_webhook:
                rejection = await _verify_webhook(request)
                if rejection is not None:
                    return rejection
                context = replace(context, webhook_verified=True)
            try:
                variables = await _variables(request, route, operation, schema)
            except BadRequest as error:
                return error_response(400, str(error))
            except BodyTooLarge as error:
                return error_response(413, str(error))
            except UnsupportedMediaType as error:
                return error_response(415, str(error))

            result = await schema.execute(
                operation.document,
                variable_values=variables,
                context_value=context,
                operation_name=operation.name,
            )
            response = _render(route, operation, result.data, result.errors)
            apply_effects(response, services_of(request).settings, context)
            return response

    return endpoint


class UnsupportedMediaType(Exception):
    pass


async def _verify_webhook(request: Request) -> Response | None:
    """Check the Standard Webhooks signature; return the error response, or None."""
    settings = services_of(request).settings
    if settings.billing_webhook_secret is None:
        logger.error("webhook call rejected: IBHQ_BILLING_WEBHOOK_SECRET is not set")
        return error_response(503, "The billing webhook is not configured")
    try:
        body = await read_body(request, settings.max_body_bytes)
    except BodyTooLarge as error:
        return error_response(413, str(error))
    verifier = Webhook(settings.billing_webhook_secret.get_secret_value())
    try:
        verifier.verify(body, dict(request.headers), json_parse=False)
    except WebhookVerificationError as error:
        logger.warning("webhook call rejected: %s", error)
        return error_response(401, f"Invalid webhook signature: {error}")
    return None


async def _variables(
    request: Request, route: RestRoute, operation: Operation, schema: IbhqSchema
) -> dict[str, Any]:
    graphql_schema = schema._schema
    variables = query_variables(
        operation, request.query_params, graphql_schema, accepted=route.query_params
    )
    variables.update(request.path_params)
    if route.body == SPREAD_BODY:
        body = await _json_object(request, route)
        for name in body:
            if name not in operation.variables or name in variables:
                raise BadRequest(f"Unknown field '{name}'")
        variables.update(body)
    elif route.body is not None:
        variables[route.body] = await _json_object(request, route)
    check_variables(operation, variables, graphql_schema, body_variable=route.body)
    return variables


async def _json_object(request: Request, route: RestRoute) -> dict[str, Any]:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise UnsupportedMediaType("Content-Type must be application/json")
    limit = route.max_body_bytes or services_of(request).settings.max_body_bytes
    body = await read_body(request, limit)
    if not body.strip():
        raise BadRequest("Request body must be a JSON object, and it is empty")
    try:
        parsed = loads_exact(body)
    except UnusableJson as error:
        raise BadRequest(f"Request body {error}") from None
    except ValueError:
        raise BadRequest("Request body is not valid JSON") from None
    if not isinstance(parsed, dict):
        raise BadRequest(
            f"Request body must be a JSON object, not {_json_kind(parsed)}"
        )
    return parsed


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    return "a number"


def _render(
    route: RestRoute,
    operation: Operation,
    data: dict[str, Any] | None,
    errors: list[Any] | None,
) -> Response:
    if errors:
        error = errors[0]
        code = (error.extensions or {}).get("code", "INTERNAL")
        status = STATUS_BY_CODE.get(code, 500)
        headers = None
        if code == "RATE_LIMITED":
            headers = {"Retry-After": str(error.extensions.get("retryAfter", 60))}
        return error_response(status, error.message, headers=headers)
    if route.status == 204:
        return Response(status_code=204)
    assert data is not None
    body = data[operation.root_field]
    if route.omit_nulls and isinstance(body, dict):
        body = {key: value for key, value in body.items() if value is not None}
    return JSONResponse(body, status_code=route.status)
