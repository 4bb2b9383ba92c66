"""Bad input gets a clear error at the SDK call site, and nothing is sent."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import trainboard
from trainboard.validation import MAX_STEP


@pytest.fixture
def client(server_address: str) -> Iterator[trainboard.Client]:
    with trainboard.Client("validation", "r", server=server_address) as client:
        yield client
    reader = trainboard.Reader(server_address)
    # Every test below logs only bad input: nothing may have been stored.
    assert reader.tags(client.run_id) == []


@pytest.mark.parametrize(
    ("tag", "error", "message"),
    [
        (None, TypeError, "tag must be a str"),
        (3, TypeError, "tag must be a str"),
        ("", ValueError, "tag must not be empty"),
        ("x" * 257, ValueError, "at most 256"),
        ("bad\ntag", ValueError, "control character"),
        ("bad\x00tag", ValueError, "control character"),
        ("bad\x7ftag", ValueError, "control character"),
    ],
)
def test_bad_tags_are_rejected(
    client: trainboard.Client, tag: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        client.log_scalar(tag, 1.0, step=0)
    with pytest.raises(error, match=message):
        client.log_scalars({tag: 1.0}, step=0)
    with pytest.raises(error, match=message):
        client.log_histogram(tag, np.ones(3), step=0)


@pytest.mark.parametrize(
    ("value", "message"),
    [("1.0", "str"), (None, "NoneType"), (True, "bool"), ([1.0], "list"), (np.ones(3), "ndarray")],
)
def test_non_numeric_values_are_rejected(
    client: trainboard.Client, value: Any, message: str
) -> None:
    with pytest.raises(TypeError, match=f"value must be a real number, got {message}"):
        client.log_scalar("loss", value, step=0)
    with pytest.raises(TypeError, match=r"values\['loss'\]"):
        client.log_scalars({"loss": value}, step=0)


@pytest.mark.parametrize(
    ("step", "error", "message"),
    [
        (1.5, TypeError, "step must be an int"),
        (math.nan, ValueError, "got NaN"),
        (-1, ValueError, "step must be >= 0"),
        (MAX_STEP + 1, ValueError, "step must be <="),
        (True, TypeError, "step must be an int"),
        ("3", TypeError, "step must be an int"),
    ],
)
def test_bad_steps_are_rejected(
    client: trainboard.Client, step: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        client.log_scalar("loss", 1.0, step=step)
    with pytest.raises(error, match=message):
        client.log_scalars({"loss": 1.0}, step=step)
    with pytest.raises(error, match=message):
        client.log_histogram("w", np.ones(3), step=step)


def test_bad_wall_times_are_rejected(client: trainboard.Client) -> None:
    with pytest.raises(ValueError, match="wall_time must be a finite number"):
        client.log_scalar("loss", 1.0, step=0, wall_time=math.nan)
    with pytest.raises(ValueError, match="wall_time"):
        client.log_scalars({"loss": 1.0}, step=0, wall_time=-1.0)
    with pytest.raises(TypeError, match="wall_time"):
        client.log_histogram("w", np.ones(2), step=0, wall_time="now")


def test_log_scalars_needs_a_non_empty_dict(client: trainboard.Client) -> None:
    with pytest.raises(TypeError, match="values must be a dict"):
        client.log_scalars([("loss", 1.0)], step=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="must not be empty"):
        client.log_scalars({}, step=0)


@pytest.mark.parametrize(
    ("values", "error", "message"),
    [
        (np.array([]), ValueError, "at least one element"),
        (np.zeros((3, 0)), ValueError, "at least one element"),
        (np.array(["a", "b"]), TypeError, "integers or floats, got dtype <U1"),
        (np.array([1 + 2j]), TypeError, "integers or floats, got dtype complex128"),
        ("not a tensor", TypeError, "numeric array or tensor, got str"),
        (None, TypeError, "numeric array or tensor, got NoneType"),
    ],
)
def test_bad_histogram_inputs_are_rejected(
    client: trainboard.Client, values: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        client.log_histogram("w", values, step=0)


@pytest.mark.parametrize(
    ("buckets", "error"), [(0, ValueError), (513, ValueError), (2.5, TypeError), (True, TypeError)]
)
def test_bucket_counts_outside_1_to_512_are_rejected(
    client: trainboard.Client, buckets: Any, error: type[Exception]
) -> None:
    with pytest.raises(error, match="buckets"):
        client.log_histogram("w", np.ones(4), step=0, buckets=buckets)


def test_bad_graphs_are_rejected(client: trainboard.Client) -> None:
    node = trainboard.GraphNode
    with pytest.raises(ValueError, match="used twice"):
        client.log_graph([node("a", "Op"), node("a", "Op")])
    with pytest.raises(ValueError, match="op must be a non-empty str"):
        client.log_graph([node("a", "")])
    with pytest.raises(ValueError, match="shape"):
        client.log_graph([node("a", "Op", shape=(-2,))])
    with pytest.raises(TypeError, match="graph node 0 must be a GraphNode"):
        client.log_graph([42])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="graph must be a list"):
        client.log_graph("a")
    with pytest.raises(ValueError, match="unknown keys"):
        client.log_graph([{"name": "a", "op": "Op", "colour": "red"}])


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"experiment": ""}, ValueError, "experiment must not be empty"),
        ({"experiment": 5}, TypeError, "experiment must be a str"),
        ({"run": "a\tb"}, ValueError, "run .* control character"),
        ({"params": [1, 2]}, TypeError, "params must be a dict"),
        ({"params": {1: 2}}, TypeError, "params keys must be str"),
        ({"params": {"f": object()}}, TypeError, "JSON-serialisable"),
        ({"server": "nocolon"}, ValueError, "host:port"),
    ],
)
def test_bad_client_arguments_are_rejected(
    server_address: str, kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    arguments: dict[str, Any] = {"experiment": "e", "run": "r", "server": server_address}
    arguments.update(kwargs)
    with pytest.raises(error, match=message):
        trainboard.Client(**arguments)


def test_numpy_and_python_numbers_are_accepted(server_address: str) -> None:
    with trainboard.Client("validation", "ok", server=server_address) as client:
        client.log_scalar("a", np.float32(0.5), step=np.int64(1))
        client.log_scalar("a", 3, step=2)
        client.log_scalar("a", np.array(4.0), step=3)
        run_id = client.run_id
    series = trainboard.Reader(server_address).scalars(run_id, "a")
    assert series.steps.tolist() == [1, 2, 3]
    assert series.values.tolist() == [0.5, 3.0, 4.0]
