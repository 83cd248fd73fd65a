"""The named GraphQL operations behind the REST routes, read from .graphql files."""

from dataclasses import dataclass
from functools import cache
from pathlib import Path

from graphql import (
    DocumentNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    Node,
    OperationDefinitionNode,
    TypeNode,
    Visitor,
    parse,
    print_ast,
    visit,
)

OPERATIONS_DIR = Path(__file__).parent / "operations"


@dataclass(frozen=True, slots=True)
class VariableSpec:
    name: str
    type: TypeNode
    has_default: bool


@dataclass(frozen=True, slots=True)
class Operation:
    name: str
    # The operation with only the fragments it uses, ready to execute.
    document: str
    definition: OperationDefinitionNode
    variables: dict[str, VariableSpec]

    @property
    def root_field(self) -> str:
        selection = self.definition.selection_set.selections[0]
        return selection.alias.value if selection.alias else selection.name.value  # type: ignore[attr-defined, no-any-return]


@cache
def load_operations() -> dict[str, Operation]:
    definitions: list[Node] = []
    for path in sorted(OPERATIONS_DIR.glob("*.graphql")):
        definitions.extend(parse(path.read_text()).definitions)
    fragments = {
        node.name.value: node
        for node in definitions
        if isinstance(node, FragmentDefinitionNode)
    }
    operations = {}
    for node in definitions:
        if not isinstance(node, OperationDefinitionNode) or node.name is None:
            continue
        used = _fragments_used(node, fragments)
        document = DocumentNode(definitions=(node, *(fragments[name] for name in used)))
        variables = {
            spec.variable.name.value: VariableSpec(
                name=spec.variable.name.value,
                type=spec.type,
                has_default=spec.default_value is not None,
            )
            for spec in node.variable_definitions or ()
        }
        operations[node.name.value] = Operation(
            name=node.name.value,
            document=print_ast(document),
            definition=node,
            variables=variables,
        )
    return operations


def _fragments_used(
    node: Node, fragments: dict[str, FragmentDefinitionNode]
) -> list[str]:
    found: list[str] = []

    class Collector(Visitor):
        def enter_fragment_spread(self, spread: FragmentSpreadNode, *_: object) -> None:
            name = spread.name.value
            if name not in found:
                found.append(name)
                visit(fragments[name], self)

    visit(node, Collector())
    return found
