"""Scalar series stored in chunks of packed arrays (docs/design.md).

Write: a batch's points per tag are first resolved (sorted by step, the last
occurrence of a step winning), so every chunk holds strictly increasing steps. A
series' newest chunk (its *tail*) takes new points while it holds fewer than
``CHUNK_POINTS``: they are merged into it, the new ones winning on equal steps,
which is what a separate later chunk would have meant. Otherwise, and for whatever
exceeds ``CHUNK_POINTS``, new chunks are added. So a series written in small in-order
batches ends up in full chunks, and re-logging steps (a resume from a checkpoint)
does not leave a trail of tiny chunks.

Read: the chunks overlapping the step range, in write order, are decoded and merged
with the later chunk winning (``downsample.resolve_last_write``), then downsampled
(``downsample.downsample_indices``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, and_, bindparam, func, select, update

from trainboard.types import ScalarColumns
from trainboard_server.downsample import resolve_last_write
from trainboard_server.storage.dialect import in_groups
from trainboard_server.storage.engine import BINARY_RESULTS_OPTION
from trainboard_server.storage.models import scalar_chunks, series
from trainboard_server.storage.series import SeriesUpdate, lock_series, update_series
from trainboard_server.storage.session import WriteConflict

# Points per chunk. Larger chunks mean fewer rows to read, but the tail chunk is
# rewritten whole on every append, so small batches pay about CHUNK_POINTS / (2 *
# batch size) times their own size. 8192 points are 128 KiB of values and wall times.
CHUNK_POINTS = 8192

Int64Array = npt.NDArray[np.int64]
Float64Array = npt.NDArray[np.float64]

_STEP = np.dtype("<i8")
_FLOAT = np.dtype("<f8")

# Summary columns before the blobs, in table order: reading them never walks a blob.
_CHUNK_COLUMNS = (
    scalar_chunks.c.min_step,
    scalar_chunks.c.max_step,
    scalar_chunks.c.count,
    scalar_chunks.c.steps_packed,
    scalar_chunks.c.values_packed,
    scalar_chunks.c.wall_times_packed,
)


@dataclass(frozen=True, slots=True)
class Points:
    """Columnar points with strictly increasing steps."""

    steps: Int64Array
    wall_times: Float64Array
    values: Float64Array

    def __len__(self) -> int:
        return int(self.steps.shape[0])

    def slice(self, start: int, stop: int) -> Points:
        return Points(self.steps[start:stop], self.wall_times[start:stop], self.values[start:stop])


def write_scalars(connection: Connection, run_id: int, columns: Iterable[ScalarColumns]) -> None:
    """Stores validated scalar columns of one batch into the run's series."""
    per_tag = resolve_batch(columns)
    if not per_tag:
        return
    states = lock_series(connection, run_id, "scalar", sorted(per_tag))
    tails = _load_tails(
        connection, [s.id for s in states.values() if 0 < s.tail_count < CHUNK_POINTS]
    )
    tail_rewrites: list[dict[str, object]] = []
    new_chunks: list[dict[str, object]] = []
    updates: list[SeriesUpdate] = []
    for tag, points in per_tag.items():
        state = states[tag]
        tail = tails.get(state.id)
        seq = state.tail_seq
        if tail is not None:
            pieces = split(merge_into_tail(tail, points))
            tail_rewrites.append(
                {**chunk_params(state.id, seq, pieces[0]), "old_count": state.tail_count}
            )
            added = pieces[1:]
        else:
            pieces = added = split(points)
        for piece in added:
            seq += 1
            new_chunks.append(chunk_params(state.id, seq, piece))
        newest = pieces[-1]
        updates.append(
            SeriesUpdate(
                id=state.id,
                last_step=max(state.last_step, int(points.steps[-1])),
                tail_seq=seq,
                tail_count=len(newest),
            )
        )
    _rewrite_tails(connection, tail_rewrites)
    if new_chunks:
        connection.execute(scalar_chunks.insert(), new_chunks)
    update_series(connection, updates)


