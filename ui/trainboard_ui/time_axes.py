"""The axis of time of a chart: steps, time since the run's start, or wall time
(local to the viewer's time zone)."""

from __future__ import annotations

import math
import zoneinfo
from collections.abc import Mapping

import numpy as np
import pandas as pd

#: The axes of time a chart can have: steps, time since the run's start, clock time.
X_AXES: tuple[str, ...] = ("step", "relative", "wall")
X_AXIS_LABELS: Mapping[str, str] = {
    "step": "Step",
    "relative": "Relative time",
    "wall": "Wall time",
}


def relative_unit(max_seconds: float) -> tuple[float, str]:
    """``(seconds per unit, unit name)`` that keeps relative times readable."""
    if not math.isfinite(max_seconds) or max_seconds < 120:
        return 1.0, "s"
    if max_seconds < 2 * 3600:
        return 60.0, "min"
    if max_seconds < 2 * 86400:
        return 3600.0, "h"
    return 86400.0, "days"


def valid_timezone(name: str | None) -> str:
    """``name`` when it is a time zone this machine knows, else ``"UTC"``."""
    if not name:
        return "UTC"
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return "UTC"
    return name


def wall_datetimes(wall_times: np.ndarray, timezone: str | None = None) -> np.ndarray:
    """Seconds since the epoch as naive local ``datetime64`` values in ``timezone``
    (UTC when unknown): what a date axis shows without converting again."""
    stamps = pd.to_datetime(np.asarray(wall_times, dtype=np.float64), unit="s", utc=True)
    local = pd.DatetimeIndex(stamps).tz_convert(valid_timezone(timezone)).tz_localize(None)
    result: np.ndarray = local.to_numpy()
    return result


def time_axis(
    steps: np.ndarray,
    wall_times: np.ndarray,
    axis: str,
    *,
    start: float = 0.0,
    unit: float = 1.0,
    timezone: str | None = None,
) -> np.ndarray:
    """The x values of points for a chart's axis of time.

    ``"step"``: the steps. ``"relative"``: ``(wall_time - start) / unit``, with
    ``start`` the run's start. ``"wall"``: local datetimes (:func:`wall_datetimes`).
    """
    if axis == "step":
        return np.asarray(steps, dtype=np.int64)
    if axis == "relative":
        return (np.asarray(wall_times, dtype=np.float64) - start) / unit
    if axis == "wall":
        return wall_datetimes(wall_times, timezone)
    raise ValueError(f"axis must be one of {X_AXES}, got {axis!r}")


def axis_title(axis: str, unit: str = "s") -> str:
    if axis == "relative":
        return f"Relative time ({unit})"
    return X_AXIS_LABELS.get(axis, axis)
