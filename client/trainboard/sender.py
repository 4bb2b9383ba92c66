"""The SDK's background sender: batches queued records and delivers them.

``Client`` (``trainboard.client``) validates and enqueues records; the one
``Sender`` thread per client turns them into columnar write batches and sends
them, or spools them while the server is unreachable (``trainboard.spool``).
"""

from __future__ import annotations

import functools
import itertools
import logging
import operator
import random
import shlex
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Final

import numpy as np

from trainboard import errors
from trainboard.spool import HEADER as HEADER_RECORD
from trainboard.spool import SpoolWriter, read_records, send_record, spool_path
from trainboard.transport import RemoteStore
from trainboard.types import GraphNode, HistogramRecord, Run, StartedRun
from trainboard.v1 import trainboard_pb2 as pb
from trainboard.validation import MAX_TAGS_PER_BATCH
from trainboard.wire import graph_to_pb

log = logging.getLogger("trainboard")

# Record kinds on the queue (small ints: cheaper to build and compare than classes).
SCALAR: Final = 0
SCALARS: Final = 1
HISTOGRAM: Final = 2
GRAPH: Final = 3
FLUSH: Final = 4
CLOSE: Final = 5

# A histogram weighs this many points when a batch is sized.
_HISTOGRAM_WEIGHT = 80
# Seconds a heartbeat may take: it is skipped, not retried, when the server is slow.
_HEARTBEAT_TIMEOUT = 5.0


