"""Random and mutated requests, and random bytes, against a real server: it answers
or refuses each one, keeps serving, and refused requests change nothing stored."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trainboard.v1 import trainboard_pb2 as pb
from trainboard.v1 import trainboard_pb2_grpc as pb_grpc
from trainboard_server.server import ServerHandle, make_server
from trainboard_server.sql_store import SqlStore

ANSWERS = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}
# A body that is not a valid protobuf message is refused by gRPC itself.
UNPARSEABLE = {grpc.StatusCode.INTERNAL, grpc.StatusCode.INVALID_ARGUMENT}
FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


class Target:
    def __init__(self, handle: ServerHandle) -> None:
        self.handle = handle
        self.channel = grpc.insecure_channel(handle.address)
        self.write = pb_grpc.WriteServiceStub(self.channel)
        self.read = pb_grpc.ReadServiceStub(self.channel)
        started = self.write.StartRun(
            pb.StartRunRequest(experiment="fuzz", run="r", params_json='{"a": 1}', wall_time=1.0)
        )
        self.run_id = started.run.id
        self.sequence = 1
        self.write.WriteBatch(
            pb.WriteBatchRequest(
                client_id="seed",
                sequence=1,
                run_id=self.run_id,
                scalars=[
                    pb.ScalarColumns(
                        tag="loss",
                        steps=np.arange(10, dtype="<i8").tobytes(),
                        wall_times=np.full(10, 5.0).tobytes(),
                        values=np.linspace(0, 1, 10).tobytes(),
                    )
                ],
            )
        )

    def snapshot(self) -> tuple[Any, ...]:
        """Everything stored, as comparable values."""
        runs = self.read.ListRuns(pb.ListRunsRequest(experiment="fuzz"))
        tags = self.read.ListTags(pb.ListTagsRequest(run_id=self.run_id))
        series = self.read.ReadScalars(
            pb.ReadScalarsRequest(run_ids=[self.run_id], tags=[t.name for t in tags.tags] or ["x"])
        )
        return (
            runs.SerializeToString(deterministic=True),
            tags.SerializeToString(deterministic=True),
            series.SerializeToString(deterministic=True),
            tuple(self.read.ListExperiments(pb.ListExperimentsRequest()).names),
        )

    def serving(self) -> bool:
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        health = health_pb2_grpc.HealthStub(self.channel)
        answer = health.Check(health_pb2.HealthCheckRequest(), timeout=10)
        return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    path: Path = tmp_path_factory.mktemp("fuzz") / "fuzz.db"
    store = SqlStore.from_url(f"sqlite:///{path}")
    handle = make_server(store, port=0, max_message_bytes=1024 * 1024)
    handle.start()
    target = Target(handle)
    yield target
    target.channel.close()
    handle.stop(grace=None)
    store.close()


def _call(method: Any, request: Any) -> grpc.StatusCode:
    try:
        method(request, timeout=10)
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


texts = st.text(max_size=300) | st.sampled_from(["", "loss", "a/b", "x" * 257, "é'\";--", "\n"])
numbers = st.floats(allow_nan=True, allow_infinity=True)
ints = st.integers(min_value=-(2**63), max_value=2**63 - 1)
raw = st.binary(max_size=200)


@st.composite
def scalar_columns(draw: st.DrawFn) -> pb.ScalarColumns:
    n = draw(st.integers(0, 20))
    lengths = draw(st.sampled_from(["equal", "random"]))

    def column(dtype: str, values: st.SearchStrategy[Any]) -> bytes:
        if lengths == "random" and draw(st.booleans()):
            return draw(raw)
        return np.array(draw(st.lists(values, min_size=n, max_size=n)), dtype=dtype).tobytes()

    return pb.ScalarColumns(
        tag=draw(texts),
        steps=column("<i8", ints),
        wall_times=column("<f8", numbers),
        values=column("<f8", numbers),
    )


@st.composite
def scalar_rows(draw: st.DrawFn) -> pb.ScalarRows:
    tags = draw(st.lists(texts, max_size=4))
    n = draw(st.integers(0, 10))
    lengths = draw(st.sampled_from(["equal", "random"]))

    def column(dtype: str, values: st.SearchStrategy[Any], size: int) -> bytes:
        if lengths == "random" and draw(st.booleans()):
            return draw(raw)
        return np.array(draw(st.lists(values, min_size=size, max_size=size)), dtype=dtype).tobytes()

    return pb.ScalarRows(
        tags=tags,
        steps=column("<i8", ints, n),
        wall_times=column("<f8", numbers, n),
        values=column("<f8", numbers, n * len(tags)),
    )


@st.composite
def summaries(draw: st.DrawFn) -> pb.HistogramSummary:
    return pb.HistogramSummary(
        count=draw(st.integers(0, 2**64 - 1)),
        min=draw(numbers),
        max=draw(numbers),
        sum=draw(numbers),
        sum_squares=draw(numbers),
        nan_count=draw(st.integers(0, 2**64 - 1)),
        posinf_count=draw(st.integers(0, 10)),
        neginf_count=draw(st.integers(0, 10)),
        bucket_counts=draw(st.lists(st.integers(0, 2**64 - 1), max_size=600)),
    )


@st.composite
def write_batches(draw: st.DrawFn) -> pb.WriteBatchRequest:
    histogram = pb.HistogramColumns(
        tag=draw(texts),
        points=[
            pb.HistogramPoint(step=draw(ints), wall_time=draw(numbers), summary=draw(summaries()))
            for _ in range(draw(st.integers(0, 3)))
        ],
    )
    return pb.WriteBatchRequest(
        client_id=draw(texts),
        sequence=draw(st.integers(0, 2**64 - 1)),
        run_id=draw(st.sampled_from([0, -1, 1, 2, 10**12])),
        scalars=draw(st.lists(scalar_columns(), max_size=3)),
        rows=draw(st.lists(scalar_rows(), max_size=2)),
        histograms=[histogram] if draw(st.booleans()) else [],
    )


@FUZZ
@given(request=write_batches())
def test_random_write_batches_are_answered_and_refused_ones_change_nothing(
    target: Target, request: pb.WriteBatchRequest
) -> None:
    before = target.snapshot()
    code = _call(target.write.WriteBatch, request)
    assert code in ANSWERS, code
    if code != grpc.StatusCode.OK:
        assert target.snapshot() == before
    assert target.serving()


@FUZZ
@given(
    experiment=texts,
    run=texts,
    params=st.none() | texts,
    wall_time=numbers,
    status=texts,
    run_id=ints,
    nodes=st.lists(
        st.builds(pb.GraphNode, name=texts, op=texts, inputs=st.lists(texts, max_size=3)),
        max_size=5,
    ),
)
def test_random_requests_to_every_rpc_are_answered(
    target: Target,
    experiment: str,
    run: str,
    params: str | None,
    wall_time: float,
    status: str,
    run_id: int,
    nodes: list[pb.GraphNode],
) -> None:
    before = target.snapshot()
    start = pb.StartRunRequest(experiment=experiment, run=run, wall_time=wall_time)
    if params is not None:
        start.params_json = params
    calls = [
        (target.write.FinishRun, pb.FinishRunRequest(run_id=run_id, status=status)),
        (target.write.SetGraph, pb.SetGraphRequest(run_id=run_id, graph=pb.Graph(nodes=nodes))),
        (target.read.ListRuns, pb.ListRunsRequest(experiment=experiment)),
        (target.read.ListTags, pb.ListTagsRequest(run_id=run_id)),
        (target.read.ReadScalars, pb.ReadScalarsRequest(run_ids=[run_id], tags=[run])),
        (target.read.ReadHistograms, pb.ReadHistogramsRequest(run_ids=[run_id], tags=[run])),
        (target.read.GetGraph, pb.GetGraphRequest(run_id=run_id)),
    ]
    for method, request in calls:
        code = _call(method, request)
        assert code in ANSWERS, (method, code)
    assert target.snapshot() == before or run_id == target.run_id
    code = _call(target.write.StartRun, start)
    assert code in ANSWERS
    assert target.serving()


@FUZZ
@given(body=raw, method=st.sampled_from(["WriteService/WriteBatch", "ReadService/ReadScalars"]))
def test_random_bytes_as_a_request_body_are_refused(
    target: Target, body: bytes, method: str
) -> None:
    before = target.snapshot()
    call = target.channel.unary_unary(
        f"/trainboard.v1.{method}",
        request_serializer=lambda b: b,
        response_deserializer=lambda b: b,
    )
    code = _call(call, body)
    assert code in ANSWERS | UNPARSEABLE
    if code != grpc.StatusCode.OK:
        assert target.snapshot() == before
    assert target.serving()


@settings(max_examples=30, deadline=None)
@given(garbage=st.binary(min_size=1, max_size=4096))
def test_random_bytes_on_the_port_do_not_stop_the_server(target: Target, garbage: bytes) -> None:
    address = ("127.0.0.1", target.handle.port)
    # The server may answer with an HTTP/2 error frame, close, or wait for more.
    with socket.create_connection(address, timeout=5) as sock, contextlib.suppress(OSError):
        sock.sendall(garbage)
        sock.settimeout(1)
        sock.recv(1024)
    assert target.serving()


def test_an_oversized_message_is_refused_and_the_server_keeps_serving(target: Target) -> None:
    big = pb.WriteBatchRequest(
        client_id="big",
        sequence=1,
        run_id=target.run_id,
        scalars=[pb.ScalarColumns(tag="big", steps=b"\0" * 2_000_000)],
    )
    assert _call(target.write.WriteBatch, big) == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert target.serving()
