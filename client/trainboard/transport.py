"""The client side of the gRPC edge: channels, status-code translation, and
``RemoteStore``, the storage contract (``trainboard.store.Store``) over gRPC."""

from __future__ import annotations

import collections
import contextlib
import os
import socket
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import grpc
import numpy as np

from trainboard import errors, wire
from trainboard.defaults import DEFAULT_SERVER as DEFAULT_SERVER  # re-exported for callers
from trainboard.types import (
    GraphNode,
    HistogramSeries,
    Run,
    ScalarSeries,
    StartedRun,
    Tag,
    WriteBatch,
    WriteResult,
)
from trainboard.v1 import trainboard_pb2 as pb
from trainboard.v1 import trainboard_pb2_grpc as pb_grpc
from trainboard.validation import MAX_MESSAGE_BYTES, params_to_json

_STATUS_TO_ERROR: dict[grpc.StatusCode, type[errors.TrainboardError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: errors.InvalidArgument,
    grpc.StatusCode.NOT_FOUND: errors.NotFound,
    grpc.StatusCode.UNAUTHENTICATED: errors.Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: errors.PermissionDenied,
    grpc.StatusCode.RESOURCE_EXHAUSTED: errors.ResourceExhausted,
    grpc.StatusCode.UNAVAILABLE: errors.Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: errors.Unavailable,
}


def resolve_server(server: str | None) -> str:
    """The server address: the argument, else ``TRAINBOARD_SERVER``, else the
    default. ``host:port``, or several separated by commas (calls are spread
    over them round-robin)."""
    address = server or os.environ.get("TRAINBOARD_SERVER") or DEFAULT_SERVER
    if not isinstance(address, str):
        raise ValueError(f"server must be 'host:port', got {address!r}")
    for part in address.split(","):
        host, sep, port = part.strip().rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(
                f"server must be 'host:port' (or several, comma-separated), got {address!r}"
            )
    return address


def _round_robin_target(address: str) -> str:
    """A gRPC target naming every address of a comma-separated list
    (``ipv4:a:p,b:q``): host names are resolved once, here."""
    resolved: list[tuple[int, str]] = []
    for part in address.split(","):
        host, _, port = part.strip().rpartition(":")
        host = host.strip("[]")
        try:
            infos = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise ValueError(f"cannot resolve server host {host!r}: {exc}") from exc
        infos.sort(key=lambda info: info[0] != socket.AF_INET)  # IPv4 first
        family, _, _, _, sockaddr = infos[0]
        ip = str(sockaddr[0])
        resolved.append((family, f"[{ip}]:{port}" if family == socket.AF_INET6 else f"{ip}:{port}"))
    if {family for family, _ in resolved} == {socket.AF_INET}:
        return "ipv4:" + ",".join(target for _, target in resolved)
    if {family for family, _ in resolved} == {socket.AF_INET6}:
        return "ipv6:" + ",".join(target for _, target in resolved)
    raise ValueError(f"the servers in {address!r} mix IPv4 and IPv6 addresses")


@contextlib.contextmanager
def translate_errors() -> Iterator[None]:
    """Turns gRPC status codes into Trainboard's domain errors (the one place)."""
    try:
        yield
    except grpc.RpcError as exc:
        code = exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNKNOWN
        details = exc.details() if isinstance(exc, grpc.Call) else str(exc)
        error = _STATUS_TO_ERROR.get(code, errors.TrainboardError)
        raise error(f"{details} ({code.name})") from exc


Found = TypeVar("Found")


def _in_parts(
    read: Callable[[list[int], list[str]], list[Found]], run_ids: list[int], tags: list[str]
) -> list[Found]:
    """``read(run_ids, tags)``; when the server answers RESOURCE_EXHAUSTED (the
    answer would exceed what one holds), the runs (or, for one run, the tags) are
    split in halves and read apart, in order. A single series too large is the
    caller's error."""
    try:
        return read(run_ids, tags)
    except errors.ResourceExhausted:
        if len(run_ids) > 1:
            half = len(run_ids) // 2
            return _in_parts(read, run_ids[:half], tags) + _in_parts(read, run_ids[half:], tags)
        if len(tags) > 1:
            half = len(tags) // 2
            return _in_parts(read, run_ids, tags[:half]) + _in_parts(read, run_ids, tags[half:])
        raise


def _unique(values: Sequence[Found]) -> list[Found]:
    """The values, each once, in the order of first occurrence."""
    return list(dict.fromkeys(values))


def _join_pages(pages: Sequence[ScalarSeries]) -> ScalarSeries:
    """Pages of one series (``next_step`` chained) as one series."""
    return ScalarSeries(
        run_id=pages[0].run_id,
        tag=pages[0].tag,
        steps=np.concatenate([p.steps for p in pages]),
        wall_times=np.concatenate([p.wall_times for p in pages]),
        values=np.concatenate([p.values for p in pages]),
        total=sum(p.total for p in pages),
    )


def resolve_token(token: str | None) -> str | None:
    """The credential: the argument, else ``TRAINBOARD_TOKEN``, else none."""
    token = token if token is not None else os.environ.get("TRAINBOARD_TOKEN") or None
    if token is not None and (not isinstance(token, str) or not token.strip()):
        raise ValueError("token must be a non-empty str")
    return token


def resolve_tls_root_cert(path: str | None) -> bytes | None:
    """The root certificate (PEM) to trust for TLS: the file named by the
    argument, else by ``TRAINBOARD_TLS_ROOT_CERT``; None for a plain channel."""
    path = path if path is not None else os.environ.get("TRAINBOARD_TLS_ROOT_CERT") or None
    if path is None:
        return None
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as exc:
        raise ValueError(f"cannot read TLS root certificate {path}: {exc.strerror}") from exc


class _CallDetails(
    collections.namedtuple(
        "_CallDetails",
        ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression"),
    ),
    grpc.ClientCallDetails,  # type: ignore[misc]  # grpc is untyped
):
    pass


class _BearerToken(grpc.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    """Adds ``authorization: Bearer TOKEN`` to every call."""

    def __init__(self, token: str) -> None:
        self._metadata = ("authorization", f"Bearer {token}")

    def intercept_unary_unary(
        self, continuation: Callable[[Any, Any], Any], details: Any, request: Any
    ) -> Any:
        with_token = _CallDetails(
            details.method,
            details.timeout,
            [*(details.metadata or ()), self._metadata],
            details.credentials,
            getattr(details, "wait_for_ready", None),
            getattr(details, "compression", None),
        )
        return continuation(with_token, request)


def open_channel(
    address: str, *, token: str | None = None, tls_root_cert: bytes | None = None
) -> grpc.Channel:
    """A channel to ``address``: TLS when a root certificate is given, and the
    token sent with every call when one is given."""
    options: list[tuple[str, Any]] = [
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ]
    target = address
    if "," in address:  # several servers: spread the calls over them
        target = _round_robin_target(address)
        options.append(("grpc.lb_policy_name", "round_robin"))
        if tls_root_cert is not None:  # certificates name hosts, not resolved addresses
            first_host = address.split(",")[0].strip().rpartition(":")[0].strip("[]")
            options.append(("grpc.ssl_target_name_override", first_host))
    if tls_root_cert is not None:
        credentials = grpc.ssl_channel_credentials(root_certificates=tls_root_cert)
        channel = grpc.secure_channel(target, credentials, options=options)
    else:
        channel = grpc.insecure_channel(target, options=options)
    if token is not None:
        channel = grpc.intercept_channel(channel, _BearerToken(token))
    return channel


class RemoteStore:
    """``trainboard.store.Store`` over gRPC. Thread-safe; one channel."""

    def __init__(
        self,
        address: str,
        *,
        timeout: float = 60.0,
        token: str | None = None,
        tls_root_cert: bytes | None = None,
    ) -> None:
        self.address = address
        self.timeout = timeout
        #: Tags per ListTags page asked for (0: the server's page size).
        self.tags_page_size = 0
        self._channel = open_channel(address, token=token, tls_root_cert=tls_root_cert)
        self._write = pb_grpc.WriteServiceStub(self._channel)
        self._read = pb_grpc.ReadServiceStub(self._channel)

    # ---------------------------------------------------------------- writes

    def start_run(
        self,
        experiment: str,
        run: str,
        params: Mapping[str, Any] | None,
        wall_time: float,
        *,
        resume: bool = False,
        client_id: str | None = None,
    ) -> StartedRun:
        request = pb.StartRunRequest(
            experiment=experiment,
            run=run,
            wall_time=wall_time,
            resume=resume,
            client_id=client_id or "",
        )
        if params is not None:
            request.params_json = params_to_json(params)
        with translate_errors():
            response = self._write.StartRun(request, timeout=self.timeout)
        return wire.started_run_from_pb(response)

    def write_batch(self, batch: WriteBatch) -> WriteResult:
        return self.write_batch_pb(wire.write_batch_to_pb(batch))

    def write_batch_pb(self, request: pb.WriteBatchRequest) -> WriteResult:
        with translate_errors():
            response = self._write.WriteBatch(request, timeout=self.timeout)
        return wire.write_result_from_pb(response)

    def finish_run(self, run_id: int, status: str, wall_time: float) -> None:
        with translate_errors():
            self._write.FinishRun(
                pb.FinishRunRequest(run_id=run_id, status=status, wall_time=wall_time),
                timeout=self.timeout,
            )

    def set_graph(self, run_id: int, nodes: Sequence[GraphNode]) -> None:
        with translate_errors():
            self._write.SetGraph(
                pb.SetGraphRequest(run_id=run_id, graph=wire.graph_to_pb(nodes)),
                timeout=self.timeout,
            )

    # ---------------------------------------------------------------- reads

    def list_experiments(self) -> list[str]:
        with translate_errors():
            response = self._read.ListExperiments(pb.ListExperimentsRequest(), timeout=self.timeout)
        return list(response.names)

    def list_runs(self, experiment: str) -> list[Run]:
        with translate_errors():
            response = self._read.ListRuns(
                pb.ListRunsRequest(experiment=experiment), timeout=self.timeout
            )
        return [wire.run_from_pb(r) for r in response.runs]

    def list_tags(self, run_id: int) -> list[Tag]:
        """All the run's tags, sorted by (kind, name): the pages the server answers
        in, joined."""
        request = pb.ListTagsRequest(run_id=run_id, page_size=self.tags_page_size)
        tags: list[Tag] = []
        pages = 0
        while True:
            with translate_errors():
                response = self._read.ListTags(request, timeout=self.timeout)
            tags.extend(wire.tag_from_pb(t) for t in response.tags)
            pages += 1
            if not response.next_page_token:
                break
            request.page_token = response.next_page_token
        if pages > 1:  # each page is sorted, the pages are not
            tags.sort(key=lambda t: (t.kind, t.name))
        return tags

    def read_scalars(
        self,
        *,
        run_ids: Sequence[int],
        tags: Sequence[str],
        max_points: int | None = None,
        min_step: int | None = None,
        max_step: int | None = None,
    ) -> dict[tuple[int, str], ScalarSeries]:
        """The Store contract's read, usually in one round trip: a read larger than
        one answer holds is asked for in parts (fewer series at a time), and a
        series the server answers in pages is joined here (its pages asked for one
        after the other)."""

        def one(ids: list[int], names: list[str]) -> list[ScalarSeries]:
            request = pb.ReadScalarsRequest(run_ids=ids, tags=names, max_points=max_points or 0)
            if min_step is not None:
                request.min_step = min_step
            if max_step is not None:
                request.max_step = max_step
            with translate_errors():
                response = self._read.ReadScalars(request, timeout=self.timeout)
            return [wire.scalar_series_from_pb(s) for s in response.series]

        found = _in_parts(one, _unique(run_ids), _unique(tags))
        return {(s.run_id, s.tag): self._rest(s, max_step) for s in found}

    def _rest(self, series: ScalarSeries, max_step: int | None) -> ScalarSeries:
        """A series whole: the pages from ``series.next_step`` on (up to
        ``max_step``), joined to it."""
        if series.next_step is None:
            return series
        pages = [series]
        while (cursor := pages[-1].next_step) is not None:
            request = pb.ReadScalarsRequest(run_ids=[series.run_id], tags=[series.tag])
            request.min_step = cursor
            if max_step is not None:
                request.max_step = max_step
            with translate_errors():
                response = self._read.ReadScalars(request, timeout=self.timeout)
            if not response.series:  # the series was deleted meanwhile
                break
            pages.append(wire.scalar_series_from_pb(response.series[0]))
        return _join_pages(pages)

    def read_histograms(
        self,
        *,
        run_ids: Sequence[int],
        tags: Sequence[str],
        max_steps: int | None = None,
        min_step: int | None = None,
    ) -> dict[tuple[int, str], HistogramSeries]:
        """The Store contract's read; a read larger than one answer holds is asked
        for in parts (fewer series at a time)."""

        def one(ids: list[int], names: list[str]) -> list[HistogramSeries]:
            request = pb.ReadHistogramsRequest(run_ids=ids, tags=names, max_steps=max_steps or 0)
            if min_step is not None:
                request.min_step = min_step
            with translate_errors():
                response = self._read.ReadHistograms(request, timeout=self.timeout)
            return [wire.histogram_series_from_pb(s) for s in response.series]

        found = _in_parts(one, _unique(run_ids), _unique(tags))
        return {(s.run_id, s.tag): s for s in found}

    def get_graph(self, run_id: int) -> list[GraphNode] | None:
        with translate_errors():
            response = self._read.GetGraph(pb.GetGraphRequest(run_id=run_id), timeout=self.timeout)
        if not response.has_graph:
            return None
        return wire.graph_from_pb(response.graph)

    def health(self, timeout: float = 5.0) -> bool:
        """True when the server's health service answers SERVING."""
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        stub = health_pb2_grpc.HealthStub(self._channel)
        try:
            response = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
        except grpc.RpcError:
            return False
        return bool(response.status == health_pb2.HealthCheckResponse.SERVING)

    def close(self) -> None:
        self._channel.close()

    # ---------------------------------------------------------------- housekeeping

    def heartbeat(self, run_id: int, *, timeout: float | None = None) -> None:
        """Says the run's client is alive (``timeout`` overrides the store's)."""
        with translate_errors():
            self._write.Heartbeat(
                pb.HeartbeatRequest(run_id=run_id),
                timeout=self.timeout if timeout is None else timeout,
            )

    def delete_run(self, run_id: int) -> None:
        with translate_errors():
            self._write.DeleteRun(pb.DeleteRunRequest(run_id=run_id), timeout=self.timeout)

    def delete_experiment(self, experiment: str) -> int:
        with translate_errors():
            response = self._write.DeleteExperiment(
                pb.DeleteExperimentRequest(experiment=experiment), timeout=self.timeout
            )
        return int(response.deleted_runs)

    def rename_run(self, run_id: int, new_name: str) -> None:
        with translate_errors():
            self._write.RenameRun(
                pb.RenameRunRequest(run_id=run_id, new_name=new_name), timeout=self.timeout
            )

    def set_run_tags(self, run_id: int, tags: Sequence[str]) -> tuple[str, ...]:
        with translate_errors():
            response = self._write.SetRunTags(
                pb.SetRunTagsRequest(run_id=run_id, tags=list(tags)), timeout=self.timeout
            )
        return tuple(response.tags)
