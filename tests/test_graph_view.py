"""The graph page's logic: collapsing scopes, auxiliary parts, DOT, details, search."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from trainboard.cli.demo import softmax_graph
from trainboard.types import GraphNode
from trainboard_ui.graph_dot import AUXILIARY_CLUSTER, format_shape, to_dot
from trainboard_ui.graph_index import index_graph
from trainboard_ui.graph_search import node_details, reveal, search
from trainboard_ui.graph_view import View, collapsed_view, hub_threshold


def _n(name: str, *inputs: str, op: str = "Op") -> GraphNode:
    return GraphNode(name=name, op=op, inputs=tuple(inputs))


def _ids(view: View, group: str = "main") -> list[str]:
    return [item.id for item in view.items if item.group == group]


def _edges(view: View) -> dict[tuple[str, str], int]:
    return {(edge.source, edge.target): edge.count for edge in view.edges}


def _dot_statement(dot: str, item_id: str) -> str:
    """The line that declares node ``item_id`` in a DOT text."""
    match = re.search(rf'^\s*"{re.escape(item_id)}" \[(.*)\];$', dot, re.MULTILINE)
    assert match is not None, f"{item_id} is not declared"
    return match.group(1)


def _cluster_body(dot: str, cluster: str) -> str:
    """The text of ``subgraph "<cluster>" { ... }``, up to its closing brace."""
    start = dot.index(f'subgraph "{cluster}" {{')
    depth = 0
    for position in range(start, len(dot)):
        if dot[position] == "{":
            depth += 1
        elif dot[position] == "}":
            depth -= 1
            if depth == 0:
                return dot[start:position]
    raise AssertionError("unbalanced braces")


# Scopes ---------------------------------------------------------------------------


def test_every_scope_starts_collapsed_into_one_box_with_its_node_count() -> None:
    view = collapsed_view(softmax_graph())
    assert _ids(view) == ["x", "y_", "layer", "y", "accuracy", "cross_entropy"]
    assert _ids(view, "auxiliary") == ["gradients", "train"]
    layer = view.item("layer")
    assert (layer.kind, layer.count, layer.label, layer.parent) == ("scope", 5, "layer", "")
    assert view.item("gradients").count == 10
    assert view.item("x").kind == "node"
    assert view.item("x").op == "Placeholder"
    assert view.clusters == ()
    assert sum(item.count for item in view.items) == len(softmax_graph())


def test_expanding_a_scope_draws_its_nodes_inside_its_cluster() -> None:
    view = collapsed_view(softmax_graph(), {"layer"})
    inside = [item for item in view.items if item.parent == "layer"]
    assert [item.id for item in inside] == [
        "layer/W",
        "layer/b",
        "layer/matmul",
        "layer/add",
        "layer/softmax",
    ]
    assert [item.label for item in inside] == ["W", "b", "matmul", "add", "softmax"]
    assert all(item.kind == "node" and item.count == 1 for item in inside)
    assert [(c.id, c.label, c.parent, c.group) for c in view.clusters] == [
        ("layer", "layer", "", "main")
    ]
    assert "layer" not in {item.id for item in view.items}


def test_a_scope_expanded_inside_a_collapsed_one_stays_hidden_until_its_parent_opens() -> None:
    nodes = [_n("x"), _n("a/b/c", "x"), _n("a/b/d", "a/b/c"), _n("a/e", "a/b/d")]
    assert _ids(collapsed_view(nodes, {"a/b"})) == ["x", "a"]
    assert _ids(collapsed_view(nodes, {"a"})) == ["x", "a/b", "a/e"]
    view = collapsed_view(nodes, {"a", "a/b"})
    assert _ids(view) == ["x", "a/b/c", "a/b/d", "a/e"]
    assert view.item("a/b/c").label == "c"
    assert [(c.id, c.label, c.parent) for c in view.clusters] == [("a", "a", ""), ("a/b", "b", "a")]
    assert _ids(collapsed_view(nodes, {"a", "a/b", "not/a/scope", "x"})) == _ids(view)


def test_edges_are_aggregated_to_one_per_pair_of_drawn_items_with_a_count() -> None:
    nodes = [
        _n("x"),
        _n("w"),
        _n("s/a", "x", "w"),
        _n("s/b", "x", "s/a"),
        _n("s/c", "x", "s/b", "s/a"),
        _n("out", "s/c", "s/b"),
    ]
    view = collapsed_view(nodes)
    assert _edges(view) == {("x", "s"): 3, ("w", "s"): 1, ("s", "out"): 2}
    opened = collapsed_view(nodes, {"s"})
    assert _edges(opened)[("s/a", "s/c")] == 1
    assert sum(_edges(opened).values()) == sum(len(n.inputs) for n in nodes)


def test_a_module_node_lies_inside_the_box_of_its_own_parameters() -> None:
    nodes = [
        _n("x", op="Input"),
        _n("head/weight", op="Parameter"),
        _n("head/bias", op="Parameter"),
        _n("head", "x", "head/weight", "head/bias", op="Linear"),
        _n("output", "head", op="Output"),
    ]
    view = collapsed_view(nodes)
    assert _ids(view) == ["x", "head", "output"]
    assert view.item("head").kind == "scope"
    assert view.item("head").count == 3
    assert _edges(view) == {("x", "head"): 1, ("head", "output"): 1}
    opened = collapsed_view(nodes, {"head"})
    head = opened.item("head")
    assert (head.kind, head.op, head.parent, head.label) == ("node", "Linear", "head", "head")
    assert opened.item("head/weight").label == "weight"
    assert _edges(opened)[("head/weight", "head")] == 1


def test_a_graph_index_gives_the_same_view_as_the_node_list() -> None:
    graph = softmax_graph()
    index = index_graph(graph)
    for expanded in (set(), {"layer", "gradients"}):
        for show in (False, True):
            assert collapsed_view(index, expanded, show) == collapsed_view(graph, expanded, show)


def test_an_empty_graph_has_an_empty_view() -> None:
    view = collapsed_view([])
    assert (view.items, view.edges, view.clusters) == ((), (), ())
    assert to_dot(view).startswith("digraph trainboard {")


def test_a_node_list_with_unknown_inputs_or_repeated_names_is_refused() -> None:
    with pytest.raises(ValueError, match="used twice"):
        index_graph([_n("a"), _n("a")])
    with pytest.raises(ValueError, match="not a node"):
        index_graph([_n("a", "b")])


# Numbered scopes --------------------------------------------------------------------


def _stack(count: int) -> list[GraphNode]:
    nodes = [_n("x")]
    previous = "x"
    for i in range(count):
        nodes += [_n(f"blocks/{i}/fc", previous), _n(f"blocks/{i}/add", f"blocks/{i}/fc", previous)]
        previous = f"blocks/{i}/add"
    return [*nodes, _n("output", previous)]


def test_many_numbered_scopes_are_grouped_into_ranges_of_round_size() -> None:
    nodes = _stack(100)
    assert _ids(collapsed_view(nodes)) == ["x", "blocks", "output"]
    view = collapsed_view(nodes, {"blocks"})
    ranges = [item for item in view.items if item.parent == "blocks"]
    # 100 blocks, at most 30 boxes: ranges of 5, the first of 1, 2, 5, 10, ... that fits
    assert [item.label for item in ranges] == [f"[{i}-{i + 4}]" for i in range(0, 100, 5)]
    assert all(item.kind == "scope" and item.count == 10 for item in ranges)
    assert _edges(view)[("blocks/[0-4]", "blocks/[5-9]")] == 2
    opened = collapsed_view(nodes, {"blocks", "blocks/[10-14]"})
    inner = [item for item in opened.items if item.parent == "blocks/[10-14]"]
    assert [item.id for item in inner] == [f"blocks/{i}" for i in range(10, 15)]
    assert [item.label for item in inner] == [str(i) for i in range(10, 15)]
    cluster = {c.id: c for c in opened.clusters}["blocks/[10-14]"]
    assert (cluster.label, cluster.parent) == ("[10-14]", "blocks")


def test_numbered_scopes_up_to_the_limit_and_ranges_nest_when_needed() -> None:
    assert _ids(collapsed_view(_stack(30), {"blocks"})) == [
        "x",
        *(f"blocks/{i}" for i in range(30)),
        "output",
    ]
    odd = collapsed_view(_stack(101), {"blocks"})
    assert [item.id for item in odd.items if item.parent == "blocks"][-2:] == [
        "blocks/[95-99]",
        "blocks/100",  # not a range of one
    ]
    index = index_graph(_stack(1000), max_children=5)
    assert index.children["blocks"] == tuple(f"blocks/[{i}-{i + 199}]" for i in range(0, 1000, 200))
    assert index.children["blocks/[0-199]"][:2] == ("blocks/[0-49]", "blocks/[50-99]")
    assert index.chain["blocks/7"] == (
        "blocks",
        "blocks/[0-199]",
        "blocks/[0-49]",
        "blocks/[0-9]",
        "blocks/[6-7]",
        "blocks/7",
    )
    assert reveal(index, "blocks/7/fc") == frozenset(index.chain["blocks/7"])


# Auxiliary parts ------------------------------------------------------------------


def test_the_demo_moves_gradients_and_train_aside_and_hides_the_edges_to_them() -> None:
    view = collapsed_view(softmax_graph(), show_auxiliary=False)
    groups = {item.id: item.group for item in view.items}
    assert all(groups[e.source] == groups[e.target] for e in view.edges)
    assert _edges(view)[("gradients", "train")] == 2
    assert ("layer", "train") not in _edges(view)
    gradients = view.item("gradients")
    assert (gradients.auxiliary, gradients.reason) == (True, "scope")
    assert gradients.hidden_edges == 5  # x, y_, layer, y, cross_entropy feed it
    assert view.item("layer").hidden_edges == 2  # into gradients and train
    assert not any(item.auxiliary for item in view.items if item.group == "main")


def test_showing_auxiliary_puts_it_back_into_the_main_graph_and_hiding_it_again() -> None:
    graph = softmax_graph()
    hidden = collapsed_view(graph, show_auxiliary=False)
    shown = collapsed_view(graph, show_auxiliary=True)
    assert _ids(shown, "auxiliary") == []
    assert _ids(shown) == [
        "x",
        "y_",
        "layer",
        "y",
        "accuracy",
        "cross_entropy",
        "gradients",
        "train",
    ]
    assert shown.item("train").auxiliary
    assert all(item.hidden_edges == 0 for item in shown.items)
    edges = _edges(shown)
    assert edges[("layer", "train")] == 2  # W and b into their updates
    assert edges[("cross_entropy", "gradients")] == 2
    assert collapsed_view(graph, show_auxiliary=False) == hidden


def test_an_expanded_auxiliary_scope_is_a_cluster_in_the_auxiliary_group() -> None:
    view = collapsed_view(softmax_graph(), {"gradients"})
    clusters = {c.id: c for c in view.clusters}
    assert (clusters["gradients"].group, clusters["gradients"].parent) == ("auxiliary", "")
    item = view.item("gradients/layer")
    assert (item.group, item.parent, item.label, item.count) == (
        "auxiliary",
        "gradients",
        "layer",
        3,
    )


def test_an_auxiliary_scope_inside_a_collapsed_scope_is_still_moved_aside() -> None:
    nodes = [
        _n("x"),
        _n("model/linear", "x"),
        _n("model/loss", "model/linear"),
        _n("model/optimizer/step", "model/loss", "model/linear"),
    ]
    view = collapsed_view(nodes)
    assert view.item("model").count == 2
    moved = view.item("model/optimizer")
    assert (moved.group, moved.label, moved.count, moved.parent) == (
        "auxiliary",
        "model/optimizer",
        1,
        "",
    )
    assert view.item("model").hidden_edges == 1
    assert collapsed_view(nodes, show_auxiliary=True).item("model").count == 3


def test_auxiliary_scope_names_are_configurable_and_match_numbered_copies() -> None:
    nodes = [_n("x"), _n("gradients_1/a", "x"), _n("loss/b", "x")]
    assert _ids(collapsed_view(nodes), "auxiliary") == ["gradients_1"]
    custom = collapsed_view(nodes, auxiliary_scopes={"loss"})
    assert _ids(custom, "auxiliary") == ["loss"]
    assert _ids(custom) == ["x", "gradients_1"]


def _hub_graph(users: int) -> list[GraphNode]:
    """A chain of 60 ops and a learning rate that ``users`` of them read."""
    nodes = [_n("x"), _n("lr", op="Const")]
    previous = "x"
    for i in range(60):
        inputs = (previous, "lr") if i < users else (previous,)
        nodes.append(_n(f"op{i}", *inputs))
        previous = f"op{i}"
    return nodes


def test_a_node_of_outlying_degree_is_moved_aside_as_a_hub() -> None:
    view = collapsed_view(_hub_graph(30))
    lr = view.item("lr")
    assert (lr.group, lr.auxiliary, lr.reason, lr.parent) == ("auxiliary", True, "degree", "")
    assert lr.degree == 30
    assert lr.hidden_edges == 30
    assert view.hub_threshold == 10.0
    assert all(edge.source != "lr" for edge in view.edges)
    assert _ids(view, "auxiliary") == ["lr"]
    shown = collapsed_view(_hub_graph(30), show_auxiliary=True)
    assert shown.item("lr").group == "main"
    assert shown.item("lr").reason == "degree"
    assert sum(1 for edge in shown.edges if edge.source == "lr") == 30


def test_a_graph_without_outliers_keeps_every_node_in_the_main_graph() -> None:
    view = collapsed_view(_hub_graph(9))  # degree 9: not above the floor of 10
    assert _ids(view, "auxiliary") == []


def test_the_hub_threshold_is_a_far_out_fence_over_the_quartiles_with_a_floor() -> None:
    assert hub_threshold([2] * 50 + [40]) == 10.0  # no spread: the floor
    assert hub_threshold([]) == hub_threshold([7]) == 10.0
    spread = list(range(1, 101))  # Q1 = 25.75, Q3 = 75.25
    assert hub_threshold(spread) == pytest.approx(75.25 + 4 * 49.5)
    assert hub_threshold([1, 2, 3], min_degree=0, fence=1.0) == pytest.approx(2.5 + 1.0)


# DOT ------------------------------------------------------------------------------


def test_the_dot_reads_bottom_up_with_collapsed_scopes_as_boxes() -> None:
    dot = to_dot(collapsed_view(softmax_graph()))
    assert dot.startswith("digraph trainboard {")
    assert re.search(r"rankdir=BT", dot)
    assert dot.count("{") == dot.count("}")
    layer = _dot_statement(dot, "layer")
    assert 'shape="box"' in layer
    assert 'label="layer (5 nodes)"' in layer
    assert 'shape="ellipse"' in _dot_statement(dot, "x")
    assert 'label="x\\nPlaceholder\\n[?, 64]"' in _dot_statement(dot, "x")
    assert '"x" -> "layer";' in dot
    assert 'subgraph "cluster_layer"' not in dot
    auxiliary = _cluster_body(dot, AUXILIARY_CLUSTER)
    assert 'label="auxiliary"' in auxiliary
    assert '"gradients" [' in auxiliary
    assert '"train" [' in auxiliary
    assert '"layer" [' not in auxiliary
    assert re.search(r'"gradients" -> "train" \[label="2"', dot)


def test_the_dot_draws_expanded_scopes_as_labelled_nested_clusters() -> None:
    nodes = [_n("x"), _n("enc/l1/fc", "x", op="Linear"), _n("enc/l2/fc", "enc/l1/fc", op="Linear")]
    dot = to_dot(collapsed_view(nodes, {"enc", "enc/l1"}))
    enc = _cluster_body(dot, "cluster_enc")
    assert 'label="enc";' in enc
    l1 = _cluster_body(dot, "cluster_enc/l1")
    assert 'label="l1";' in l1
    assert l1 in enc  # nested
    assert 'label="fc\\nLinear"' in _dot_statement(l1, "enc/l1/fc")
    assert 'label="l2 (1 node)"' in _dot_statement(enc, "enc/l2")
    assert AUXILIARY_CLUSTER not in dot


def test_showing_auxiliary_draws_it_dashed_in_the_main_graph() -> None:
    dot = to_dot(collapsed_view(softmax_graph(), {"gradients"}, show_auxiliary=True))
    assert AUXILIARY_CLUSTER not in dot
    assert 'label="gradients";' in _cluster_body(dot, "cluster_gradients")
    assert "dashed" in _dot_statement(dot, "gradients/Fill")
    assert "dashed" not in _dot_statement(dot, "layer")
    assert '"layer" -> "train" [label="2"' in dot


def test_the_selected_item_is_highlighted_and_only_it() -> None:
    view = collapsed_view(softmax_graph(), {"layer"})
    dot = to_dot(view, selected="layer/matmul")
    assert 'fillcolor="#ffe08a"' in _dot_statement(dot, "layer/matmul")
    assert dot.count("#ffe08a") == 1
    assert "#ffe08a" not in to_dot(view)


def test_names_with_quotes_and_backslashes_are_escaped() -> None:
    nodes = [_n('we"ird'), _n("back\\slash", 'we"ird')]
    dot = to_dot(collapsed_view(nodes))
    assert '"we\\"ird" -> "back\\\\slash";' in dot


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_graphviz_accepts_the_dot() -> None:
    graph = softmax_graph()
    for expanded, show in [(set(), False), ({"layer", "gradients"}, False), ({"train"}, True)]:
        dot = to_dot(collapsed_view(graph, expanded, show), selected="layer")
        done = subprocess.run(
            ["dot", "-Tsvg"], input=dot, capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0, done.stderr
        assert not done.stderr


def test_shapes_are_written_with_unknown_dimensions_as_question_marks() -> None:
    assert format_shape((-1, 784)) == "[?, 784]"
    assert format_shape(()) == "scalar"
    assert format_shape(None) == ""


# Details, search, reveal -------------------------------------------------------------


def test_node_details_give_op_shape_attributes_inputs_and_outputs() -> None:
    details = node_details(softmax_graph(), "layer/matmul")
    assert details == {
        "kind": "node",
        "name": "layer/matmul",
        "op": "MatMul",
        "shape": [-1, 10],
        "dtype": "float32",
        "attributes": {"transpose_a": "false", "transpose_b": "false"},
        "inputs": ["x", "layer/W"],
        "outputs": ["layer/add"],
    }
    assert node_details(softmax_graph(), "y")["outputs"] == [
        "accuracy/ArgMax",
        "cross_entropy/Log",
        "gradients/cross_entropy/Log_grad",
    ]


def test_scope_details_list_what_crosses_its_border() -> None:
    details = node_details(softmax_graph(), "layer")
    assert details["kind"] == "scope"
    assert details["nodes"] == 5
    assert details["inputs"] == ["x"]
    assert details["outputs"] == [
        "y",
        "gradients/layer/softmax_grad",
        "train/update_layer/W",
        "train/update_layer/b",
    ]


def test_details_of_an_unknown_name_raise_key_error() -> None:
    with pytest.raises(KeyError, match="nope"):
        node_details(softmax_graph(), "nope")
    with pytest.raises(KeyError, match="nope"):
        reveal(softmax_graph(), "nope")


def test_search_is_case_insensitive_and_ranks_closer_matches_first() -> None:
    graph = softmax_graph()
    assert search(graph, "SOFTMAX") == ["layer/softmax", "gradients/layer/softmax_grad"]
    assert search(graph, "accuracy")[0] == "accuracy"  # the scope itself
    assert search(graph, "argmax") == ["accuracy/ArgMax", "accuracy/ArgMax_1"]
    assert search(graph, "ax_1") == ["accuracy/ArgMax_1"]
    assert search(graph, "mean", limit=1) == ["accuracy/Mean"]
    assert search(graph, "  ") == []
    assert search(graph, "no such node") == []


def test_reveal_expands_just_the_scopes_around_a_node() -> None:
    graph = softmax_graph()
    scopes = reveal(graph, "gradients/layer/softmax_grad")
    assert scopes == {"gradients", "gradients/layer"}
    view = collapsed_view(graph, scopes)
    assert view.item("gradients/layer/softmax_grad").kind == "node"
    assert reveal(graph, "x") == frozenset()
    assert reveal(graph, "gradients/layer") == {"gradients"}


# Scale ----------------------------------------------------------------------------


def test_a_two_thousand_node_model_stays_readable_at_the_top_level() -> None:
    pytest.importorskip("torch")
    import torch
    from torch import nn

    from trainboard.torch_graph import capture

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.norm = nn.LayerNorm(8)
            self.fc1 = nn.Linear(8, 8)
            self.fc2 = nn.Linear(8, 8)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = self.fc2(torch.relu(self.fc1(self.norm(x))))
            return x + out

    class Deep(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Linear(4, 8)
            self.blocks = nn.Sequential(*(Block() for _ in range(200)))
            self.head = nn.Linear(8, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = self.head(self.blocks(self.stem(x)))
            return out

    nodes = capture(Deep(), torch.zeros(2, 4))
    assert len(nodes) >= 2000
    index = index_graph(nodes)
    top = collapsed_view(index)
    assert _ids(top) == ["x", "stem", "blocks", "head", "output"]
    assert top.item("blocks").count == 200 * 11
    assert len(top.edges) == 4
    assert 'label="blocks (2200 nodes)"' in to_dot(top)
    opened = collapsed_view(index, {"blocks"})
    assert len(opened.items) <= 30
    assert len(opened.edges) <= 30
    everything = collapsed_view(index, set(index.order))
    assert len(everything.items) == len(nodes)
    assert _ids(everything, "auxiliary") == []
