"""The graph page's collapsed view (docs/design.md): scopes collapsed into boxes and
auxiliary parts moved aside.

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
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from trainboard.types import GraphNode
from trainboard_ui.graph_index import Graph, GraphIndex, as_index, leaf

DEFAULT_AUXILIARY_SCOPES: frozenset[str] = frozenset({"gradients", "optimizer", "train"})
HUB_MIN_DEGREE = 10
HUB_FENCE = 4.0

Group = Literal["main", "auxiliary"]


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
    index = as_index(graph)
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
            and is_auxiliary_scope_name(leaf(scope), auxiliary_scopes)
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
        return leaf(name)
    return name[len(parent) + 1 :] if name.startswith(parent + "/") else name
