"""A guard that rejects costly GraphQL documents before validation runs.

graphql-core's validation, and the depth and alias limiters, walk a fragment
again at every spread, so a small document whose fragments spread each other
twice per level costs exponential time. This guard counts the selections of
the document with fragments expanded, and stops counting, and rejects the
document, as soon as the count passes the limit, so its own work is bounded.
"""

from collections.abc import Iterator

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)
from strawberry.extensions import SchemaExtension


class DocumentTooLarge(Exception):
    pass


def expanded_selection_count(document: DocumentNode, limit: int) -> int:
    """Count fields and fragment uses with fragments expanded, up to ``limit`` + 1.

    Raises DocumentTooLarge once the count passes ``limit``.
    """
    fragments = {
        node.name.value: node.selection_set
        for node in document.definitions
        if isinstance(node, FragmentDefinitionNode)
    }
    pending: list[SelectionSetNode] = [
        node.selection_set
        for node in document.definitions
        if isinstance(node, OperationDefinitionNode)
    ]
    count = 0
    while pending:
        for selection in pending.pop().selections:
            count += 1
            if count > limit:
                raise DocumentTooLarge
            if isinstance(selection, FragmentSpreadNode):
                target = fragments.get(selection.name.value)
                if target is not None:
                    pending.append(target)
            elif (
                isinstance(selection, (FieldNode, InlineFragmentNode))
                and selection.selection_set is not None
            ):
                pending.append(selection.selection_set)
    return count


class DocumentGuard(SchemaExtension):
    """Reject documents that are too large once fragments are expanded, and
    documents with several operations but no operation name."""

    def __init__(self, max_selections: int) -> None:
        self.max_selections = max_selections

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if document is not None:
            # operation_name falls back to the first operation's name, so read
            # the name the client sent, which Strawberry keeps privately.
            sent_name = getattr(context, "_provided_operation_name", None)
            self._check(document, sent_name)
        yield

    def _check(self, document: DocumentNode, operation_name: str | None) -> None:
        operations = [
            node
            for node in document.definitions
            if isinstance(node, OperationDefinitionNode)
        ]
        if len(operations) > 1 and not operation_name:
            raise GraphQLError(
                "The document has several operations: name the one to run "
                "in operationName"
            )
        try:
            expanded_selection_count(document, self.max_selections)
        except DocumentTooLarge:
            raise GraphQLError(
                f"The document selects more than {self.max_selections} fields "
                "once its fragments are expanded; split it into smaller queries"
            ) from None
