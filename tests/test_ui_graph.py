"""The Graph page against a real server: the DOT that reaches the browser, scopes
collapsed and expanded, the auxiliary group, details, search, and a deep model."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import trainboard
from trainboard.cli.demo import softmax_graph

APP = str(Path(__file__).resolve().parents[1] / "ui" / "trainboard_ui" / "app.py")


@pytest.fixture(scope="module")
def graph_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from trainboard_server.server import make_server
    from trainboard_server.sql_store import SqlStore

    store = SqlStore.from_url(f"sqlite:///{tmp_path_factory.mktemp('graph') / 'g.db'}")
    handle = make_server(store, port=0)
    handle.start()
    with trainboard.Client("digits", "softmax", handle.address) as client:
        client.log_scalar("loss", 1.0, step=0)
        client.log_graph(softmax_graph())
    with trainboard.Client("digits", "no-graph", handle.address) as client:
        client.log_scalar("loss", 1.0, step=0)
    yield handle.address
    handle.stop(grace=None)
    store.close()


def open_graph(monkeypatch: pytest.MonkeyPatch, server: str, **query: str | list[str]) -> AppTest:
    monkeypatch.setenv("TRAINBOARD_SERVER", server)
    monkeypatch.setattr(sys, "argv", ["app.py"])
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["page"] = "graph"
    at.query_params["live"] = "0"
    for key, value in query.items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def dot(at: AppTest) -> str:
    (chart,) = at.get("graphviz_chart")
    spec: str = chart.proto.spec
    return spec


def text(at: AppTest) -> str:
    return "\n".join(str(e.value) for e in [*at.markdown, *at.caption, *at.info])


def test_the_graph_opens_bottom_up_with_scopes_collapsed_and_gradients_aside(
    monkeypatch: pytest.MonkeyPatch, graph_server: str
) -> None:
    at = open_graph(monkeypatch, graph_server, exp="digits", run="softmax")
    graph = dot(at)
    assert "rankdir=BT" in graph
    assert re.search(r'"layer \(\d+ nodes\)"', graph)  # the layer scope as one box
    assert '"cluster__auxiliary"' in graph
    aside = graph[graph.index('"cluster__auxiliary"') :]
    assert "gradients" in aside
    assert "train" in aside
    assert '"cluster_layer"' not in graph
    assert "Auxiliary, drawn aside" in text(at)


def test_opening_a_scope_draws_its_nodes_in_a_cluster_and_keeps_it_in_the_url(
    monkeypatch: pytest.MonkeyPatch, graph_server: str
) -> None:
    at = open_graph(monkeypatch, graph_server, exp="digits", run="softmax")
    at.multiselect(key="w_graph_open").set_value(["layer"]).run()
    graph = dot(at)
    assert '"cluster_layer"' in graph
    assert "MatMul" in graph
    assert "Softmax" in graph
    assert at.query_params["open"] == "layer"
    at.multiselect(key="w_graph_open").set_value([]).run()
    assert '"cluster_layer"' not in dot(at)


def test_the_auxiliary_toggle_brings_the_gradients_into_the_main_graph_and_back(
    monkeypatch: pytest.MonkeyPatch, graph_server: str
) -> None:
    at = open_graph(monkeypatch, graph_server, exp="digits", run="softmax")
    at.toggle(key="w_graph_aux").set_value(True).run()
    assert '"cluster__auxiliary"' not in dot(at)
    assert "style=dashed" in dot(at) or "dashed" in dot(at)
    assert at.query_params["aux"] == "1"
    at.toggle(key="w_graph_aux").set_value(False).run()
    assert '"cluster__auxiliary"' in dot(at)


def test_selecting_a_node_shows_its_op_inputs_and_outputs(
    monkeypatch: pytest.MonkeyPatch, graph_server: str
) -> None:
    at = open_graph(monkeypatch, graph_server, exp="digits", run="softmax", open="layer")
    at.selectbox(key="w_graph_node").set_value("layer/matmul").run()
    shown = text(at)
    assert "**layer/matmul**: `MatMul`" in shown
    assert "`x`" in shown
    assert "`layer/W`" in shown
    assert at.query_params["node"] == "layer/matmul"


def test_search_finds_a_node_opens_its_scope_and_selects_it(
    monkeypatch: pytest.MonkeyPatch, graph_server: str
) -> None:
    at = open_graph(monkeypatch, graph_server, exp="digits", run="softmax")
    at.text_input(key="graph.search").input("softmax").run()
    matches = at.selectbox(key="graph.found")
    assert "layer/softmax" in matches.options
    matches.set_value("layer/softmax").run()
    assert '"cluster_layer"' in dot(at)
    assert at.query_params["node"] == "layer/softmax"


def test_a_run_without_a_graph_says_so(monkeypatch: pytest.MonkeyPatch, graph_server: str) -> None:
    at = open_graph(monkeypatch, graph_server, exp="digits", run="no-graph")
    assert not at.get("graphviz_chart")
    assert "has no graph" in text(at)


def test_a_deep_torch_model_of_2000_nodes_opens_collapsed_and_readable(
    monkeypatch: pytest.MonkeyPatch, server_address: str
) -> None:
    torch = pytest.importorskip("torch")
    from torch import nn

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.norm = nn.LayerNorm(16)
            self.up = nn.Linear(16, 16)
            self.down = nn.Linear(16, 16)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = x + self.down(torch.relu(self.up(self.norm(x))))
            return out

    class Deep(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.blocks = nn.Sequential(*[Block() for _ in range(200)])
            self.head = nn.Linear(16, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = self.head(self.blocks(x))
            return out

    with trainboard.Client("deep", "r", server_address) as client:
        assert client.log_graph(Deep(), torch.zeros(2, 16))
        run_id = client.run_id
    graph = trainboard.Reader(server_address).graph(run_id)
    assert graph is not None
    assert len(graph) >= 2000
    at = open_graph(monkeypatch, server_address, exp="deep")
    drawn = dot(at)
    # The top level: a handful of boxes and nodes, a handful of edges.
    assert len(re.findall(r"->", drawn)) < 30
    assert re.search(r'"blocks \(\d{4} nodes\)"', drawn)
