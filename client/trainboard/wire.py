"""Conversions between wire messages and domain types, for both sides of the gRPC edge.

Only this module, ``trainboard.transport`` and the server's servicer touch
``trainboard.v1`` messages. Messages coming *in* to the server are validated
here, field by field, and every error names the field (``scalars[2].steps[7]``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from trainboard.errors import InvalidArgument
from trainboard.graph import validate_graph
from trainboard.types import (
    GraphNode,
    Histogram,
    HistogramRecord,
    HistogramSeries,
    HistogramSummary,
    Run,
    ScalarColumns,
    ScalarSeries,
    StartedRun,
    Tag,
    WriteBatch,
    WriteResult,
)
from trainboard.v1 import trainboard_pb2 as pb
from trainboard.validation import (
    MAX_BUCKETS,
    MAX_STEP,
    MAX_TAGS_PER_BATCH,
    check_client_id,
    check_name,
    check_run_id,
    check_sequence,
    check_step,
    check_summary,
    check_tags_per_batch,
    check_wall_time,
)

# ------------------------------------------------------------------ runs and tags


def run_to_pb(run: Run) -> pb.Run:
    return pb.Run(
        id=run.id,
        name=run.name,
        experiment=run.experiment,
        params_json=json.dumps(dict(run.params), sort_keys=True),
        status=run.status,
        started_at=run.started_at,
        finished_at=run.finished_at or 0.0,
        updated_at=run.updated_at,
        tags=run.tags,
    )


def run_from_pb(msg: pb.Run) -> Run:
    return Run(
        id=msg.id,
        name=msg.name,
        experiment=msg.experiment,
        params=json.loads(msg.params_json) if msg.params_json else {},
        status=msg.status,
        started_at=msg.started_at,
        finished_at=msg.finished_at or None,
        updated_at=msg.updated_at,
        tags=tuple(msg.tags),
    )


def started_run_to_pb(started: StartedRun) -> pb.StartRunResponse:
    return pb.StartRunResponse(
        run=run_to_pb(started.run),
        resumed=started.resumed,
        accepts_rows=started.accepts_rows,
        last_steps=[
            pb.TagLastStep(tag=t.name, kind=t.kind, last_step=t.last_step)
            for t in started.last_steps
        ],
    )


def started_run_from_pb(msg: pb.StartRunResponse) -> StartedRun:
    return StartedRun(
        run=run_from_pb(msg.run),
        resumed=msg.resumed,
        last_steps=tuple(Tag(t.tag, t.kind, t.last_step) for t in msg.last_steps),
        accepts_rows=msg.accepts_rows,
    )


def tag_to_pb(tag: Tag) -> pb.Tag:
    return pb.Tag(name=tag.name, kind=tag.kind, last_step=tag.last_step)


def tag_from_pb(msg: pb.Tag) -> Tag:
    return Tag(name=msg.name, kind=msg.kind, last_step=msg.last_step)


# ------------------------------------------------------------------ histograms


def summary_to_pb(summary: HistogramSummary) -> pb.HistogramSummary:
    return pb.HistogramSummary(
        count=summary.count,
        min=summary.min,
        max=summary.max,
        sum=summary.sum,
        sum_squares=summary.sum_squares,
        nan_count=summary.nan_count,
        posinf_count=summary.posinf_count,
        neginf_count=summary.neginf_count,
        bucket_counts=summary.bucket_counts,
        bucket_edges=summary.edges,
        basis_values=summary.basis_values,
    )


def summary_from_pb(msg: pb.HistogramSummary, field: str = "summary") -> HistogramSummary:
    """A summary from the wire, checked for internal consistency."""
    if len(msg.bucket_counts) > MAX_BUCKETS:  # before copying a huge list
        raise InvalidArgument(
            f"{field}.bucket_counts has {len(msg.bucket_counts)} buckets; at most {MAX_BUCKETS}"
        )
    return check_summary(
        HistogramSummary(
            count=msg.count,
            min=msg.min,
            max=msg.max,
            sum=msg.sum,
            sum_squares=msg.sum_squares,
            nan_count=msg.nan_count,
            posinf_count=msg.posinf_count,
            neginf_count=msg.neginf_count,
            bucket_counts=tuple(msg.bucket_counts),
            edges=tuple(msg.bucket_edges),
            basis_values=tuple(msg.basis_values),
        ),
        field,
    )


def histogram_series_to_pb(series: HistogramSeries) -> pb.HistogramSeriesData:
    return pb.HistogramSeriesData(
        run_id=series.run_id,
        columns=pb.HistogramColumns(
            tag=series.tag,
            points=[
                pb.HistogramPoint(step=h.step, wall_time=h.wall_time, summary=summary_to_pb(h))
                for h in series
            ],
        ),
        total=series.total,
    )


def histogram_series_from_pb(msg: pb.HistogramSeriesData) -> HistogramSeries:
    return HistogramSeries(
        run_id=msg.run_id,
        tag=msg.columns.tag,
        items=tuple(
            Histogram.at(summary_from_pb(p.summary), p.step, p.wall_time)
            for p in msg.columns.points
        ),
        total=msg.total,
    )


# ------------------------------------------------------------------ scalars


_INT64 = np.dtype("<i8")
_FLOAT64 = np.dtype("<f8")


def _packed(steps: np.ndarray, wall_times: np.ndarray, values: np.ndarray) -> dict[str, bytes]:
    """The steps, wall_times and values fields: little-endian int64, float64, float64."""
    return {
        "steps": np.asarray(steps, dtype=_INT64).tobytes(),
        "wall_times": np.asarray(wall_times, dtype=_FLOAT64).tobytes(),
        "values": np.asarray(values, dtype=_FLOAT64).tobytes(),
    }


def columns_to_pb(
    tag: str, steps: np.ndarray, wall_times: np.ndarray, values: np.ndarray
) -> pb.ScalarColumns:
    """Packs three equal-length columns as little-endian arrays."""
    return pb.ScalarColumns(tag=tag, **_packed(steps, wall_times, values))


def _unpack(data: bytes, dtype: np.dtype[Any], field: str) -> np.ndarray:
    if len(data) % 8:
        raise InvalidArgument(
            f"{field} must hold 8-byte little-endian numbers, got {len(data)} bytes"
        )
    return np.frombuffer(data, dtype=dtype)


def columns_from_pb(
    msg: pb.ScalarColumns, field: str = "columns"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The three columns as (read-only) numpy arrays of equal length."""
    steps = _unpack(msg.steps, _INT64, f"{field}.steps")
    wall_times = _unpack(msg.wall_times, _FLOAT64, f"{field}.wall_times")
    values = _unpack(msg.values, _FLOAT64, f"{field}.values")
    if not len(steps) == len(wall_times) == len(values):
        raise InvalidArgument(
            f"{field}: steps, wall_times and values must have equal lengths, got "
            f"{len(steps)}, {len(wall_times)} and {len(values)}"
        )
    return steps, wall_times, values


