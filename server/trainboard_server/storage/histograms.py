"""Histogram summaries: one row per (series, step), replaced when re-logged."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from sqlalchemy import Connection, func, select

from trainboard.types import Histogram, HistogramRecord
from trainboard_server.downsample import sample_evenly
from trainboard_server.storage.dialect import in_groups, upsert
from trainboard_server.storage.models import histograms
from trainboard_server.storage.series import SeriesUpdate, lock_series, update_series

_COUNT = np.dtype("<u8")
_VALUE = np.dtype("<f8")


def write_histograms(
    connection: Connection, run_id: int, records: Iterable[HistogramRecord]
) -> None:
    """Stores validated histogram records of one batch, the last of a (tag, step) winning."""
    latest: dict[tuple[str, int], HistogramRecord] = {}
    for record in records:
        latest[(record.tag, record.step)] = record
    if not latest:
        return
    tags = sorted({tag for tag, _ in latest})
    states = lock_series(connection, run_id, "histogram", tags)
    # One statement may not touch a row twice (PostgreSQL refuses), hence the dict above.
    connection.execute(
        upsert(connection.dialect.name, histograms, ("series_id", "step")),
        [_row(states[record.tag].id, record) for record in latest.values()],
    )
    last_steps: dict[str, int] = {}
    for tag, step in latest:
        last_steps[tag] = max(step, last_steps.get(tag, -1))
    update_series(
        connection,
        [
            SeriesUpdate(
                id=state.id,
                last_step=max(state.last_step, last_steps[tag]),
                tail_seq=state.tail_seq,
                tail_count=state.tail_count,
            )
            for tag, state in states.items()
        ],
    )


def read_histogram_rows(
    connection: Connection, series_id: int, max_steps: int | None, min_step: int | None
) -> tuple[list[Histogram], int]:
    """The series' histograms from ``min_step`` on, at most ``max_steps`` of them
    sampled evenly with the last kept, and how many steps that range holds."""
    h = histograms.c
    in_range = [h.series_id == series_id]
    if min_step is not None:
        in_range.append(h.step >= min_step)
    total = connection.execute(
        select(func.count()).select_from(histograms).where(*in_range)
    ).scalar_one()
    columns = [
        h.step,
        h.wall_time,
        h.count,
        h.min,
        h.max,
        h.sum,
        h.sum_squares,
        h.nan_count,
        h.posinf_count,
        h.neginf_count,
        h.bucket_counts,
        h.bucket_edges,
        h.basis_values,
    ]
    if max_steps is None or total <= max_steps:
        rows: Sequence[Any] = connection.execute(
            select(*columns).where(*in_range).order_by(h.step)
        ).all()
        return [_histogram(row) for row in rows], total
    # Pick the steps first (an index-only scan), then fetch only those rows.
    steps = connection.execute(select(h.step).where(*in_range).order_by(h.step)).scalars().all()
    wanted = [steps[i] for i in sample_evenly(len(steps), max_steps).tolist()]
    picked: list[Histogram] = []
    for group in in_groups(wanted):
        statement = select(*columns).where(h.series_id == series_id, h.step.in_(group))
        picked.extend(_histogram(row) for row in connection.execute(statement))
    picked.sort(key=lambda item: item.step)
    return picked, len(steps)


#: Wire bytes of a histogram beside its packed arrays (step, wall time, counts,
#: min, max, sums and the framing of its fields).
HISTOGRAM_OVERHEAD_BYTES = 128


def stored_sizes(
    connection: Connection, series_ids: Sequence[int], min_step: int | None
) -> dict[int, tuple[int, int]]:
    """Per series, how many histograms it holds from ``min_step`` on and the wire
    bytes of the largest (bucket counts go out as varints of up to 10 bytes where
    they are stored in 8). Reads no summary, so a read can be sized before it is built."""
    h = histograms.c
    row_bytes = (
        func.length(h.bucket_counts) * 10 // 8
        + func.coalesce(func.length(h.bucket_edges), 0)
        + func.coalesce(func.length(h.basis_values), 0)
        + HISTOGRAM_OVERHEAD_BYTES
    )
    sizes = dict.fromkeys(series_ids, (0, 0))
    for group in in_groups(series_ids):
        statement = select(h.series_id, func.count(), func.max(row_bytes)).where(
            h.series_id.in_(list(group))
        )
        if min_step is not None:
            statement = statement.where(h.step >= min_step)
        for series_id, count, largest in connection.execute(statement.group_by(h.series_id)):
            sizes[series_id] = (int(count), int(largest or 0))
    return sizes


def _row(series_id: int, record: HistogramRecord) -> dict[str, object]:
    s = record.summary
    return {
        "series_id": series_id,
        "step": record.step,
        "wall_time": record.wall_time,
        "count": s.count,
        "min": s.min,
        "max": s.max,
        "sum": s.sum,
        "sum_squares": s.sum_squares,
        "nan_count": s.nan_count,
        "posinf_count": s.posinf_count,
        "neginf_count": s.neginf_count,
        "bucket_counts": np.asarray(s.bucket_counts, dtype=_COUNT).tobytes(),
        "bucket_edges": _packed(s.edges),
        "basis_values": _packed(s.basis_values),
    }


def _packed(values: tuple[float, ...]) -> bytes | None:
    return np.asarray(values, dtype=_VALUE).tobytes() if values else None


def _unpacked(blob: bytes | None) -> tuple[float, ...]:
    return tuple(np.frombuffer(blob, dtype=_VALUE).tolist()) if blob else ()


def _histogram(row: Any) -> Histogram:
    (step, wall_time, count, lo, hi, total, squares, nans, posinfs, neginfs, buckets) = row[:11]
    edges, basis = row[11:]
    return Histogram(
        count=count,
        min=lo,
        max=hi,
        sum=total,
        sum_squares=squares,
        nan_count=nans,
        posinf_count=posinfs,
        neginf_count=neginfs,
        bucket_counts=tuple(np.frombuffer(buckets, dtype=_COUNT).tolist()),
        edges=_unpacked(edges),
        basis_values=_unpacked(basis),
        step=step,
        wall_time=wall_time,
    )
