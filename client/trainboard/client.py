"""The write side of the SDK: ``Client``.

Three layers, as in tensorboardX: the user-facing ``Client`` validates and
enqueues (the trainer's thread pays for nothing else), one background
``Sender`` thread turns queued records into columnar batches and sends them
over gRPC, and the pure payload builders (``trainboard.histogram``,
``trainboard.wire``) shape what is sent.
"""

from __future__ import annotations

import atexit
import logging
import sys
import threading
import time
import uuid
import warnings
import weakref
from collections import deque
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from trainboard import errors, histogram
from trainboard.graph import validate_graph
from trainboard.records import (
    CLOSE,
    FLUSH,
    GRAPH,
    HISTOGRAM,
    SCALAR,
    SCALARS,
    ByteBudget,
    Marker,
)
from trainboard.sender import Sender
from trainboard.spool import default_spool_dir
from trainboard.transport import (
    RemoteStore,
    resolve_server,
    resolve_tls_root_cert,
    resolve_token,
)
from trainboard.types import GraphNode, Run
from trainboard.validation import (
    DEFAULT_BUCKETS,
    MAX_STEP,
    check_buckets,
    check_final_status,
    check_name,
    check_step,
    check_tag,
    check_tags_per_run,
    check_value,
    check_wall_time,
    params_to_json,
)

log = logging.getLogger("trainboard")

_FLOAT_ONLY: Final = frozenset({float})
_MAX_KNOWN_ROWS: Final = 1024  # tag sets of log_scalars remembered (then forgotten)
_now: Final = time.time  # one global lookup on the hot paths, not two
# Seconds close() goes on waiting once the server has stopped answering.
_CLOSE_GRACE: Final = 1.5

_live_clients: weakref.WeakSet[Client] = weakref.WeakSet()


def _close_all_at_exit() -> None:
    for client in list(_live_clients):
        client._close("finished", None, limit=client.exit_timeout)


atexit.register(_close_all_at_exit)