def scalar_series_to_pb(series: ScalarSeries) -> pb.ScalarSeriesData:
    message = pb.ScalarSeriesData()
    scalar_series_into(message, series)
    return message


def scalar_series_into(message: pb.ScalarSeriesData, series: ScalarSeries) -> None:
    """Fills ``message`` (say ``response.series.add()``: no copy of a large message,
    as ``append`` would make) with ``series``."""
    message.run_id = series.run_id
    message.columns.tag = series.tag
    message.columns.steps = np.asarray(series.steps, dtype=_INT64).tobytes()
    message.columns.wall_times = np.asarray(series.wall_times, dtype=_FLOAT64).tobytes()
    message.columns.values = np.asarray(series.values, dtype=_FLOAT64).tobytes()
    message.total = series.total
    if series.next_step is not None:
        message.next_step = series.next_step


def scalar_series_from_pb(msg: pb.ScalarSeriesData) -> ScalarSeries:
    steps, wall_times, values = columns_from_pb(msg.columns)
    return ScalarSeries(
        run_id=msg.run_id,
        tag=msg.columns.tag,
        steps=steps.astype(np.int64),  # native, writable copies for the user
        wall_times=wall_times.astype(np.float64),
        values=values.astype(np.float64),
        total=msg.total,
        next_step=msg.next_step if msg.HasField("next_step") else None,
    )


