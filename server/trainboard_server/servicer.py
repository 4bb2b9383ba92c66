"""The gRPC servicers: wire messages in, validated domain calls on a Store, wire out.

Every Store checks its arguments and names the bad field (``trainboard.store``), so
a field the store names as the request does is passed on as it came and checked
there. The servicer checks a field itself only when it uses it before calling the
store (a read's run ids; StartRun's and SetGraph's fields, checked before their
params or graph are decoded), or when only the request can name it (``run_ids[3]``,
and in a write batch ``scalars[0].steps[7]`` or ``rows[1].tags[0]``:
``trainboard.wire``).

Domain errors become status codes in one place, ``_translate_errors``.

Bounds (the limits live in ``trainboard.validation``): a read is sized from stored
counts before its answer is built, so that no answer outgrows a message and a
request's memory stays bounded. A ReadScalars answer holds at most
``MAX_READ_POINTS`` points over all its series: a full-resolution series beyond
what is left comes as a page (``next_step``; an empty page when nothing is left),
which the SDK follows. A downsampled series is answered whole, and a read whose
downsampled series alone exceed the budget is refused with RESOURCE_EXHAUSTED
(the SDK then asks for fewer series at a time); so is a ReadHistograms whose
summaries would exceed ``MAX_READ_HISTOGRAM_BYTES``. After a large answer the
freed memory is handed back to the operating system (``MemoryTrimmer``).

Paging is the server's own matter: the Store contract reads series whole, and
the pages are read with ``SqlStore.read_scalars_page`` (no part of the contract).
A store that is not a ``SqlStore`` (a test double) is read whole through the
contract and its series cut into pages here, without that memory bound.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import grpc
import numpy as np

from trainboard import errors, wire
from trainboard.store import Store
from trainboard.types import ScalarSeries
from trainboard.v1 import trainboard_pb2 as pb
from trainboard.validation import (
    MAX_MESSAGE_BYTES,
    MAX_READ_HISTOGRAM_BYTES,
    MAX_READ_POINTS,
    MAX_TAGS_PAGE,
    MAX_TAGS_PAGE_BYTES,
    check_client_id,
    check_name,
    check_read_keys,
    check_run_id,
    check_step,
    check_wall_time,
    params_from_json,
)
from trainboard_server.sql_store import SqlStore
from trainboard_server.storage.batches import DeadlineExceeded

log = logging.getLogger("trainboard.server")

#: Wire bytes of a series in an answer beside its tag and its points.
_SERIES_OVERHEAD_BYTES = 48
#: Wire bytes of a scalar point (step, wall time and value, packed).
_POINT_BYTES = 24
#: Answers (or batches) at least this large hand freed memory back afterwards.
_TRIM_AFTER_BYTES = 4 * 1024 * 1024

_ERROR_TO_STATUS: list[tuple[type[Exception], grpc.StatusCode]] = [
    (DeadlineExceeded, grpc.StatusCode.DEADLINE_EXCEEDED),  # before Unavailable, its base
    (errors.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.NotFound, grpc.StatusCode.NOT_FOUND),
    (errors.Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (errors.PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (errors.ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.Unavailable, grpc.StatusCode.UNAVAILABLE),
    # Validation helpers shared with the SDK raise TypeError for wrong types.
    (TypeError, grpc.StatusCode.INVALID_ARGUMENT),
]

Request = TypeVar("Request")
Response = TypeVar("Response")
Handler = Callable[[Any, Request, grpc.ServicerContext], Response]


def _translate_errors(method: Handler[Request, Response]) -> Handler[Request, Response]:
    @functools.wraps(method)
    def wrapper(self: Any, request: Request, context: grpc.ServicerContext) -> Response:
        try:
            return method(self, request, context)
        except Exception as exc:
            for error_type, code in _ERROR_TO_STATUS:
                if isinstance(exc, error_type):
                    context.abort(code, str(exc))
            log.exception("%s failed", method.__name__)
            context.abort(grpc.StatusCode.INTERNAL, f"internal error in {method.__name__}")
            raise  # abort() raises; this line is never reached

    return wrapper


def _optional_step(request: Any, field: str) -> int | None:
    if not request.HasField(field):
        return None
    return check_step(getattr(request, field), field)


def _still_wanted(context: grpc.ServicerContext) -> Callable[[], bool]:
    """False once the caller stopped waiting: its deadline passed or it cancelled."""

    def check() -> bool:
        remaining = context.time_remaining()
        return bool(context.is_active()) and (remaining is None or remaining > 0)

    return check


#: glibc malloc arenas the server's threads share (``MALLOC_ARENA_MAX`` overrides).
MALLOC_ARENAS = 2


class MemoryTrimmer:
    """Hands memory freed after large answers back to the operating system.

    glibc keeps freed memory in its arenas (by default one per thread that
    allocated, up to 8 per core) rather than returning it, so a server that once
    answered a few large reads at a time would stay at its peak size.
    ``limit_arenas()`` (called when this module is imported, before the server's
    threads start) lets the threads share ``MALLOC_ARENAS`` arenas, and
    ``schedule()`` runs ``malloc_trim(0)`` shortly after a large answer (once it
    has been serialised and sent, and the allocations behind it freed), at most
    one pending at a time. No-ops where the C library is not glibc.
    """

    def __init__(self, delays: tuple[float, ...] = (0.5, 3.0)) -> None:
        self._delays = delays
        self._lock = threading.Lock()
        self._pending = False
        self._libc = _glibc()
        self._trim = None if self._libc is None else self._libc.malloc_trim
        self._arenas_limited = False

    @property
    def available(self) -> bool:
        """Whether this process's C library can trim (glibc)."""
        return self._trim is not None

    def limit_arenas(self) -> None:
        if self._libc is None or self._arenas_limited or "MALLOC_ARENA_MAX" in os.environ:
            return
        self._arenas_limited = True
        self._libc.mallopt(_M_ARENA_MAX, MALLOC_ARENAS)

    def schedule(self) -> None:
        if self._trim is None:
            return
        with self._lock:
            if self._pending:
                return
            self._pending = True
        self._start(0)

    def _start(self, index: int) -> None:
        timer = threading.Timer(self._delays[index], self._run, args=(index,))
        timer.daemon = True
        timer.start()

    def _run(self, index: int) -> None:
        assert self._trim is not None
        self._trim(0)
        if index + 1 < len(self._delays):  # again, for an answer still being sent
            self._start(index + 1)
            return
        with self._lock:
            self._pending = False


