"""Schema-wide behaviour: error codes and masking, and one transaction per mutation."""

import logging
import re
from collections.abc import Callable, Iterator
from typing import Any

from graphql import GraphQLError
from strawberry.exceptions import MissingQueryError
from strawberry.extensions import SchemaExtension
from strawberry.extensions.field_extension import AsyncExtensionResolver, FieldExtension
from strawberry.schema.exceptions import (
    CannotGetOperationTypeError,
    InvalidOperationTypeError,
)
from strawberry.types import Info

from domain.errors import DomainError, ErrorCode, RateLimited
from resolvers.context import Context

logger = logging.getLogger("ibhq.graphql")

_BAD_INPUT = {"code": ErrorCode.BAD_USER_INPUT.value}
_FOUND_SUFFIX = re.compile(r"[;,.]? ?found: .*$", re.DOTALL)


class ErrorCodes(SchemaExtension):
    """Give every error a code, and mask the unexpected ones.

    Domain errors keep their message and carry their code (and field, if any)
    in ``extensions``. Parse and validation errors are BAD_USER_INPUT. Anything
    else becomes INTERNAL with a message that names the request id. The real
    error is logged once: in ``IbhqSchema.process_errors`` when a resolver
    raised it, and here when another extension's hook did.
    """

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context.context
        request_id = getattr(context, "request_id", "unknown")
        try:
            yield
        except GraphQLError as error:
            # An error raised inside another extension's hook, such as a syntax
            # error from the parser cache's on_parse, leaves this hook as an
            # exception. Strawberry turns the exception into the result after
            # this hook ends, so it is coded here or not at all.
            raise _with_code(error, request_id) from None
        except (
            MissingQueryError,
            CannotGetOperationTypeError,
            InvalidOperationTypeError,
        ):
            # The HTTP view turns these into a 400 of its own.
            raise
        except Exception as error:
            # Strawberry would return str(error) to the client unmasked, and
            # process_errors skips errors without a path, so log it here.
            logger.error(
                "request %s: unexpected error in an extension hook",
                request_id,
                exc_info=error,
            )
            message = f"Internal server error (request id {request_id})"
            raise GraphQLError(
                message,
                original_error=error,
                extensions={"code": "INTERNAL", "requestId": request_id},
            ) from None
        result = self.execution_context.result
        if result is None or not result.errors:
            return
        result.errors = [_with_code(error, request_id) for error in result.errors]

    def on_stream_result(self, result: Any) -> Iterator[None]:
        """Code and mask the errors of each result a subscription sends."""
        if getattr(result, "errors", None):
            request_id = getattr(
                self.execution_context.context, "request_id", "unknown"
            )
            result.errors = [_with_code(error, request_id) for error in result.errors]
        yield None


def _with_code(error: GraphQLError, request_id: str) -> GraphQLError:
    original = error.original_error
    if original is None:
        return _copy(error, _without_echo(error.message), _BAD_INPUT)
    if isinstance(original, DomainError):
        extensions: dict[str, Any] = {"code": original.code.value}
        if original.field:
            extensions["field"] = original.field
        if isinstance(original, RateLimited):
            extensions["retryAfter"] = original.retry_after_seconds
        return _copy(error, original.message, extensions)
    if is_input_error(error):
        return _copy(error, _without_echo(error.message), _BAD_INPUT)
    message = f"Internal server error (request id {request_id})"
    return _copy(error, message, {"code": "INTERNAL", "requestId": request_id})


def is_input_error(error: GraphQLError) -> bool:
    """Tell whether an error comes from the request rather than from our code.

    Parse and validation errors carry no original error. A scalar that rejects
    a literal or a variable raises ValueError or TypeError before execution,
    so the error has no path. Anything else, such as an exception that ends a
    subscription's stream, is unexpected.
    """
    original = error.original_error
    if original is None or isinstance(original, GraphQLError):
        return True
    return error.path is None and isinstance(original, (ValueError, TypeError))


def _without_echo(message: str) -> str:
    # graphql-core repeats the whole variable value after "found:"; a password
    # or token inside it must not travel back or reach a log.
    return _FOUND_SUFFIX.sub(".", message)


def _copy(
    error: GraphQLError, message: str, extensions: dict[str, Any]
) -> GraphQLError:
    return GraphQLError(
        message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=error.original_error,
        extensions=extensions,
    )


class Transaction(FieldExtension):
    """Run a mutation in a write transaction of its own.

    The transaction commits when the mutation succeeds and rolls back when not.
    On SQLite it holds the write lock from its first statement, so a mutation
    that writes through sessions of its own must not also use the request's.
    """

    async def resolve_async(
        self,
        next_: AsyncExtensionResolver,
        source: Any,
        info: Info[Context, None],
        **kwargs: Any,
    ) -> Any:
        db = info.context.db
        await db.begin_writes()
        try:
            result = await next_(source, info, **kwargs)
        except BaseException:
            await db.rollback()
            raise
        await db.commit()
        return result

    def resolve(
        self,
        next_: Callable[..., Any],
        source: Any,
        info: Info[Context, None],
        **kwargs: Any,
    ) -> Any:
        raise TypeError("Transaction only wraps async resolvers")
