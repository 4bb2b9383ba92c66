"""Capturing the graph of a torch module (docs/design.md; extra [torch])."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

import torch
import torch.nn.functional as F
from torch import nn

from trainboard.errors import InvalidArgument
from trainboard.graph import validate_graph
from trainboard.torch_graph import capture
from trainboard.types import GraphNode


class Layer(nn.Module):
    def __init__(self, inputs: int, outputs: int) -> None:
        super().__init__()
        self.linear = nn.Linear(inputs, outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.linear(x))


class Encoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layer1 = Layer(4, 8)
        self.layer2 = Layer(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.layer2(self.layer1(x))
        return out


class MLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = Encoder()
        self.head = nn.Linear(8, 3, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(self.encoder(x))
        return out


class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, kernel_size=3, stride=1, padding=1)
        self.bn = nn.BatchNorm2d(4, eps=1e-3, momentum=0.2)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(4 * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(F.relu(self.bn(self.conv(x))))
        out: torch.Tensor = self.fc(torch.flatten(x, 1))
        return out


class Residual(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.linear = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.relu(self.linear(self.norm(x)))


class ResidualNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Linear(5, 6)
        self.blocks = nn.Sequential(Residual(6), Residual(6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.blocks(self.stem(x))
        return out


class Gate(nn.Module):
    """Branches on a tensor's value: symbolic tracing cannot follow that."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:
            return x
        return -x


def _by_name(nodes: list[GraphNode]) -> dict[str, GraphNode]:
    return {node.name: node for node in nodes}


def _assert_topological(nodes: list[GraphNode]) -> None:
    seen: set[str] = set()
    for node in nodes:
        assert set(node.inputs) <= seen, node.name
        seen.add(node.name)


def test_an_mlp_is_captured_with_module_scopes_shapes_and_parameters() -> None:
    nodes = capture(MLP(), torch.zeros(2, 4))
    assert validate_graph(nodes) == nodes
    _assert_topological(nodes)
    assert [(n.name, n.op) for n in nodes] == [
        ("x", "Input"),
        ("encoder/layer1/linear/weight", "Parameter"),
        ("encoder/layer1/linear/bias", "Parameter"),
        ("encoder/layer1/linear", "Linear"),
        ("encoder/layer1/relu", "relu"),
        ("encoder/layer2/linear/weight", "Parameter"),
        ("encoder/layer2/linear/bias", "Parameter"),
        ("encoder/layer2/linear", "Linear"),
        ("encoder/layer2/relu", "relu"),
        ("head/weight", "Parameter"),
        ("head", "Linear"),
        ("output", "Output"),
    ]
    graph = _by_name(nodes)
    linear = graph["encoder/layer1/linear"]
    assert linear.inputs == ("x", "encoder/layer1/linear/weight", "encoder/layer1/linear/bias")
    assert linear.shape == (2, 8)
    assert linear.dtype == "float32"
    assert linear.attributes["in_features"] == "4"
    assert linear.attributes["out_features"] == "8"
    assert linear.attributes["bias"] == "True"
    assert graph["head"].attributes["bias"] == "False"
    assert graph["encoder/layer1/linear/weight"].shape == (8, 4)
    assert graph["encoder/layer1/relu"].inputs == ("encoder/layer1/linear",)
    assert graph["x"].shape == (2, 4)
    assert graph["output"].inputs == ("head",)
    assert graph["output"].shape == (2, 3)


def test_a_cnn_with_batch_norm_keeps_its_key_attributes_and_buffers() -> None:
    nodes = capture(SmallCNN(), torch.zeros(3, 1, 8, 8))
    assert validate_graph(nodes) == nodes
    graph = _by_name(nodes)
    conv = graph["conv"]
    assert conv.op == "Conv2d"
    assert conv.shape == (3, 4, 8, 8)
    assert conv.attributes["kernel_size"] == "(3, 3)"
    assert conv.attributes["stride"] == "(1, 1)"
    assert conv.attributes["padding"] == "(1, 1)"
    assert conv.attributes["in_channels"] == "1"
    assert conv.attributes["out_channels"] == "4"
    bn = graph["bn"]
    assert bn.op == "BatchNorm2d"
    assert bn.attributes["eps"] == "0.001"
    assert bn.attributes["momentum"] == "0.2"
    assert bn.inputs == (
        "conv",
        "bn/weight",
        "bn/bias",
        "bn/running_mean",
        "bn/running_var",
        "bn/num_batches_tracked",
    )
    assert graph["bn/weight"].op == "Parameter"
    assert graph["bn/running_mean"].op == "Buffer"
    assert graph["bn/running_mean"].shape == (4,)
    assert graph["bn/num_batches_tracked"].dtype == "int64"
    assert graph["relu"].op == "relu"
    assert graph["pool"].op == "MaxPool2d"
    assert graph["pool"].shape == (3, 4, 4, 4)
    assert graph["flatten"].shape == (3, 64)
    assert graph["flatten"].attributes["arg1"] == "1"
    assert graph["fc"].shape == (3, 10)


def test_capturing_leaves_the_model_and_its_running_statistics_as_they_were() -> None:
    model = SmallCNN()
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    capture(model, torch.randn(3, 1, 8, 8))
    assert model.training
    assert all(m.training for m in model.modules())
    after = model.state_dict()
    for key, value in before.items():
        assert torch.equal(after[key], value), key
    model.eval()
    capture(model, torch.randn(3, 1, 8, 8))
    assert not any(m.training for m in model.modules())