def scalar_columns_from_pb(msg: pb.ScalarColumns, field: str) -> ScalarColumns:
    """Columns of a write batch, every field checked."""
    check_name(f"{field}.tag", msg.tag)
    steps, wall_times, values = columns_from_pb(msg, field)
    _check_steps_and_times(steps, wall_times, field)
    return ScalarColumns(tag=msg.tag, steps=steps, wall_times=wall_times, values=values)


def _check_steps_and_times(steps: np.ndarray, wall_times: np.ndarray, field: str) -> None:
    if len(steps) == 0:
        raise InvalidArgument(f"{field} has no points")
    bad = np.flatnonzero((steps < 0) | (steps > MAX_STEP))
    if bad.size:
        i = int(bad[0])
        raise InvalidArgument(f"{field}.steps[{i}] must be in [0, {MAX_STEP}], got {int(steps[i])}")
    bad = np.flatnonzero(~np.isfinite(wall_times) | (wall_times < 0))
    if bad.size:
        i = int(bad[0])
        raise InvalidArgument(
            f"{field}.wall_times[{i}] must be a finite time >= 0, got {wall_times[i]}"
        )


def rows_to_pb(
    tags: Sequence[str], steps: np.ndarray, wall_times: np.ndarray, values: np.ndarray
) -> pb.ScalarRows:
    """Packs tags logged together: ``values`` is an (n, len(tags)) matrix."""
    return pb.ScalarRows(tags=tags, **_packed(steps, wall_times, values))


def scalar_rows_from_pb(msg: pb.ScalarRows, field: str) -> list[ScalarColumns]:
    """The ScalarColumns of each tag of a ScalarRows, every field checked. The
    tags share (read-only) step and wall-time arrays."""
    tags = list(msg.tags)
    if not tags:
        raise InvalidArgument(f"{field}.tags must not be empty")
    for j, tag in enumerate(tags):
        check_name(f"{field}.tags[{j}]", tag)
    if len(set(tags)) != len(tags):
        seen: set[str] = set()
        for j, tag in enumerate(tags):
            if tag in seen:
                raise InvalidArgument(f"{field}.tags[{j}]: {tag!r} is given twice")
            seen.add(tag)
    steps = _unpack(msg.steps, _INT64, f"{field}.steps")
    wall_times = _unpack(msg.wall_times, _FLOAT64, f"{field}.wall_times")
    values = _unpack(msg.values, _FLOAT64, f"{field}.values")
    n, width = len(steps), len(tags)
    if len(wall_times) != n or len(values) != n * width:
        raise InvalidArgument(
            f"{field}: {n} steps need {n} wall_times and {n} x {width} values, got "
            f"{len(wall_times)} and {len(values)}"
        )
    _check_steps_and_times(steps, wall_times, field)
    # One transposing copy: each tag's values become one contiguous row.
    by_tag = values.reshape(n, width).T.copy()
    return [
        ScalarColumns(tag=tag, steps=steps, wall_times=wall_times, values=by_tag[j])
        for j, tag in enumerate(tags)
    ]


# ------------------------------------------------------------------ write batches


def write_batch_to_pb(batch: WriteBatch) -> pb.WriteBatchRequest:
    return pb.WriteBatchRequest(
        client_id=batch.client_id,
        sequence=batch.sequence,
        run_id=batch.run_id,
        scalars=[columns_to_pb(c.tag, c.steps, c.wall_times, c.values) for c in batch.scalars],
        histograms=_histogram_records_to_pb(batch.histograms),
    )


def gathered_batch_to_pb(
    client_id: str,
    sequence: int,
    run_id: int,
    *,
    columns: Iterable[tuple[str, np.ndarray, np.ndarray, np.ndarray]],
    rows: Iterable[tuple[tuple[str, ...], np.ndarray, np.ndarray, np.ndarray]] = (),
    histograms: Sequence[HistogramRecord] = (),
) -> pb.WriteBatchRequest:
    """The request for a batch the SDK gathered: per-tag ``columns`` (tag, steps,
    wall times, values), ``rows`` (tags, steps, wall times, a (rows, tags) value
    matrix: steps and wall times once for all the tags) and histogram records."""
    request = pb.WriteBatchRequest(client_id=client_id, sequence=sequence, run_id=run_id)
    for tags, steps, times, matrix in rows:
        request.rows.append(rows_to_pb(tags, steps, times, matrix))
    for tag, steps, times, values in columns:
        request.scalars.append(columns_to_pb(tag, steps, times, values))
    request.histograms.extend(_histogram_records_to_pb(histograms))
    return request


