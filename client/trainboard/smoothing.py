"""TensorBoard's debiased exponential moving average (SPEC §9)."""

from __future__ import annotations

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
    last = 0.0
    n = 0
    for i, y in enumerate(data.tolist()):
        if not np.isfinite(y):
            continue
        last = last * weight + (1.0 - weight) * y
        n += 1
        out[i] = y if weight == 0.0 else last / (1.0 - weight**n)
    return out
