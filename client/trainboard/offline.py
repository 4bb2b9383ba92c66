"""The sender while offline: records go to the run's spool file, and the file is
sent back to the server a record at a time, each call in the background, so
that the sender keeps draining the queue into the file meanwhile."""

from __future__ import annotations

import enum
import functools
import logging
import random
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from trainboard.delivery import Call, Delivery, Outcome
from trainboard.spool import HEADER, SpoolWriter, read_records, send_record
from trainboard.transport import RemoteStore
from trainboard.types import GraphNode, StartedRun
from trainboard.v1 import trainboard_pb2 as pb
from trainboard.wire import graph_to_pb

log = logging.getLogger("trainboard")


class Replay(enum.Enum):
    WAITING = "waiting"  # a call is pending, or the next try is not due yet
    STARTED = "started"  # the server started the run (``Offline.started`` holds it)
    REFUSED = "refused"  # the server refused the run (``Offline.refusal`` says why)
    CAUGHT_UP = "caught_up"  # the server has every record: the spool may go


class Offline:
    """One open spool file and how far the server has it."""

    def __init__(
        self,
        path: Path,
        store: RemoteStore,
        delivery: Delivery,
        *,
        experiment: str,
        run: str,
        params: Mapping[str, Any] | None,
        client_id: str,
        resume: bool,
    ) -> None:
        self.path = path
        self._store = store
        self._delivery = delivery
        self._writer = SpoolWriter(path)
        self._writer.open(experiment, run, params, client_id=client_id, resume=resume)
        self._replayed = 0  # file offset up to which the server has the records
        self._call: Call | None = None
        self._call_end: int | None = None  # the offset the pending call reaches (None: start)
        self._delay = 0.05
        self._next_try = time.monotonic() + self._delay
        self.started: StartedRun | None = None
        self.refusal: BaseException | None = None

    def append_batch(self, request: pb.WriteBatchRequest) -> None:
        self._writer.append_batch(request)

    def append_graph(self, nodes: list[GraphNode]) -> None:
        self._writer.append_graph(graph_to_pb(nodes))

    def append_finish(self, status: str, wall_time: float) -> None:
        self._writer.append_finish(status, wall_time)

    def close(self) -> None:
        self._writer.close()

    def remove(self) -> None:
        self._writer.close()
        self.path.unlink()

    def advance(
        self, run_id: int | None, start: Callable[[], StartedRun], now: bool = False
    ) -> Replay:
        """Moves the replay on: takes the answer of the pending call and starts the
        next (``start`` first while the run has no id), at growing intervals while
        the server does not answer (``now``: without waiting for the interval)."""
        call = self._call
        if call is not None:
            if not call.done():
                return Replay.WAITING
            self._call = None
            delivered = self._delivery.answer(call)
            if delivered.outcome is Outcome.REFUSED:
                self.refusal = delivered.error
                return Replay.REFUSED
            if delivered.outcome is Outcome.FAILED:
                self._delay = min(self._delay * 2, 5.0)
                self._next_try = time.monotonic() + self._delay * (0.5 + random.random())
                return Replay.WAITING
            self._delay = 0.05
            if self._call_end is None:
                self.started = delivered.value
                return Replay.STARTED
            self._replayed = self._call_end
        elif not now and time.monotonic() < self._next_try:
            return Replay.WAITING
        return self._next_call(run_id, start)

    def _next_call(self, run_id: int | None, start: Callable[[], StartedRun]) -> Replay:
        if run_id is None:
            self._call_end = None
            self._call = self._delivery.call(start)
            return Replay.WAITING
        records = read_records(self.path, self._replayed, self._writer.size)
        for kind, payload, end in records:
            if kind == HEADER:
                self._replayed = end
                continue
            self._call_end = end
            self._call = self._delivery.call(
                functools.partial(send_record, self._store, run_id, kind, payload)
            )
            return Replay.WAITING
        return Replay.CAUGHT_UP
