"""Write batches: validation, idempotency and the one transaction that stores them."""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
from sqlalchemy import Connection, Insert

from trainboard.errors import InvalidArgument, Unavailable
from trainboard.types import (
    HistogramRecord,
    ScalarColumns,
    WriteBatch,
    WriteResult,
)
from trainboard.validation import (
    MAX_STEP,
    check_client_id,
    check_run_id,
    check_sequence,
    check_step,
    check_summary,
    check_tag,
    check_tags_per_batch,
    check_wall_time,
)
from trainboard_server.storage.dialect import upsert
from trainboard_server.storage.histograms import write_histograms
from trainboard_server.storage.models import applied_batches
from trainboard_server.storage.runs import touch_run
from trainboard_server.storage.scalars import write_scalars


class DeadlineExceeded(Unavailable):
    """The caller stopped waiting (its deadline passed, or it cancelled) before the
    work committed: the transaction was rolled back and nothing was stored. A retry
    with the same (client id, sequence) stores the batch once."""


def abandon_if_unwanted(still_wanted: Callable[[], bool] | None) -> None:
    """Raises ``DeadlineExceeded`` when ``still_wanted`` says the caller is gone;
    called inside a transaction just before it commits, so that it rolls back."""
    if still_wanted is not None and not still_wanted():
        raise DeadlineExceeded("the request's deadline passed before it was committed")


def store_batch(
    connection: Connection,
    batch: WriteBatch,
    *,
    still_wanted: Callable[[], bool] | None = None,
) -> WriteResult:
    """Stores a validated batch in the caller's transaction (see ``SqlStore.write_batch``).
    ``still_wanted`` is asked before the work and again at its end, just before the
    caller commits; when it answers False, ``DeadlineExceeded`` rolls everything back."""
    abandon_if_unwanted(still_wanted)
    touch_run(connection, batch.run_id, latest_wall_time(batch))
    if not claim_sequence(connection, batch.client_id, batch.sequence):
        return WriteResult(scalar_points=0, histogram_points=0, duplicate=True)
    write_scalars(connection, batch.run_id, batch.scalars)
    write_histograms(connection, batch.run_id, batch.histograms)
    abandon_if_unwanted(still_wanted)
    return WriteResult(
        scalar_points=sum(len(c.steps) for c in batch.scalars),
        histogram_points=len(batch.histograms),
        duplicate=False,
    )


def claim_sequence(connection: Connection, client_id: str, sequence: int) -> bool:
    """Records ``sequence`` as the client's highest applied one; ``False`` (and no
    change) when it is not above the highest already applied: a replay.

    One upsert, so two transactions carrying the same batch cannot both pass: the
    second waits on the row lock of the first (PostgreSQL) or on the database lock
    (SQLite). Only the highest sequence is kept, so the table holds a row per client.
    """
    statement = _claim_statement(connection.dialect.name)
    claimed = connection.execute(
        statement, {"client_id": client_id, "high_sequence": sequence}
    ).first()
    return claimed is not None


@functools.cache  # one per dialect: statements are immutable
def _claim_statement(dialect: str) -> Insert:
    upserting = upsert(dialect, applied_batches, ("client_id",), where_greater="high_sequence")
    return upserting.returning(applied_batches.c.client_id)


def latest_wall_time(batch: WriteBatch) -> float | None:
    latest: float | None = None
    for column in batch.scalars:
        if len(column.wall_times):
            top = float(np.max(column.wall_times))
            latest = top if latest is None else max(latest, top)
    for record in batch.histograms:
        latest = record.wall_time if latest is None else max(latest, record.wall_time)
    return latest


def check_batch(batch: WriteBatch) -> WriteBatch:
    """The batch with its arrays as contiguous int64/float64, or ``InvalidArgument``
    (``TypeError`` for a wrong type) naming the first bad field."""
    if not isinstance(batch, WriteBatch):
        raise TypeError(f"batch must be a WriteBatch, got {type(batch).__name__}")
    client_id = check_client_id(batch.client_id)
    sequence = check_sequence(batch.sequence)
    scalars = tuple(
        _check_columns(f"scalars[{i}]", column) for i, column in enumerate(batch.scalars)
    )
    histograms = tuple(
        _check_record(f"histograms[{i}]", record) for i, record in enumerate(batch.histograms)
    )
    check_tags_per_batch(len({c.tag for c in scalars}) + len({r.tag for r in histograms}))
    return WriteBatch(
        client_id=client_id,
        sequence=sequence,
        run_id=check_run_id(batch.run_id),
        scalars=scalars,
        histograms=histograms,
    )


def _check_columns(field: str, column: ScalarColumns) -> ScalarColumns:
    tag = check_tag(column.tag)
    steps = np.asarray(column.steps)
    wall_times = np.asarray(column.wall_times)
    values = np.asarray(column.values)
    if not (steps.ndim == wall_times.ndim == values.ndim == 1):
        raise InvalidArgument(f"{field} ({tag!r}): steps, wall_times and values must be 1-D")
    if not len(steps) == len(wall_times) == len(values):
        raise InvalidArgument(
            f"{field} ({tag!r}): steps, wall_times and values differ in length "
            f"({len(steps)}, {len(wall_times)}, {len(values)})"
        )
    if len(steps) and steps.dtype.kind not in "iu":
        raise InvalidArgument(f"{field}.steps ({tag!r}) must be integers, got {steps.dtype}")
    if len(steps) and steps.dtype.kind == "u" and int(steps.max()) > MAX_STEP:
        raise InvalidArgument(f"{field}.steps ({tag!r}) must be <= {MAX_STEP}")
    steps = np.ascontiguousarray(steps, dtype=np.int64)
    if len(steps) and (int(steps.min()) < 0 or int(steps.max()) > MAX_STEP):
        raise InvalidArgument(f"{field}.steps ({tag!r}) must lie in [0, {MAX_STEP}]")
    try:
        wall_times = np.ascontiguousarray(wall_times, dtype=np.float64)
        values = np.ascontiguousarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"{field} ({tag!r}): values must be numbers: {exc}") from exc
    if len(wall_times) and not (
        bool(np.isfinite(wall_times).all()) and float(wall_times.min()) >= 0
    ):
        raise InvalidArgument(f"{field}.wall_times ({tag!r}) must be finite and >= 0")
    return ScalarColumns(tag=tag, steps=steps, wall_times=wall_times, values=values)


def _check_record(field: str, record: HistogramRecord) -> HistogramRecord:
    tag = check_tag(record.tag)
    step = check_step(record.step, f"{field}.step")
    wall_time = check_wall_time(record.wall_time, f"{field}.wall_time")
    checked = check_summary(record.summary, f"{field}.summary")
    return HistogramRecord(tag=tag, step=step, wall_time=wall_time, summary=checked)
