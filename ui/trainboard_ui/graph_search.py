"""What the graph page finds in a graph: a node's or scope's details, names
matching a search, and the scopes to expand to show one."""

from __future__ import annotations

from typing import Any

from trainboard_ui.graph_index import Graph, as_index


def node_details(graph: Graph, name: str) -> dict[str, Any]:
    """What the page shows for a selected node or scope box.

    For a node: ``{"kind": "node", "name", "op", "shape" (list or None),
    "dtype", "attributes" (dict), "inputs", "outputs"}``, inputs in the node's
    order and outputs (its users) in graph order. For a scope that is not also a
    node: ``{"kind": "scope", "name", "nodes" (count), "op": "", "shape": None,
    "dtype": "", "attributes": {}, "inputs", "outputs"}``, where inputs are the
    nodes outside it that feed it (in order of first use) and outputs the nodes
    outside it that it feeds (in graph order).
    ``KeyError`` when ``name`` is neither.
    """
    index = as_index(graph)
    node = index.by_name.get(name)
    if node is not None:
        return {
            "kind": "node",
            "name": node.name,
            "op": node.op,
            "shape": None if node.shape is None else list(node.shape),
            "dtype": node.dtype,
            "attributes": dict(node.attributes),
            "inputs": list(node.inputs),
            "outputs": list(index.consumers[name]),
        }
    if name not in index.parent:
        raise KeyError(f"the graph has no node or scope named {name!r}")
    inside = {n.name for n in index.nodes if name in index.chain[index.owner[n.name]]}
    inputs: dict[str, None] = {}  # an ordered set
    outputs: list[str] = []
    for node in index.nodes:
        if node.name in inside:
            inputs.update((i, None) for i in node.inputs if i not in inside)
        elif any(i in inside for i in node.inputs):
            outputs.append(node.name)
    return {
        "kind": "scope",
        "name": name,
        "nodes": len(inside),
        "op": "",
        "shape": None,
        "dtype": "",
        "attributes": {},
        "inputs": list(inputs),
        "outputs": outputs,
    }


def search(graph: Graph, query: str, limit: int = 50) -> list[str]:
    """Node and scope names containing ``query`` (case-insensitive), best first.

    Ranks: the whole name equals the query; its last part equals it; its last
    part starts with it; another part starts with it; it occurs anywhere. Within
    a rank, shallower and then shorter names first, then graph order. Range
    scopes are not searched. An empty query finds nothing.
    """
    index = as_index(graph)
    needle = query.strip().lower()
    if not needle or limit <= 0:
        return []
    found: list[tuple[int, int, int, int, str]] = []
    candidates = dict.fromkeys(
        [*(node.name for node in index.nodes), *(s for s in index.order if s not in index.ranges)]
    )
    for position, name in enumerate(candidates):
        lowered = name.lower()
        if needle not in lowered:
            continue
        parts = lowered.split("/")
        if lowered == needle:
            rank = 0
        elif parts[-1] == needle:
            rank = 1
        elif parts[-1].startswith(needle):
            rank = 2
        elif any(part.startswith(needle) for part in parts):
            rank = 3
        else:
            rank = 4
        found.append((rank, len(parts), len(name), position, name))
    found.sort()
    return [name for *_, name in found[:limit]]


def reveal(graph: Graph, name: str) -> frozenset[str]:
    """The scopes to expand so that ``name`` is drawn as itself: a node as its
    own ellipse, a scope as its box. ``KeyError`` when it is neither."""
    index = as_index(graph)
    if name in index.by_name:
        return frozenset(index.chain[index.owner[name]])
    if name in index.parent:
        return frozenset(index.chain[index.parent[name]])
    raise KeyError(f"the graph has no node or scope named {name!r}")