class ByteBudget:
    """Bounds the memory held by histogram snapshots waiting to be summarised:
    ``take`` waits while the budget is spent (the sender summarises in
    milliseconds, so the wait is short), ``give`` returns bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._cond = threading.Condition()

    def take(self, nbytes: int, alive: Callable[[], bool], wake: threading.Event) -> None:
        with self._cond:
            # One snapshot larger than the whole budget still goes, alone.
            while self.used and self.used + nbytes > self.limit and alive():
                wake.set()  # the sender may be asleep: it frees the budget
                self._cond.wait(0.05)
            self.used += nbytes

    @property
    def pressed(self) -> bool:
        """True once a quarter of the budget is held: time to wake the sender."""
        return self.used * 4 >= self.limit

    @property
    def half_used(self) -> bool:
        return self.used * 2 >= self.limit

    def give(self, nbytes: int) -> None:
        with self._cond:
            self.used -= nbytes
            self._cond.notify_all()


class Marker:
    """A flush or close request on the queue; the sender sets ``done`` when every
    record queued before it has been acknowledged (or given up on)."""

    __slots__ = ("done", "ok", "status")

    def __init__(self, status: str = "") -> None:
        self.done = threading.Event()
        self.ok = True
        self.status = status


_FIRST = operator.itemgetter(0)
_SECOND = operator.itemgetter(1)
_THIRD = operator.itemgetter(2)
_FOURTH = operator.itemgetter(3)
_FIFTH = operator.itemgetter(4)
# Records the sender takes off the queue at a time (a bound on its list).
_CHUNK = 8192


class _Batch:
    """Records being gathered into one WriteBatch, columnar.

    A run of ``log_scalars`` records with the same tags (the common case: one
    dict per training step) becomes a *group*: its values one (rows, tags)
    matrix, its steps and wall times one array each, built by C loops (no
    Python work per point, and none per record beyond a few C calls). Single
    ``log_scalar`` points go to per-tag lists.

    ``segments`` keeps, per tag, every column segment in the order it was
    logged, so a batch can always be sent as per-tag ScalarColumns; when the
    server accepts ScalarRows and no tag was logged both ways in the batch,
    the groups travel as rows instead (steps and wall times once per group).
    """

    __slots__ = (
        "_group_tags",
        "_single_tags",
        "_singles",
        "groups",
        "histogram_tags",
        "histograms",
        "next_steps",
        "points",
        "scalar_tags",
        "segments",
    )

    def __init__(self, next_steps: dict[str, int]) -> None:
        # The sender's per-tag next step, shared and updated as points arrive.
        self.next_steps = next_steps
        self.segments: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
        self.groups: list[tuple[tuple[str, ...], np.ndarray, np.ndarray, np.ndarray]] = []
        self._group_tags: set[str] = set()
        self._singles: dict[str, tuple[list[int], list[float], list[float]]] = {}
        self._single_tags: set[str] = set()
        self.scalar_tags: set[str] = set()  # every scalar tag in the batch
        self.histograms: list[HistogramRecord] = []
        self.histogram_tags: set[str] = set()
        self.points = 0

    def add_rows(self, records: list[tuple[Any, ...]]) -> None:
        """``log_scalars`` records ``(SCALARS, tags, values, step, wall_time)``, in
        order; the client hands the same tags tuple for the same tags."""
        self._close_singles()
        tag_rows = list(map(_SECOND, records))
        if tag_rows.count(tag_rows[0]) == len(tag_rows):  # one group: the common case
            self._add_group(tag_rows[0], records)
            return
        start = 0
        for tags, run in itertools.groupby(tag_rows):
            end = start + sum(1 for _ in run)
            self._add_group(tags, records[start:end])
            start = end

    def _add_group(self, tags: tuple[str, ...], records: list[tuple[Any, ...]]) -> None:
        n, width = len(records), len(tags)
        values = itertools.chain.from_iterable(map(_THIRD, records))
        matrix = np.fromiter(values, dtype=np.float64, count=n * width).reshape(n, width)
        times = np.fromiter(map(_FIFTH, records), dtype=np.float64, count=n)
        step_list = list(map(_FOURTH, records))
        next_steps = self.next_steps
        if None in step_list:
            # Without a step, a row continues after every one of its tags (and after
            # the rows before it).
            following = max([next_steps.get(tag, 0) for tag in tags])
            for i, step in enumerate(step_list):
                if step is None:
                    step_list[i] = step = following
                if step >= following:
                    following = step + 1
        else:
            following = max(step_list) + 1
        steps = np.array(step_list, dtype=np.int64)
        self.groups.append((tags, steps, times, matrix))
        segments = self.segments
        for column, tag in enumerate(tags):
            segments.setdefault(tag, []).append((steps, times, matrix[:, column]))
            if next_steps.get(tag, 0) < following:
                next_steps[tag] = following
        self._group_tags.update(tags)
        self.scalar_tags.update(tags)
        self.points += n * width

    def add_scalar(self, tag: str, value: float, step: int | None, wall_time: float) -> None:
        """One ``log_scalar`` call."""
        next_steps = self.next_steps
        if step is None:
            step = next_steps.get(tag, 0)
        cols = self._singles.get(tag)
        if cols is None:
            cols = self._singles[tag] = ([], [], [])
            self.scalar_tags.add(tag)
        cols[0].append(step)
        cols[1].append(wall_time)
        cols[2].append(value)
        if next_steps.get(tag, 0) <= step:
            next_steps[tag] = step + 1
        self.points += 1

    def full_of_histogram_tags(self, tag: str) -> bool:
        """True when ``tag`` would be one histogram tag too many for the batch."""
        tags = self.histogram_tags
        return len(tags) >= MAX_TAGS_PER_BATCH and tag not in tags

    def full_of_tags(self, tag: str) -> bool:
        """True when ``tag`` would be one scalar tag too many for the batch."""
        return len(self.scalar_tags) >= MAX_TAGS_PER_BATCH and tag not in self.scalar_tags

    def _close_singles(self) -> None:
        if not self._singles:
            return
        for tag, (steps, times, values) in self._singles.items():
            self.segments.setdefault(tag, []).append(
                (np.array(steps, dtype=np.int64), np.array(times), np.array(values))
            )
        self._single_tags.update(self._singles)
        self._singles.clear()

    def to_pb(
        self, client_id: str, sequence: int, run_id: int, *, rows: bool = False
    ) -> pb.WriteBatchRequest:
        """The batch as a request; with ``rows``, groups travel as ScalarRows."""
        from trainboard.wire import columns_to_pb, rows_to_pb, summary_to_pb

        self._close_singles()
        request = pb.WriteBatchRequest(client_id=client_id, sequence=sequence, run_id=run_id)
        columns = self.segments
        if rows and self.groups and self._single_tags.isdisjoint(self._group_tags):
            for tags, steps, times, matrix in _merged_groups(self.groups):
                request.rows.append(rows_to_pb(tags, steps, times, matrix))
            columns = {tag: columns[tag] for tag in self._single_tags}
        for tag, parts in columns.items():
            if len(parts) == 1:
                steps, times, values = parts[0]
            else:
                columns_of = zip(*parts, strict=True)
                steps, times, values = (np.concatenate(column) for column in columns_of)
            request.scalars.append(columns_to_pb(tag, steps, times, values))
        by_tag: dict[str, list[pb.HistogramPoint]] = {}
        for record in self.histograms:
            by_tag.setdefault(record.tag, []).append(
                pb.HistogramPoint(
                    step=record.step,
                    wall_time=record.wall_time,
                    summary=summary_to_pb(record.summary),
                )
            )
        for tag, points in by_tag.items():
            request.histograms.append(pb.HistogramColumns(tag=tag, points=points))
        return request


def _narrow(rows: list[tuple[Any, ...]]) -> Iterable[list[tuple[Any, ...]]]:
    """``log_scalars`` rows in lists of rows with at most ``MAX_TAGS_PER_BATCH``
    tags each: as they are, unless a row is wider (then one list per slice)."""
    if all(len(row[1]) <= MAX_TAGS_PER_BATCH for row in rows):
        yield rows
        return
    for kind, tags, values, step, wall_time in rows:
        for start in range(0, len(tags), MAX_TAGS_PER_BATCH):
            end = start + MAX_TAGS_PER_BATCH
            yield [(kind, tags[start:end], values[start:end], step, wall_time)]


def _merged_groups(
    groups: list[tuple[tuple[str, ...], np.ndarray, np.ndarray, np.ndarray]],
) -> Iterable[tuple[tuple[str, ...], np.ndarray, np.ndarray, np.ndarray]]:
    """Consecutive groups with the same tags, concatenated."""
    for tags, run in itertools.groupby(groups, key=_FIRST):
        parts = list(run)
        if len(parts) == 1:
            yield parts[0]
        else:
            _, steps, times, matrices = zip(*parts, strict=True)
            yield tags, np.concatenate(steps), np.concatenate(times), np.concatenate(matrices)


# What the server says when it will never take a record: retrying cannot help, so
# the record is reported (once per cause) and dropped. Everything else it answers
# (unavailable, a deadline, an internal error) is retried, then spooled.
_FINAL = (
    errors.InvalidArgument,
    errors.NotFound,
    errors.PermissionDenied,
    errors.Unauthenticated,
    errors.ResourceExhausted,
)
# The sender waits for a call in slices this long, so that it notices a filling
# queue, close() or a stalled server while the call is pending.
_SLICE = 0.02
# Seconds a call may keep the sender waiting while the queue is half full, before
# the sender spools (a healthy server answers a batch well within it).
_PRESSURE_GRACE = 0.25


class _Spill(Exception):
    """Raised inside the sender when a record must go to the spool instead."""


class _Call:
    """One blocking store call, run on a thread of its own so that the sender
    never waits on the network longer than a slice: it polls ``done`` and goes
    on with its queue meanwhile. A call left behind (the sender spooled its
    record) finishes on its own; every call is idempotent, so a late success
    costs nothing."""

    __slots__ = ("_done", "_error", "_result", "started")

    def __init__(self, rpc: Callable[[], Any], on_done: Callable[[], None]) -> None:
        self.started = time.monotonic()
        self._done = threading.Event()
        self._result: Any = None
        self._error: BaseException | None = None

        def run() -> None:
            try:
                self._result = rpc()
            except BaseException as exc:  # handed to the sender by outcome()
                self._error = exc
            finally:
                self._done.set()
                on_done()

        threading.Thread(target=run, name="trainboard-call", daemon=True).start()

    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float) -> bool:
        return self._done.wait(timeout)

    def outcome(self) -> Any:
        """The call's result, or its exception raised (call when done)."""
        if self._error is not None:
            raise self._error
        return self._result