class Client:
    """Logs scalars, histograms and a graph into one run of an experiment.

    ``Client(experiment, run, server, params)`` creates a new run. Running a
    script again makes a new run too: when the experiment already has a run of
    that name, the new one is stored as ``name (2)``, ``name (3)``, ... (the old
    run is left untouched; ``run_info.name`` says the stored name).
    ``Client(..., resume=True)`` instead continues the newest run of that name
    (as after restarting from a checkpoint): ``params`` are merged into the
    stored ones (``None`` keeps them) and steps continue. ``server`` is
    ``host:port``, default ``TRAINBOARD_SERVER`` or ``127.0.0.1:6009``.

    Logging calls check their arguments (``TypeError``/``ValueError`` at the call
    site), put a record on a bounded queue and return; they never wait on the
    network. One background thread batches the records (by size and by
    ``flush_interval``) and sends them. ``flush()`` waits until everything logged
    so far is stored; ``close()`` (also on leaving a ``with`` block, and at
    interpreter exit) flushes and marks the run finished.

    ``step`` is optional: a tag then continues from its last step + 1 (0 for a
    new tag; after a resume the stored last step counts).

    When the server does not answer, or fails, for longer than ``spill_after``
    seconds (or the queue fills up meanwhile), batches go to a spool file in
    ``spool_dir`` (default ``TRAINBOARD_SPOOL_DIR`` or ``~/.trainboard/spool``),
    which is sent and removed when the server answers again. Only refusals
    (bad input, an unknown run, no permission, a limit) are final; they are
    warned about once per cause. Network and server trouble is reported once as
    a warning and never raised into the training loop.

    Memory stays bounded whatever the server does: at most ``max_queue``
    records wait in the queue, and at most ``max_snapshot_bytes`` of histogram
    copies wait to be summarised.

    While the trainer logs nothing for ``heartbeat_interval`` seconds, the client
    sends a heartbeat, so that the server keeps listing the run as running (a run
    that nothing touched for the server's ``--crashed-after`` time is listed as
    crashed).

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
        max_batch_points: int = 200_000,
        max_queue: int = 200_000,
        timeout: float = 30.0,
        exit_timeout: float = 10.0,
        token: str | None = None,
        tls_root_cert: str | None = None,
        spool_dir: str | Path | None = None,
        spill_after: float = 5.0,
        max_snapshot_bytes: int = 256 * 1024 * 1024,
        heartbeat_interval: float = 30.0,
        resume: bool = False,
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
        if not heartbeat_interval > 0:
            raise ValueError(f"heartbeat_interval must be positive, got {heartbeat_interval}")
        self.server = resolve_server(server)
        self.timeout = timeout
        self.exit_timeout = exit_timeout
        self._max_queue = max_queue
        self._wake_at = max(1, min(max_batch_points, max_queue) // 8)
        self._queue: deque[tuple[Any, ...]] = deque()
        self._wake = threading.Event()
        self._known_tags: set[str] = set()
        self._known_rows: dict[tuple[str, ...], tuple[str, ...]] = {}  # log_scalars tag sets
        self._closed = False
        self._waiting_reported = False
        self._snapshots = ByteBudget(max_snapshot_bytes)
        self._sender = Sender(
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
            max_queue=max_queue,
            spool_dir=Path(spool_dir) if spool_dir is not None else default_spool_dir(),
            spill_after=spill_after,
            budget=self._snapshots,
            heartbeat_interval=heartbeat_interval,
            resume=bool(resume),
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
        """True when this client continues a run that existed before (``resume=True``
        and a run of that name was there)."""
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
        # The hot path is a known tag, a float, an int step (or None) and no wall_time:
        # a handful of type checks and one append. Anything else takes a slow branch
        # that checks and explains. A closed client knows no tags (see close()), so
        # the first branch is also the "closed" check.
        if tag not in self._known_tags:
            self._learn_tag(tag)
        if type(value) is not float:
            value = check_value(value)
        if step is not None and (type(step) is not int or not 0 <= step <= MAX_STEP):
            step = check_step(step)
        queue = self._queue
        queue.append(
            (SCALAR, tag, value, step, _now() if wall_time is None else check_wall_time(wall_time))
        )
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
        if type(values) is not dict and not isinstance(values, Mapping):
            raise TypeError(f"values must be a dict of tag -> number, got {type(values).__name__}")
        # The record holds tuples of str and float, never the dict: the collector
        # untracks such a record once it has seen it, so that a long queue does not
        # make the trainer's full collections longer (a dict would keep it tracked).
        tags = self._known_rows.get(tuple(values))  # the stored tuple: cheap to compare
        row = tuple(values.values())
        if tags is None or not _FLOAT_ONLY.issuperset(map(type, row)):
            tags, row = self._check_row(values)
        if step is not None and (type(step) is not int or not 0 <= step <= MAX_STEP):
            step = check_step(step)
        queue = self._queue
        queue.append(
            (SCALARS, tags, row, step, _now() if wall_time is None else check_wall_time(wall_time))
        )
        if len(queue) >= self._wake_at:
            self._make_room()

    def _check_row(self, values: Mapping[str, Any]) -> tuple[tuple[str, ...], tuple[float, ...]]:
        """The slow path of ``log_scalars``: checks every tag and value, and
        remembers the tags so that the next row with them takes the fast path."""
        if self._closed:
            raise RuntimeError("this Client is closed")
        if not values:
            raise ValueError("values must not be empty")
        row = []
        for tag, value in values.items():
            if tag not in self._known_tags:
                self._learn_tag(tag)
            row.append(value if type(value) is float else check_value(value, f"values[{tag!r}]"))
        tags = tuple(values)
        known_rows = self._known_rows
        if tags not in known_rows:
            if len(known_rows) >= _MAX_KNOWN_ROWS:
                known_rows.clear()
            known_rows[tags] = tags
        return known_rows[tags], tuple(row)

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
        a torch tensor's own device); the summary (docs/design.md) is computed in the
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
        budget = self._snapshots
        budget.take(snap.nbytes, self._sender.is_alive, self._wake)
        queue = self._queue
        queue.append((HISTOGRAM, tag, snap, step, t, buckets))
        # Waking the sender costs the caller a system call (tens of microseconds here);
        # like scalars, a histogram waits for the next flush_interval tick unless its
        # snapshots hold a quarter of their budget (or the queue is at its mark).
        if budget.pressed or len(queue) >= self._wake_at:
            self._make_room()

    def log_graph(
        self, graph: Iterable[GraphNode | Mapping[str, Any]] | Any, example_input: Any = None
    ) -> bool:
        """Stores the run's model graph, replacing any graph logged before.

        ``graph`` is a list of ``GraphNode`` (or dicts with the same keys), or a
        ``torch.nn.Module`` with ``example_input`` (a tensor, or a tuple of
        positional arguments): its operations are captured with their scopes
        from the module hierarchy. A bad node list raises ``ValueError``; a
        model that cannot be captured gets a warning saying why, returns
        False, and training goes on."""
        if self._closed:
            raise RuntimeError("this Client is closed")
        torch = sys.modules.get("torch")  # a Module means torch is already imported
        if torch is not None and isinstance(graph, torch.nn.Module):
            from trainboard.torch_graph import capture

            if example_input is None:
                warnings.warn(
                    f"log_graph({type(graph).__name__}) needs an example input to run the "
                    "model on: log_graph(model, example_input), with a tensor shaped like "
                    "a batch (or a tuple of the forward's arguments); no graph was logged",
                    RuntimeWarning,
                    stacklevel=2,
                )
                return False
            try:
                graph = capture(graph, example_input)
            except errors.InvalidArgument as exc:
                warnings.warn(str(exc), RuntimeWarning, stacklevel=2)
                return False
        elif example_input is not None:
            raise TypeError("example_input is only for a torch.nn.Module graph")
        nodes = validate_graph(graph)
        self._queue.append((GRAPH, nodes))
        self._wake.set()
        return True

    def _learn_tag(self, tag: str) -> None:
        if self._closed:
            raise RuntimeError("this Client is closed")
        tag = check_tag(tag)
        check_tags_per_run(len(self._known_tags) + 1, f"run {self.run!r}")
        self._known_tags.add(tag)

    def _make_room(self) -> None:
        """Wakes the sender; if the queue is full, waits (briefly, in steps of a
        millisecond) until the sender has taken records off it."""
        wake = self._wake
        if not wake.is_set():  # setting it again would take its lock on every call
            wake.set()
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
        did not happen within ``timeout`` seconds, or if the server refused a batch
        since the last flush (a warning then says why)."""
        if self._closed or not self._sender.is_alive():
            return not self._sender.failed_batches
        marker = Marker()
        self._queue.append((FLUSH, marker))
        self._wake.set()
        if not marker.done.wait(timeout):
            return False
        return marker.ok

    def close(self, status: str = "finished", timeout: float | None = None) -> bool:
        """Flushes, marks the run ``status`` (finished, failed or killed) and stops
        the sender. Waits at most ``timeout`` seconds; without one, as long as the
        server answers (at most ``self.timeout``), and about 2 s once it does not.
        What the server has not taken by then stays in the spool file
        (``spool_path``; a warning prints the ``trainboard sync`` command that
        sends it). Returns True when everything was stored. Closing twice does
        nothing."""
        return self._close(status, timeout, limit=self.timeout)

    def _close(self, status: str, timeout: float | None, *, limit: float) -> bool:
        check_final_status(status)  # InvalidArgument, a ValueError
        if self._closed:
            return True
        self._closed = True
        self._known_tags = set()  # the hot paths' "closed" check: no tag is known
        self._known_rows = {}
        _live_clients.discard(self)
        marker = Marker(status)
        self._queue.append((CLOSE, marker))
        self._wake.set()
        deadline = time.monotonic() + (limit if timeout is None else timeout)
        sender = self._sender
        while not marker.done.wait(0.02):
            unreachable = timeout is None and sender.unreachable_for() >= _CLOSE_GRACE
            if unreachable or time.monotonic() >= deadline or not sender.is_alive():
                # The sender spools what is left, says where, and ends (it may also
                # have answered the marker just now: that answer stands).
                sender.abandon()
                sender.join(timeout=10.0)
                return marker.done.is_set() and marker.ok
        sender.join(timeout=max(1.0, deadline - time.monotonic()))
        return marker.ok

    @property
    def spool_path(self) -> Path | None:
        """The run's spool file, while the server could not take everything."""
        return self._sender.spool_path

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
