"""TensorBoard's debiased exponential moving average, as the dashboard draws it."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np


def smooth(values: Iterable[float] | np.ndarray, weight: float) -> np.ndarray:
    """Smooths ``values`` with weight in [0, 1): ``last = last * w + (1 - w) * y``
    over finite points only, starting from 0 and shown debiased as
    ``last / (1 - w**n)`` with n the number of finite points so far. NaN and
    ±Inf pass through unsmoothed; a constant series stays constant."""
    if not 0.0 <= weight < 1.0:
        raise ValueError(f"weight must be in [0, 1), got {weight}")
    data = np.asarray(values, dtype=np.float64)
    out = data.copy()
    if weight == 0.0:
        return out
    # The same operations, in the same order, as the dashboard's smoothing in the
    # browser (ui/frontend/src/smooth.js), so both give the same bits: w**n is kept
    # as a running product rather than a pow() call, whose last bit differs between
    # C libraries and JavaScript engines. The average is taken of the differences
    # from the first finite value and added back (the same average, as the debiased
    # average of a constant is that constant), so that a constant series stays
    # exactly constant instead of drifting by rounding.
    rest = 1.0 - weight
    last = 0.0
    power = 1.0
    base: float | None = None
    for i, y in enumerate(data.tolist()):
        if not math.isfinite(y):
            continue
        if base is None:
            base = y
        last = last * weight + rest * (y - base)
        power = power * weight
        out[i] = base + last / (1.0 - power)
    return out
