"""Pure numpy helpers for the read side of scalar and histogram series (docs/design.md).

Nothing here touches the database or the wire: the store hands in packed arrays and
gets packed arrays or index arrays back.

- :func:`resolve_last_write` merges a series' stored chunks into one step-sorted series,
  the later write winning on a re-logged step.
- :func:`downsample_indices` picks which points of a step-sorted series a chart gets so
  that no spike and no NaN/±Inf is ever sampled away.
- :func:`sample_evenly` picks evenly spaced histogram steps (``trainboard.sampling``,
  the rule the dashboard uses too).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from trainboard.sampling import sample_evenly

__all__ = ["downsample_indices", "resolve_last_write", "sample_evenly"]

Int64Array = npt.NDArray[np.int64]
Float64Array = npt.NDArray[np.float64]
Chunk = tuple[np.ndarray, np.ndarray, np.ndarray]

# Downsampling (docs/design.md) keeps at most 4 points per bucket (first, last, min,
# max) for finite data...
_POINTS_PER_BUCKET = 4
# ...and up to 7 once the bucket's first NaN, +Inf and -Inf are added.
_MAX_POINTS_PER_BUCKET = 7


def resolve_last_write(chunks: Sequence[Chunk]) -> tuple[Int64Array, Float64Array, Float64Array]:
    """Merge stored chunks of one series into a single series sorted by step.

    ``chunks`` are given in write order; each is ``(steps, wall_times, values)`` with
    ``steps`` strictly increasing and the three arrays of equal length (empty chunks are
    allowed and ignored). Returns ``(steps, wall_times, values)`` as new int64, float64
    and float64 arrays with strictly increasing steps; where several chunks hold the same
    step, the point of the chunk that comes later in ``chunks`` wins (last write wins).
    No chunks gives three empty arrays.

    Chunks whose step ranges do not overlap, the common case, are concatenated in the
    order of their first steps, in O(n); only groups of chunks whose ranges overlap
    cost a stable sort.

    Raises ValueError if a chunk's three arrays differ in length.
    """
    parts: list[tuple[Int64Array, Float64Array, Float64Array]] = []
    for steps, wall_times, values in chunks:
        s = np.asarray(steps, dtype=np.int64)
        w = np.asarray(wall_times, dtype=np.float64)
        v = np.asarray(values, dtype=np.float64)
        if not (s.ndim == w.ndim == v.ndim == 1 and len(s) == len(w) == len(v)):
            raise ValueError(
                "a chunk's steps, wall_times and values must be 1-D arrays of equal length, "
                f"got shapes {s.shape}, {w.shape}, {v.shape}"
            )
        if len(s):
            parts.append((s, w, v))
    if not parts:
        return (
            np.empty(0, dtype=np.int64),
            np.empty(0, dtype=np.float64),
            np.empty(0, dtype=np.float64),
        )

    firsts = np.fromiter((p[0][0] for p in parts), dtype=np.int64, count=len(parts))
    lasts = np.fromiter((p[0][-1] for p in parts), dtype=np.int64, count=len(parts))
    # Laid out by first step, chunks fall into groups whose step ranges overlap only
    # inside a group; groups of one chunk (the common case) are taken as they are.
    order = np.argsort(firsts, kind="stable")
    reach = np.maximum.accumulate(lasts[order])
    group_starts = np.flatnonzero(np.r_[True, firsts[order[1:]] > reach[:-1]])
    group_ends = np.r_[group_starts[1:], len(parts)]
    pieces: list[tuple[Int64Array, Float64Array, Float64Array]] = []
    for start, end in zip(group_starts.tolist(), group_ends.tolist(), strict=True):
        if end - start == 1:
            pieces.append(parts[int(order[start])])
        else:
            in_write_order = np.sort(order[start:end])
            pieces.append(_merge_overlapping([parts[i] for i in in_write_order.tolist()]))
    return (
        np.concatenate([p[0] for p in pieces]),
        np.concatenate([p[1] for p in pieces]),
        np.concatenate([p[2] for p in pieces]),
    )


def _merge_overlapping(
    parts: Sequence[tuple[Int64Array, Float64Array, Float64Array]],
) -> tuple[Int64Array, Float64Array, Float64Array]:
    """Merge chunks given in write order, the latest write winning on equal steps."""
    steps_all = np.concatenate([p[0] for p in parts])
    # A stable sort keeps equal steps in write order, so of each run of equal steps the
    # last one is the latest write.
    perm = np.argsort(steps_all, kind="stable")
    sorted_steps = steps_all[perm]
    keep = np.empty(len(perm), dtype=bool)
    np.not_equal(sorted_steps[1:], sorted_steps[:-1], out=keep[:-1])
    keep[-1] = True
    chosen = perm[keep]
    walls_all = np.concatenate([p[1] for p in parts])
    values_all = np.concatenate([p[2] for p in parts])
    return sorted_steps[keep], walls_all[chosen], values_all[chosen]


def downsample_indices(steps: np.ndarray, values: np.ndarray, max_points: int) -> Int64Array:
    """Indices of the points of a series that a chart of at most ``max_points`` keeps.

    ``steps`` are strictly increasing integers and ``values`` floats of the same length
    (NaN, +Inf and -Inf allowed). Returns sorted, unique int64 indices into them, at most
    ``max_points`` of them; every index when the series has no more than ``max_points``
    points or when ``max_points <= 0`` (no limit, as ``ReadScalars`` with ``max_points=0``).

    As docs/design.md says, the step range ``[steps[0], steps[-1]]`` is cut into buckets of equal
    step width, and each bucket keeps its first and last point, the first point holding
    the minimum and the first holding the maximum of its finite values, and its first
    NaN, first +Inf and first -Inf if it has any. So the series' first and last points
    are always kept and neither a single spike nor a single non-finite value can be
    sampled away. The bucket count starts at ``max_points // 4``, which always fits
    finite data, and shrinks only when non-finite points push the result over
    ``max_points``.

    With fewer points allowed than one bucket can need, points are kept in this order
    of priority until ``max_points`` is reached: first, last, minimum, maximum, NaN,
    +Inf, -Inf (``max_points == 1`` keeps the first point only).

    Raises ValueError if ``steps`` and ``values`` are not 1-D arrays of equal length.
    """
    steps_arr = np.asarray(steps, dtype=np.int64)
    values_arr = np.asarray(values, dtype=np.float64)
    if not (steps_arr.ndim == values_arr.ndim == 1 and len(steps_arr) == len(values_arr)):
        raise ValueError(
            "steps and values must be 1-D arrays of equal length, "
            f"got shapes {steps_arr.shape} and {values_arr.shape}"
        )
    n = len(steps_arr)
    if max_points <= 0 or n <= max_points:
        return np.arange(n, dtype=np.int64)
    if max_points < _POINTS_PER_BUCKET:
        # n > max_points >= 2 here implies n >= 3, so first and last differ.
        return np.array([0] if max_points == 1 else [0, n - 1], dtype=np.int64)

    n_buckets = max_points // _POINTS_PER_BUCKET
    starts, ends = _bucket_bounds(steps_arr, n_buckets)
    # np.minimum/np.maximum propagate NaN, so the raw per-bucket extremes are all finite
    # exactly when the series has no NaN and no ±Inf: the common case, which needs no
    # masked copies of the values and always fits (at most 4 points per bucket).
    raw_min = np.minimum.reduceat(values_arr, starts)
    raw_max = np.maximum.reduceat(values_arr, starts)
    if bool(np.isfinite(raw_min).all() and np.isfinite(raw_max).all()):
        everywhere = np.ones(len(starts), dtype=bool)
        return _sorted_unique(
            np.concatenate(
                [
                    starts,
                    ends - 1,
                    _first_equal(values_arr, starts, ends, raw_min, everywhere),
                    _first_equal(values_arr, starts, ends, raw_max, everywhere),
                ]
            )
        )

    # Everything that does not depend on the bucket count is computed once. One scratch
    # copy of the values serves both extremes: non-finite entries are set to +Inf for
    # the minima and to -Inf for the maxima, so they never win either.
    non_finite_mask = ~np.isfinite(values_arr)
    non_finite = np.flatnonzero(non_finite_mask)
    odd = values_arr[non_finite]
    nan_idx = non_finite[np.isnan(odd)]
    posinf_idx = non_finite[odd == np.inf]
    neginf_idx = non_finite[odd == -np.inf]
    scratch = values_arr.copy()

    # At `smallest_safe` buckets even 7 points per bucket fit (when max_points >= 7), so
    # after one proportional guess the next pass is that one: at most three passes.
    smallest_safe = max(1, max_points // _MAX_POINTS_PER_BUCKET)
    passes = 0
    while True:
        passes += 1
        np.copyto(scratch, np.inf, where=non_finite_mask)
        mins = np.minimum.reduceat(scratch, starts)
        first_min = _first_equal(scratch, starts, ends, mins, np.isfinite(mins))
        np.copyto(scratch, -np.inf, where=non_finite_mask)
        maxs = np.maximum.reduceat(scratch, starts)
        first_max = _first_equal(scratch, starts, ends, maxs, np.isfinite(maxs))
        groups = [
            starts,
            ends - 1,
            first_min,
            first_max,
            _first_in_buckets(nan_idx, starts, ends),
            _first_in_buckets(posinf_idx, starts, ends),
            _first_in_buckets(neginf_idx, starts, ends),
        ]
        kept = _sorted_unique(np.concatenate(groups))
        if len(kept) <= max_points:
            return kept
        if n_buckets <= smallest_safe:
            # Only reachable with a single bucket (max_points < 7): keep by priority.
            return _truncate_by_priority(groups, max_points)
        guess = n_buckets * max_points // len(kept) if passes == 1 else smallest_safe
        n_buckets = max(smallest_safe, min(n_buckets - 1, guess))
        starts, ends = _bucket_bounds(steps_arr, n_buckets)


def _bucket_bounds(steps: Int64Array, n_buckets: int) -> tuple[Int64Array, Int64Array]:
    """Start and end (exclusive) indices of the non-empty buckets, for reduceat.

    Bucket ``j`` holds the steps ``s`` with ``first + j*w <= s < first + (j+1)*w``, where
    ``w = (last - first) / n_buckets`` (the last bucket also holds ``last``). Empty buckets
    are dropped, so the starts strictly increase and each end is the next start, which is
    what ``np.ufunc.reduceat`` needs to reduce exactly each bucket.
    """
    n = len(steps)
    first = int(steps[0])
    span = int(steps[-1]) - first  # a Python int: cannot overflow
    q, r = divmod(span, n_buckets)
    # The smallest integer step >= first + j*span/n_buckets is
    # first + j*q + ceil(j*r/n_buckets). Computed in uint64, whose wrap-around is exact
    # here since every threshold lies in [first, last].
    j = np.arange(n_buckets, dtype=np.uint64)
    buckets = np.uint64(n_buckets)
    offsets = j * np.uint64(q) + (j * np.uint64(r) + buckets - np.uint64(1)) // buckets
    thresholds = (offsets + np.uint64(first % 2**64)).view(np.int64)
    bounds = np.searchsorted(steps, thresholds, side="left").astype(np.int64)
    ends = np.empty_like(bounds)
    ends[:-1] = bounds[1:]
    ends[-1] = n
    non_empty = bounds < ends
    return bounds[non_empty], ends[non_empty]


def _first_equal(
    data: Float64Array,
    starts: Int64Array,
    ends: Int64Array,
    targets: Float64Array,
    valid: npt.NDArray[np.bool_],
) -> Int64Array:
    """Per bucket where ``valid``, the first index whose value equals the bucket's target.

    Each valid target must occur in its own bucket (it is the bucket's min or max).
    """
    hits = np.flatnonzero(data == np.repeat(targets, ends - starts))
    # The first hit at or after a bucket's start lies in that bucket, since the bucket's
    # own target occurs there.
    pos = np.searchsorted(hits, starts[valid], side="left")
    return hits[pos].astype(np.int64, copy=False)


def _sorted_unique(indices: Int64Array) -> Int64Array:
    """``np.unique`` without its first-call cost (it imports ``numpy.ma``, about
    10 ms, which would land on a server's first read)."""
    ordered = np.sort(indices)
    return ordered[np.r_[True, ordered[1:] != ordered[:-1]]]


def _first_in_buckets(indices: Int64Array, starts: Int64Array, ends: Int64Array) -> Int64Array:
    """The first of the sorted ``indices`` in each bucket that has any."""
    if len(indices) == 0:
        return np.empty(0, dtype=np.int64)
    pos = np.searchsorted(indices, starts, side="left")
    candidates = indices[np.minimum(pos, len(indices) - 1)]
    inside = (pos < len(indices)) & (candidates < ends)
    return candidates[inside].astype(np.int64, copy=False)


def _truncate_by_priority(groups: Sequence[Int64Array], max_points: int) -> Int64Array:
    """The first ``max_points`` distinct indices of ``groups`` taken in order, sorted."""
    ordered = np.concatenate(groups)
    order = np.argsort(ordered, kind="stable")
    by_value = ordered[order]
    first_seen = order[np.r_[True, by_value[1:] != by_value[:-1]]]
    distinct_in_order = ordered[np.sort(first_seen)]
    return np.sort(distinct_in_order[:max_points])
