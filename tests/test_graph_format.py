"""Graph node lists (docs/design.md): what validate_graph accepts and the errors it gives."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from trainboard.cli.demo import softmax_graph
from trainboard.errors import InvalidArgument
from trainboard.graph import find_cycle, validate_graph
from trainboard.types import GraphNode
from trainboard.validation import MAX_GRAPH_NODES


def _node(name: str, *inputs: str) -> GraphNode:
    return GraphNode(name=name, op="Op", inputs=tuple(inputs))


def _cycle_nodes(message: str) -> list[str]:
    """The quoted names of a cycle error message, after its colon."""
    return re.findall(r"'([^']*)'", message.split(":", 1)[1])


def test_the_demo_graph_is_valid() -> None:
    graph = softmax_graph()
    assert validate_graph(graph) == graph


def test_a_diamond_and_an_input_used_twice_are_not_cycles() -> None:
    nodes = [
        _node("x"),
        _node("left", "x"),
        _node("right", "x"),
        _node("join", "left", "right"),
        _node("square", "join", "join"),
    ]
    assert validate_graph(nodes) == nodes
    assert find_cycle(nodes) is None


def test_nodes_may_come_in_any_order() -> None:
    nodes = [_node("c", "b"), _node("b", "a"), _node("a")]
    assert validate_graph(nodes) == nodes


def test_a_node_that_is_its_own_input_is_a_cycle() -> None:
    with pytest.raises(InvalidArgument, match=r"cycle through node 'loop': 'loop' -> 'loop'"):
        validate_graph([_node("x"), _node("loop", "x", "loop")])


def test_a_cycle_error_names_the_nodes_on_the_cycle_in_data_flow_order() -> None:
    nodes = [
        _node("x"),
        _node("a", "x", "c"),
        _node("b", "a"),
        _node("c", "b"),
        _node("downstream", "c"),  # fed by the cycle, but not on it
    ]
    with pytest.raises(InvalidArgument, match="cycle") as error:
        validate_graph(nodes)
    names = _cycle_nodes(str(error.value))
    assert set(names) == {"a", "b", "c"}
    assert names[0] == names[-1]
    ring = names[:-1]
    by_name = {node.name: node for node in nodes}
    for here, there in zip(ring, [*ring[1:], ring[0]], strict=True):
        assert here in by_name[there].inputs  # each feeds the next


def test_a_cycle_is_found_in_dicts_too() -> None:
    with pytest.raises(InvalidArgument, match="cycle through node"):
        validate_graph(
            [
                {"name": "a", "op": "Add", "inputs": ["b"]},
                {"name": "b", "op": "Add", "inputs": ["a"]},
            ]
        )


def test_a_chain_of_the_most_nodes_allowed_is_checked_without_recursion() -> None:
    nodes = [_node("n0")] + [_node(f"n{i}", f"n{i - 1}") for i in range(1, MAX_GRAPH_NODES)]
    assert len(validate_graph(nodes)) == MAX_GRAPH_NODES


def test_a_cycle_through_the_most_nodes_allowed_is_found_and_described_briefly() -> None:
    count = MAX_GRAPH_NODES
    nodes = [_node("n0", f"n{count - 1}")] + [_node(f"n{i}", f"n{i - 1}") for i in range(1, count)]
    with pytest.raises(InvalidArgument, match="cycle through node") as error:
        validate_graph(nodes)
    message = str(error.value)
    assert len(message) < 300
    assert f"({count - 8} more)" in message
    cycle = find_cycle(nodes)
    assert cycle is not None
    assert len(cycle) == count


def test_duplicate_names_and_unknown_inputs_still_get_their_own_errors() -> None:
    with pytest.raises(InvalidArgument, match="'x' is used twice"):
        validate_graph([_node("x"), _node("x")])
    with pytest.raises(InvalidArgument, match="input 'nope', which is not a node"):
        validate_graph([_node("x", "nope")])


def test_the_torch_capture_module_imports_without_torch() -> None:
    code = (
        "import sys; sys.modules['torch'] = None; "
        "import trainboard.torch_graph as t; print(t.capture.__name__)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "capture"