def read_points(
    connection: Connection, series_id: int, min_step: int | None, max_step: int | None
) -> Points:
    """The series' points in ``[min_step, max_step]``, last writes resolved."""
    c = scalar_chunks.c
    statement = select(*_CHUNK_COLUMNS).where(c.series_id == series_id).order_by(c.seq)
    if min_step is not None:
        statement = statement.where(c.max_step >= min_step)
    if max_step is not None:
        statement = statement.where(c.min_step <= max_step)
    chunks: list[tuple[Int64Array, Float64Array, Float64Array]] = []
    for row in connection.execute(statement.execution_options(**{BINARY_RESULTS_OPTION: True})):
        points = _decode(row)
        if (min_step is not None and points.steps[0] < min_step) or (
            max_step is not None and points.steps[-1] > max_step
        ):
            steps = points.steps
            start = 0 if min_step is None else int(np.searchsorted(steps, min_step, "left"))
            stop = (
                len(steps) if max_step is None else int(np.searchsorted(steps, max_step, "right"))
            )
            points = points.slice(start, stop)
        chunks.append((points.steps, points.wall_times, points.values))
    steps, wall_times, values = resolve_last_write(chunks)
    return Points(steps, wall_times, values)


def page_end(
    connection: Connection, series_id: int, min_step: int | None, limit: int
) -> int | None:
    """The first step of the next page when a read from ``min_step`` stops after
    about ``limit`` points, or None when the rest fits. Reads only the chunks'
    summary columns: chunks are taken in order of their first step until they
    hold ``limit`` points; every point before the next chunk's first step is
    then decided by the chunks taken (later chunks start after it)."""
    c = scalar_chunks.c
    statement = (
        select(c.min_step, c.count).where(c.series_id == series_id).order_by(c.min_step, c.seq)
    )
    if min_step is not None:
        statement = statement.where(c.max_step >= min_step)
    held = 0
    for first, count in connection.execute(statement):
        if held >= limit and (min_step is None or first > min_step):
            return int(first)
        held += int(count)
    return None


def stored_counts(
    connection: Connection,
    series_ids: Sequence[int],
    min_step: int | None,
    max_step: int | None,
) -> dict[int, int]:
    """Per series, the points its chunks overlapping ``[min_step, max_step]`` hold:
    an upper bound of what a read of that range returns (a re-logged step counts once
    per write, a chunk partly in range counts whole). Reads only the chunks' summary
    columns, so a read can be sized before anything is decoded."""
    c = scalar_chunks.c
    counts = dict.fromkeys(series_ids, 0)
    for group in in_groups(series_ids):
        statement = select(c.series_id, func.sum(c["count"])).where(c.series_id.in_(list(group)))
        if min_step is not None:
            statement = statement.where(c.max_step >= min_step)
        if max_step is not None:
            statement = statement.where(c.min_step <= max_step)
        for series_id, total in connection.execute(statement.group_by(c.series_id)):
            counts[series_id] = int(total or 0)
    return counts


# ---------------------------------------------------------------- pure helpers


def resolve_batch(columns: Iterable[ScalarColumns]) -> dict[str, Points]:
    """A batch's points per tag, sorted by step, the last occurrence of a step
    winning (also across several columns of one tag)."""
    grouped: dict[str, list[ScalarColumns]] = {}
    for column in columns:
        if len(column.steps):
            grouped.setdefault(column.tag, []).append(column)
    resolved: dict[str, Points] = {}
    for tag, parts in grouped.items():
        steps = _concat([p.steps for p in parts], _STEP)
        wall_times = _concat([p.wall_times for p in parts], _FLOAT)
        values = _concat([p.values for p in parts], _FLOAT)
        if len(steps) > 1 and not bool(np.all(steps[1:] > steps[:-1])):
            order = np.argsort(steps, kind="stable")  # stable: equal steps keep batch order
            sorted_steps = steps[order]
            keep = np.empty(len(order), dtype=bool)
            np.not_equal(sorted_steps[1:], sorted_steps[:-1], out=keep[:-1])
            keep[-1] = True
            chosen = order[keep]
            steps, wall_times, values = sorted_steps[keep], wall_times[chosen], values[chosen]
        resolved[tag] = Points(steps, wall_times, values)
    return resolved


def merge_into_tail(tail: Points, new: Points) -> Points:
    """The tail chunk with ``new`` merged in, ``new`` winning on equal steps."""
    if int(new.steps[0]) > int(tail.steps[-1]):
        return Points(
            np.concatenate([tail.steps, new.steps]),
            np.concatenate([tail.wall_times, new.wall_times]),
            np.concatenate([tail.values, new.values]),
        )
    steps, wall_times, values = resolve_last_write(
        [(tail.steps, tail.wall_times, tail.values), (new.steps, new.wall_times, new.values)]
    )
    return Points(steps, wall_times, values)


def split(points: Points, size: int = CHUNK_POINTS) -> list[Points]:
    return [points.slice(start, start + size) for start in range(0, len(points), size)]


