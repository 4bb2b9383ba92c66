"""The gRPC servicers: wire messages in, validated domain calls on a Store, wire out.

Domain errors become status codes in one place, ``_translate_errors``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import grpc

from trainboard import errors, wire
from trainboard.store import Store
from trainboard.v1 import trainboard_pb2 as pb
from trainboard.validation import (
    check_name,
    check_run_tags,
    check_step,
    check_wall_time,
    params_from_json,
)

log = logging.getLogger("trainboard.server")

_ERROR_TO_STATUS: list[tuple[type[Exception], grpc.StatusCode]] = [
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


def _check_ids_and_tags(run_ids: Any, tags: Any) -> tuple[list[int], list[str]]:
    if not run_ids:
        raise errors.InvalidArgument("run_ids must not be empty")
    if not tags:
        raise errors.InvalidArgument("tags must not be empty")
    if len(run_ids) * len(tags) > 100_000:
        raise errors.InvalidArgument("run_ids x tags asks for more than 100,000 series")
    ids = [wire.check_run_id(r, f"run_ids[{i}]") for i, r in enumerate(run_ids)]
    names = [check_name(f"tags[{i}]", t) for i, t in enumerate(tags)]
    return ids, names


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
        response = wire.started_run_to_pb(self._store.start_run(experiment, run, params, wall_time))
        response.accepts_rows = True  # WriteBatch reads ScalarRows (wire.write_batch_from_pb)
        return response

    @_translate_errors
    def WriteBatch(
        self, request: pb.WriteBatchRequest, context: grpc.ServicerContext
    ) -> pb.WriteBatchResponse:
        result = self._store.write_batch(wire.write_batch_from_pb(request))
        return pb.WriteBatchResponse(
            scalar_points=result.scalar_points,
            histogram_points=result.histogram_points,
            duplicate=result.duplicate,
        )

    @_translate_errors
    def FinishRun(
        self, request: pb.FinishRunRequest, context: grpc.ServicerContext
    ) -> pb.FinishRunResponse:
        self._store.finish_run(
            wire.check_run_id(request.run_id),
            wire.check_final_status(request.status),
            check_wall_time(request.wall_time),
        )
        return pb.FinishRunResponse()

    @_translate_errors
    def SetGraph(
        self, request: pb.SetGraphRequest, context: grpc.ServicerContext
    ) -> pb.SetGraphResponse:
        run_id = wire.check_run_id(request.run_id)
        nodes = wire.graph_from_pb(request.graph)
        self._store.set_graph(run_id, nodes)
        return pb.SetGraphResponse(node_count=len(nodes))

    @_translate_errors
    def DeleteRun(
        self, request: pb.DeleteRunRequest, context: grpc.ServicerContext
    ) -> pb.DeleteRunResponse:
        self._store.delete_run(wire.check_run_id(request.run_id))
        return pb.DeleteRunResponse()

    @_translate_errors
    def DeleteExperiment(
        self, request: pb.DeleteExperimentRequest, context: grpc.ServicerContext
    ) -> pb.DeleteExperimentResponse:
        deleted = self._store.delete_experiment(check_name("experiment", request.experiment))
        return pb.DeleteExperimentResponse(deleted_runs=deleted)

    @_translate_errors
    def RenameRun(
        self, request: pb.RenameRunRequest, context: grpc.ServicerContext
    ) -> pb.RenameRunResponse:
        run_id = wire.check_run_id(request.run_id)
        self._store.rename_run(run_id, check_name("new_name", request.new_name))
        return pb.RenameRunResponse()

    @_translate_errors
    def SetRunTags(
        self, request: pb.SetRunTagsRequest, context: grpc.ServicerContext
    ) -> pb.SetRunTagsResponse:
        run_id = wire.check_run_id(request.run_id)
        stored = self._store.set_run_tags(run_id, check_run_tags(request.tags))
        return pb.SetRunTagsResponse(tags=stored)

    @_translate_errors
    def Heartbeat(
        self, request: pb.HeartbeatRequest, context: grpc.ServicerContext
    ) -> pb.HeartbeatResponse:
        self._store.heartbeat(wire.check_run_id(request.run_id))
        return pb.HeartbeatResponse()


class ReadServicer:
    def __init__(self, store: Store, *, page_points: int = 1_000_000) -> None:
        self._store = store
        self._page_points = page_points

    @_translate_errors
    def ListExperiments(
        self, request: pb.ListExperimentsRequest, context: grpc.ServicerContext
    ) -> pb.ListExperimentsResponse:
        return pb.ListExperimentsResponse(names=self._store.list_experiments())

    @_translate_errors
    def ListRuns(
        self, request: pb.ListRunsRequest, context: grpc.ServicerContext
    ) -> pb.ListRunsResponse:
        experiment = check_name("experiment", request.experiment)
        return pb.ListRunsResponse(
            runs=[wire.run_to_pb(r) for r in self._store.list_runs(experiment)]
        )

    @_translate_errors
    def ListTags(
        self, request: pb.ListTagsRequest, context: grpc.ServicerContext
    ) -> pb.ListTagsResponse:
        run_id = wire.check_run_id(request.run_id)
        return pb.ListTagsResponse(tags=[wire.tag_to_pb(t) for t in self._store.list_tags(run_id)])

    @_translate_errors
    def ReadScalars(
        self, request: pb.ReadScalarsRequest, context: grpc.ServicerContext
    ) -> pb.ReadScalarsResponse:
        run_ids, tags = _check_ids_and_tags(request.run_ids, request.tags)
        min_step = _optional_step(request, "min_step")
        max_step = _optional_step(request, "max_step")
        if min_step is not None and max_step is not None and min_step > max_step:
            raise errors.InvalidArgument("min_step must not be above max_step")
        max_points = request.max_points or None
        # Full-resolution reads come in pages, so no answer outgrows a message.
        page = min(request.limit or self._page_points, self._page_points)
        response = pb.ReadScalarsResponse()
        for run_id in run_ids:
            for tag in tags:
                series = self._store.read_scalars(
                    run_id, tag, max_points, min_step, max_step, limit=page
                )
                if series is not None:
                    response.series.append(wire.scalar_series_to_pb(series))
        return response

    @_translate_errors
    def ReadHistograms(
        self, request: pb.ReadHistogramsRequest, context: grpc.ServicerContext
    ) -> pb.ReadHistogramsResponse:
        run_ids, tags = _check_ids_and_tags(request.run_ids, request.tags)
        min_step = _optional_step(request, "min_step")
        max_steps = request.max_steps or None
        response = pb.ReadHistogramsResponse()
        for run_id in run_ids:
            for tag in tags:
                series = self._store.read_histograms(run_id, tag, max_steps, min_step)
                if series is not None:
                    response.series.append(wire.histogram_series_to_pb(series))
        return response

    @_translate_errors
    def GetGraph(
        self, request: pb.GetGraphRequest, context: grpc.ServicerContext
    ) -> pb.GetGraphResponse:
        nodes = self._store.get_graph(wire.check_run_id(request.run_id))
        if nodes is None:
            return pb.GetGraphResponse(has_graph=False)
        return pb.GetGraphResponse(has_graph=True, graph=wire.graph_to_pb(nodes))