_M_ARENA_MAX = -8  # glibc's mallopt parameter number


def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        libc.malloc_trim.restype = ctypes.c_int
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.mallopt.restype = ctypes.c_int
    except (OSError, AttributeError):
        return None
    return libc


class WriteServicer:
    def __init__(self, store: Store) -> None:
        self._store = store

    @_translate_errors
    def StartRun(
        self, request: pb.StartRunRequest, context: grpc.ServicerContext
    ) -> pb.StartRunResponse:
        experiment = check_name("experiment", request.experiment)
        run = check_name("run", request.run)
        params = params_from_json(request.params_json) if request.HasField("params_json") else None
        wall_time = check_wall_time(request.wall_time)
        client_id = check_client_id(request.client_id) if request.client_id else None
        if isinstance(self._store, SqlStore):  # rolled back once the client stopped waiting
            started = self._store.start_run(
                experiment,
                run,
                params,
                wall_time,
                resume=request.resume,
                client_id=client_id,
                still_wanted=_still_wanted(context),
            )
        else:
            started = self._store.start_run(
                experiment, run, params, wall_time, resume=request.resume, client_id=client_id
            )
        response = wire.started_run_to_pb(started)
        response.accepts_rows = True  # WriteBatch reads ScalarRows (wire.write_batch_from_pb)
        return response

    @_translate_errors
    def WriteBatch(
        self, request: pb.WriteBatchRequest, context: grpc.ServicerContext
    ) -> pb.WriteBatchResponse:
        batch = wire.write_batch_from_pb(request)
        if isinstance(self._store, SqlStore):
            # Rolled back rather than committed once the client stopped waiting: its
            # retry (same client id and sequence) then stores the batch once.
            result = self._store.write_batch(batch, still_wanted=_still_wanted(context))
        else:
            result = self._store.write_batch(batch)
        if sum(len(c.values) for c in batch.scalars) * _POINT_BYTES >= _TRIM_AFTER_BYTES:
            TRIMMER.schedule()
        return wire.write_result_to_pb(result)

    @_translate_errors
    def FinishRun(
        self, request: pb.FinishRunRequest, context: grpc.ServicerContext
    ) -> pb.FinishRunResponse:
        self._store.finish_run(request.run_id, request.status, request.wall_time)
        return pb.FinishRunResponse()

    @_translate_errors
    def SetGraph(
        self, request: pb.SetGraphRequest, context: grpc.ServicerContext
    ) -> pb.SetGraphResponse:
        run_id = check_run_id(request.run_id)
        nodes = wire.graph_from_pb(request.graph)
        self._store.set_graph(run_id, nodes)
        return pb.SetGraphResponse(node_count=len(nodes))

    @_translate_errors
    def DeleteRun(
        self, request: pb.DeleteRunRequest, context: grpc.ServicerContext
    ) -> pb.DeleteRunResponse:
        self._store.delete_run(request.run_id)
        return pb.DeleteRunResponse()

    @_translate_errors
    def DeleteExperiment(
        self, request: pb.DeleteExperimentRequest, context: grpc.ServicerContext
    ) -> pb.DeleteExperimentResponse:
        deleted = self._store.delete_experiment(request.experiment)
        return pb.DeleteExperimentResponse(deleted_runs=deleted)

    @_translate_errors
    def RenameRun(
        self, request: pb.RenameRunRequest, context: grpc.ServicerContext
    ) -> pb.RenameRunResponse:
        self._store.rename_run(request.run_id, request.new_name)
        return pb.RenameRunResponse()

    @_translate_errors
    def SetRunTags(
        self, request: pb.SetRunTagsRequest, context: grpc.ServicerContext
    ) -> pb.SetRunTagsResponse:
        stored = self._store.set_run_tags(request.run_id, list(request.tags))
        return pb.SetRunTagsResponse(tags=stored)

    @_translate_errors
    def Heartbeat(
        self, request: pb.HeartbeatRequest, context: grpc.ServicerContext
    ) -> pb.HeartbeatResponse:
        self._store.heartbeat(request.run_id)
        return pb.HeartbeatResponse()


