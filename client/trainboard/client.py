"""The write side of the SDK: ``Client``.

Three layers, as in tensorboardX: the user-facing ``Client`` validates and
enqueues (the trainer's thread pays for nothing else), one background
``_Sender`` thread turns queued records into columnar batches and sends them
over gRPC, and the pure payload builders (``trainboard.histogram``,
``trainboard.wire``) shape what is sent.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import random
import threading
import time
import uuid
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, Final

import numpy as np

from trainboard import errors, histogram
from trainboard.graph import validate_graph
from trainboard.transport import (
    RemoteStore,
    resolve_server,
    resolve_tls_root_cert,
    resolve_token,
)
from trainboard.types import GraphNode, HistogramRecord, Run, WriteResult
from trainboard.v1 import trainboard_pb2 as pb
from trainboard.validation import (
    DEFAULT_BUCKETS,
    MAX_STEP,
    check_buckets,
    check_name,
    check_step,
    check_tag,
    check_value,
    check_wall_time,
    params_to_json,
)

log = logging.getLogger("trainboard")

# Record kinds on the queue (small ints: cheaper to build and compare than classes).
_SCALAR: Final = 0
_SCALARS: Final = 1
_HISTOGRAM: Final = 2
_GRAPH: Final = 3
_FLUSH: Final = 4
_CLOSE: Final = 5

_FLOAT_ONLY: Final = frozenset({float})
_FINAL_STATUSES: Final = ("finished", "failed", "killed")

# A histogram weighs this many points when a batch is sized.
_HISTOGRAM_WEIGHT = 80

_live_clients: weakref.WeakSet[Client] = weakref.WeakSet()


def _close_all_at_exit() -> None:
    for client in list(_live_clients):
        client.close(timeout=client.exit_timeout)


atexit.register(_close_all_at_exit)


class _Marker:
    """A flush or close request on the queue; the sender sets ``done`` when every
    record queued before it has been acknowledged (or given up on)."""

    __slots__ = ("done", "ok", "status")

    def __init__(self, status: str = "") -> None:
        self.done = threading.Event()
        self.ok = True
        self.status = status


class Client:
    """Logs scalars, histograms and a graph into one run of an experiment.

    ``Client(experiment, run, server, params)`` creates the run, or resumes it
    when a run of that name exists in the experiment (``params`` are then merged
    into the stored ones; ``None`` keeps them). ``server`` is ``host:port``,
    default ``TRAINBOARD_SERVER`` or ``127.0.0.1:6009``.

    Logging calls check their arguments (``TypeError``/``ValueError`` at the call
    site), put a record on a bounded queue and return; they never wait on the
    network. One background thread batches the records (by size and by
    ``flush_interval``) and sends them. ``flush()`` waits until everything logged
    so far is stored; ``close()`` (also on leaving a ``with`` block, and at
    interpreter exit) flushes and marks the run finished.

    ``step`` is optional: a tag then continues from its last step + 1 (0 for a
    new tag; after a resume the stored last step counts).

    ``token`` (default ``TRAINBOARD_TOKEN``) is sent with every call to a server
    that requires tokens; ``tls_root_cert`` (default ``TRAINBOARD_TLS_ROOT_CERT``)
    names the PEM root certificate of a server that serves TLS.
    """

    def __init__(
        self,
        experiment: str,
        run: str | None = None,
        server: str | None = None,
        params: Mapping[str, Any] | None = None,
        *,
        flush_interval: float = 1.0,
        max_batch_points: int = 100_000,
        max_queue: int = 200_000,
        timeout: float = 30.0,
        exit_timeout: float = 10.0,
        token: str | None = None,
        tls_root_cert: str | None = None,
    ) -> None:
        self.experiment = check_name("experiment", experiment)
        if run is None:
            run = time.strftime("run-%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:4]
        self.run = check_name("run", run)
        if params is not None:
            params_to_json(params)  # a clear error now, not in the background
        self.params = None if params is None else dict(params)
        if flush_interval <= 0 or max_batch_points < 1 or max_queue < 1:
            raise ValueError("flush_interval, max_batch_points and max_queue must be positive")
        self.server = resolve_server(server)
        self.timeout = timeout
        self.exit_timeout = exit_timeout
        self._max_queue = max_queue
        self._wake_at = max(1, min(max_batch_points, max_queue) // 2)
        self._queue: deque[tuple[Any, ...]] = deque()
        self._wake = threading.Event()
        self._known_tags: set[str] = set()
        self._closed = False
        self._waiting_reported = False
        self._sender = _Sender(
            queue=self._queue,
            wake=self._wake,
            store=RemoteStore(
                self.server,
                timeout=timeout,
                token=resolve_token(token),
                tls_root_cert=resolve_tls_root_cert(tls_root_cert),
            ),
            experiment=self.experiment,
            run=self.run,
            params=self.params,
            flush_interval=flush_interval,
            max_batch_points=max_batch_points,
        )
        self._sender.start()
        _live_clients.add(self)

    # ------------------------------------------------------------------ run info

    @property
    def run_id(self) -> int:
        """The stored run's id (waits for the server to create the run)."""
        return self._wait_for_run().id

    @property
    def run_info(self) -> Run:
        """The stored run as the server reported it when the client started."""
        return self._wait_for_run()

    @property
    def resumed(self) -> bool:
        """True when this client appends to a run that existed before."""
        self._wait_for_run()
        return self._sender.resumed

    def _wait_for_run(self) -> Run:
        if not self._sender.started.wait(self.timeout):
            raise errors.Unavailable(
                f"the Trainboard server at {self.server} did not create run {self.run!r} "
                f"within {self.timeout:g} s"
            )
        if self._sender.run_info is None:
            raise errors.TrainboardError(
                f"run {self.run!r} could not be started: {self._sender.start_error}"
            )
        return self._sender.run_info

    # ------------------------------------------------------------------ logging

    def log_scalar(
        self, tag: str, value: float, step: int | None = None, *, wall_time: float | None = None
    ) -> None:
        """Logs one value of ``tag`` at ``step`` (NaN and ±Inf are kept exactly)."""
        if self._closed:
            raise RuntimeError("this Client is closed")
        t = time.time() if wall_time is None else check_wall_time(wall_time)
        if tag not in self._known_tags:
            self._learn_tag(tag)
        if type(value) is not float:
            value = check_value(value)
        if step is not None and not (type(step) is int and 0 <= step <= MAX_STEP):
            step = check_step(step)
        queue = self._queue
        queue.append((_SCALAR, tag, value, step, t))
        if len(queue) >= self._wake_at:
            self._make_room()

    def log_scalars(
        self,
        values: Mapping[str, float],
        step: int | None = None,
        *,
        wall_time: float | None = None,
    ) -> None:
        """Logs several tags at one step. Without ``step`` all of them get one
        step: the largest of the steps each would continue with."""
        if self._closed:
            raise RuntimeError("this Client is closed")
        t = time.time() if wall_time is None else check_wall_time(wall_time)
        if not isinstance(values, Mapping):
            raise TypeError(f"values must be a dict of tag -> number, got {type(values).__name__}")
        if not values:
            raise ValueError("values must not be empty")
        known = self._known_tags
        if known.issuperset(values) and _FLOAT_ONLY.issuperset(map(type, values.values())):
            checked = dict(values)  # the common case: known tags, float values
        else:
            checked = {}
            for tag, value in values.items():
                if tag not in known:
                    self._learn_tag(tag)
                checked[tag] = (
                    value if type(value) is float else check_value(value, f"values[{tag!r}]")
                )
        if step is not None and not (type(step) is int and 0 <= step <= MAX_STEP):
            step = check_step(step)
        queue = self._queue
        queue.append((_SCALARS, checked, step, t))
        if len(queue) >= self._wake_at:
            self._make_room()

    def log_histogram(
        self,
        tag: str,
        values: Any,
        step: int | None = None,
        *,
        buckets: int = DEFAULT_BUCKETS,
        wall_time: float | None = None,
    ) -> None:
        """Logs the distribution of a tensor of any shape (numpy array, torch
        tensor, or a list). The caller pays only for a snapshot (a copy, made on
        a torch tensor's own device); the summary of SPEC §6 is computed in the
        background."""
        if self._closed:
            raise RuntimeError("this Client is closed")
        t = time.time() if wall_time is None else check_wall_time(wall_time)
        if tag not in self._known_tags:
            self._learn_tag(tag)
        if buckets != DEFAULT_BUCKETS:
            buckets = check_buckets(buckets)
        if step is not None:
            step = check_step(step)
        snap = histogram.snapshot(values)
        self._queue.append((_HISTOGRAM, tag, snap, step, t, buckets))
        self._make_room()

    def log_graph(self, graph: Iterable[GraphNode | Mapping[str, Any]]) -> None:
        """Stores the run's model graph, a list of ``GraphNode`` (or dicts with
        the same keys), replacing any graph logged before."""
        if self._closed:
            raise RuntimeError("this Client is closed")
        nodes = validate_graph(graph)
        self._queue.append((_GRAPH, nodes))
        self._wake.set()

    def _learn_tag(self, tag: str) -> None:
        self._known_tags.add(check_tag(tag))

    def _make_room(self) -> None:
        """Wakes the sender; if the queue is full, waits (briefly, in steps of a
        millisecond) until the sender has taken records off it."""
        self._wake.set()
        queue = self._queue
        if len(queue) < self._max_queue:
            return
        if not self._waiting_reported:
            self._waiting_reported = True
            log.warning(
                "trainboard: logging faster than the server at %s takes it; "
                "logging calls wait for room in the queue",
                self.server,
            )
        while len(queue) >= self._max_queue and self._sender.is_alive():
            self._wake.set()
            time.sleep(0.001)

    # ------------------------------------------------------------------ lifecycle

    def flush(self, timeout: float | None = None) -> bool:
        """Waits until everything logged so far is stored. Returns False if that
        did not happen within ``timeout`` seconds (or ever, for data the server
        refused; a warning then says why)."""
        if self._closed or not self._sender.is_alive():
            return not self._sender.failed_batches
        marker = _Marker()
        self._queue.append((_FLUSH, marker))
        self._wake.set()
        if not marker.done.wait(timeout):
            return False
        return marker.ok

    def close(self, status: str = "finished", timeout: float | None = None) -> bool:
        """Flushes, marks the run ``status`` (finished, failed or killed) and stops
        the sender. Waits at most ``timeout`` seconds (default: ``self.timeout``).
        Returns True when everything was stored. Closing twice does nothing."""
        if status not in _FINAL_STATUSES:
            raise ValueError(f"status must be one of {', '.join(_FINAL_STATUSES)}; got {status!r}")
        if self._closed:
            return True
        self._closed = True
        _live_clients.discard(self)
        marker = _Marker(status)
        self._queue.append((_CLOSE, marker))
        self._wake.set()
        wait = self.timeout if timeout is None else timeout
        if not marker.done.wait(wait):
            self._sender.abandon()
            log.warning(
                "trainboard: closing run %r: the server at %s did not take all data within "
                "%g s; %d records were not stored",
                self.run,
                self.server,
                wait,
                len(self._queue),
            )
            return False
        self._sender.join(timeout=wait)
        return marker.ok

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            status = "finished"
        elif issubclass(exc_type, KeyboardInterrupt):
            status = "killed"
        else:
            status = "failed"
        self.close(status=status)

    def __repr__(self) -> str:
        return f"Client(experiment={self.experiment!r}, run={self.run!r}, server={self.server!r})"