def test_a_residual_connection_joins_the_block_input_inside_the_block_scope() -> None:
    nodes = capture(ResidualNet(), torch.zeros(2, 5))
    assert validate_graph(nodes) == nodes
    _assert_topological(nodes)
    graph = _by_name(nodes)
    assert graph["blocks/0/norm"].op == "LayerNorm"
    assert graph["blocks/0/norm"].attributes["normalized_shape"] == "(6,)"
    assert graph["blocks/0/norm"].attributes["eps"] == "1e-05"
    assert graph["blocks/0/relu"].inputs == ("blocks/0/linear",)
    assert graph["blocks/0/add"].op == "add"
    assert graph["blocks/0/add"].inputs == ("stem", "blocks/0/relu")
    assert graph["blocks/1/add"].inputs == ("blocks/0/add", "blocks/1/relu")
    assert graph["blocks/1/add"].shape == (2, 6)
    assert graph["output"].inputs == ("blocks/1/add",)
    assert sum(1 for n in nodes if n.op == "Parameter") == 2 + 2 * 4


def test_a_module_called_twice_gets_a_second_node_and_shares_its_parameters() -> None:
    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.shared = nn.Linear(3, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.relu(self.shared(torch.relu(self.shared(x))))

    nodes = capture(Twice(), torch.zeros(1, 3))
    assert validate_graph(nodes) == nodes
    graph = _by_name(nodes)
    assert graph["shared"].inputs == ("x", "shared/weight", "shared/bias")
    assert graph["shared_1"].inputs == ("relu", "shared/weight", "shared/bias")
    assert graph["relu_1"].inputs == ("shared_1",)
    assert sum(1 for n in nodes if n.op == "Parameter") == 2


def test_several_inputs_a_direct_parameter_and_a_tuple_output() -> None:
    class Pair(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scale = nn.Parameter(torch.ones(5))

        def forward(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            joined = torch.cat([a, b], dim=1) * self.scale
            return joined, joined.sum(dim=1)

    nodes = capture(Pair(), (torch.zeros(2, 2), torch.zeros(2, 3)))
    assert validate_graph(nodes) == nodes
    graph = _by_name(nodes)
    assert graph["a"].op == graph["b"].op == "Input"
    assert graph["cat"].inputs == ("a", "b")
    assert graph["cat"].attributes["dim"] == "1"
    assert graph["cat"].shape == (2, 5)
    assert graph["scale"].op == "Parameter"
    assert graph["mul"].inputs == ("cat", "scale")
    assert graph["sum"].shape == (2,)
    assert graph["output"].inputs == ("mul", "sum")
    assert graph["output"].attributes["output_shapes"] == "[[2, 5], [2]]"


def test_data_dependent_control_flow_is_refused_with_the_reason() -> None:
    with pytest.raises(InvalidArgument) as error:
        capture(Gate(), torch.ones(3))
    message = str(error.value)
    assert message.startswith("cannot capture the graph of Gate: ")
    assert "control flow" in message


def test_an_example_input_the_model_cannot_run_on_names_the_failing_module() -> None:
    with pytest.raises(InvalidArgument) as error:
        capture(SmallCNN(), torch.zeros(2, 5))
    message = str(error.value)
    assert message.startswith("cannot capture the graph of SmallCNN: ")
    assert "at conv" in message
    assert "RuntimeError" in message


def test_only_a_module_can_be_captured() -> None:
    with pytest.raises(TypeError, match=r"torch\.nn\.Module"):
        capture(lambda x: x, torch.zeros(1))  # type: ignore[arg-type]


def test_the_sdk_logs_a_torch_module_and_reads_back_its_scoped_graph(server_address: str) -> None:
    import trainboard

    with trainboard.Client("torch", "mlp", server=server_address) as client:
        assert client.log_graph(MLP(), torch.zeros(2, 4)) is True
        run_id = client.run_id
    graph = trainboard.Reader(server_address).graph(run_id)
    assert graph is not None
    assert [n.name for n in graph] == [n.name for n in capture(MLP(), torch.zeros(2, 4))]
    assert any(n.name.startswith("encoder/") and n.op == "Parameter" for n in graph)


def test_an_untraceable_model_warns_and_training_goes_on(server_address: str) -> None:
    import trainboard

    with trainboard.Client("torch", "gate", server=server_address) as client:
        with pytest.warns(RuntimeWarning, match="cannot capture the graph of Gate"):
            assert client.log_graph(Gate(), torch.ones(3)) is False
        client.log_scalar("loss", 1.0, step=0)
        run_id = client.run_id
    reader = trainboard.Reader(server_address)
    assert reader.graph(run_id) is None
    assert reader.scalars(run_id, "loss").total == 1


def test_a_model_without_an_example_input_is_told_it_needs_one(server_address: str) -> None:
    import trainboard

    with trainboard.Client("torch", "no-input", server=server_address) as client:
        with pytest.warns(RuntimeWarning, match=r"needs an example input.*log_graph\(model, "):
            assert client.log_graph(torch.nn.Linear(3, 2)) is False
        run_id = client.run_id
    assert trainboard.Reader(server_address).graph(run_id) is None
