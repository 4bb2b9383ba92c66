"""Delivering calls to the server without ever waiting on the network.

Each call runs on a thread of its own (``Call``); the sender waits for it in
short slices and goes on with its queue meanwhile. ``Delivery`` keeps the
state that decides what to do with an answer: retry (with capped exponential
backoff and jitter), give up on a final refusal, or spool.
"""

from __future__ import annotations

import enum
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from trainboard import errors

log = logging.getLogger("trainboard")

# What the server says when it will never take a record: retrying cannot help, so
# the record is reported (once per cause) and dropped. Everything else it answers
# (unavailable, a deadline, an internal error) is retried, then spooled.
FINAL: Final = (
    errors.InvalidArgument,
    errors.NotFound,
    errors.PermissionDenied,
    errors.Unauthenticated,
    errors.ResourceExhausted,
)
# The sender waits for a call in slices this long, so that it notices a filling
# queue, close() or a stalled server while the call is pending.
SLICE: Final = 0.02
# Seconds a call may keep the sender waiting while the queue is half full, before
# the sender spools (a healthy server answers a batch well within it).
PRESSURE_GRACE: Final = 0.25


class Call:
    """One blocking store call, run on a thread of its own. A call left behind
    (its record went to the spool) finishes on its own; every call is
    idempotent, so a late success costs nothing."""

    __slots__ = ("_done", "_error", "_result", "started")

    def __init__(self, rpc: Callable[[], Any], on_done: Callable[[], None]) -> None:
        self.started = time.monotonic()
        self._done = threading.Event()
        self._result: Any = None
        self._error: BaseException | None = None

        def run() -> None:
            try:
                self._result = rpc()
            except BaseException as exc:  # handed over by outcome()
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


class Outcome(enum.Enum):
    STORED = "stored"  # the server answered; ``value`` is its answer
    REFUSED = "refused"  # a final refusal; ``error`` says why
    FAILED = "failed"  # a failure worth retrying (only from ``Delivery.wait``)
    SPILL = "spill"  # stop waiting: the record goes to the spool


@dataclass(frozen=True)
class Delivered:
    outcome: Outcome
    value: Any = None
    error: BaseException | None = None


class Delivery:
    """Calls to the server and what their answers mean.

    ``must_spill`` says when records go to the spool: close() gave up
    (``abandoned``); the server has failed, or kept a call waiting, for
    ``spill_after`` seconds; or the trainer's side is filling up (``pressed``)
    while the server fails or keeps a call waiting."""

    def __init__(
        self,
        *,
        spill_after: float,
        pressed: Callable[[], bool],
        abandoned: threading.Event,
        wake: threading.Event,
    ) -> None:
        self.spill_after = spill_after
        self._pressed = pressed
        self._abandoned = abandoned
        self._wake = wake
        self.outage_since: float | None = None
        self.last_contact = time.monotonic()  # of the last call the server answered
        self._unavailable_reported = False
        self._refusals_reported: set[tuple[str, str]] = set()

    def call(self, rpc: Callable[[], Any]) -> Call:
        """Starts ``rpc``; its end wakes the sender."""
        return Call(rpc, self._wake.set)

    def wait(self, call: Call) -> Delivered:
        """Waits for ``call`` in slices: STORED, REFUSED, FAILED (retry it) or SPILL
        (``must_spill`` said so while it was pending)."""
        while not call.wait(SLICE):
            if self.must_spill(pending_since=call.started):
                self.note_outage(None, since=call.started)
                return Delivered(Outcome.SPILL)
        return self.answer(call)

    def answer(self, call: Call) -> Delivered:
        """What the answer of a finished call means."""
        try:
            value = call.outcome()
        except FINAL as exc:
            return Delivered(Outcome.REFUSED, error=exc)
        except errors.TrainboardError as exc:
            self.note_outage(exc)
            return Delivered(Outcome.FAILED, error=exc)
        self.answered()
        return Delivered(Outcome.STORED, value)

    def deliver(self, rpc: Callable[[], Any], first: Call | None = None) -> Delivered:
        """Runs ``rpc`` (``first``: already running) until the server answers:
        STORED, REFUSED, or SPILL once ``must_spill`` says so."""
        delay = 0.05
        call = first
        while True:
            if call is None:
                if self.must_spill():
                    return Delivered(Outcome.SPILL)
                call = self.call(rpc)
            delivered = self.wait(call)
            if delivered.outcome is not Outcome.FAILED:
                return delivered
            call = None
            delay = self._backoff(delay)

    def answered(self) -> None:
        self.outage_since = None
        self.last_contact = time.monotonic()

    def back(self) -> None:
        """The server took everything again: a next outage is reported anew."""
        self.answered()
        self._unavailable_reported = False

    def note_outage(self, exc: BaseException | None, since: float | None = None) -> None:
        if self.outage_since is None:
            self.outage_since = time.monotonic() if since is None else since
        if not self._unavailable_reported:
            self._unavailable_reported = True
            reason = exc if exc is not None else "no answer"
            log.warning("trainboard: server unavailable, retrying in the background: %s", reason)

    def report_refusal(self, what: str, run: str, exc: BaseException | None) -> None:
        """Warns once per cause (the same error on every batch is one warning)."""
        cause = (type(exc).__name__, str(exc))
        if cause in self._refusals_reported:
            return
        self._refusals_reported.add(cause)
        log.warning("trainboard: the server refused %s of run %r (not retried): %s", what, run, exc)

    def must_spill(self, pending_since: float | None = None) -> bool:
        if self._abandoned.is_set():
            return True
        now = time.monotonic()
        waited = max(now - (self.outage_since or now), now - (pending_since or now))
        if waited >= self.spill_after:
            return True
        return self._pressed() and (self.outage_since is not None or waited >= PRESSURE_GRACE)

    def unreachable_for(self, pending_since: float | None = None) -> float:
        """Seconds since the server stopped answering (0 while it answers): since a
        call failed and nothing succeeded after it, or since a call still pending
        was sent, once it has waited ``spill_after`` seconds."""
        now = time.monotonic()
        since = self.outage_since
        if pending_since is not None and now - pending_since >= self.spill_after:
            since = pending_since if since is None else min(since, pending_since)
        return 0.0 if since is None else now - since

    def _backoff(self, delay: float) -> float:
        # Short waits, so that a filling queue or close() is noticed quickly.
        deadline = time.monotonic() + delay * (0.5 + random.random())
        while not self.must_spill() and time.monotonic() < deadline:
            self._abandoned.wait(min(SLICE, max(0.0, deadline - time.monotonic())))
        return min(delay * 2, 5.0)
