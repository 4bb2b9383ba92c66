"""Scalar lines shaped for a chart: raw and smoothed values (``trainboard.smooth``)
on an axis of time, the y-range that ignores outliers, and the CSV table of what a
chart shows."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from trainboard import smooth
from trainboard.types import Run
from trainboard_ui.colours import PALETTE
from trainboard_ui.time_axes import axis_title, relative_unit, time_axis

# Where the y-range goes with "ignore outliers": these quantiles of the drawn
# values, widened by OUTLIER_MARGIN of their spread on each side.
OUTLIER_QUANTILES = (0.05, 0.95)
OUTLIER_MARGIN = 0.1


@dataclass(frozen=True, slots=True)
class SeriesPoints:
    """One run's points of one tag, as read (possibly downsampled)."""

    run: Run
    steps: np.ndarray
    wall_times: np.ndarray
    values: np.ndarray


@dataclass(frozen=True, slots=True)
class ScalarLine:
    """What a chart draws for one run: x values and raw and smoothed y values."""

    run: str
    colour: str
    steps: np.ndarray
    wall_times: np.ndarray
    x: np.ndarray
    raw: np.ndarray
    smoothed: np.ndarray

    @property
    def non_finite(self) -> int:
        return int(np.count_nonzero(~np.isfinite(self.raw)))


def scalar_lines(
    series: Sequence[SeriesPoints],
    *,
    colours: Mapping[int, str],
    weight: float,
    axis: str,
    timezone: str | None = None,
) -> tuple[list[ScalarLine], str]:
    """The lines of one chart and its x-axis title.

    Smoothing is ``trainboard.smooth`` with ``weight``; relative times
    count from each run's start and share one unit per chart.
    """
    unit, unit_name = 1.0, "s"
    if axis == "relative":
        spans = [float(s.wall_times[-1]) - s.run.started_at for s in series if len(s.steps)]
        unit, unit_name = relative_unit(max(spans, default=0.0))
    lines = []
    for s in series:
        values = np.asarray(s.values, dtype=np.float64)
        lines.append(
            ScalarLine(
                run=s.run.name,
                colour=colours.get(s.run.id, PALETTE[0]),
                steps=np.asarray(s.steps, dtype=np.int64),
                wall_times=np.asarray(s.wall_times, dtype=np.float64),
                x=time_axis(
                    s.steps,
                    s.wall_times,
                    axis,
                    start=s.run.started_at,
                    unit=unit,
                    timezone=timezone,
                ),
                raw=values,
                smoothed=smooth(values, weight) if weight > 0 else values,
            )
        )
    return lines, axis_title(axis, unit_name)


def outlier_range(arrays: Iterable[np.ndarray], *, log: bool = False) -> tuple[float, float] | None:
    """A y-range that ignores outliers: the 5th to 95th percentile of the finite
    values, widened by a tenth of that spread on each side (at least the values'
    own magnitude / 10 when they are all equal). With ``log`` the range is of
    ``log10`` of the positive values, as Plotly's log axes take it. ``None`` when
    there is nothing to range over."""
    parts = [np.asarray(a, dtype=np.float64).ravel() for a in arrays]
    values = np.concatenate(parts) if parts else np.empty(0)
    values = values[np.isfinite(values)]
    if log:
        values = np.log10(values[values > 0])
    if values.size == 0:
        return None
    lo, hi = (float(q) for q in np.quantile(values, OUTLIER_QUANTILES))
    spread = hi - lo
    if spread <= 0:
        spread = abs(lo) if lo != 0 else 1.0
    return lo - OUTLIER_MARGIN * spread, hi + OUTLIER_MARGIN * spread


def lines_frame(lines: Sequence[ScalarLine]) -> pd.DataFrame:
    """The points a scalar chart shows, one row per point: run, step, wall time
    (seconds since the epoch), value and smoothed value. What its CSV holds."""
    columns = ["run", "step", "wall_time", "value", "smoothed"]
    if not lines:
        return pd.DataFrame({c: [] for c in columns})
    return pd.DataFrame(
        {
            "run": np.concatenate(
                [np.full(len(line.steps), line.run, dtype=object) for line in lines]
            ),
            "step": np.concatenate([line.steps for line in lines]),
            "wall_time": np.concatenate([line.wall_times for line in lines]),
            "value": np.concatenate([line.raw for line in lines]),
            "smoothed": np.concatenate([line.smoothed for line in lines]),
        },
        columns=columns,
    )


def csv_file_name(tag: str) -> str:
    """A file name for a tag's CSV: scopes joined by ``_``, nothing unsafe."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", tag).strip("._") or "series"
    return f"{safe}.csv"