class _Batch:
    """Records being gathered into one WriteBatch, columnar per tag.

    Consecutive ``log_scalars`` rows with the same tags (the common case: one
    dict per training step) form a *group*; when it closes, its rows become one
    numpy matrix in a single pass (no Python work per point), whose columns are
    the tags' values. Single ``log_scalar`` points go to per-tag lists.
    """

    __slots__ = (
        "_group_base",
        "_group_next",
        "_group_rows",
        "_group_steps",
        "_group_tags",
        "_group_times",
        "_singles",
        "histograms",
        "next_steps",
        "points",
        "segments",
    )

    def __init__(self, next_steps: dict[str, int]) -> None:
        # The sender's per-tag next step, shared and updated as points arrive.
        self.next_steps = next_steps
        # Per tag, column segments in the order they were logged.
        self.segments: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
        self._singles: dict[str, tuple[list[int], list[float], list[float]]] = {}
        self.histograms: list[HistogramRecord] = []
        self.points = 0
        self._group_tags: tuple[str, ...] = ()
        self._group_rows: list[Iterable[float]] = []
        self._group_steps: list[int] = []
        self._group_times: list[float] = []
        self._group_base = 0
        self._group_next = 0

    def add_row(self, values: dict[str, float], step: int | None, wall_time: float) -> None:
        """One ``log_scalars`` call: every tag of ``values`` at one step."""
        tags = tuple(values)
        if tags != self._group_tags:
            self.close_group()
            self._close_singles()
            self._group_tags = tags
            next_steps = self.next_steps
            self._group_base = max([next_steps.get(tag, 0) for tag in tags])
            self._group_next = 0
        if step is None:
            step = max(self._group_base, self._group_next)
        self._group_rows.append(values.values())
        self._group_steps.append(step)
        self._group_times.append(wall_time)
        if step >= self._group_next:
            self._group_next = step + 1
        self.points += len(tags)

    def add_scalar(self, tag: str, value: float, step: int | None, wall_time: float) -> None:
        """One ``log_scalar`` call."""
        self.close_group()
        next_steps = self.next_steps
        if step is None:
            step = next_steps.get(tag, 0)
        cols = self._singles.get(tag)
        if cols is None:
            cols = self._singles[tag] = ([], [], [])
        cols[0].append(step)
        cols[1].append(wall_time)
        cols[2].append(value)
        if next_steps.get(tag, 0) <= step:
            next_steps[tag] = step + 1
        self.points += 1

    def close_group(self) -> None:
        tags = self._group_tags
        if not tags:
            return
        width = len(tags)
        rows = self._group_rows
        matrix = np.fromiter(
            itertools.chain.from_iterable(rows), dtype=np.float64, count=len(rows) * width
        ).reshape(len(rows), width)
        steps = np.array(self._group_steps, dtype=np.int64)
        times = np.array(self._group_times, dtype=np.float64)
        following = self._group_next
        next_steps = self.next_steps
        for column, tag in enumerate(tags):
            self.segments.setdefault(tag, []).append((steps, times, matrix[:, column]))
            if next_steps.get(tag, 0) < following:
                next_steps[tag] = following
        self._group_tags = ()
        self._group_rows = []
        self._group_steps = []
        self._group_times = []

    def _close_singles(self) -> None:
        for tag, (steps, times, values) in self._singles.items():
            self.segments.setdefault(tag, []).append(
                (np.array(steps, dtype=np.int64), np.array(times), np.array(values))
            )
        self._singles.clear()

    def to_pb(self, client_id: str, sequence: int, run_id: int) -> pb.WriteBatchRequest:
        from trainboard.wire import columns_to_pb, summary_to_pb

        self.close_group()
        self._close_singles()
        request = pb.WriteBatchRequest(client_id=client_id, sequence=sequence, run_id=run_id)
        for tag, parts in self.segments.items():
            if len(parts) == 1:
                steps, times, values = parts[0]
            else:
                columns = zip(*parts, strict=True)
                steps, times, values = (np.concatenate(column) for column in columns)
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


