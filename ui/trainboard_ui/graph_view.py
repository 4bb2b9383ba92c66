"""The graph page's logic, apart from Streamlit (docs/design.md): scopes collapsed into
boxes, auxiliary parts moved aside, Graphviz DOT drawn bottom-up, node details and
search.

The scope tree comes from node names: ``encoder/layer1/linear`` lies in scope
``encoder/layer1``, which lies in ``encoder``. A name that is also a prefix of other
names (a leaf module and its parameters: ``head`` and ``head/weight``) is a scope
that holds its own node. When a scope has more than ``max_children`` child scopes
with numbers for names (the blocks of a ``Sequential``), they are grouped into
*range scopes* such as ``blocks/[0-9]``, so that no level lists hundreds of boxes.

A *view* is what to draw for a set of expanded scopes: every node is drawn as
itself when all its scopes are expanded, otherwise as the box of its outermost
collapsed scope. Edges between drawn items are aggregated, one per ordered pair
with the number of node-level edges it stands for.

*Auxiliary* items are moved out of the main graph into a side group unless
``show_auxiliary``:

- scopes whose own name is one of ``auxiliary_scopes`` (``gradients``,
  ``optimizer``, ``train``, also with a ``_N`` suffix such as ``gradients_1``),
  with everything in them;
- *hub* nodes, whose degree is an outlier (see ``hub_threshold``).

Edges between the side group and the main graph are not drawn; each item counts
its hidden ones. With ``show_auxiliary`` everything is drawn in the main graph,
auxiliary items flagged (and drawn dashed).

All functions take the node list (``list[GraphNode]``, as ``Reader.graph``
returns it) or a ``GraphIndex`` built once from it with ``index_graph``, which
saves re-indexing on every Streamlit rerun.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from trainboard.types import GraphNode

DEFAULT_AUXILIARY_SCOPES: frozenset[str] = frozenset({"gradients", "optimizer", "train"})
MAX_CHILDREN = 30
HUB_MIN_DEGREE = 10
HUB_FENCE = 4.0
AUXILIARY_CLUSTER = "cluster__auxiliary"

Group = Literal["main", "auxiliary"]


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


@dataclass(frozen=True, slots=True)
class Item:
    """One thing drawn: a node, or the box of a collapsed scope.

    ``id`` is the node name or scope path; ``label`` the part of it below the
    enclosing cluster; ``count`` the nodes it stands for; ``parent`` the expanded
    scope drawn around it (``""`` at the top of its group); ``auxiliary`` whether
    it is auxiliary (``reason`` says why: ``"scope"`` or ``"degree"``), drawn in
    ``group``; ``op`` and ``shape`` are a node's (empty for a box); ``degree``
    counts the distinct items it has edges with, as the hub rule saw them (edges
    into auxiliary scopes left out; 0 for items in them); ``hidden_edges`` counts
    its aggregated edges to the other group, which are not drawn.
    """

    id: str
    kind: Literal["node", "scope"]
    label: str
    count: int
    parent: str
    group: Group
    auxiliary: bool = False
    reason: str = ""
    op: str = ""
    shape: tuple[int, ...] | None = None
    degree: int = 0
    hidden_edges: int = 0


@dataclass(frozen=True, slots=True)
class Edge:
    """``count`` node-level edges from item ``source`` (an input) into ``target``."""

    source: str
    target: str
    count: int


@dataclass(frozen=True, slots=True)
class Cluster:
    """An expanded scope drawn as a frame around its items; ``parent`` is the
    cluster it is drawn in (``""``: the top of ``group``)."""

    id: str
    label: str
    parent: str
    group: Group


@dataclass(frozen=True, slots=True)
class View:
    """What to draw: items in graph order, clusters outer before inner, and the
    aggregated edges between items of the same group (``show_auxiliary`` puts all
    in ``"main"``). ``hub_threshold`` is the degree above which a node item is a
    hub."""

    items: tuple[Item, ...]
    edges: tuple[Edge, ...]
    clusters: tuple[Cluster, ...]
    show_auxiliary: bool
    hub_threshold: float
    _by_id: Mapping[str, Item] = field(default_factory=dict, repr=False, compare=False)

    def item(self, item_id: str) -> Item:
        """The drawn item ``item_id``; ``KeyError`` when it is not drawn."""
        return self._by_id[item_id]

    def group(self, group: Group) -> list[Item]:
        """The items drawn in ``group``, in graph order."""
        return [item for item in self.items if item.group == group]


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


def _leaf(name: str) -> str:
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
        (kid for kid in kids if _leaf(kid).isascii() and _leaf(kid).isdigit()),
        key=lambda kid: int(_leaf(kid)),
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
            name = f"[{_leaf(chunk[0])}-{_leaf(chunk[-1])}]"
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


def _index(graph: Graph) -> GraphIndex:
    return graph if isinstance(graph, GraphIndex) else index_graph(graph)


def is_auxiliary_scope_name(name: str, auxiliary_scopes: Collection[str]) -> bool:
    """Whether a scope's own name (its last part) marks it auxiliary: one of
    ``auxiliary_scopes``, bare or with a ``_N`` suffix (``gradients_1``)."""
    base = re.sub(r"_\d+$", "", name)
    return name in auxiliary_scopes or base in auxiliary_scopes


def hub_threshold(
    degrees: Sequence[int], *, min_degree: int = HUB_MIN_DEGREE, fence: float = HUB_FENCE
) -> float:
    """The degree above which an item counts as a hub: an outlier of ``degrees``.

    Tukey's far-out fence ``Q3 + fence * (Q3 - Q1)`` over the quartiles of the
    degrees (quartiles rather than mean and standard deviation, because the hubs
    themselves would inflate a standard deviation and hide), but never below
    ``min_degree``, so that a small or regular graph loses nothing.
    """
    if len(degrees) < 2:
        return float(min_degree)
    q1, _, q3 = statistics.quantiles(degrees, n=4, method="inclusive")
    return max(float(min_degree), q3 + fence * (q3 - q1))


def collapsed_view(
    graph: Graph,
    expanded: Collection[str] = frozenset(),
    show_auxiliary: bool = False,
    *,
    auxiliary_scopes: Collection[str] = DEFAULT_AUXILIARY_SCOPES,
    hub_min_degree: int = HUB_MIN_DEGREE,
    hub_fence: float = HUB_FENCE,
) -> View:
    """What to draw with the scopes in ``expanded`` open and all others collapsed.

    Names in ``expanded`` that are not scopes, or that lie inside a collapsed
    scope, change nothing. An auxiliary scope (see the module docstring) is
    collapsed or expanded on its own, also inside a collapsed scope: its nodes
    are drawn in the auxiliary group (or, with ``show_auxiliary``, where they
    lie). Hubs: among the items of the main graph that are not in auxiliary
    scopes, a node item whose degree (distinct neighbouring items) exceeds
    ``hub_threshold(degrees, min_degree=hub_min_degree, fence=hub_fence)`` is
    auxiliary too. Runs in O(nodes + edges + scopes).
    """
    index = _index(graph)
    hide = not show_auxiliary
    open_scopes = frozenset(expanded)

    # For each scope: its auxiliary root (outermost auxiliary scope around it) and
    # the box its nodes are drawn in (None when it and its parents are open).
    aux_root: dict[str, str | None] = {"": None}
    box: dict[str, str | None] = {"": None}
    for scope in index.order:
        up = index.parent[scope]
        root = aux_root[up]
        if (
            root is None
            and scope not in index.ranges
            and is_auxiliary_scope_name(_leaf(scope), auxiliary_scopes)
        ):
            root = scope
        aux_root[scope] = root
        inherited = None if hide and root == scope else box[up]
        box[scope] = inherited or (None if scope in open_scopes else scope)

    def moved(scope: str) -> bool:
        """Whether ``scope`` starts a part of the auxiliary group."""
        return hide and aux_root[scope] == scope

    drawn: dict[str, str] = {}  # node name -> item id
    counts: dict[str, int] = {}
    parents: dict[str, str] = {}
    shown: dict[str, GraphNode] = {}  # item id -> node, for items that are nodes
    for node in index.nodes:
        scope = index.owner[node.name]
        boxed = box[scope]
        item_id = boxed or node.name
        drawn[node.name] = item_id
        if item_id not in counts:
            counts[item_id] = 0
            if boxed is None:
                shown[item_id] = node
                parents[item_id] = scope
            else:
                parents[item_id] = "" if moved(item_id) else index.parent[item_id]
        counts[item_id] += 1

    edge_counts: dict[tuple[str, str], int] = {}
    for node in index.nodes:
        target = drawn[node.name]
        for name in node.inputs:
            source = drawn[name]
            if source != target:
                edge_counts[source, target] = edge_counts.get((source, target), 0) + 1

    def in_aux_scope(item_id: str) -> bool:
        scope = index.owner[item_id] if item_id in shown else item_id
        return aux_root[scope] is not None

    # Hubs: degree outliers among the main graph's items outside auxiliary scopes.
    neighbours: dict[str, set[str]] = {item_id: set() for item_id in counts}
    for source, target in edge_counts:
        if not in_aux_scope(source) and not in_aux_scope(target):
            neighbours[source].add(target)
            neighbours[target].add(source)
    population = [item_id for item_id in counts if not in_aux_scope(item_id)]
    threshold = hub_threshold(
        [len(neighbours[item_id]) for item_id in population],
        min_degree=hub_min_degree,
        fence=hub_fence,
    )
    hubs = {
        item_id
        for item_id in population
        if item_id in shown and len(neighbours[item_id]) > threshold
    }

    def group_of(item_id: str) -> Group:
        if hide and (item_id in hubs or in_aux_scope(item_id)):
            return "auxiliary"
        return "main"

    groups = {item_id: group_of(item_id) for item_id in counts}
    if hide:
        for hub in hubs:
            parents[hub] = ""
    edges: list[Edge] = []
    hidden: dict[str, int] = dict.fromkeys(counts, 0)
    for (source, target), count in edge_counts.items():
        if groups[source] == groups[target]:
            edges.append(Edge(source, target, count))
        else:
            hidden[source] += 1
            hidden[target] += 1

    items = []
    for item_id, count in counts.items():
        as_node = shown.get(item_id)
        auxiliary = item_id in hubs or in_aux_scope(item_id)
        items.append(
            Item(
                id=item_id,
                kind="node" if as_node is not None else "scope",
                label=_relative(item_id, parents[item_id], index),
                count=count,
                parent=parents[item_id],
                group=groups[item_id],
                auxiliary=auxiliary,
                reason=("degree" if item_id in hubs else "scope") if auxiliary else "",
                op=as_node.op if as_node is not None else "",
                shape=as_node.shape if as_node is not None else None,
                degree=len(neighbours[item_id]),
                hidden_edges=hidden[item_id],
            )
        )

    clusters: dict[str, Cluster] = {}
    for item in items:
        scope = item.parent
        while scope and scope not in clusters:
            up = "" if moved(scope) else index.parent[scope]
            group: Group = "auxiliary" if hide and aux_root[scope] is not None else "main"
            clusters[scope] = Cluster(scope, _relative(scope, up, index), up, group)
            scope = up
    ordered = sorted(clusters.values(), key=lambda c: len(index.chain[c.id]))
    return View(
        items=tuple(items),
        edges=tuple(edges),
        clusters=tuple(ordered),
        show_auxiliary=show_auxiliary,
        hub_threshold=threshold,
        _by_id={item.id: item for item in items},
    )


def _relative(name: str, parent: str, index: GraphIndex) -> str:
    """``name`` below the cluster ``parent`` it is drawn in (range scopes skipped)."""
    while parent in index.ranges:
        parent = index.parent[parent]
    if not parent:
        return name
    if name == parent:  # a scope's own node, such as a leaf module beside its weights
        return _leaf(name)
    return name[len(parent) + 1 :] if name.startswith(parent + "/") else name


# DOT ----------------------------------------------------------------------------------


def to_dot(view: View, selected: str | None = None) -> str:
    """The view as Graphviz DOT, read bottom-up (``rankdir=BT``: inputs at the
    bottom, edges pointing up from an input to its user).

    Expanded scopes are clusters ``subgraph "cluster_<scope>"`` labelled with the
    scope, nested as the scopes are; collapsed scopes are boxes labelled
    ``"<scope> (N nodes)"``; nodes are ellipses labelled with their name, op and
    shape; the auxiliary group is the cluster ``"cluster__auxiliary"``. An edge
    standing for several node-level edges carries their count. ``selected`` (an
    item id) is highlighted. Deterministic: the same view gives the same text.
    """
    lines = [
        "digraph trainboard {",
        "  graph [rankdir=BT, newrank=true, compound=true, nodesep=0.25, ranksep=0.35, "
        'fontname="Helvetica", fontsize=11];',
        '  node [fontname="Helvetica", fontsize=10, margin="0.08,0.04"];',
        '  edge [color="#666666", arrowsize=0.6, fontname="Helvetica", fontsize=9];',
    ]
    items_in: dict[tuple[Group, str], list[Item]] = {}
    for item in view.items:
        items_in.setdefault((item.group, item.parent), []).append(item)
    clusters_in: dict[tuple[Group, str], list[Cluster]] = {}
    for cluster in view.clusters:
        clusters_in.setdefault((cluster.group, cluster.parent), []).append(cluster)

    def emit(group: Group, scope: str, indent: str) -> None:
        for cluster in clusters_in.get((group, scope), []):
            lines.append(f"{indent}subgraph {_quote('cluster_' + cluster.id)} {{")
            lines.append(
                f'{indent}  label={_quote(cluster.label)}; style=rounded; color="#9aa5b1";'
                f" tooltip={_quote(cluster.id)};"
            )
            emit(group, cluster.id, indent + "  ")
            lines.append(f"{indent}}}")
        for item in items_in.get((group, scope), []):
            lines.append(f"{indent}{_node_statement(item, item.id == selected)}")

    emit("main", "", "  ")
    if any(item.group == "auxiliary" for item in view.items):
        lines.append(f"  subgraph {_quote(AUXILIARY_CLUSTER)} {{")
        lines.append('    label="auxiliary"; style="dashed,rounded"; color="#b0b0b0";')
        emit("auxiliary", "", "    ")
        lines.append("  }")
    for edge in view.edges:
        attributes = []
        if edge.count > 1:
            width = min(1.0 + math.log2(edge.count) / 2, 4.0)
            attributes += [f"label={_quote(str(edge.count))}", f"penwidth={width:.2f}"]
        if view.item(edge.source).group == "auxiliary":
            attributes.append("style=dashed")
        suffix = f" [{', '.join(attributes)}]" if attributes else ""
        lines.append(f"  {_quote(edge.source)} -> {_quote(edge.target)}{suffix};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _node_statement(item: Item, selected: bool) -> str:
    if item.kind == "scope":
        noun = "node" if item.count == 1 else "nodes"
        label = f"{item.label} ({item.count} {noun})"
        attributes = {"shape": "box", "fillcolor": "#dde7f3"}
        styles = ["rounded", "filled"]
    else:
        label = "\n".join(part for part in (item.label, item.op, format_shape(item.shape)) if part)
        attributes = {"shape": "ellipse", "fillcolor": "#ffffff"}
        styles = ["filled"]
    tooltip = item.id
    if item.auxiliary:
        styles.append("dashed")
        attributes["fillcolor"] = "#f2f2f2"
    if item.hidden_edges:
        noun = "edge" if item.hidden_edges == 1 else "edges"
        if item.group == "auxiliary":
            label += f"\n+{item.hidden_edges} hidden {noun}"
        tooltip += f" ({item.hidden_edges} {noun} to the other group hidden)"
    if selected:
        attributes["fillcolor"] = "#ffe08a"
        attributes["penwidth"] = "2.5"
        attributes["color"] = "#c0392b"
    attributes["style"] = ",".join(styles)
    attributes["label"] = label
    attributes["tooltip"] = tooltip
    body = ", ".join(f"{key}={_quote(value)}" for key, value in attributes.items())
    return f"{_quote(item.id)} [{body}];"


def _quote(text: str) -> str:
    """A DOT double-quoted string; newlines become DOT's ``\\n`` line breaks."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def format_shape(shape: Sequence[int] | None) -> str:
    """``[?, 784]`` (``-1``, an unknown dimension, as ``?``), ``scalar`` for
    ``()``, ``""`` when the shape is unknown."""
    if shape is None:
        return ""
    if not shape:
        return "scalar"
    return "[" + ", ".join("?" if dim == -1 else str(dim) for dim in shape) + "]"


# Details, search, reveal ---------------------------------------------------------------


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
    index = _index(graph)
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
    index = _index(graph)
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
    index = _index(graph)
    if name in index.by_name:
        return frozenset(index.chain[index.owner[name]])
    if name in index.parent:
        return frozenset(index.chain[index.parent[name]])
    raise KeyError(f"the graph has no node or scope named {name!r}")
