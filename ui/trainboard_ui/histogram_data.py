"""Histogram slices shaped for a chart: sampled evenly over steps (the last kept,
``trainboard.sampling``), rebinned onto edges shared by all slices, with what falls
outside the range shown counted."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from trainboard.sampling import sample_evenly
from trainboard.types import Histogram
from trainboard_ui.time_axes import X_AXES

#: A histogram chart leaves out this share of the values at each end when that
#: narrows its range to under :data:`NARROWED` of the whole: an outlier or a long
#: tail would otherwise squeeze the bulk into one or two bins. What is left out is
#: counted under the chart.
LEFT_OUT_SHARE = 0.001
NARROWED = 0.5


def value_at_share(histogram: Histogram, share: float) -> float:
    """The value below which ``share`` of the histogram's finite values lie, values
    spread evenly inside each bucket (exact at the buckets' edges)."""
    counts = np.asarray(histogram.bucket_counts, dtype=np.float64)
    cumulative = np.concatenate([[0.0], np.cumsum(counts)])
    if cumulative[-1] <= 0:
        return float("nan")
    return float(np.interp(share * cumulative[-1], cumulative, histogram.bucket_edges()))


def common_edges(histograms: Sequence[Histogram], bins: int) -> np.ndarray:
    """``bins + 1`` equal-width edges over the range the histograms' chart shows:
    their whole finite range, or, when leaving out :data:`LEFT_OUT_SHARE` of each
    one's values at each end narrows it to under :data:`NARROWED` of that, the rest
    (widened to a unit, or a tenth of the value, around a single constant)."""
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    finite = [h for h in histograms if sum(h.bucket_counts) > 0]
    if not finite:
        return np.linspace(-0.5, 0.5, bins + 1)
    lo = min(float(h.min) for h in finite)
    hi = max(float(h.max) for h in finite)
    bulk_lo = min(value_at_share(h, LEFT_OUT_SHARE) for h in finite)
    bulk_hi = max(value_at_share(h, 1.0 - LEFT_OUT_SHARE) for h in finite)
    if bulk_lo < bulk_hi and bulk_hi / 2 - bulk_lo / 2 < NARROWED * (hi / 2 - lo / 2):
        lo, hi = bulk_lo, bulk_hi
    if lo == hi:
        half = abs(lo) / 10 if lo != 0 else 0.5
        lo, hi = lo - half, hi + half
    return np.linspace(lo, hi, bins + 1)


def rebin(histogram: Histogram, edges: np.ndarray) -> np.ndarray:
    """The histogram's finite counts redistributed over ``edges``, assuming values
    spread evenly inside each stored bucket; a constant histogram puts its whole
    count in the bin holding the constant. Counts outside ``edges`` are dropped."""
    edges = np.asarray(edges, dtype=np.float64)
    counts = np.asarray(histogram.bucket_counts, dtype=np.float64)
    out = np.zeros(len(edges) - 1)
    if counts.size == 0 or counts.sum() <= 0:
        return out
    lo, hi = float(histogram.min), float(histogram.max)
    if lo == hi:
        if edges[0] <= lo <= edges[-1]:
            index = int(np.searchsorted(edges, lo, side="right")) - 1
            out[min(max(index, 0), len(out) - 1)] = counts.sum()
        return out
    source = histogram.bucket_edges()
    cumulative = np.concatenate([[0.0], np.cumsum(counts)])
    # The cumulative count is piecewise linear over the stored edges: read it at
    # the new edges and take differences.
    at_edges = np.interp(edges, source, cumulative)
    return np.diff(at_edges)


@dataclass(frozen=True, slots=True)
class HistogramSlices:
    """Histograms of one run and tag, sampled over steps and rebinned onto shared
    edges: ``counts[i]`` is the slice at ``steps[i]``, oldest first. ``below[i]``
    and ``above[i]`` count its finite values outside the edges, and ``lowest`` and
    ``highest`` are the extremes of all the slices."""

    edges: np.ndarray
    counts: np.ndarray
    steps: np.ndarray
    wall_times: np.ndarray
    time: np.ndarray
    below: np.ndarray
    above: np.ndarray
    lowest: float
    highest: float

    @property
    def left_out(self) -> str:
        """What the newest slice has outside the range shown, in words ("" if
        nothing)."""
        if not len(self.steps):
            return ""
        parts = []
        if self.below[-1] >= 0.5:
            parts.append(
                f"{self.below[-1]:,.0f} below {self.edges[0]:.4g} (down to {self.lowest:.4g})"
            )
        if self.above[-1] >= 0.5:
            parts.append(
                f"{self.above[-1]:,.0f} above {self.edges[-1]:.4g} (up to {self.highest:.4g})"
            )
        if not parts:
            return ""
        return f"Step {int(self.steps[-1])}, outside the range shown: " + "; ".join(parts)

    @property
    def centres(self) -> np.ndarray:
        centres: np.ndarray = (self.edges[:-1] + self.edges[1:]) / 2
        return centres


def histogram_slices(
    histograms: Sequence[Histogram],
    *,
    max_slices: int,
    bins: int,
    axis: str,
    start: float = 0.0,
    unit: float = 1.0,
) -> HistogramSlices:
    """At most ``max_slices`` of the histograms, evenly over their steps with the
    last always kept, on ``bins`` shared bins; ``time`` is each slice's position on
    the axis of time (steps, relative time in ``unit`` from ``start``, or seconds
    since the epoch for wall time)."""
    chosen = [histograms[int(i)] for i in sample_evenly(len(histograms), max_slices)]
    edges = common_edges(chosen, bins)
    counts = np.vstack([rebin(h, edges) for h in chosen]) if chosen else np.zeros((0, bins))
    finite = np.array([float(sum(h.bucket_counts)) for h in chosen])
    below = np.array([_count_below(h, float(edges[0])) for h in chosen])
    above = finite - below - (counts.sum(axis=1) if chosen else 0.0)
    held = [h for h in chosen if sum(h.bucket_counts) > 0]
    steps = np.array([h.step for h in chosen], dtype=np.int64)
    walls = np.array([h.wall_time for h in chosen], dtype=np.float64)
    if axis == "step":
        time = steps.astype(np.float64)
    elif axis == "relative":
        time = (walls - start) / unit
    elif axis == "wall":
        time = walls
    else:
        raise ValueError(f"axis must be one of {X_AXES}, got {axis!r}")
    return HistogramSlices(
        edges=edges,
        counts=counts,
        steps=steps,
        wall_times=walls,
        time=time,
        below=below,
        above=np.maximum(above, 0.0),
        lowest=min((float(h.min) for h in held), default=float("nan")),
        highest=max((float(h.max) for h in held), default=float("nan")),
    )


def _count_below(histogram: Histogram, value: float) -> float:
    counts = np.asarray(histogram.bucket_counts, dtype=np.float64)
    if counts.size == 0 or counts.sum() <= 0 or histogram.min == histogram.max:
        return 0.0 if counts.size == 0 or histogram.min >= value else float(counts.sum())
    cumulative = np.concatenate([[0.0], np.cumsum(counts)])
    return float(np.interp(value, histogram.bucket_edges(), cumulative))