class ReadServicer:
    """The read service. ``page_points`` caps the scalar points of one answer (all
    its series together; at most ``MAX_READ_POINTS``, and at most what half of
    ``max_message_bytes`` holds)."""

    def __init__(
        self,
        store: Store,
        *,
        page_points: int = MAX_READ_POINTS,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
    ) -> None:
        self._store = store
        self._page_points = max(1, min(page_points, MAX_READ_POINTS))
        # Half a message for the points, the rest for tags and framing.
        self._page_points = max(1, min(self._page_points, max_message_bytes // 2 // _POINT_BYTES))
        self._histogram_bytes = max(1, min(MAX_READ_HISTOGRAM_BYTES, max_message_bytes // 2))
        self._series_bytes = max(1, max_message_bytes // 4)

    @_translate_errors
    def ListExperiments(
        self, request: pb.ListExperimentsRequest, context: grpc.ServicerContext
    ) -> pb.ListExperimentsResponse:
        return pb.ListExperimentsResponse(names=self._store.list_experiments())

    @_translate_errors
    def ListRuns(
        self, request: pb.ListRunsRequest, context: grpc.ServicerContext
    ) -> pb.ListRunsResponse:
        runs = self._store.list_runs(request.experiment)
        return pb.ListRunsResponse(runs=[wire.run_to_pb(r) for r in runs])

    @_translate_errors
    def ListTags(
        self, request: pb.ListTagsRequest, context: grpc.ServicerContext
    ) -> pb.ListTagsResponse:
        """A page of the run's tags: at most ``page_size`` (0: the server's page,
        ``MAX_TAGS_PAGE``), from ``page_token`` on; ``next_page_token`` is empty
        after the last page. Tags are sorted within a page."""
        run_id = check_run_id(request.run_id)
        if not isinstance(self._store, SqlStore):
            if request.page_token:
                raise errors.InvalidArgument("page_token is not one this server gave")
            tags = self._store.list_tags(run_id)
            return pb.ListTagsResponse(tags=[wire.tag_to_pb(t) for t in tags])
        page_size = min(request.page_size or MAX_TAGS_PAGE, MAX_TAGS_PAGE)
        page_bytes = min(MAX_TAGS_PAGE_BYTES, self._series_bytes)
        tags, token = self._store.list_tags_page(run_id, request.page_token, page_size, page_bytes)
        return pb.ListTagsResponse(tags=[wire.tag_to_pb(t) for t in tags], next_page_token=token)

    @_translate_errors
    def ReadScalars(
        self, request: pb.ReadScalarsRequest, context: grpc.ServicerContext
    ) -> pb.ReadScalarsResponse:
        run_ids, tags = check_read_keys(request.run_ids, request.tags)
        min_step = _optional_step(request, "min_step")
        max_step = _optional_step(request, "max_step")
        if min_step is not None and max_step is not None and min_step > max_step:
            raise errors.InvalidArgument("min_step must not be above max_step")
        max_points = request.max_points or None
        budget = self._page_points
        # Full-resolution reads come in pages, so no answer outgrows a message.
        page = min(request.limit or budget, budget)
        if isinstance(self._store, SqlStore):
            sizes = self._store.scalar_sizes(run_ids, tags, min_step, max_step)
            whole: dict[tuple[int, str], ScalarSeries] = {}
        else:  # a store that cannot page: every series read whole, then cut into pages
            whole = self._store.read_scalars(
                run_ids=run_ids,
                tags=tags,
                max_points=max_points,
                min_step=min_step,
                max_step=max_step,
            )
            sizes = {key: series.total for key, series in whole.items()}
        present = [(r, t, sizes[(r, t)]) for r in run_ids for t in tags if (r, t) in sizes]
        self._check_series_bytes([t for _, t, _ in present])
        # A downsampled series (more points stored than max_points) cannot be paged:
        # it is answered whole, so those series alone must fit the budget.
        downsampled = [
            (r, t) for r, t, size in present if max_points is not None and size > max_points
        ]
        fixed = len(downsampled) * (max_points or 0)
        if fixed > budget:
            raise errors.ResourceExhausted(
                f"this read asks for up to {fixed:,} points ({len(downsampled):,} series "
                f"downsampled to max_points={max_points:,}); an answer holds at most "
                f"{budget:,} points (points per read): ask for fewer series at a time"
                + ("" if len(downsampled) > 1 else " or a smaller max_points")
            )
        remaining = budget - fixed

        def read(run_id: int, tag: str, limit: int | None) -> ScalarSeries | None:
            """The series, or (with ``limit``) a full-resolution page of it."""
            if isinstance(self._store, SqlStore):
                return self._store.read_scalars_page(
                    run_id,
                    tag,
                    max_points=None if limit is not None else max_points,
                    min_step=min_step,
                    max_step=max_step,
                    limit=limit,
                )
            series = whole.pop((run_id, tag), None)
            return series if series is None or limit is None else _cut(series, limit)

        response = pb.ReadScalarsResponse()
        for run_id, tag, size in present:
            if max_points is not None and (size > max_points or size <= remaining):
                # Downsampled, or small enough to come whole: every point when it is.
                series = read(run_id, tag, None)
                if series is not None and size <= max_points:
                    remaining -= len(series)
            elif remaining > 0:
                # A page; the SDK asks for the rest from next_step on (a downsampled
                # read of a series no larger than max_points wants every point anyway).
                series = read(
                    run_id, tag, remaining if max_points is not None else min(page, remaining)
                )
                if series is not None:
                    remaining -= len(series)
            else:
                series = _empty_page(run_id, tag, min_step)  # all of it comes next time
            if series is not None:
                wire.scalar_series_into(response.series.add(), series)
            series = None  # its arrays go now, not after the answer is serialised
        if (budget - remaining) * _POINT_BYTES >= _TRIM_AFTER_BYTES:
            TRIMMER.schedule()
        return response

    @_translate_errors
    def ReadHistograms(
        self, request: pb.ReadHistogramsRequest, context: grpc.ServicerContext
    ) -> pb.ReadHistogramsResponse:
        run_ids, tags = check_read_keys(request.run_ids, request.tags)
        min_step = _optional_step(request, "min_step")
        max_steps = request.max_steps or None
        pairs = [(r, t) for r in run_ids for t in tags]
        estimate = 0
        if isinstance(self._store, SqlStore):
            sizes = self._store.histogram_sizes(run_ids, tags, min_step)
            present = [key for key in pairs if key in sizes]
            self._check_series_bytes([t for _, t in present])
            for key in present:
                count, largest = sizes[key]
                estimate += min(count, max_steps or count) * largest
            if estimate > self._histogram_bytes:
                raise errors.ResourceExhausted(
                    f"this read asks for about {_mib(estimate)} of histograms; an answer "
                    f"holds at most {_mib(self._histogram_bytes)} (histogram bytes per read): "
                    "ask for fewer series at a time, a smaller max_steps or a later min_step"
                )
            if not present:
                return pb.ReadHistogramsResponse()
        found = self._store.read_histograms(
            run_ids=run_ids, tags=tags, max_steps=max_steps, min_step=min_step
        )
        response = pb.ReadHistogramsResponse()
        for key in pairs:
            series = found.pop(key, None)
            if series is not None:
                response.series.append(wire.histogram_series_to_pb(series))
        if estimate >= _TRIM_AFTER_BYTES:
            TRIMMER.schedule()
        return response

    def _check_series_bytes(self, tags: list[str]) -> None:
        """RESOURCE_EXHAUSTED when the series of an answer, without a point, would
        already fill a quarter of a message (a great many series with long tags)."""
        size = sum(len(tag.encode()) + _SERIES_OVERHEAD_BYTES for tag in tags)
        if size > self._series_bytes:
            raise errors.ResourceExhausted(
                f"this read names {len(tags):,} series, {_mib(size)} of tags alone; an "
                f"answer holds at most {_mib(self._series_bytes)} of them: ask for fewer "
                "series at a time"
            )

    @_translate_errors
    def GetGraph(
        self, request: pb.GetGraphRequest, context: grpc.ServicerContext
    ) -> pb.GetGraphResponse:
        nodes = self._store.get_graph(request.run_id)
        if nodes is None:
            return pb.GetGraphResponse(has_graph=False)
        return pb.GetGraphResponse(has_graph=True, graph=wire.graph_to_pb(nodes))


TRIMMER = MemoryTrimmer()
# At import, before the threads of gRPC and of the server first allocate: a thread
# keeps the arena it started with, so a later limit would miss them.
TRIMMER.limit_arenas()


def _empty_page(run_id: int, tag: str, min_step: int | None) -> ScalarSeries:
    """A page with no points that sends the reader on from the range's start."""
    return ScalarSeries(
        run_id=run_id,
        tag=tag,
        steps=np.empty(0, dtype=np.int64),
        wall_times=np.empty(0, dtype=np.float64),
        values=np.empty(0, dtype=np.float64),
        total=0,
        next_step=0 if min_step is None else min_step,
    )


def _cut(series: ScalarSeries, limit: int) -> ScalarSeries:
    """The first ``limit`` points of a whole series, as a page that sends the
    reader on to the rest (the series itself when it has no more)."""
    if len(series) <= limit:
        return series
    return ScalarSeries(
        run_id=series.run_id,
        tag=series.tag,
        steps=series.steps[:limit],
        wall_times=series.wall_times[:limit],
        values=series.values[:limit],
        total=limit,
        next_step=int(series.steps[limit]),
    )


def _mib(size: int) -> str:
    return f"{size / 2**20:,.1f} MiB"
