"""Evenly spaced samples of a sequence: the one rule for picking histogram steps.

The server uses it to answer a histogram read limited to ``max_steps`` steps, and the
dashboard to pick the slices a histogram chart draws, so both pick the same steps.
Pure numpy: no network, no state.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["sample_evenly"]


def sample_evenly(n: int, k: int) -> npt.NDArray[np.int64]:
    """``k`` evenly spaced, sorted, unique indices into a sequence of length ``n``.

    Every index ``0 .. n-1`` when ``n <= k`` or ``k <= 0`` (no limit). Otherwise the
    result always includes ``0`` and ``n - 1`` (for ``k >= 2``); ``k == 1`` gives
    ``[n - 1]``, the latest step. Index ``i`` of ``k`` is ``i * (n-1) / (k-1)``
    rounded, halves up. Raises ValueError if ``n`` is negative.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if k <= 0 or n <= k:
        return np.arange(n, dtype=np.int64)
    if k == 1:
        return np.array([n - 1], dtype=np.int64)
    # round(i * (n-1) / (k-1)) in exact integer arithmetic; the spacing exceeds 1 since
    # n > k, so rounding never makes two indices equal.
    i = np.arange(k, dtype=np.int64)
    return (i * (n - 1) + (k - 1) // 2) // (k - 1)
