"""Reading one series through the Store contract's batched reads, for tests."""

from __future__ import annotations

from trainboard.store import Store
from trainboard.types import HistogramSeries, ScalarSeries


def read_scalars(
    store: Store,
    run_id: int,
    tag: str,
    *,
    max_points: int | None = None,
    min_step: int | None = None,
    max_step: int | None = None,
) -> ScalarSeries | None:
    """One scalar series through the batched read, or None when the run lacks it."""
    found = store.read_scalars(
        run_ids=[run_id], tags=[tag], max_points=max_points, min_step=min_step, max_step=max_step
    )
    assert set(found) <= {(run_id, tag)}
    series = found.get((run_id, tag))
    assert series is None or series.next_step is None  # whole, never a page
    return series


def read_histograms(
    store: Store,
    run_id: int,
    tag: str,
    *,
    max_steps: int | None = None,
    min_step: int | None = None,
) -> HistogramSeries | None:
    """One histogram series through the batched read, or None when the run lacks it."""
    found = store.read_histograms(
        run_ids=[run_id], tags=[tag], max_steps=max_steps, min_step=min_step
    )
    assert set(found) <= {(run_id, tag)}
    return found.get((run_id, tag))
