"""Graph: a run's model graph, read bottom-up, scopes collapsed into boxes, the
gradient and optimizer machinery aside in an auxiliary group."""

from __future__ import annotations

from typing import Any

import streamlit as st

from trainboard.types import GraphNode
from trainboard_ui import graph_dot, graph_index, graph_search, graph_view, state
from trainboard_ui.views.base import View, ViewContext, no_runs_selected

_INDEX_KEY = "graph.index"  # (run id, node list, GraphIndex): indexed once per graph


def settings(selection: state.Selection) -> None:
    st.toggle(
        "Auxiliary parts in the main graph",
        help="Gradients, optimizer and very high-degree nodes are drawn aside; "
        "turn this on to draw them in the main graph (dashed).",
        **state.bound("graph_aux", reset={"graph_node": None}),
    )


def _index(run_id: int, nodes: list[GraphNode]) -> graph_index.GraphIndex:
    cached = st.session_state.get(_INDEX_KEY)
    if cached is None or cached[0] != run_id or cached[1] is not nodes:
        cached = (run_id, nodes, graph_index.index_graph(nodes))
        st.session_state[_INDEX_KEY] = cached
    index: graph_index.GraphIndex = cached[2]
    return index


def _scopes(index: graph_index.GraphIndex) -> list[str]:
    """Every scope that can be opened, parents first."""
    return [scope for scope in index.order if scope]


def draw(ctx: ViewContext) -> None:
    if no_runs_selected(ctx):
        return
    names = [r.name for r in ctx.selected]
    chosen = ctx.selection.graph_run if ctx.selection.graph_run in names else names[0]
    if len(names) > 1:
        st.selectbox(
            "Run",
            names,
            **state.bound(
                "graph_run",
                shown=lambda value: value if value in names else names[0],
                reset={"graph_open": (), "graph_node": None},
            ),
        )
    run = next(r for r in ctx.selected if r.name == chosen)
    nodes = ctx.data.graph(run.id)
    if nodes is None:
        st.info(
            f"Run **{run.name}** has no graph. Log one with `client.log_graph(nodes)` "
            "or `client.log_graph(model, example_input)` for a PyTorch model."
        )
        return
    index = _index(run.id, nodes)
    scopes = _scopes(index)
    opened = tuple(s for s in ctx.selection.graph_open if s in index.parent)

    find, pick = st.columns([2, 3])
    with find:
        query = st.text_input("Find a node", key="graph.search", placeholder="part of a name")
    found = graph_search.search(index, query) if query else []
    with pick:
        if query and not found:
            st.caption(f"No node or scope matches **{query}**.")
        elif found:
            st.selectbox(
                "Matches",
                found,
                index=None,
                placeholder=f"{len(found)} found: pick one to show it",
                key="graph.found",
                on_change=_show_found,
                args=(index, opened),
            )
    st.multiselect(
        "Open scopes",
        scopes,
        help="Each scope starts collapsed as one box with its node count.",
        **state.bound(
            "graph_open",
            shown=lambda value: [s for s in value if s in scopes],
            stored=tuple,
        ),
    )
    view = graph_view.collapsed_view(index, opened, ctx.selection.graph_aux)
    selected = ctx.selection.graph_node
    if selected is not None and selected not in index.by_name and selected not in index.parent:
        selected = None
    st.graphviz_chart(graph_dot.to_dot(view, selected=selected), width="stretch")
    _caption(view, len(nodes))

    drawn = [item.id for item in view.items]
    st.selectbox(
        "Node details",
        drawn,
        index=None,
        placeholder="pick a node or scope to see its op, shape, attributes, inputs, outputs",
        format_func=lambda item_id: _describe(view, item_id),
        **state.bound("graph_node", shown=lambda value: value if value in drawn else None),
    )
    if selected is not None:
        _details(graph_search.node_details(index, selected))


def _show_found(index: graph_index.GraphIndex, opened: tuple[str, ...]) -> None:
    """A search hit: open the scopes around it and select it."""
    name = st.session_state.get("graph.found")
    if not name:
        return
    around = graph_search.reveal(index, name)
    state.update(graph_open=tuple(dict.fromkeys((*opened, *sorted(around)))), graph_node=name)


def _describe(view: graph_view.View, item_id: str) -> str:
    item = view.item(item_id)
    if item.kind == "scope":
        return f"{item_id} (scope, {item.count} nodes)"
    return f"{item_id} ({item.op})" + (" · auxiliary" if item.auxiliary else "")


def _caption(view: graph_view.View, total: int) -> None:
    aside = view.group("auxiliary")
    text = f"{total} nodes; {len(view.items)} items drawn, inputs at the bottom."
    if aside:
        listed = ", ".join(f"**{item.id}**" for item in aside[:8])
        more = f" and {len(aside) - 8} more" if len(aside) > 8 else ""
        text += f" Auxiliary, drawn aside: {listed}{more}."
    elif view.show_auxiliary:
        text += " Auxiliary parts are drawn in the main graph (dashed)."
    st.caption(text)


def _details(details: dict[str, Any]) -> None:
    if details["kind"] == "scope":
        st.markdown(f"**{details['name']}**: a scope of {details['nodes']} nodes")
    else:
        shape = graph_dot.format_shape(details["shape"])
        st.markdown(
            f"**{details['name']}**: `{details['op']}`, shape `{shape}`"
            + (f", {details['dtype']}" if details["dtype"] else "")
        )
    inputs, outputs, attributes = st.columns(3)
    with inputs:
        st.markdown("**Inputs**")
        st.markdown("\n".join(f"- `{name}`" for name in details["inputs"]) or "none")
    with outputs:
        st.markdown("**Outputs**")
        st.markdown("\n".join(f"- `{name}`" for name in details["outputs"]) or "none")
    with attributes:
        st.markdown("**Attributes**")
        st.json(details["attributes"] or {}, expanded=True)


VIEW = View(slug="graph", title="Graph", draw=draw, settings=settings)
