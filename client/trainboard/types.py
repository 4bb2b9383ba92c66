"""Plain domain types passed between the layers.

No wire (protobuf) or storage (SQLAlchemy) type crosses into these: the gRPC edge
converts messages to these on both sides, and the store converts its rows to these.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, overload

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

#: The statuses a run can be finished with (``trainboard.validation.check_final_status``).
FINAL_STATUSES: tuple[str, ...] = ("finished", "failed", "killed")
#: The statuses a run is stored with: running until it is finished.
STORED_STATUSES: tuple[str, ...] = ("running", *FINAL_STATUSES)
#: The statuses a run is reported with. "crashed" is never stored: it is how a
#: run still stored as "running" is reported once nothing moved its ``updated_at``
#: for a while (its client vanished); a new write makes it "running" again.
RUN_STATUSES: tuple[str, ...] = (*STORED_STATUSES, "crashed")
TAG_KINDS: tuple[str, ...] = ("scalar", "histogram")


@dataclass(frozen=True, slots=True)
class Run:
    """A stored run. Times are seconds since the Unix epoch; ``finished_at`` is
    ``None`` while the run is running (or reported crashed). ``tags`` are the
    labels a team marked it with, sorted."""

    id: int
    name: str
    experiment: str
    params: Mapping[str, Any]
    status: str
    started_at: float
    finished_at: float | None
    updated_at: float
    tags: tuple[str, ...] = ()

    @property
    def duration(self) -> float:
        """Seconds from start to finish, or to the last write while running."""
        end = self.finished_at if self.finished_at is not None else self.updated_at
        return max(0.0, end - self.started_at)


@dataclass(frozen=True, slots=True)
class Tag:
    """A series of a run: its tag name, kind and last stored step."""

    name: str
    kind: str
    last_step: int


@dataclass(frozen=True, slots=True)
class StartedRun:
    """What starting (or resuming) a run gives back."""

    run: Run
    resumed: bool
    last_steps: tuple[Tag, ...] = ()
    # The server reads ScalarRows in write batches (a wire capability: see the proto).
    accepts_rows: bool = False


@dataclass(frozen=True, slots=True, eq=False)
class ScalarSeries:
    """One scalar series read back: numpy arrays of equal length, sorted by step.

    ``total`` is the number of distinct steps stored in the requested range,
    whatever ``max_points`` was.
    """

    run_id: int
    tag: str
    steps: np.ndarray
    wall_times: np.ndarray
    values: np.ndarray
    total: int
    # A page of a full-resolution read (on the wire, or SqlStore.read_scalars_page):
    # where the rest of the range starts. None in what the Store contract returns.
    next_step: int | None = None

    def __len__(self) -> int:
        return int(self.steps.shape[0])

    def to_pandas(self) -> pd.DataFrame:
        """A DataFrame with columns step, wall_time and value (needs pandas)."""
        try:
            import pandas as pd
        except ImportError as exc:  # pragma: no cover - pandas ships with [ui]
            raise ImportError("to_pandas() needs pandas: pip install pandas") from exc
        return pd.DataFrame(
            {"step": self.steps, "wall_time": self.wall_times, "value": self.values}
        )


@dataclass(frozen=True, slots=True)
class ScalarColumns:
    """Points of one scalar tag in a write batch, columnar and of equal length."""

    tag: str
    steps: np.ndarray
    wall_times: np.ndarray
    values: np.ndarray


@dataclass(frozen=True, slots=True)
class HistogramSummary:
    """A compressed histogram (docs/design.md).

    ``count`` counts every element; ``nan_count``, ``posinf_count`` and
    ``neginf_count`` the non-finite ones; ``bucket_counts`` are buckets holding
    the finite ones, and ``min``, ``max``, ``sum`` and ``sum_squares`` are over
    the finite ones (all 0 when there are none, with no buckets).

    ``edges`` are the buckets' ``len(bucket_counts) + 1`` edges, which follow the
    data (empty: equal-width buckets over ``[min, max]``, as summaries stored
    before edges existed have). ``basis_values`` are the exact values at
    TensorBoard's nine basis points (empty in those older summaries: then
    :meth:`bands` derives them from the buckets).
    """

    count: int
    min: float
    max: float
    sum: float
    sum_squares: float
    nan_count: int
    posinf_count: int
    neginf_count: int
    bucket_counts: tuple[int, ...]
    edges: tuple[float, ...] = ()
    basis_values: tuple[float, ...] = ()

    @property
    def finite_count(self) -> int:
        return self.count - self.nan_count - self.posinf_count - self.neginf_count

    @property
    def mean(self) -> float:
        n = self.finite_count
        return self.sum / n if n else float("nan")

    @property
    def std(self) -> float:
        n = self.finite_count
        if not n:
            return float("nan")
        var = self.sum_squares / n - (self.sum / n) ** 2
        return float(np.sqrt(max(var, 0.0)))

    def bucket_edges(self) -> np.ndarray:
        """The ``len(bucket_counts) + 1`` edges of the buckets, as they were used."""
        if self.edges:
            return np.asarray(self.edges, dtype=np.float64)
        return np.linspace(self.min, self.max, len(self.bucket_counts) + 1)

    def bands(self) -> np.ndarray:
        """Values at TensorBoard's nine basis points, low to high (docs/design.md):
        exact (``numpy.percentile`` of the finite values) where the summary carries
        them, else derived from the buckets."""
        from trainboard.histogram import bands

        return bands(self)


@dataclass(frozen=True, slots=True)
class Histogram(HistogramSummary):
    """A histogram summary logged at one step of one tag."""

    step: int = 0
    wall_time: float = 0.0

    @property
    def summary(self) -> HistogramSummary:
        return HistogramSummary(**_summary_fields(self))

    @classmethod
    def at(cls, summary: HistogramSummary, step: int, wall_time: float) -> Histogram:
        return cls(**_summary_fields(summary), step=step, wall_time=wall_time)


_SUMMARY_FIELDS = tuple(f.name for f in fields(HistogramSummary))


def _summary_fields(summary: HistogramSummary) -> dict[str, Any]:
    """The fields of a summary (or of a ``Histogram``'s summary), by name."""
    return {name: getattr(summary, name) for name in _SUMMARY_FIELDS}


@dataclass(frozen=True, slots=True)
class HistogramRecord:
    """One histogram of a write batch."""

    tag: str
    step: int
    wall_time: float
    summary: HistogramSummary


@dataclass(frozen=True, slots=True)
class HistogramSeries(Sequence[Histogram]):
    """The histograms of one tag read back, sorted by step; ``total`` counts the
    steps stored, whatever ``max_steps`` was. Indexable like a list."""

    run_id: int
    tag: str
    items: tuple[Histogram, ...]
    total: int

    @overload
    def __getitem__(self, index: int) -> Histogram: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Histogram]: ...
    def __getitem__(self, index: int | slice) -> Histogram | Sequence[Histogram]:
        return self.items[index]

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Histogram]:
        return iter(self.items)

    @property
    def steps(self) -> np.ndarray:
        return np.array([h.step for h in self.items], dtype=np.int64)


@dataclass(frozen=True, slots=True)
class WriteBatch:
    """What one WriteBatch RPC carries, idempotent per (client_id, sequence)."""

    client_id: str
    sequence: int
    run_id: int
    scalars: tuple[ScalarColumns, ...] = ()
    histograms: tuple[HistogramRecord, ...] = ()


@dataclass(frozen=True, slots=True)
class WriteResult:
    scalar_points: int
    histogram_points: int
    duplicate: bool


@dataclass(frozen=True, slots=True)
class GraphNode:
    """One node of a model graph (docs/design.md).

    ``name`` uses ``/`` between scopes (``gradients/softmax_grad``); ``inputs``
    name other nodes of the same graph; ``shape`` is the output shape (``-1`` for
    an unknown dimension) or ``None`` when unknown.
    """

    name: str
    op: str
    inputs: tuple[str, ...] = ()
    shape: tuple[int, ...] | None = None
    dtype: str = ""
    attributes: Mapping[str, str] = field(default_factory=dict)
