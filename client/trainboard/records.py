"""What the trainer's thread puts on the queue for the sender, and the two
things they share: the record kinds and the budget of histogram snapshots.

A record is a plain tuple whose first item is its kind (small ints: cheaper
to build and compare than classes):

- ``(SCALAR, tag, value, step | None, wall_time)`` from ``log_scalar``;
- ``(SCALARS, tags, values, step | None, wall_time)`` from ``log_scalars``, with
  ``tags`` and ``values`` tuples in the same order;
- ``(HISTOGRAM, tag, snapshot, step | None, wall_time, buckets)`` from ``log_histogram``;
- ``(GRAPH, nodes)`` from ``log_graph``;
- ``(FLUSH, marker)`` and ``(CLOSE, marker)`` from ``flush()`` and ``close()``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Final

SCALAR: Final = 0
SCALARS: Final = 1
HISTOGRAM: Final = 2
GRAPH: Final = 3
FLUSH: Final = 4
CLOSE: Final = 5


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