def chunk_params(series_id: int, seq: int, points: Points) -> dict[str, object]:
    """The column values of a chunk row holding ``points``."""
    values = points.values
    finite = np.isfinite(values)
    if not bool(finite.all()):
        values = values[finite]
    return {
        "series_id": series_id,
        "seq": seq,
        "min_step": int(points.steps[0]),
        "max_step": int(points.steps[-1]),
        "count": len(points),
        "min_value": float(values.min()) if len(values) else None,
        "max_value": float(values.max()) if len(values) else None,
        "steps_packed": encode_steps(points.steps),
        "values_packed": points.values.astype(_FLOAT, copy=False).tobytes(),
        "wall_times_packed": points.wall_times.astype(_FLOAT, copy=False).tobytes(),
    }


def encode_steps(steps: Int64Array) -> bytes:
    """Packed steps; empty when they are evenly spaced (the usual case), since
    first, last and count then give them back."""
    if len(steps) <= 2:
        return b""
    gaps = np.diff(steps)
    if bool(np.all(gaps == gaps[0])):
        return b""
    return steps.astype(_STEP, copy=False).tobytes()


def decode_steps(blob: bytes, min_step: int, max_step: int, count: int) -> Int64Array:
    if blob:
        return np.frombuffer(blob, dtype=_STEP)
    if count == 1:
        return np.array([min_step], dtype=np.int64)
    stride = (max_step - min_step) // (count - 1)
    return np.arange(count, dtype=np.int64) * stride + min_step


# ---------------------------------------------------------------- statements


_tail_of = series.alias("tail_of")
_SELECT_TAILS = (
    select(scalar_chunks.c.series_id, *_CHUNK_COLUMNS)
    .join(
        _tail_of,
        and_(
            _tail_of.c.id == scalar_chunks.c.series_id,
            _tail_of.c.tail_seq == scalar_chunks.c.seq,
        ),
    )
    .where(_tail_of.c.id.in_(bindparam("b_ids", expanding=True)))
    .execution_options(**{BINARY_RESULTS_OPTION: True})
)
# Guarded by the count the series row promised: should two writers ever both
# extend one tail, the second changes nothing, sees it and starts over.
_REWRITE_TAIL = (
    update(scalar_chunks)
    .where(
        scalar_chunks.c.series_id == bindparam("b_series_id"),
        scalar_chunks.c.seq == bindparam("b_seq"),
        scalar_chunks.c["count"] == bindparam("old_count"),
    )
    .values(
        min_step=bindparam("min_step"),
        max_step=bindparam("max_step"),
        count=bindparam("count"),
        min_value=bindparam("min_value"),
        max_value=bindparam("max_value"),
        steps_packed=bindparam("steps_packed"),
        values_packed=bindparam("values_packed"),
        wall_times_packed=bindparam("wall_times_packed"),
    )
)


def _load_tails(connection: Connection, series_ids: Sequence[int]) -> dict[int, Points]:
    """The tail chunks of the series about to be appended to, by series id."""
    tails: dict[int, Points] = {}
    for group in in_groups(series_ids):
        rows = connection.execute(_SELECT_TAILS, {"b_ids": list(group)})
        tails.update((row[0], _decode(row[1:])) for row in rows)
    if len(tails) != len(series_ids):
        raise WriteConflict("a tail chunk vanished")
    return tails


def _decode(row: Sequence[Any]) -> Points:
    # Unpacked by position: a Row is a tuple, so row.count would be tuple.count.
    first, last, count, steps, values, wall_times = row
    return Points(
        decode_steps(steps, first, last, count),
        np.frombuffer(wall_times, dtype=_FLOAT),
        np.frombuffer(values, dtype=_FLOAT),
    )


def _rewrite_tails(connection: Connection, rewrites: Sequence[dict[str, object]]) -> None:
    if not rewrites:
        return
    params = [{**r, "b_series_id": r["series_id"], "b_seq": r["seq"]} for r in rewrites]
    if connection.dialect.supports_sane_multi_rowcount:
        changed = connection.execute(_REWRITE_TAIL, params).rowcount
    else:
        changed = sum(connection.execute(_REWRITE_TAIL, p).rowcount for p in params)
    if changed != len(rewrites):
        raise WriteConflict("a tail chunk changed under this writer")


def _concat(arrays: Sequence[np.ndarray], dtype: np.dtype[np.generic]) -> np.ndarray:
    if len(arrays) == 1:
        return np.asarray(arrays[0], dtype=dtype)
    return np.concatenate([np.asarray(a, dtype=dtype) for a in arrays])