class _Sender(threading.Thread):
    """The one background thread: starts the run, then turns queued records
    into batches and sends them, in order, each retried with the same
    idempotency key until it is acknowledged."""

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
    ) -> None:
        super().__init__(name=f"trainboard-sender-{run}", daemon=True)
        self._queue = queue
        self._wake = wake
        self._store = store
        self._experiment = experiment
        self._run = run
        self._params = params
        self._flush_interval = flush_interval
        self._max_batch_points = max_batch_points
        self._client_id = uuid.uuid4().hex
        self._sequence = 0
        self._next_scalar_step: dict[str, int] = {}
        self._next_histogram_step: dict[str, int] = {}
        self._abandoned = threading.Event()
        self._unavailable_reported = False
        self.started = threading.Event()
        self.run_info: Run | None = None
        self.resumed = False
        self.start_error: BaseException | None = None
        self.failed_batches = 0
        self._inflight: tuple[pb.WriteBatchRequest, Callable[[], WriteResult]] | None = None

    def abandon(self) -> None:
        """Stop retrying (close() ran out of time)."""
        self._abandoned.set()
        self._wake.set()

    # ------------------------------------------------------------------ thread body

    def run(self) -> None:
        try:
            self._start_run()
            while not self._abandoned.is_set():
                self._wake.wait(self._flush_interval)
                self._wake.clear()
                if self._drain():
                    return
        finally:
            self._release_waiters()
            self._store.close()

    def _start_run(self) -> None:
        delay = 0.05
        while not self._abandoned.is_set():
            try:
                started = self._store.start_run(
                    self._experiment, self._run, self._params, time.time()
                )
            except errors.Unavailable as exc:
                self._report_unavailable(exc)
                delay = self._backoff(delay)
                continue
            except errors.TrainboardError as exc:
                self.start_error = exc
                log.warning("trainboard: run %r could not be started: %s", self._run, exc)
                self.started.set()
                return
            self.run_info = started.run
            self.resumed = started.resumed
            for tag in started.last_steps:
                steps = (
                    self._next_scalar_step if tag.kind == "scalar" else self._next_histogram_step
                )
                steps[tag.name] = tag.last_step + 1
            self.started.set()
            return

    def _drain(self) -> bool:
        """Sends what is queued; True once a close marker has been handled."""
        queue = self._queue
        batch = _Batch(self._next_scalar_step)
        limit = self._max_batch_points
        while queue:
            record = queue.popleft()
            kind = record[0]
            if kind == _SCALARS:
                batch.add_row(record[1], record[2], record[3])
            elif kind == _SCALAR:
                batch.add_scalar(record[1], record[2], record[3], record[4])
            elif kind == _HISTOGRAM:
                self._add_histogram(batch, record)
            elif kind == _GRAPH:
                self._send(batch)
                batch = _Batch(self._next_scalar_step)
                self._settle()
                self._send_graph(record[1])
            else:  # _FLUSH or _CLOSE
                marker: _Marker = record[1]
                self._send(batch)
                batch = _Batch(self._next_scalar_step)
                self._settle()
                marker.ok = self.run_info is not None and not self.failed_batches
                if kind == _CLOSE:
                    self._finish(marker.status)
                    marker.done.set()
                    return True
                marker.done.set()
            if batch.points >= limit:
                self._send(batch)
                batch = _Batch(self._next_scalar_step)
        self._send(batch)
        self._settle()
        return False

    def _add_histogram(self, batch: _Batch, record: tuple[Any, ...]) -> None:
        _, tag, snap, step, t, buckets = record
        if step is None:
            step = self._next_histogram_step.get(tag, 0)
        if self._next_histogram_step.get(tag, 0) <= step:
            self._next_histogram_step[tag] = step + 1
        try:
            summary = snap.summarize(buckets)
        except Exception as exc:  # a broken tensor must not stop the sender
            log.warning("trainboard: histogram %r at step %d was not logged: %s", tag, step, exc)
            return
        batch.histograms.append(HistogramRecord(tag, step, t, summary))
        batch.points += _HISTOGRAM_WEIGHT

    # ------------------------------------------------------------------ RPCs with retry

    def _send(self, batch: _Batch) -> None:
        """Starts sending ``batch`` once the batch before it is acknowledged: one
        batch is in flight while the next one is built, never two (the server
        treats a sequence number below a stored one as a replay)."""
        batch.close_group()
        if not batch.points:
            return
        if self.run_info is None:  # the run could not be started; nothing can be stored
            self.failed_batches += 1
            return
        self._sequence += 1
        request = batch.to_pb(self._client_id, self._sequence, self.run_info.id)
        self._settle()
        self._inflight = (request, self._store.write_batch_async(request))

    def _settle(self) -> None:
        """Waits for the batch in flight; retries it (same sequence) while the
        server is unavailable."""
        if self._inflight is None:
            return
        request, result = self._inflight
        self._inflight = None
        try:
            result()
        except errors.Unavailable as exc:
            self._report_unavailable(exc)
            self._call(lambda: self._store.write_batch_pb(request), "a batch")
        except errors.TrainboardError as exc:
            self.failed_batches += 1
            log.warning("trainboard: the server refused a batch of run %r: %s", self._run, exc)

    def _send_graph(self, nodes: list[GraphNode]) -> None:
        if self.run_info is not None:
            run_id = self.run_info.id
            self._call(lambda: self._store.set_graph(run_id, nodes), "the graph")

    def _finish(self, status: str) -> None:
        if self.run_info is not None:
            run_id = self.run_info.id
            self._call(lambda: self._store.finish_run(run_id, status, time.time()), "the status")

    def _call(self, rpc: Any, what: str) -> bool:
        """Runs ``rpc`` until it succeeds, retrying while the server is
        unavailable (capped exponential backoff with jitter). A refusal (bad
        data, unknown run) is reported and not retried."""
        delay = 0.05
        while True:
            try:
                rpc()
                return True
            except errors.Unavailable as exc:
                if self._abandoned.is_set():
                    return False
                self._report_unavailable(exc)
                delay = self._backoff(delay)
            except errors.TrainboardError as exc:
                self.failed_batches += 1
                log.warning("trainboard: the server refused %s of run %r: %s", what, self._run, exc)
                return False

    def _report_unavailable(self, exc: BaseException) -> None:
        if not self._unavailable_reported:
            self._unavailable_reported = True
            log.warning("trainboard: server unavailable, retrying in the background: %s", exc)

    def _backoff(self, delay: float) -> float:
        # Waits on the abandon event so that close() running out of time ends the wait.
        self._abandoned.wait(delay * (0.5 + random.random()))
        return min(delay * 2, 5.0)

    def _release_waiters(self) -> None:
        """Sets every marker left on the queue, so no flush() waits forever."""
        if not self.started.is_set():
            self.started.set()
        while self._queue:
            record = self._queue.popleft()
            if record[0] in (_FLUSH, _CLOSE):
                record[1].ok = False
                record[1].done.set()
