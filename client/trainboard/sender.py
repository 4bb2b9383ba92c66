"""The SDK's background sender: batches queued records and delivers them.

``Client`` (``trainboard.client``) validates and enqueues records
(``trainboard.records``); the one ``Sender`` thread per client is a small loop
over named parts: ``Batcher`` gathers records into batches
(``trainboard.batching``), ``Delivery`` sends them without ever waiting on the
network and says what each answer means (``trainboard.delivery``), ``Offline``
holds the spool while the server does not take the run (``trainboard.offline``),
and a heartbeat keeps an idle run listed as running. All encoding is in
``trainboard.wire``.
"""

from __future__ import annotations

import itertools
import logging
import shlex
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

from trainboard import errors
from trainboard.batching import FIRST, Batch, Batcher
from trainboard.delivery import SLICE, Call, Delivered, Delivery, Outcome
from trainboard.offline import Offline, Replay
from trainboard.records import CLOSE, FLUSH, GRAPH, HISTOGRAM, SCALAR, SCALARS, ByteBudget, Marker
from trainboard.spool import spool_path
from trainboard.transport import RemoteStore
from trainboard.types import GraphNode, Run, StartedRun
from trainboard.v1 import trainboard_pb2 as pb
from trainboard.wire import gathered_batch_to_pb

log = logging.getLogger("trainboard")

# Records the sender takes off the queue at a time (a bound on its list).
_CHUNK: Final = 8192
# Seconds a heartbeat may take: it is skipped, not retried, when the server is slow.
_HEARTBEAT_TIMEOUT: Final = 5.0