def _histogram_records_to_pb(records: Sequence[HistogramRecord]) -> list[pb.HistogramColumns]:
    by_tag: dict[str, list[pb.HistogramPoint]] = {}
    for r in records:
        by_tag.setdefault(r.tag, []).append(
            pb.HistogramPoint(step=r.step, wall_time=r.wall_time, summary=summary_to_pb(r.summary))
        )
    return [pb.HistogramColumns(tag=tag, points=points) for tag, points in by_tag.items()]


def _batch_tag_count(msg: pb.WriteBatchRequest) -> int:
    """The distinct tags a batch writes, scalar and histogram tags counted apart."""
    listed = len(msg.scalars) + sum(len(rows.tags) for rows in msg.rows) + len(msg.histograms)
    if listed <= MAX_TAGS_PER_BATCH:
        return listed  # an upper bound under the limit: no need to count exactly
    scalar_tags = {columns.tag for columns in msg.scalars}
    for rows in msg.rows:
        scalar_tags.update(rows.tags)
    return len(scalar_tags) + len({columns.tag for columns in msg.histograms})


def write_batch_from_pb(msg: pb.WriteBatchRequest) -> WriteBatch:
    """A write batch from the wire; every field validated."""
    check_client_id(msg.client_id)
    check_sequence(msg.sequence)
    check_run_id(msg.run_id)
    check_tags_per_batch(_batch_tag_count(msg))  # before any column is decoded
    scalars = tuple(
        [
            *(
                columns
                for i, rows in enumerate(msg.rows)
                for columns in scalar_rows_from_pb(rows, f"rows[{i}]")
            ),
            *(scalar_columns_from_pb(c, f"scalars[{i}]") for i, c in enumerate(msg.scalars)),
        ]
    )
    histograms: list[HistogramRecord] = []
    for i, cols in enumerate(msg.histograms):
        check_name(f"histograms[{i}].tag", cols.tag)
        if not cols.points:
            raise InvalidArgument(f"histograms[{i}] has no points")
        for j, point in enumerate(cols.points):
            field = f"histograms[{i}].points[{j}]"
            histograms.append(
                HistogramRecord(
                    tag=cols.tag,
                    step=check_step(point.step, f"{field}.step"),
                    wall_time=check_wall_time(point.wall_time, f"{field}.wall_time"),
                    summary=summary_from_pb(point.summary, f"{field}.summary"),
                )
            )
    if not scalars and not histograms:
        raise InvalidArgument("batch holds neither scalars nor histograms")
    return WriteBatch(
        client_id=msg.client_id,
        sequence=msg.sequence,
        run_id=msg.run_id,
        scalars=scalars,
        histograms=tuple(histograms),
    )


def write_result_to_pb(result: WriteResult) -> pb.WriteBatchResponse:
    return pb.WriteBatchResponse(
        scalar_points=result.scalar_points,
        histogram_points=result.histogram_points,
        duplicate=result.duplicate,
    )


def write_result_from_pb(msg: pb.WriteBatchResponse) -> WriteResult:
    return WriteResult(msg.scalar_points, msg.histogram_points, msg.duplicate)


# ------------------------------------------------------------------ graphs


def graph_to_pb(nodes: Sequence[GraphNode]) -> pb.Graph:
    return pb.Graph(
        nodes=[
            pb.GraphNode(
                name=n.name,
                op=n.op,
                inputs=n.inputs,
                shape=n.shape or (),
                has_shape=n.shape is not None,
                dtype=n.dtype,
                attributes=dict(n.attributes),
            )
            for n in nodes
        ]
    )


def graph_from_pb(msg: pb.Graph) -> list[GraphNode]:
    """A node list from the wire, validated like the SDK validates it."""
    return validate_graph(
        GraphNode(
            name=n.name,
            op=n.op,
            inputs=tuple(n.inputs),
            shape=tuple(n.shape) if n.has_shape else None,
            dtype=n.dtype,
            attributes=dict(n.attributes),
        )
        for n in msg.nodes
    )
