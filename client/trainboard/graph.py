"""Graph node lists (docs/design.md): normalising and validating them.

Pure functions shared by the SDK (at the call site) and the server (on SetGraph).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from trainboard.errors import InvalidArgument
from trainboard.types import GraphNode
from trainboard.validation import MAX_GRAPH_NODES, MAX_NAME_LENGTH, check_name


def node_from_mapping(index: int, item: Mapping[str, Any]) -> GraphNode:
    """A node from a dict with keys name, op, inputs, shape, dtype, attributes."""
    unknown = set(item) - {"name", "op", "inputs", "shape", "dtype", "attributes"}
    if unknown:
        raise InvalidArgument(f"graph node {index} has unknown keys {sorted(unknown)}")
    shape = item.get("shape")
    attributes = item.get("attributes") or {}
    if not isinstance(attributes, Mapping):
        raise TypeError(f"graph node {index}: attributes must be a dict")
    return GraphNode(
        name=item.get("name"),  # type: ignore[arg-type]  # checked by validate_graph
        op=item.get("op", ""),
        inputs=tuple(item.get("inputs") or ()),
        shape=None if shape is None else tuple(shape),
        dtype=str(item.get("dtype") or ""),
        attributes={str(k): str(v) for k, v in attributes.items()},
    )


def validate_graph(nodes: Iterable[GraphNode | Mapping[str, Any]]) -> list[GraphNode]:
    """Checks a node list and returns it as GraphNodes.

    Names must be unique and valid; every input must name a node of the list;
    ops must be non-empty; shapes are integers >= -1; the inputs must not form a
    cycle (a node that is, through its inputs, an input of itself). Any violation
    raises ``InvalidArgument`` naming the node; a cycle's message names the nodes
    on it. Runs in O(nodes + inputs) time without recursion.
    """
    if isinstance(nodes, (str, bytes)) or not isinstance(nodes, Iterable):
        raise TypeError(f"graph must be a list of GraphNode, got {type(nodes).__name__}")
    result: list[GraphNode] = []
    for index, node in enumerate(nodes):
        if isinstance(node, Mapping):
            node = node_from_mapping(index, node)
        if not isinstance(node, GraphNode):
            raise TypeError(
                f"graph node {index} must be a GraphNode or a dict, got {type(node).__name__}"
            )
        result.append(node)
        if len(result) > MAX_GRAPH_NODES:
            raise InvalidArgument(f"graph has more than {MAX_GRAPH_NODES} nodes")
    names: set[str] = set()
    for index, node in enumerate(result):
        check_name(f"graph node {index} name", node.name)
        if node.name in names:
            raise InvalidArgument(f"graph node name {node.name!r} is used twice")
        names.add(node.name)
        if not isinstance(node.op, str) or not node.op:
            raise InvalidArgument(f"graph node {node.name!r}: op must be a non-empty str")
        if len(node.op) > MAX_NAME_LENGTH or len(node.dtype) > MAX_NAME_LENGTH:
            raise InvalidArgument(f"graph node {node.name!r}: op or dtype is too long")
        if node.shape is not None:
            for dim in node.shape:
                if isinstance(dim, bool) or not isinstance(dim, int) or dim < -1:
                    raise InvalidArgument(
                        f"graph node {node.name!r}: shape must hold integers >= -1, "
                        f"got {node.shape!r}"
                    )
    for node in result:
        for name in node.inputs:
            if name not in names:
                raise InvalidArgument(
                    f"graph node {node.name!r} has input {name!r}, which is not a node"
                )
    cycle = find_cycle(result)
    if cycle is not None:
        raise InvalidArgument(
            f"graph has a cycle through node {cycle[0]!r}: {_describe_cycle(cycle)}"
        )
    return result


def find_cycle(nodes: Sequence[GraphNode]) -> list[str] | None:
    """The names of the nodes of one cycle, in data-flow order (each feeds the
    next, the last feeds the first), or ``None`` when the graph has none.

    The nodes must have unique names and inputs that name nodes of the list.
    Kahn's algorithm removes every node not on or downstream of a cycle; each
    node left has an input that is also left, so walking inputs from any of them
    must come back to a node already seen, which lies on a cycle. Iterative and
    O(nodes + inputs).
    """
    index = {node.name: i for i, node in enumerate(nodes)}
    inputs = [[index[name] for name in node.inputs] for node in nodes]
    consumers: list[list[int]] = [[] for _ in nodes]
    pending = [len(ins) for ins in inputs]  # inputs not yet removed, with repeats
    for i, ins in enumerate(inputs):
        for j in ins:
            consumers[j].append(i)
    ready = [i for i, count in enumerate(pending) if count == 0]
    removed = [False] * len(nodes)
    while ready:
        i = ready.pop()
        removed[i] = True
        for k in consumers[i]:
            pending[k] -= 1
            if pending[k] == 0:
                ready.append(k)
    start = next((i for i, gone in enumerate(removed) if not gone), None)
    if start is None:
        return None
    # Walk backwards along inputs that are left until a node repeats.
    position: dict[int, int] = {}
    walk: list[int] = []
    i = start
    while i not in position:
        position[i] = len(walk)
        walk.append(i)
        i = next(j for j in inputs[i] if not removed[j])
    backwards = walk[position[i] :]
    return [nodes[j].name for j in reversed(backwards)]


def _describe_cycle(cycle: Sequence[str], most: int = 8) -> str:
    """``a -> b -> a``, with the middle left out of a long cycle."""
    names = [repr(name) for name in cycle]
    if len(names) > most:
        names = [*names[: most // 2], f"... ({len(names) - most} more) ...", *names[-most // 2 :]]
    return " -> ".join([*names, repr(cycle[0])])