class Sender(threading.Thread):
    """The one background thread: starts the run, turns queued records into
    batches and sends them in order, one in flight while the next is built.

    It never blocks on the network: every call runs on a thread of its own and
    the sender waits for it in short slices. A call that fails for any reason
    other than a final refusal (bad input, unknown run, no permission, a limit)
    is retried with the same idempotency key (capped exponential backoff with
    jitter). When the server has not answered for ``spill_after`` seconds (down,
    stalled or failing), when the queue fills up meanwhile, or when close() gives
    up, the sender goes *offline*: every batch goes to the run's spool file
    instead (``trainboard.spool``), so the trainer is neither held nor made to
    hold the data in memory. While offline it sends the spool back a record at a
    time, in the background; once all of it is stored it goes back online.

    While online with nothing to send for ``heartbeat_interval`` seconds, it
    sends a heartbeat, so that the server does not list an idle run as crashed.
    """

    def __init__(
        self,
        *,
        queue: deque[tuple[Any, ...]],
        wake: threading.Event,
        store: RemoteStore,
        experiment: str,
        run: str,
        params: Mapping[str, Any] | None,
        flush_interval: float,
        max_batch_points: int,
        max_queue: int,
        spool_dir: Path,
        spill_after: float,
        budget: ByteBudget,
        heartbeat_interval: float = 30.0,
        resume: bool = False,
    ) -> None:
        super().__init__(name=f"trainboard-sender-{run}", daemon=True)
        self._budget = budget
        self._queue = queue
        self._wake = wake
        self._store = store
        self._experiment = experiment
        self._run = run
        self._params = params
        self._resume = resume
        self._flush_interval = flush_interval
        self._max_batch_points = max_batch_points
        self._max_queue = max_queue
        self._spill_after = spill_after
        self._heartbeat_interval = heartbeat_interval
        self._last_contact = time.monotonic()  # of the last call the server answered
        self._client_id = uuid.uuid4().hex
        self._rows = False  # whether the server takes ScalarRows (StartRun says)
        self._sequence = 0
        self._next_scalar_step: dict[str, int] = {}
        self._next_histogram_step: dict[str, int] = {}
        self._abandoned = threading.Event()
        self._unavailable_reported = False
        self._refusals_reported: set[tuple[str, str]] = set()
        self._outage_since: float | None = None
        self._inflight: tuple[pb.WriteBatchRequest, _Call] | None = None
        self._heartbeat: _Call | None = None
        self._spool: SpoolWriter | None = None
        self._spool_file = spool_path(spool_dir, experiment, run, self._client_id)
        self._next_probe = 0.0
        self._probe_delay = 0.05
        self._probe_call: _Call | None = None
        self._probe_end: int | None = None  # spool offset the pending probe call reaches
        self._replayed = 0  # spool offset up to which the server has the records
        self._waiting: list[Marker] = []  # flush/close markers waiting for the spool
        self._failures_told = 0  # failed_batches when the last flush was answered
        self._closing: Marker | None = None
        self.started = threading.Event()
        self.run_info: Run | None = None
        self.resumed = False
        self.start_error: BaseException | None = None
        self.failed_batches = 0

    @property
    def spool_path(self) -> Path | None:
        """The spool file while there is one (offline, or left at close)."""
        return self._spool_file if self._spool_file.exists() else None

    def unreachable_for(self) -> float:
        """Seconds since the server stopped answering (0 while it answers): since
        a call failed and nothing succeeded after it, or since a call that is
        still pending was sent, once it has waited ``spill_after`` seconds."""
        now = time.monotonic()
        since = self._outage_since
        inflight = self._inflight
        if inflight is not None and now - inflight[1].started >= self._spill_after:
            started = inflight[1].started
            since = started if since is None else min(since, started)
        return 0.0 if since is None else now - since

    def abandon(self) -> None:
        """Stop waiting for the server: spool what is left and end."""
        self._abandoned.set()
        self._wake.set()

    # ------------------------------------------------------------------ thread body

    def run(self) -> None:
        try:
            self._start_run()
            while True:
                self._wake.wait(self._flush_interval if self._spool is None else _SLICE)
                self._wake.clear()
                if self._spool is not None:
                    self._probe()
                if self._drain() or self._abandoned.is_set():
                    return
                self._heartbeat_if_idle()
        finally:
            if self._spool is not None:
                self._spool.close()
                log.warning(
                    "trainboard: the server at %s did not take all of run %r; the rest is in "
                    "%s (send it with: trainboard sync %s --server %s)",
                    self._store.address,
                    self._run,
                    self._spool_file,
                    shlex.quote(str(self._spool_file)),
                    shlex.quote(str(self._store.address)),
                )
            self._release_waiters()
            self._store.close()

    def _start_rpc(self) -> Callable[[], StartedRun]:
        return lambda: self._store.start_run(
            self._experiment,
            self._run,
            self._params,
            time.time(),
            resume=self._resume,
            client_id=self._client_id,
        )

    def _start_run(self) -> None:
        try:
            started = self._deliver(self._start_rpc())
        except _Spill:
            self._go_offline()
            return
        except errors.TrainboardError as exc:
            self._refused_run(exc)
            return
        self._on_started(started)

    def _refused_run(self, exc: BaseException) -> None:
        self.start_error = self.start_error or exc
        self.started.set()
        log.warning("trainboard: run %r could not be started: %s", self._run, exc)

    def _on_started(self, started: StartedRun) -> None:
        self.run_info = started.run
        self.resumed = started.resumed
        self._rows = started.accepts_rows
        for tag in started.last_steps:
            steps = self._next_scalar_step if tag.kind == "scalar" else self._next_histogram_step
            steps[tag.name] = max(steps.get(tag.name, 0), tag.last_step + 1)
        self.started.set()

    def _drain(self) -> bool:
        """Sends (or spools) what is queued; True once the run is closed."""
        queue = self._queue
        popleft = queue.popleft
        batch = _Batch(self._next_scalar_step)
        limit = self._max_batch_points
        while queue:
            records = [popleft() for _ in range(min(len(queue), _CHUNK))]
            for kind, run in itertools.groupby(records, key=_FIRST):
                if kind == SCALARS:
                    for rows in _narrow(list(run)):
                        batch = self._add_rows(batch, rows)
                    continue
                for record in run:
                    if kind == SCALAR:
                        if batch.full_of_tags(record[1]):
                            self._send(batch)
                            batch = _Batch(self._next_scalar_step)
                        batch.add_scalar(record[1], record[2], record[3], record[4])
                    elif kind == HISTOGRAM:
                        if batch.full_of_histogram_tags(record[1]):
                            self._send(batch)
                            batch = _Batch(self._next_scalar_step)
                        self._add_histogram(batch, record)
                    elif kind == GRAPH:
                        self._send(batch)
                        batch = _Batch(self._next_scalar_step)
                        self._settle()
                        self._send_graph(record[1])
                    else:  # FLUSH or CLOSE
                        marker: Marker = record[1]
                        self._send(batch)
                        batch = _Batch(self._next_scalar_step)
                        self._settle()
                        if kind == CLOSE:
                            self._finish(marker.status)
                            self._closing = marker
                        self._waiting.append(marker)
                        if self._spool is not None:
                            self._probe(now=True)
                        else:
                            self._release_markers()
                    if batch.points >= limit:
                        self._send(batch)
                        batch = _Batch(self._next_scalar_step)
        self._send(batch)
        self._settle()
        return self._closing is not None and self._closing.done.is_set()

    def _add_rows(self, batch: _Batch, rows: list[tuple[Any, ...]]) -> _Batch:
        """Adds ``log_scalars`` rows, sending full batches on the way (a batch
        stays near ``max_batch_points`` and under ``MAX_TAGS_PER_BATCH`` tags);
        returns the batch being gathered."""
        limit = self._max_batch_points
        width = max(len(rows[0][1]), len(rows[-1][1]))  # of their tags
        tags = batch.scalar_tags
        if (
            batch.points
            and len(tags) + width > MAX_TAGS_PER_BATCH
            and not tags.issuperset(rows[0][1])
        ):
            self._send(batch)
            batch = _Batch(self._next_scalar_step)
        start = 0
        while start < len(rows):
            # Rows a batch has room for, so that a batch stays near the limit.
            room = max(1, (limit - batch.points) // width)
            batch.add_rows(rows[start : start + room])
            start += room
            if batch.points >= limit:
                self._send(batch)
                batch = _Batch(self._next_scalar_step)
        return batch

    def _add_histogram(self, batch: _Batch, record: tuple[Any, ...]) -> None:
        _, tag, snap, step, t, buckets = record
        if step is None:
            step = self._next_histogram_step.get(tag, 0)
        if self._next_histogram_step.get(tag, 0) <= step:
            self._next_histogram_step[tag] = step + 1
        nbytes = snap.nbytes
        try:
            summary = snap.summarize(buckets)
        except Exception as exc:  # a broken tensor must not stop the sender
            log.warning("trainboard: histogram %r at step %d was not logged: %s", tag, step, exc)
            return
        finally:
            self._budget.give(nbytes)
        batch.histograms.append(HistogramRecord(tag, step, t, summary))
        batch.histogram_tags.add(tag)
        batch.points += _HISTOGRAM_WEIGHT

    # ------------------------------------------------------------------ sending

    def _send(self, batch: _Batch) -> None:
        """Sends ``batch`` once the batch before it is acknowledged (one in
        flight, never two: the server treats a sequence number below a stored
        one as a replay), or spools it while offline."""
        if not batch.points:
            return
        if self.start_error is not None:  # the server refused the run: nothing can be stored
            self.failed_batches += 1
            return
        self._sequence += 1
        run_id = self.run_info.id if self.run_info is not None else 0
        request = batch.to_pb(self._client_id, self._sequence, run_id, rows=self._rows)
        self._settle()
        if self._spool is not None:
            self._spool.append_batch(request)
        else:
            self._inflight = (request, self._call(lambda: self._store.write_batch_pb(request)))

    def _settle(self) -> None:
        """Waits for the batch in flight; retries it while the server fails, and
        spools it when the server stays silent or the queue fills meanwhile."""
        if self._inflight is None:
            return
        request, call = self._inflight
        try:
            try:
                self._await(call)
                self._answered()
            except _FINAL:
                raise
            except errors.TrainboardError as exc:
                self._note_outage(exc)
                self._deliver(lambda: self._store.write_batch_pb(request))
        except _Spill:
            self._go_offline()
            assert self._spool is not None
            self._spool.append_batch(request)
        except _FINAL as exc:
            self.failed_batches += 1
            self._report_refusal("a batch", exc)
        finally:
            self._inflight = None

    def _send_graph(self, nodes: list[GraphNode]) -> None:
        if self._spool is None and self.run_info is not None:
            run_id = self.run_info.id
            try:
                self._deliver(lambda: self._store.set_graph(run_id, nodes))
                return
            except _Spill:
                self._go_offline()
            except _FINAL as exc:
                self.failed_batches += 1
                self._report_refusal("the graph", exc)
                return
        if self._spool is not None:
            self._spool.append_graph(graph_to_pb(nodes))

    def _finish(self, status: str) -> None:
        wall_time = time.time()
        if self._spool is None and self.run_info is not None:
            run_id = self.run_info.id
            try:
                self._deliver(lambda: self._store.finish_run(run_id, status, wall_time))
                return
            except _Spill:
                self._go_offline()
            except _FINAL as exc:
                self._report_refusal("the run's status", exc)
                return
        if self._spool is not None:
            self._spool.append_finish(status, wall_time)

    def _call(self, rpc: Callable[[], Any]) -> _Call:
        return _Call(rpc, self._wake.set)

    def _await(self, call: _Call) -> Any:
        """The call's result (or its error raised); ``_Spill`` when the sender
        must stop waiting for it (see ``_must_spill``)."""
        while not call.wait(_SLICE):
            if self._must_spill(pending_since=call.started):
                self._note_outage(None, since=call.started)
                raise _Spill
        return call.outcome()

    def _deliver(self, rpc: Callable[[], Any]) -> Any:
        """Runs ``rpc`` until the server answers and returns its result. A final
        refusal (``_FINAL``) is raised; ``_Spill`` when the server stayed silent or
        failing for ``spill_after`` seconds, the queue is filling up, or close()
        gave up: the caller spools."""
        delay = 0.05
        while True:
            if self._must_spill():
                raise _Spill
            try:
                result = self._await(self._call(rpc))
            except _FINAL:
                raise
            except errors.TrainboardError as exc:
                self._note_outage(exc)
                delay = self._backoff(delay)
                continue
            self._answered()
            return result

    def _answered(self) -> None:
        self._outage_since = None
        self._last_contact = time.monotonic()

    def _report_refusal(self, what: str, exc: BaseException) -> None:
        """Warns once per cause (the same error on every batch is one warning)."""
        cause = (type(exc).__name__, str(exc))
        if cause in self._refusals_reported:
            return
        self._refusals_reported.add(cause)
        log.warning(
            "trainboard: the server refused %s of run %r (not retried): %s", what, self._run, exc
        )

    def _heartbeat_if_idle(self) -> None:
        """Tells the server the run is alive when nothing else did for a while.
        One try, not waited for: a heartbeat that fails is skipped, the next one
        comes an interval later (a real outage shows in the batches anyway)."""
        run = self.run_info
        if (
            run is None
            or self._spool is not None
            or self._closing is not None
            or time.monotonic() - self._last_contact < self._heartbeat_interval
            or (self._heartbeat is not None and not self._heartbeat.done())
        ):
            return
        self._last_contact = time.monotonic()
        timeout = min(self._store.timeout, _HEARTBEAT_TIMEOUT)

        def beat() -> None:
            try:
                self._store.heartbeat(run.id, timeout=timeout)
            except errors.TrainboardError as exc:
                log.debug("trainboard: the heartbeat of run %r failed: %s", self._run, exc)

        self._heartbeat = _Call(beat, lambda: None)

    def _note_outage(self, exc: BaseException | None, since: float | None = None) -> None:
        if self._outage_since is None:
            self._outage_since = time.monotonic() if since is None else since
        if not self._unavailable_reported:
            self._unavailable_reported = True
            reason = exc if exc is not None else "no answer"
            log.warning("trainboard: server unavailable, retrying in the background: %s", reason)

    def _must_spill(self, pending_since: float | None = None) -> bool:
        """True when records must go to the spool: close() gave up; the server has
        failed or kept a call waiting for ``spill_after`` seconds; or the queue (or
        the histogram snapshots) are half full while the server fails or keeps a
        call waiting: then the trainer would soon wait for room."""
        if self._abandoned.is_set():
            return True
        now = time.monotonic()
        waited = max(now - (self._outage_since or now), now - (pending_since or now))
        if waited >= self._spill_after:
            return True
        pressed = len(self._queue) >= self._max_queue // 2 or self._budget.half_used
        return pressed and (self._outage_since is not None or waited >= _PRESSURE_GRACE)

    def _backoff(self, delay: float) -> float:
        # Short waits, so that a filling queue or close() is noticed quickly.
        deadline = time.monotonic() + delay * (0.5 + random.random())
        while not self._must_spill() and time.monotonic() < deadline:
            self._abandoned.wait(min(_SLICE, max(0.0, deadline - time.monotonic())))
        return min(delay * 2, 5.0)

    # ------------------------------------------------------------------ the spool

    def _go_offline(self) -> None:
        if self._spool is not None:
            return
        log.warning(
            "trainboard: the server at %s is not taking run %r; spooling it to %s",
            self._store.address,
            self._run,
            self._spool_file,
        )
        self._spool = SpoolWriter(self._spool_file)
        self._spool.open(
            self._experiment,
            self._run,
            self._params,
            client_id=self._client_id,
            resume=self._resume,
        )
        self._replayed = 0
        self._probe_delay = 0.05
        self._next_probe = time.monotonic() + self._probe_delay

    def _probe(self, now: bool = False) -> None:
        """While offline: sends the spool back one record at a time, each call
        in the background (the queue keeps being drained into the spool
        meanwhile), at growing intervals while the server does not answer. Back
        online once the server has every record."""
        spool = self._spool
        if spool is None or self._abandoned.is_set():
            return
        call = self._probe_call
        if call is not None:
            if not call.done():
                return
            self._probe_call = None
            try:
                result = call.outcome()
            except _FINAL as exc:
                # Refused (e.g. no permission): keep the spool for `trainboard sync`.
                self._refused_run(exc)
                self._abandoned.set()
                return
            except errors.TrainboardError as exc:
                self._note_outage(exc)
                self._probe_delay = min(self._probe_delay * 2, 5.0)
                self._next_probe = time.monotonic() + self._probe_delay * (0.5 + random.random())
                return
            self._answered()
            self._probe_delay = 0.05
            if self._probe_end is None:
                self._on_started(result)
            else:
                self._replayed = self._probe_end
        elif not now and time.monotonic() < self._next_probe:
            return
        self._next_probe_call(spool)

    def _next_probe_call(self, spool: SpoolWriter) -> None:
        run = self.run_info
        if run is None:
            self._probe_end = None
            self._probe_call = self._call(self._start_rpc())
            return
        store = self._store
        for kind, payload, end in read_records(self._spool_file, self._replayed, spool.size):
            if kind == HEADER_RECORD:
                self._replayed = end
                continue
            self._probe_end = end
            self._probe_call = self._call(
                functools.partial(send_record, store, run.id, kind, payload)
            )
            return
        self._back_online(spool)

    def _back_online(self, spool: SpoolWriter) -> None:
        spool.close()
        self._spool_file.unlink()
        self._spool = None
        self._replayed = 0
        self._outage_since = None
        self._unavailable_reported = False
        log.info("trainboard: the server is back; the spool of run %r was sent", self._run)
        self._release_markers()

    def _release_markers(self, ok: bool | None = None) -> None:
        """Answers the flush/close markers waiting: ok when no batch was refused
        since the last answer (``ok`` overrides)."""
        if ok is None:
            ok = self.failed_batches == self._failures_told
        self._failures_told = self.failed_batches
        for marker in self._waiting:
            marker.ok = ok
            marker.done.set()
        self._waiting.clear()

    def _release_waiters(self) -> None:
        """Sets every marker still waiting, so no flush() waits forever."""
        if not self.started.is_set():
            self.started.set()
        self._release_markers(ok=False)
        while self._queue:
            record = self._queue.popleft()
            if record[0] in (FLUSH, CLOSE):
                record[1].ok = False
                record[1].done.set()
