"""Distributions shaped for a chart: TensorBoard's percentile bands of a run's
histograms over steps (``Histogram.bands()``), and the y range that keeps the outer
band from flattening the others."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from trainboard.histogram import BASIS_POINTS
from trainboard.types import Histogram

#: Band column names of a distribution frame, low to high (one per basis point).
BAND_COLUMNS: tuple[str, ...] = tuple(f"bp{b}" for b in BASIS_POINTS)
#: Pairs of band columns (by index) that enclose each shaded band, outermost first.
BAND_PAIRS: tuple[tuple[int, int], ...] = ((0, 8), (1, 7), (2, 6), (3, 5))
MEDIAN_INDEX = 4


def distribution_frame(histograms: Sequence[Histogram]) -> pd.DataFrame:
    """TensorBoard's distribution over steps: one row per histogram with its step,
    wall time and the values at the nine basis points (:data:`BAND_COLUMNS`, low to
    high), by linear interpolation inside the buckets. A histogram with
    no finite values gives a row of NaN bands."""
    bands = (
        np.vstack([h.bands() for h in histograms])
        if histograms
        else np.empty((0, len(BASIS_POINTS)))
    )
    frame = pd.DataFrame(
        {
            "step": np.array([h.step for h in histograms], dtype=np.int64),
            "wall_time": np.array([h.wall_time for h in histograms], dtype=np.float64),
        }
    )
    for i, column in enumerate(BAND_COLUMNS):
        frame[column] = bands[:, i]
    return frame


#: A distribution chart is cut to its inner bands when the 7%-93% band spans less
#: than this share of min to max (a normal tensor's spans about a third of it).
BANDS_NARROWED = 0.15


def band_range(frame: pd.DataFrame) -> tuple[float, float] | None:
    """A y range for a distribution chart whose min-max band would flatten the rest:
    when the 7%-93% band spans under :data:`BANDS_NARROWED` of min to max (over all
    its steps), that band widened by half its span each way (the outer band is then
    drawn cut off, and the view says how far it reaches). ``None``: show it all."""
    bands = frame[list(BAND_COLUMNS)].to_numpy(dtype=np.float64)
    bands = bands[np.isfinite(bands).all(axis=1)]
    if not len(bands):
        return None
    lo, hi = float(bands[:, 0].min()), float(bands[:, -1].max())
    inner_lo, inner_hi = float(bands[:, 1].min()), float(bands[:, -2].max())
    span = inner_hi / 2 - inner_lo / 2
    if not (0 < span < BANDS_NARROWED * (hi / 2 - lo / 2)):
        return None
    return max(lo, inner_lo - span), min(hi, inner_hi + span)
