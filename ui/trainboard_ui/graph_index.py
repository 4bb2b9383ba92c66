"""The graph page's node list indexed by scope (docs/design.md).

The scope tree comes from node names: ``encoder/layer1/linear`` lies in scope
``encoder/layer1``, which lies in ``encoder``. A name that is also a prefix of other
names (a leaf module and its parameters: ``head`` and ``head/weight``) is a scope
that holds its own node. When a scope has more than ``max_children`` child scopes
with numbers for names (the blocks of a ``Sequential``), they are grouped into
*range scopes* such as ``blocks/[0-9]``, so that no level lists hundreds of boxes.

The graph page's functions take the node list (``list[GraphNode]``, as
``Reader.graph`` returns it) or a ``GraphIndex`` built once from it with
``index_graph``, which saves re-indexing on every Streamlit rerun.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from trainboard.types import GraphNode

MAX_CHILDREN = 30


@dataclass(frozen=True, slots=True, eq=False)
class GraphIndex:
    """A validated node list indexed for drawing: built by ``index_graph``.

    ``owner`` maps each node to the scope it lies in (``""`` for the top level);
    ``parent`` and ``children`` give the scope tree, range scopes included, with
    ``""`` as its root; ``order`` lists the scopes parents first; ``chain`` gives
    each scope's path from the top, itself last. ``ranges`` are the range scopes.
    """

    nodes: tuple[GraphNode, ...]
    by_name: Mapping[str, GraphNode]
    consumers: Mapping[str, tuple[str, ...]]
    owner: Mapping[str, str]
    parent: Mapping[str, str]
    children: Mapping[str, tuple[str, ...]]
    order: tuple[str, ...]
    chain: Mapping[str, tuple[str, ...]]
    ranges: frozenset[str]


Graph = GraphIndex | Iterable[GraphNode]


def index_graph(nodes: Iterable[GraphNode], *, max_children: int = MAX_CHILDREN) -> GraphIndex:
    """Indexes a node list (names unique, inputs naming nodes, as
    ``trainboard.graph.validate_graph`` leaves it; ``ValueError`` otherwise).

    Numbered child scopes beyond ``max_children`` under one scope are grouped
    into range scopes of 1, 2 or 5 times a power of ten each (nested when needed).
    """
    if max_children < 2:
        raise ValueError("max_children must be at least 2")
    listed = tuple(nodes)
    by_name: dict[str, GraphNode] = {}
    for node in listed:
        if node.name in by_name:
            raise ValueError(f"graph node name {node.name!r} is used twice")
        by_name[node.name] = node
    consumers: dict[str, list[str]] = {node.name: [] for node in listed}
    for node in listed:
        for name in dict.fromkeys(node.inputs):
            if name not in consumers:
                raise ValueError(f"graph node {node.name!r} has input {name!r}, not a node")
            consumers[name].append(node.name)

    # Real scopes: every proper prefix of a name, parents first (dicts keep order).
    children: dict[str, list[str]] = {"": []}
    for node in listed:
        name = node.name
        at = name.find("/")
        while at != -1:
            scope = name[:at]
            if scope not in children:
                children[scope] = []
                children[_real_parent(scope)].append(scope)
            at = name.find("/", at + 1)
    owner = {
        node.name: node.name if node.name in children else _real_parent(node.name)
        for node in listed
    }

    parent = {scope: _real_parent(scope) for scope in children if scope}
    ranges: set[str] = set()
    for scope in list(children):
        grouped = _group_numbered(scope, children[scope], max_children, children, by_name)
        for range_scope, _ in grouped:
            ranges.add(range_scope)
            parent[range_scope] = scope  # nested ranges get their outer range below
        for range_scope, members in grouped:
            children[range_scope] = list(members)
            for member in members:
                parent[member] = range_scope
        if grouped:
            children[scope] = _regrouped(children[scope], parent, scope)

    order: list[str] = []
    chain: dict[str, tuple[str, ...]] = {"": ()}
    queue = list(children[""])
    for scope in queue:  # breadth first: a scope's chain extends its parent's
        order.append(scope)
        chain[scope] = (*chain[parent[scope]], scope)
        queue.extend(children[scope])
    return GraphIndex(
        nodes=listed,
        by_name=by_name,
        consumers={name: tuple(users) for name, users in consumers.items()},
        owner=owner,
        parent=parent,
        children={scope: tuple(kids) for scope, kids in children.items()},
        order=tuple(order),
        chain=chain,
        ranges=frozenset(ranges),
    )


def _real_parent(name: str) -> str:
    return name.rpartition("/")[0]


def leaf(name: str) -> str:
    """The last part of a node or scope name."""
    return name.rpartition("/")[2]


def _group_numbered(
    scope: str,
    kids: Sequence[str],
    max_children: int,
    taken: Mapping[str, object],
    names: Mapping[str, object],
) -> list[tuple[str, tuple[str, ...]]]:
    """Range scopes for the numbered children of ``scope`` when there are too
    many: ``[(range_scope, members), ...]``, nested ranges included (a nested
    range is a member of its outer range). Empty when no grouping is needed or a
    range name is already a real name."""
    numbered = sorted(
        (kid for kid in kids if leaf(kid).isascii() and leaf(kid).isdigit()),
        key=lambda kid: int(leaf(kid)),
    )
    if len(numbered) <= max_children:
        return []
    result: list[tuple[str, tuple[str, ...]]] = []

    def split(members: list[str]) -> list[str]:
        if len(members) <= max_children:
            return members
        size = _nice_size(math.ceil(len(members) / max_children))
        tops = []
        for start in range(0, len(members), size):
            chunk = members[start : start + size]
            if len(chunk) == 1:  # a range of one would only add a click
                tops.append(chunk[0])
                continue
            name = f"[{leaf(chunk[0])}-{leaf(chunk[-1])}]"
            range_scope = f"{scope}/{name}" if scope else name
            result.append((range_scope, tuple(split(chunk))))
            tops.append(range_scope)
        return tops

    split(numbered)
    if any(range_scope in taken or range_scope in names for range_scope, _ in result):
        return []
    return result


def _nice_size(at_least: int) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50, ... that is at least ``at_least``."""
    power = 1
    while True:
        for step in (1, 2, 5):
            if step * power >= at_least:
                return step * power
        power *= 10


def _regrouped(kids: Sequence[str], parent: Mapping[str, str], scope: str) -> list[str]:
    """``kids`` with each grouped child replaced by its outermost range scope,
    which takes the place of the range's first child."""
    result: list[str] = []
    seen: set[str] = set()
    for kid in kids:
        top = kid
        while parent.get(top, scope) != scope:
            top = parent[top]
        if top not in seen:
            seen.add(top)
            result.append(top)
    return result


def as_index(graph: Graph) -> GraphIndex:
    """``graph`` itself when it is indexed already, else its index."""
    return graph if isinstance(graph, GraphIndex) else index_graph(graph)
