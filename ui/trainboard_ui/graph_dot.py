"""The graph page's collapsed view as Graphviz DOT, read bottom-up (docs/design.md)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from trainboard_ui.graph_view import Cluster, Group, Item, View

AUXILIARY_CLUSTER = "cluster__auxiliary"


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
