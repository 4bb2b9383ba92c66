"""The server re-validates every field of every RPC: INVALID_ARGUMENT naming the
field, NOT_FOUND for unknown runs, and nothing stored from a rejected batch."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from trainboard.v1 import trainboard_pb2 as pb
from trainboard.v1 import trainboard_pb2_grpc as pb_grpc


class Stubs:
    def __init__(self, address: str) -> None:
        self.channel = grpc.insecure_channel(address)
        self.write = pb_grpc.WriteServiceStub(self.channel)
        self.read = pb_grpc.ReadServiceStub(self.channel)


@pytest.fixture
def stubs(server_address: str) -> Iterator[Stubs]:
    stubs = Stubs(server_address)
    yield stubs
    stubs.channel.close()


@pytest.fixture
def run_id(stubs: Stubs) -> int:
    response = stubs.write.StartRun(pb.StartRunRequest(experiment="e", run="r", wall_time=1.0))
    return int(response.run.id)


def _fails(call: Any, request: Any, code: grpc.StatusCode, field: str) -> None:
    with pytest.raises(grpc.RpcError) as info:
        call(request, timeout=10)
    assert info.value.code() == code, info.value.details()
    assert field in info.value.details()


def _columns(
    tag: str = "loss",
    n: int = 3,
    steps: Any = None,
    wall_times: Any = None,
    values: Any = None,
) -> pb.ScalarColumns:
    return pb.ScalarColumns(
        tag=tag,
        steps=np.asarray(np.arange(n) if steps is None else steps, dtype="<i8").tobytes(),
        wall_times=np.asarray([1.0] * n if wall_times is None else wall_times, "<f8").tobytes(),
        values=np.asarray(np.arange(n) if values is None else values, dtype="<f8").tobytes(),
    )


def _rows(
    tags: tuple[str, ...] = ("loss", "acc"),
    n: int = 3,
    steps: Any = None,
    wall_times: Any = None,
    values: Any = None,
) -> pb.ScalarRows:
    return pb.ScalarRows(
        tags=tags,
        steps=np.asarray(np.arange(n) if steps is None else steps, dtype="<i8").tobytes(),
        wall_times=np.asarray([1.0] * n if wall_times is None else wall_times, "<f8").tobytes(),
        values=np.asarray(
            np.arange(n * len(tags)) if values is None else values, dtype="<f8"
        ).tobytes(),
    )


def _summary(**changes: Any) -> pb.HistogramSummary:
    fields: dict[str, Any] = {
        "count": 4,
        "min": 0.0,
        "max": 1.0,
        "sum": 2.0,
        "sum_squares": 1.5,
        "bucket_counts": [2, 2],
    }
    fields.update(changes)
    return pb.HistogramSummary(**fields)


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"experiment": "", "run": "r"}, "experiment"),
        ({"experiment": "e", "run": ""}, "run"),
        ({"experiment": "e", "run": "x" * 300}, "run"),
        ({"experiment": "e\n", "run": "r"}, "experiment"),
        ({"experiment": "e", "run": "r", "params_json": "{"}, "params_json"),
        ({"experiment": "e", "run": "r", "params_json": "[1]"}, "params_json"),
        ({"experiment": "e", "run": "r", "wall_time": math.nan}, "wall_time"),
        ({"experiment": "e", "run": "r", "wall_time": -5.0}, "wall_time"),
    ],
)
def test_start_run_validates_every_field(
    stubs: Stubs, request_fields: dict[str, Any], field: str
) -> None:
    request_fields.setdefault("wall_time", 1.0)
    _fails(
        stubs.write.StartRun,
        pb.StartRunRequest(**request_fields),
        grpc.StatusCode.INVALID_ARGUMENT,
        field,
    )


def _bad_batches(run_id: int) -> list[tuple[pb.WriteBatchRequest, str]]:
    def batch(**fields: Any) -> pb.WriteBatchRequest:
        base: dict[str, Any] = {"client_id": "c", "sequence": 1, "run_id": run_id}
        base.update(fields)
        return pb.WriteBatchRequest(**base)

    mismatched = _columns(values=[1.0, 2.0, 3.0, 9.0])
    negative = _columns(steps=[0, -4, 2])
    huge = _columns(steps=[0, 1, 2**60])
    bad_time = _columns(wall_times=[math.inf, 1.0, 1.0])
    ragged = _columns()
    ragged.values = b"1234567"
    ragged_rows = _rows()
    ragged_rows.steps = b"12345678901"

    def hist(summary: pb.HistogramSummary, step: int = 0) -> list[pb.HistogramColumns]:
        point = pb.HistogramPoint(step=step, wall_time=1.0, summary=summary)
        return [pb.HistogramColumns(tag="w", points=[point])]

    return [
        (batch(client_id=""), "client_id"),
        (batch(client_id="c\x01"), "client_id"),
        (batch(sequence=0, scalars=[_columns()]), "sequence"),
        (batch(run_id=0, scalars=[_columns()]), "run_id"),
        (batch(), "neither scalars nor histograms"),
        (batch(scalars=[_columns(tag="")]), "scalars[0].tag"),
        (batch(scalars=[_columns(), _columns(tag="a\nb")]), "scalars[1].tag"),
        (batch(scalars=[mismatched]), "equal lengths"),
        (batch(scalars=[ragged]), "scalars[0].values must hold 8-byte"),
        (batch(scalars=[_columns(n=0)]), "scalars[0] has no points"),
        (batch(scalars=[_columns(), negative]), "scalars[1].steps[1]"),
        (batch(scalars=[huge]), "scalars[0].steps[2]"),
        (batch(scalars=[bad_time]), "scalars[0].wall_times[0]"),
        (batch(rows=[_rows(tags=())]), "rows[0].tags must not be empty"),
        (batch(rows=[_rows(), _rows(tags=("a", "b\x00"))]), "rows[1].tags[1]"),
        (batch(rows=[_rows(tags=("a", "b", "a"))]), "rows[0].tags[2]: 'a' is given twice"),
        (batch(rows=[_rows(values=[1.0] * 5)]), "rows[0]: 3 steps need 3 wall_times and 3 x 2"),
        (batch(rows=[_rows(wall_times=[1.0])]), "rows[0]: 3 steps need 3 wall_times"),
        (batch(rows=[ragged_rows]), "rows[0].steps must hold 8-byte"),
        (batch(rows=[_rows(n=0)]), "rows[0] has no points"),
        (batch(rows=[_rows(steps=[0, -1, 2])]), "rows[0].steps[1]"),
        (batch(rows=[_rows(wall_times=[-1.0, 1.0, 1.0])]), "rows[0].wall_times[0]"),
        (batch(rows=[_rows()], scalars=[negative]), "scalars[0].steps[1]"),
        (batch(histograms=hist(_summary(bucket_counts=[1] * 513, count=513))), "bucket_counts"),
        (batch(histograms=hist(_summary(bucket_counts=[1, 2]))), "bucket_counts sum"),
        (batch(histograms=hist(_summary(count=0, bucket_counts=[]))), "count"),
        (batch(histograms=hist(_summary(min=2.0))), "min is above"),
        (batch(histograms=hist(_summary(max=math.inf))), "min and max must be finite"),
        (batch(histograms=hist(_summary(nan_count=9))), "exceed count"),
        (batch(histograms=hist(_summary(bucket_edges=[0.0, 1.0]))), "edges has 2 edges"),
        (batch(histograms=hist(_summary(bucket_edges=[0.0, 0.7, 0.5]))), "strictly increasing"),
        (batch(histograms=hist(_summary(bucket_edges=[0.1, 0.5, 1.0]))), "from min to max"),
        (
            batch(histograms=hist(_summary(bucket_edges=[0.0, math.nan, 1.0]))),
            "edges must be finite",
        ),
        (batch(histograms=hist(_summary(basis_values=[0.0, 1.0]))), "one per basis point"),
        (
            batch(histograms=hist(_summary(basis_values=[0.0, 0.5, 0.4] + [1.0] * 6))),
            "basis_values must not decrease",
        ),
        (
            batch(histograms=hist(_summary(basis_values=[0.0] * 8 + [0.9]))),
            "basis_values must run from min to max",
        ),
        (batch(histograms=hist(_summary(), step=-1)), "histograms[0].points[0].step"),
        (batch(histograms=[pb.HistogramColumns(tag="w")]), "histograms[0] has no points"),
    ]


def test_write_batch_validates_every_field_and_stores_nothing(stubs: Stubs, run_id: int) -> None:
    for request, field in _bad_batches(run_id):
        _fails(stubs.write.WriteBatch, request, grpc.StatusCode.INVALID_ARGUMENT, field)
    tags = stubs.read.ListTags(pb.ListTagsRequest(run_id=run_id))
    assert list(tags.tags) == []
    # The refused batches used sequence 1; a good batch with it is still stored.
    ok = stubs.write.WriteBatch(
        pb.WriteBatchRequest(client_id="c", sequence=1, run_id=run_id, scalars=[_columns()])
    )
    assert (ok.scalar_points, ok.duplicate) == (3, False)


def test_start_run_says_the_server_takes_rows(stubs: Stubs) -> None:
    response = stubs.write.StartRun(pb.StartRunRequest(experiment="e", run="rows", wall_time=1.0))
    assert response.accepts_rows


def test_rows_are_stored_as_each_tags_columns_before_the_batchs_columns(
    stubs: Stubs, run_id: int
) -> None:
    # Two tags at steps 0..3; "loss" also comes as columns at steps 2..4, which win.
    rows = _rows(
        tags=("loss", "acc"),
        n=4,
        steps=[0, 1, 2, 3],
        wall_times=[10.0, 11.0, 12.0, 13.0],
        values=[0.0, 0.5, 1.0, 1.5, 2.0, 2.5, math.nan, math.inf],
    )
    columns = _columns(tag="loss", n=3, steps=[2, 3, 4], values=[-2.0, -3.0, -4.0])
    response = stubs.write.WriteBatch(
        pb.WriteBatchRequest(
            client_id="c", sequence=1, run_id=run_id, rows=[rows], scalars=[columns]
        )
    )
    assert response.scalar_points == 11
    read = stubs.read.ReadScalars(pb.ReadScalarsRequest(run_ids=[run_id], tags=["loss", "acc"]))
    by_tag = {s.columns.tag: s.columns for s in read.series}
    loss, acc = by_tag["loss"], by_tag["acc"]
    assert np.frombuffer(loss.steps, "<i8").tolist() == [0, 1, 2, 3, 4]
    assert np.frombuffer(loss.values, "<f8").tolist() == [0.0, 1.0, -2.0, -3.0, -4.0]
    assert np.frombuffer(acc.steps, "<i8").tolist() == [0, 1, 2, 3]
    acc_values = np.frombuffer(acc.values, "<f8")
    assert acc_values[:3].tolist() == [0.5, 1.5, 2.5]
    assert acc_values[3] == math.inf
    assert np.frombuffer(acc.wall_times, "<f8").tolist() == [10.0, 11.0, 12.0, 13.0]


def test_a_batch_for_an_unknown_run_is_not_found(stubs: Stubs) -> None:
    request = pb.WriteBatchRequest(client_id="c", sequence=1, run_id=999, scalars=[_columns()])
    _fails(stubs.write.WriteBatch, request, grpc.StatusCode.NOT_FOUND, "999")


def test_a_batch_sent_twice_is_stored_once(stubs: Stubs, run_id: int) -> None:
    request = pb.WriteBatchRequest(
        client_id="client-1", sequence=7, run_id=run_id, scalars=[_columns(n=5)]
    )
    first = stubs.write.WriteBatch(request)
    second = stubs.write.WriteBatch(request)
    assert (first.duplicate, second.duplicate) == (False, True)
    # An older sequence from the same client is a replay too.
    older = pb.WriteBatchRequest(
        client_id="client-1", sequence=3, run_id=run_id, scalars=[_columns(tag="other")]
    )
    assert stubs.write.WriteBatch(older).duplicate
    response = stubs.read.ReadScalars(pb.ReadScalarsRequest(run_ids=[run_id], tags=["loss"]))
    assert response.series[0].total == 5
    tags = stubs.read.ListTags(pb.ListTagsRequest(run_id=run_id))
    assert [t.name for t in tags.tags] == ["loss"]


def test_finish_run_and_set_graph_validate(stubs: Stubs, run_id: int) -> None:
    _fails(
        stubs.write.FinishRun,
        pb.FinishRunRequest(run_id=run_id, status="exploded", wall_time=2.0),
        grpc.StatusCode.INVALID_ARGUMENT,
        "status",
    )
    _fails(
        stubs.write.FinishRun,
        pb.FinishRunRequest(run_id=12345, status="finished", wall_time=2.0),
        grpc.StatusCode.NOT_FOUND,
        "12345",
    )
    graph = pb.Graph(nodes=[pb.GraphNode(name="a", op="Op", inputs=["ghost"])])
    _fails(
        stubs.write.SetGraph,
        pb.SetGraphRequest(run_id=run_id, graph=graph),
        grpc.StatusCode.INVALID_ARGUMENT,
        "ghost",
    )
    twice = pb.Graph(nodes=[pb.GraphNode(name="a", op="Op"), pb.GraphNode(name="a", op="Op")])
    _fails(
        stubs.write.SetGraph,
        pb.SetGraphRequest(run_id=run_id, graph=twice),
        grpc.StatusCode.INVALID_ARGUMENT,
        "used twice",
    )
    assert not stubs.read.GetGraph(pb.GetGraphRequest(run_id=run_id)).has_graph


@pytest.mark.parametrize(
    ("rpc", "build", "code", "field"),
    [
        ("DeleteRun", lambda own: pb.DeleteRunRequest(run_id=0), "INVALID_ARGUMENT", "run_id"),
        ("DeleteRun", lambda own: pb.DeleteRunRequest(run_id=4242), "NOT_FOUND", "4242"),
        (
            "DeleteExperiment",
            lambda own: pb.DeleteExperimentRequest(),
            "INVALID_ARGUMENT",
            "experiment",
        ),
        (
            "DeleteExperiment",
            lambda own: pb.DeleteExperimentRequest(experiment="e\x00"),
            "INVALID_ARGUMENT",
            "experiment",
        ),
        (
            "DeleteExperiment",
            lambda own: pb.DeleteExperimentRequest(experiment="ghost"),
            "NOT_FOUND",
            "ghost",
        ),
        (
            "RenameRun",
            lambda own: pb.RenameRunRequest(run_id=-1, new_name="n"),
            "INVALID_ARGUMENT",
            "run_id",
        ),
        (
            "RenameRun",
            lambda own: pb.RenameRunRequest(run_id=own, new_name=""),
            "INVALID_ARGUMENT",
            "new_name",
        ),
        (
            "RenameRun",
            lambda own: pb.RenameRunRequest(run_id=4242, new_name="n"),
            "NOT_FOUND",
            "4242",
        ),
        (
            "SetRunTags",
            lambda own: pb.SetRunTagsRequest(run_id=0, tags=["a"]),
            "INVALID_ARGUMENT",
            "run_id",
        ),
        (
            "SetRunTags",
            lambda own: pb.SetRunTagsRequest(run_id=own, tags=["ok", ""]),
            "INVALID_ARGUMENT",
            "tags[1]",
        ),
        (
            "SetRunTags",
            lambda own: pb.SetRunTagsRequest(run_id=own, tags=["a\nb"]),
            "INVALID_ARGUMENT",
            "tags[0]",
        ),
        (
            "SetRunTags",
            lambda own: pb.SetRunTagsRequest(run_id=own, tags=[f"t{i}" for i in range(65)]),
            "INVALID_ARGUMENT",
            "tags",
        ),
        ("Heartbeat", lambda own: pb.HeartbeatRequest(run_id=0), "INVALID_ARGUMENT", "run_id"),
        ("Heartbeat", lambda own: pb.HeartbeatRequest(run_id=4242), "NOT_FOUND", "4242"),
    ],
)
def test_housekeeping_rpcs_validate(
    stubs: Stubs, run_id: int, rpc: str, build: Callable[[int], Any], code: str, field: str
) -> None:
    _fails(getattr(stubs.write, rpc), build(run_id), grpc.StatusCode[code], field)

    runs = stubs.read.ListRuns(pb.ListRunsRequest(experiment="e")).runs
    assert [(r.id, r.name, list(r.tags)) for r in runs] == [(run_id, "r", [])]


def test_a_rename_to_a_taken_name_says_whose(stubs: Stubs, run_id: int) -> None:
    stubs.write.StartRun(pb.StartRunRequest(experiment="e", run="taken", wall_time=1.0))

    _fails(
        stubs.write.RenameRun,
        pb.RenameRunRequest(run_id=run_id, new_name="taken"),
        grpc.StatusCode.INVALID_ARGUMENT,
        "run name 'taken' is taken in experiment 'e'",
    )


@pytest.mark.parametrize("status", ["running", "crashed"])
def test_finish_run_refuses_a_status_that_is_not_final(
    stubs: Stubs, run_id: int, status: str
) -> None:
    _fails(
        stubs.write.FinishRun,
        pb.FinishRunRequest(run_id=run_id, status=status, wall_time=2.0),
        grpc.StatusCode.INVALID_ARGUMENT,
        "status",
    )


def test_read_rpcs_validate(stubs: Stubs, run_id: int) -> None:
    read = stubs.read
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    _fails(read.ListRuns, pb.ListRunsRequest(experiment=""), invalid, "experiment")
    _fails(read.ListTags, pb.ListTagsRequest(run_id=0), invalid, "run_id")
    _fails(read.ListTags, pb.ListTagsRequest(run_id=4242), grpc.StatusCode.NOT_FOUND, "4242")
    _fails(read.ReadScalars, pb.ReadScalarsRequest(tags=["a"]), invalid, "run_ids")
    _fails(read.ReadScalars, pb.ReadScalarsRequest(run_ids=[run_id]), invalid, "tags")
    _fails(
        read.ReadScalars,
        pb.ReadScalarsRequest(run_ids=[run_id], tags=["a"], min_step=5, max_step=2),
        invalid,
        "min_step",
    )
    _fails(
        read.ReadScalars,
        pb.ReadScalarsRequest(run_ids=[run_id], tags=["a"], min_step=-1),
        invalid,
        "min_step",
    )
    _fails(read.ReadScalars, pb.ReadScalarsRequest(run_ids=[-3], tags=["a"]), invalid, "run_ids[0]")
    _fails(
        read.ReadScalars,
        pb.ReadScalarsRequest(run_ids=[777], tags=["a"]),
        grpc.StatusCode.NOT_FOUND,
        "777",
    )
    _fails(
        read.ReadHistograms,
        pb.ReadHistogramsRequest(run_ids=[run_id], tags=[""]),
        invalid,
        "tags[0]",
    )
    _fails(read.GetGraph, pb.GetGraphRequest(run_id=0), invalid, "run_id")


def test_oversized_messages_get_resource_exhausted(tmp_path: Path) -> None:
    from trainboard_server.server import make_server
    from trainboard_server.sql_store import SqlStore

    store = SqlStore.from_url(f"sqlite:///{tmp_path / 'small.db'}")
    handle = make_server(store, port=0, max_message_bytes=64 * 1024)
    handle.start()
    try:
        stubs = Stubs(handle.address)
        run = stubs.write.StartRun(pb.StartRunRequest(experiment="e", run="r", wall_time=1.0))
        request = pb.WriteBatchRequest(
            client_id="c", sequence=1, run_id=run.run.id, scalars=[_columns(n=20_000)]
        )
        _fails(stubs.write.WriteBatch, request, grpc.StatusCode.RESOURCE_EXHAUSTED, "")
        assert list(stubs.read.ListTags(pb.ListTagsRequest(run_id=run.run.id)).tags) == []
        stubs.channel.close()
    finally:
        handle.stop(grace=None)
        store.close()


def test_the_health_service_answers_serving(server_address: str) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(server_address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in ("", "trainboard.v1.WriteService", "trainboard.v1.ReadService"):
            response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert response.status == health_pb2.HealthCheckResponse.SERVING
