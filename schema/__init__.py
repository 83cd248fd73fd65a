"""The GraphQL schema: one Strawberry schema for every area of the product."""

import logging
from dataclasses import dataclass
from functools import partial

import strawberry
from graphql import ASTValidationRule, GraphQLError
from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext

from domain.errors import DomainError
from schema.extensions import ErrorCodes, is_input_error
from schema.guards import DocumentGuard
from schema.mutation import Mutation
from schema.query import Query
from schema.scalars import SCALAR_MAP
from schema.subscription import Subscription

logger = logging.getLogger("ibhq.graphql")


@dataclass(frozen=True, slots=True)
class QueryLimits:
    max_depth: int = 12
    max_tokens: int = 5000
    max_aliases: int = 30
    max_selections: int = 500


class IbhqSchema(strawberry.Schema):
    def process_errors(
        self,
        errors: list[GraphQLError],
        execution_context: ExecutionContext | None = None,
    ) -> None:
        """Log each unexpected error once, with its traceback and request id."""
        context = execution_context.context if execution_context else None
        request_id = getattr(context, "request_id", "unknown")
        for error in errors:
            original = error.original_error
            if is_input_error(error):
                continue
            if isinstance(original, DomainError):
                logger.debug("request %s: %s", request_id, original.message)
                continue
            where = ".".join(str(part) for part in error.path or ()) or "a stream"
            logger.error(
                "request %s: unexpected error in %s",
                request_id,
                where,
                exc_info=original,
            )


def _limit_rules(limits: QueryLimits) -> list[type[ASTValidationRule]]:
    """Build the depth and alias rules once for the schema.

    Each QueryDepthLimiter or MaxAliasesLimiter makes a new rule class, and the
    validation cache is keyed by the rule classes, so rules made per request
    would never hit the cache.
    """
    depth = QueryDepthLimiter(max_depth=limits.max_depth)
    aliases = MaxAliasesLimiter(max_alias_count=limits.max_aliases)
    return [*depth.validation_rules, *aliases.validation_rules]


def build_schema(limits: QueryLimits | None = None) -> IbhqSchema:
    limits = limits or QueryLimits()
    return IbhqSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        config=StrawberryConfig(auto_camel_case=True, scalar_map=SCALAR_MAP),
        # Factories, so each request gets its own extension instances; the
        # parser and validation caches are shared at module level regardless.
        extensions=[
            # First, so that a costly document is refused before any other
            # extension validates it.
            partial(DocumentGuard, max_selections=limits.max_selections),
            partial(ParserCache, maxsize=256),
            partial(ValidationCache, maxsize=256),
            partial(AddValidationRules, _limit_rules(limits)),
            partial(MaxTokensLimiter, max_token_count=limits.max_tokens),
            ErrorCodes,
        ],
    )