class Sender(threading.Thread):
    """The one background thread: starts the run, turns queued records into
    batches and sends them in order, one in flight while the next is built.

    It never blocks on the network: every call runs on a thread of its own and
    the sender waits for it in short slices. A call that fails for any reason
    other than a final refusal (bad input, unknown run, no permission, a limit)
    is retried with the same idempotency key. When the server has not answered
    for ``spill_after`` seconds (down, stalled or failing), when the queue fills
    up meanwhile, or when close() gives up, the sender goes *offline*: every
    batch goes to the run's spool file instead, so the trainer is neither held
    nor made to hold the data in memory; the file is sent back in the
    background, and once the server has all of it the sender is online again.

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
        self._queue = queue
        self._wake = wake
        self._store = store
        self._experiment = experiment
        self._run = run
        self._params = params
        self._resume = resume
        self._flush_interval = flush_interval
        self._heartbeat_interval = heartbeat_interval
        self._client_id = uuid.uuid4().hex
        self._abandoned = threading.Event()
        self._delivery = Delivery(
            spill_after=spill_after,
            pressed=lambda: len(queue) >= max_queue // 2 or budget.half_used,
            abandoned=self._abandoned,
            wake=wake,
        )
        self._batcher = Batcher(max_batch_points, budget)
        self._rows = False  # whether the server takes ScalarRows (StartRun says)
        self._sequence = 0
        self._inflight: tuple[pb.WriteBatchRequest, Call] | None = None
        self._heartbeat: Call | None = None
        self._offline: Offline | None = None
        self._spool_file = spool_path(spool_dir, experiment, run, self._client_id)
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
        """Seconds since the server stopped answering (0 while it answers)."""
        inflight = self._inflight
        return self._delivery.unreachable_for(inflight[1].started if inflight else None)

    def abandon(self) -> None:
        """Stop waiting for the server: spool what is left and end."""
        self._abandoned.set()
        self._wake.set()

    # ------------------------------------------------------------------ the loop

    def run(self) -> None:
        try:
            self._start_run()
            while True:
                self._wake.wait(self._flush_interval if self._offline is None else SLICE)
                self._wake.clear()
                self._replay()
                if self._drain() or self._abandoned.is_set():
                    return
                self._heartbeat_if_idle()
        finally:
            if self._offline is not None:
                self._offline.close()
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

    def _drain(self) -> bool:
        """Sends (or spools) what is queued; True once the run is closed."""
        queue = self._queue
        popleft = queue.popleft
        batcher = self._batcher
        send = self._send
        while queue:
            records = [popleft() for _ in range(min(len(queue), _CHUNK))]
            for kind, run in itertools.groupby(records, key=FIRST):
                if kind == SCALARS:
                    for batch in batcher.add_rows(list(run)):
                        send(batch)
                    continue
                for record in run:
                    if kind == SCALAR:
                        ready = batcher.add_scalar(record)
                    elif kind == HISTOGRAM:
                        ready = batcher.add_histogram(record)
                    else:  # GRAPH, FLUSH or CLOSE: after everything before it
                        send(batcher.take())
                        self._settle()
                        self._control(kind, record[1])
                        continue
                    for batch in ready:
                        send(batch)
        send(batcher.take())
        self._settle()
        return self._closing is not None and self._closing.done.is_set()

    def _control(self, kind: int, payload: Any) -> None:
        if kind == GRAPH:
            self._send_graph(payload)
            return
        marker: Marker = payload
        if kind == CLOSE:
            self._finish(marker.status)
            self._closing = marker
        self._waiting.append(marker)
        if self._offline is None:
            self._release_markers()
        else:
            self._replay(now=True)

    # ------------------------------------------------------------------ the run

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
        delivered = self._delivery.deliver(self._start_rpc())
        if delivered.outcome is Outcome.SPILL:
            self._spool()
        elif delivered.outcome is Outcome.REFUSED:
            self._refused_run(delivered.error)
        else:
            self._on_started(delivered.value)

    def _refused_run(self, exc: BaseException | None) -> None:
        self.start_error = self.start_error or exc
        self.started.set()
        log.warning("trainboard: run %r could not be started: %s", self._run, exc)

    def _on_started(self, started: StartedRun) -> None:
        self.run_info = started.run
        self.resumed = started.resumed
        self._rows = started.accepts_rows
        batcher = self._batcher
        for tag in started.last_steps:
            steps = (
                batcher.next_scalar_step if tag.kind == "scalar" else batcher.next_histogram_step
            )
            steps[tag.name] = max(steps.get(tag.name, 0), tag.last_step + 1)
        self.started.set()

    # ------------------------------------------------------------------ delivery

    def _send(self, batch: Batch) -> None:
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
        columns, rows = batch.parts(rows=self._rows)
        request = gathered_batch_to_pb(
            self._client_id,
            self._sequence,
            run_id,
            columns=columns,
            rows=rows,
            histograms=batch.histograms,
        )
        self._settle()
        if self._offline is not None:
            self._offline.append_batch(request)
        else:
            call = self._delivery.call(lambda: self._store.write_batch_pb(request))
            self._inflight = (request, call)

    def _settle(self) -> None:
        """Waits for the batch in flight: retried while the server fails, spooled
        when it stays silent or the queue fills meanwhile."""
        if self._inflight is None:
            return
        request, call = self._inflight
        try:
            rpc = lambda: self._store.write_batch_pb(request)  # noqa: E731
            delivered = self._delivery.deliver(rpc, first=call)
        finally:
            self._inflight = None
        if delivered.outcome is Outcome.SPILL:
            self._spool().append_batch(request)
        elif delivered.outcome is Outcome.REFUSED:
            self._refused("a batch", delivered)

    def _send_graph(self, nodes: list[GraphNode]) -> None:
        if self._offline is None and self.run_info is not None:
            run_id = self.run_info.id
            delivered = self._delivery.deliver(lambda: self._store.set_graph(run_id, nodes))
            if delivered.outcome is Outcome.STORED:
                return
            if delivered.outcome is Outcome.REFUSED:
                self._refused("the graph", delivered)
                return
        self._spool().append_graph(nodes)

    def _finish(self, status: str) -> None:
        wall_time = time.time()
        if self._offline is None and self.run_info is not None:
            run_id = self.run_info.id
            rpc = lambda: self._store.finish_run(run_id, status, wall_time)  # noqa: E731
            delivered = self._delivery.deliver(rpc)
            if delivered.outcome is Outcome.STORED:
                return
            if delivered.outcome is Outcome.REFUSED:
                self._delivery.report_refusal("the run's status", self._run, delivered.error)
                return
        self._spool().append_finish(status, wall_time)

    def _refused(self, what: str, delivered: Delivered) -> None:
        self.failed_batches += 1
        self._delivery.report_refusal(what, self._run, delivered.error)

    def _heartbeat_if_idle(self) -> None:
        """Tells the server the run is alive when nothing else did for a while.
        One try, not waited for: a heartbeat that fails is skipped, the next one
        comes an interval later (a real outage shows in the batches anyway)."""
        run = self.run_info
        delivery = self._delivery
        if (
            run is None
            or self._offline is not None
            or self._closing is not None
            or time.monotonic() - delivery.last_contact < self._heartbeat_interval
            or (self._heartbeat is not None and not self._heartbeat.done())
        ):
            return
        delivery.last_contact = time.monotonic()
        timeout = min(self._store.timeout, _HEARTBEAT_TIMEOUT)

        def beat() -> None:
            try:
                self._store.heartbeat(run.id, timeout=timeout)
            except errors.TrainboardError as exc:
                log.debug("trainboard: the heartbeat of run %r failed: %s", self._run, exc)

        self._heartbeat = Call(beat, lambda: None)

    # ------------------------------------------------------------------ offline

    def _spool(self) -> Offline:
        """The open spool, opened now if the sender was online."""
        if self._offline is None:
            log.warning(
                "trainboard: the server at %s is not taking run %r; spooling it to %s",
                self._store.address,
                self._run,
                self._spool_file,
            )
            self._offline = Offline(
                self._spool_file,
                self._store,
                self._delivery,
                experiment=self._experiment,
                run=self._run,
                params=self._params,
                client_id=self._client_id,
                resume=self._resume,
            )
        return self._offline

    def _replay(self, now: bool = False) -> None:
        """While offline: moves the spool's replay on (see ``Offline.advance``)."""
        offline = self._offline
        if offline is None or self._abandoned.is_set():
            return
        run_id = self.run_info.id if self.run_info is not None else None
        state = offline.advance(run_id, self._start_rpc(), now=now)
        if state is Replay.STARTED:
            assert offline.started is not None
            self._on_started(offline.started)
        elif state is Replay.REFUSED:
            # Refused (e.g. no permission): keep the spool for `trainboard sync`.
            self._refused_run(offline.refusal)
            self._abandoned.set()
        elif state is Replay.CAUGHT_UP:
            offline.remove()
            self._offline = None
            self._delivery.back()
            log.info("trainboard: the server is back; the spool of run %r was sent", self._run)
            self._release_markers()

    # ------------------------------------------------------------------ flush and close

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
