"""Read-side series helpers: last-write resolution, downsampling, even sampling."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from trainboard_server.downsample import downsample_indices, resolve_last_write, sample_evenly

INF = math.inf


# --- slow, obviously correct references ------------------------------------------------


def reference_keep(steps: np.ndarray, values: np.ndarray, n_buckets: int) -> set[int]:
    """What downsampling keeps with `n_buckets` buckets of equal step width, point by point.

    Bucket of step s: floor((s - first) * n_buckets / span), the last step going into
    the last bucket. Exact in Python integers.
    """
    step_list = [int(s) for s in steps]
    vals = [float(v) for v in values]
    first, span = step_list[0], step_list[-1] - step_list[0]
    buckets: dict[int, list[int]] = {}
    for i, s in enumerate(step_list):
        b = min((s - first) * n_buckets // span, n_buckets - 1) if span else 0
        buckets.setdefault(b, []).append(i)
    keep: set[int] = set()
    for members in buckets.values():
        keep.update((members[0], members[-1]))
        finite = [i for i in members if math.isfinite(vals[i])]
        if finite:
            keep.add(min(finite, key=lambda i: (vals[i], i)))  # first minimum
            keep.add(min(finite, key=lambda i: (-vals[i], i)))  # first maximum
        for wanted in (math.isnan, lambda x: x == INF, lambda x: x == -INF):
            hit = next((i for i in members if wanted(vals[i])), None)
            if hit is not None:
                keep.add(hit)
    return keep


def reference_last_write(
    chunks: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
) -> tuple[list[int], list[float], list[float]]:
    latest: dict[int, tuple[float, float]] = {}
    for steps, walls, values in chunks:
        for s, w, v in zip(steps.tolist(), walls.tolist(), values.tolist(), strict=True):
            latest[s] = (w, v)
    order = sorted(latest)
    return order, [latest[s][0] for s in order], [latest[s][1] for s in order]


def chunk(
    steps: Sequence[int] | np.ndarray, tag: float = 0.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A chunk whose values say which chunk they came from (tag) and at which step."""
    s = np.asarray(steps, dtype=np.int64)
    return s, s.astype(np.float64) * 10 + tag, s.astype(np.float64) + tag


# --- strategies ----------------------------------------------------------------------

special_floats = st.sampled_from([math.nan, INF, -INF, 0.0, -0.0, 1.0, -1.0])
any_float = st.one_of(
    special_floats, st.floats(allow_nan=True, allow_infinity=True, width=64), st.integers(-3, 3)
).map(float)


@st.composite
def series(draw: st.DrawFn, max_len: int = 200, finite: bool = False) -> tuple[np.ndarray, ...]:
    n = draw(st.integers(0, max_len))
    gaps = draw(
        st.lists(st.one_of(st.integers(1, 3), st.integers(1, 10**6)), min_size=n, max_size=n)
    )
    start = draw(st.integers(0, 2**40))
    steps = start + np.cumsum(np.asarray(gaps, dtype=np.int64)) - (gaps[0] if gaps else 0)
    element = st.floats(-1e6, 1e6).map(float) if finite else any_float
    values = np.asarray(draw(st.lists(element, min_size=n, max_size=n)), dtype=np.float64)
    return steps.astype(np.int64), values


def random_walk(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return np.arange(n, dtype=np.int64), np.cumsum(rng.normal(size=n))


def assert_well_formed(kept: np.ndarray, n: int, max_points: int) -> None:
    assert kept.dtype == np.int64
    assert len(kept) <= max_points
    assert np.all(np.diff(kept) > 0), "indices must be sorted and unique"
    if len(kept):
        assert kept[0] >= 0
        assert kept[-1] < n


# --- downsample_indices --------------------------------------------------------------


def test_short_series_is_returned_whole() -> None:
    steps, values = random_walk(50)
    for max_points in (50, 51, 10_000):
        assert downsample_indices(steps, values, max_points).tolist() == list(range(50))


def test_zero_max_points_means_no_limit() -> None:
    steps, values = random_walk(5_000)
    assert downsample_indices(steps, values, 0).tolist() == list(range(5_000))
    assert downsample_indices(steps, values, -1).tolist() == list(range(5_000))


def test_an_empty_series_keeps_nothing() -> None:
    kept = downsample_indices(np.empty(0, np.int64), np.empty(0), 10)
    assert kept.dtype == np.int64
    assert kept.tolist() == []


def test_a_single_point_is_kept() -> None:
    for max_points in (0, 1, 2, 4, 100):
        assert downsample_indices(np.array([7]), np.array([math.nan]), max_points).tolist() == [0]


def test_a_single_spike_among_a_million_points_survives() -> None:
    steps, values = random_walk(1_000_000)
    values[654_321] = 1e9
    values[123_457] = -1e9
    kept = downsample_indices(steps, values, 2_000)
    assert_well_formed(kept, len(steps), 2_000)
    assert {654_321, 123_457} <= set(kept.tolist())


def test_a_single_nan_survives() -> None:
    steps, values = random_walk(1_000_000, seed=1)
    values[500_001] = math.nan
    kept = downsample_indices(steps, values, 2_000)
    assert_well_formed(kept, len(steps), 2_000)
    assert 500_001 in kept
    assert np.isnan(values[kept]).sum() == 1


def test_inf_and_minus_inf_survive() -> None:
    steps, values = random_walk(1_000_000, seed=2)
    values[[10, 999_990]] = INF
    values[333_333] = -INF
    kept = downsample_indices(steps, values, 2_000)
    assert_well_formed(kept, len(steps), 2_000)
    assert {10, 999_990, 333_333} <= set(kept.tolist())


def test_every_bucket_keeps_its_first_nan_inf_and_minus_inf() -> None:
    steps = np.arange(1_000, dtype=np.int64)
    values = np.zeros(1_000)
    values[[5, 6, 300, 301, 302, 990]] = [math.nan, math.nan, INF, -INF, INF, -INF]
    kept = downsample_indices(steps, values, 40)  # 10 buckets of 100 steps
    assert {5, 300, 301, 990} <= set(kept.tolist())
    assert not {6, 302} & set(kept.tolist()), "only the first of a kind per bucket"


@pytest.mark.parametrize("max_points", [2, 3, 4, 5, 6, 7, 8, 9, 17, 100])
def test_first_and_last_are_always_kept(max_points: int) -> None:
    steps = np.arange(0, 3_000, 3, dtype=np.int64)
    values = np.linspace(-1, 1, len(steps)) ** 3
    values[[1, 400, 700]] = [math.nan, INF, -INF]
    values[[0, -1]] = [5.0, -5.0]
    kept = downsample_indices(steps, values, max_points)
    assert_well_formed(kept, len(steps), max_points)
    assert kept[0] == 0
    assert kept[-1] == len(steps) - 1


def test_one_point_allowed_keeps_the_first() -> None:
    steps, values = random_walk(100)
    assert downsample_indices(steps, values, 1).tolist() == [0]


@pytest.mark.parametrize("max_points", [2, 3])
def test_fewer_than_four_points_allowed_keep_first_and_last(max_points: int) -> None:
    steps, values = random_walk(100)
    assert downsample_indices(steps, values, max_points).tolist() == [0, 99]


def test_one_bucket_too_small_for_everything_keeps_by_priority() -> None:
    # max_points 4..6 means one bucket; here it would need 7 points.
    steps = np.arange(20, dtype=np.int64)
    values = np.zeros(20)
    values[[3, 6, 9, 12, 15]] = [-2.0, 2.0, math.nan, INF, -INF]
    assert downsample_indices(steps, values, 4).tolist() == [0, 3, 6, 19]
    assert downsample_indices(steps, values, 5).tolist() == [0, 3, 6, 9, 19]
    assert downsample_indices(steps, values, 6).tolist() == [0, 3, 6, 9, 12, 19]
    assert downsample_indices(steps, values, 7).tolist() == [0, 3, 6, 9, 12, 15, 19]


@pytest.mark.parametrize("seed", range(5))
def test_bucket_min_and_max_are_kept(seed: int) -> None:
    rng = np.random.default_rng(seed)
    steps = np.cumsum(rng.integers(1, 50, size=20_000)).astype(np.int64)
    values = rng.standard_cauchy(size=len(steps))
    values[rng.integers(0, len(values), size=30)] = 3.0  # ties: the first one counts
    max_points = 400
    kept = downsample_indices(steps, values, max_points)
    assert_well_formed(kept, len(steps), max_points)
    required = reference_keep(steps, values, max_points // 4)
    assert required <= set(kept.tolist())


def test_finite_series_keeps_exactly_first_last_min_and_max_per_bucket() -> None:
    rng = np.random.default_rng(7)
    steps = np.cumsum(rng.integers(1, 10, size=5_000)).astype(np.int64)
    values = rng.normal(size=len(steps)).round(1)  # many ties
    kept = downsample_indices(steps, values, 200)
    assert set(kept.tolist()) == reference_keep(steps, values, 50)


def test_buckets_have_equal_step_width_not_equal_point_counts() -> None:
    # 100,000 points in the first half of the step range, 50 in the second half:
    # with 100 buckets each of the 50 sparse points is alone in its bucket.
    dense = np.arange(100_000, dtype=np.int64)
    sparse = 100_000 + np.arange(1, 51, dtype=np.int64) * 2_000 - 1_000
    steps = np.concatenate([dense, sparse])
    steps[-1] = 200_000
    values = np.sin(steps.astype(np.float64))
    kept = downsample_indices(steps, values, 400)
    assert set(range(100_000, 100_050)) <= set(kept.tolist())


def test_empty_buckets_are_skipped() -> None:
    # Two clusters far apart: almost every bucket in between is empty.
    steps = np.concatenate([np.arange(0, 1_000), np.arange(10**9, 10**9 + 1_000)]).astype(np.int64)
    values = np.cos(np.arange(len(steps)) / 7.0)
    values[1_500] = 99.0
    values[3] = math.nan
    kept = downsample_indices(steps, values, 100)
    assert_well_formed(kept, len(steps), 100)
    assert {0, 3, 999, 1_000, 1_500, 1_999} <= set(kept.tolist())
    assert set(kept.tolist()) == reference_keep(steps, values, 25)


def test_all_nan_series_keeps_first_and_last() -> None:
    steps = np.arange(10_000, dtype=np.int64)
    values = np.full(10_000, math.nan)
    kept = downsample_indices(steps, values, 100)
    assert_well_formed(kept, len(steps), 100)
    assert kept[0] == 0
    assert kept[-1] == 9_999
    assert set(kept.tolist()) == reference_keep(steps, values, 25)


def test_all_equal_values_keep_bucket_ends() -> None:
    steps = np.arange(10_000, dtype=np.int64)
    kept = downsample_indices(steps, np.full(10_000, 0.5), 100)
    assert set(kept.tolist()) == reference_keep(steps, np.full(10_000, 0.5), 25)
    assert len(kept) == 50  # first and last of each bucket; min and max are the first


def test_many_non_finite_points_shrink_the_bucket_count_to_fit() -> None:
    steps = np.arange(10_000, dtype=np.int64)
    values = np.sin(steps / 13.0)
    values[5::100] = math.nan
    values[50::100] = INF
    values[70::100] = -INF
    kept = downsample_indices(steps, values, 200)
    assert_well_formed(kept, len(steps), 200)
    # Each kind's first occurrence survives at any bucket count.
    assert {5, 50, 70} <= set(kept.tolist())
    assert int(np.argmax(values == values[np.isfinite(values)].max())) in kept


def test_steps_spanning_the_whole_int64_range() -> None:
    lo, hi = np.iinfo(np.int64).min, np.iinfo(np.int64).max
    steps = np.concatenate([[lo], np.arange(-500, 500), [hi]]).astype(np.int64)
    values = np.arange(len(steps), dtype=np.float64) % 17
    kept = downsample_indices(steps, values, 12)
    assert set(kept.tolist()) == reference_keep(steps, values, 3)


def test_inputs_are_not_modified() -> None:
    steps = np.arange(1_000, dtype=np.int64)
    values = np.where(steps % 3 == 0, math.nan, steps.astype(np.float64))
    values[10] = -INF
    before = values.copy()
    downsample_indices(steps, values, 40)
    np.testing.assert_array_equal(values, before)


def test_mismatched_lengths_are_rejected() -> None:
    with pytest.raises(ValueError, match="equal length"):
        downsample_indices(np.arange(3), np.zeros(4), 2)


@pytest.mark.parametrize("seed", range(6))
def test_result_never_exceeds_max_points_on_long_series_full_of_non_finite_values(
    seed: int,
) -> None:
    rng = np.random.default_rng(seed)
    n = 50_000
    steps = np.cumsum(rng.integers(1, 1_000, size=n)).astype(np.int64)
    values = rng.normal(size=n)
    odd = rng.random(n) < rng.uniform(0.01, 0.6)
    values[odd] = rng.choice([math.nan, INF, -INF], size=int(odd.sum()))
    for max_points in (*rng.integers(1, 5_000, size=5).tolist(), 4, 7, 2_000):
        kept = downsample_indices(steps, values, int(max_points))
        assert_well_formed(kept, n, int(max_points))
        assert kept[0] == 0
        if max_points >= 2:
            assert kept[-1] == n - 1
        if max_points >= 7:
            for present in (np.isnan(values), values == INF, values == -INF):
                assert int(np.argmax(present)) in kept


@settings(deadline=None)
@given(series(), st.integers(-1, 60))
def test_result_never_exceeds_max_points(data: tuple[np.ndarray, ...], max_points: int) -> None:
    steps, values = data
    n = len(steps)
    kept = downsample_indices(steps, values, max_points)
    if max_points <= 0 or n <= max_points:
        assert kept.tolist() == list(range(n))
        return
    assert_well_formed(kept, n, max_points)
    assert kept[0] == 0
    if max_points >= 2:
        assert kept[-1] == n - 1


@settings(deadline=None)
@given(series(), st.integers(7, 60))
def test_result_is_what_spec_buckets_keep(data: tuple[np.ndarray, ...], max_points: int) -> None:
    steps, values = data
    assume(len(steps) > max_points)
    kept = set(downsample_indices(steps, values, max_points).tolist())
    widest = max_points // 4
    if len(reference_keep(steps, values, widest)) <= max_points:
        assert kept == reference_keep(steps, values, widest)
    else:
        # Shrunk because of non-finite points: some smaller bucket count explains it.
        assert any(kept == reference_keep(steps, values, b) for b in range(widest - 1, 0, -1))
    # Whatever the bucket count, these are never sampled away.
    finite = np.isfinite(values)
    for present in (np.isnan(values), values == INF, values == -INF):
        if present.any():
            assert int(np.argmax(present)) in kept
    if finite.any():
        finite_values = np.where(finite, values, np.nan)
        assert int(np.nanargmin(finite_values)) in kept
        assert int(np.nanargmax(finite_values)) in kept


@settings(deadline=None)
@given(series(finite=True), st.integers(4, 60))
def test_finite_series_always_use_max_points_over_four_buckets(
    data: tuple[np.ndarray, ...], max_points: int
) -> None:
    steps, values = data
    assume(len(steps) > max_points)
    kept = downsample_indices(steps, values, max_points)
    assert set(kept.tolist()) == reference_keep(steps, values, max_points // 4)


# --- resolve_last_write --------------------------------------------------------------


def test_no_chunks_give_empty_arrays_of_the_right_dtypes() -> None:
    steps, walls, values = resolve_last_write([])
    assert steps.dtype == np.int64
    assert walls.dtype == np.float64
    assert values.dtype == np.float64
    assert len(steps) == len(walls) == len(values) == 0


def test_empty_chunks_are_ignored() -> None:
    empty = chunk([])
    steps, _, values = resolve_last_write([empty, chunk([1, 2], 0.5), empty])
    assert steps.tolist() == [1, 2]
    assert values.tolist() == [1.5, 2.5]
    assert len(resolve_last_write([empty, empty])[0]) == 0


def test_non_overlapping_chunks_are_concatenated_in_step_order() -> None:
    chunks = [chunk([20, 21, 25], 0.1), chunk([0, 5], 0.2), chunk([10, 11, 12], 0.3)]
    steps, walls, values = resolve_last_write(chunks)
    assert steps.tolist() == [0, 5, 10, 11, 12, 20, 21, 25]
    assert values.tolist() == [0.2, 5.2, 10.3, 11.3, 12.3, 20.1, 21.1, 25.1]
    assert walls.tolist() == [0.2, 50.2, 100.3, 110.3, 120.3, 200.1, 210.1, 250.1]


def test_later_chunk_wins_on_equal_steps() -> None:
    chunks = [chunk([1, 2, 3, 4], 0.1), chunk([3, 4, 5], 0.2), chunk([4], 0.3)]
    steps, walls, values = resolve_last_write(chunks)
    assert steps.tolist() == [1, 2, 3, 4, 5]
    assert values.tolist() == [1.1, 2.1, 3.2, 4.3, 5.2]
    assert walls.tolist() == [10.1, 20.1, 30.2, 40.3, 50.2]


def test_later_chunk_wins_even_when_it_starts_earlier() -> None:
    chunks = [chunk([5, 6, 7], 0.1), chunk([1, 6], 0.2)]
    steps, _, values = resolve_last_write(chunks)
    assert steps.tolist() == [1, 5, 6, 7]
    assert values.tolist() == [1.2, 5.1, 6.2, 7.1]


def test_chunks_touching_at_one_step_resolve_that_step() -> None:
    steps, _, values = resolve_last_write([chunk([1, 2, 3], 0.1), chunk([3, 4], 0.2)])
    assert steps.tolist() == [1, 2, 3, 4]
    assert values.tolist() == [1.1, 2.1, 3.2, 4.2]


def test_overlapping_groups_and_lone_chunks_mix() -> None:
    chunks = [
        chunk(range(0, 100), 0.1),
        chunk(range(100, 200), 0.1),
        chunk(range(300, 400), 0.1),
        chunk(range(150, 160), 0.2),  # re-logs part of the second chunk
        chunk(range(200, 210), 0.3),  # a new range between the others
    ]
    got = resolve_last_write(chunks)
    want = reference_last_write(chunks)
    assert [a.tolist() for a in got] == list(want)


def test_non_finite_values_are_carried_exactly() -> None:
    first = (np.array([1, 2, 3]), np.zeros(3), np.array([math.nan, INF, -INF]))
    second = (np.array([3, 4]), np.ones(2), np.array([math.nan, -0.0]))
    _, walls, values = resolve_last_write([first, second])
    np.testing.assert_array_equal(values, [math.nan, INF, math.nan, -0.0])
    assert math.copysign(1.0, values[-1]) == -1.0
    assert walls.tolist() == [0.0, 0.0, 1.0, 1.0]


def test_result_does_not_alias_the_chunks() -> None:
    original = chunk([1, 2, 3], 0.1)
    steps, walls, values = resolve_last_write([original])
    steps[0], walls[0], values[0] = 99, 99.0, 99.0
    assert original[0][0] == 1
    assert original[1][0] == 10.1
    assert original[2][0] == 1.1


def test_mismatched_chunk_lengths_are_rejected() -> None:
    with pytest.raises(ValueError, match="equal length"):
        resolve_last_write([(np.arange(3), np.zeros(3), np.zeros(2))])


def test_many_non_overlapping_chunks_in_any_write_order() -> None:
    rng = np.random.default_rng(3)
    chunks = [chunk(range(i * 40, i * 40 + 40), i / 1000) for i in range(250)]
    shuffled = [chunks[i] for i in rng.permutation(len(chunks))]
    steps, _, values = resolve_last_write(shuffled)
    assert steps.tolist() == list(range(10_000))
    assert [a.tolist() for a in resolve_last_write(shuffled)] == list(
        reference_last_write(shuffled)
    )
    assert values.dtype == np.float64


@settings(deadline=None)
@given(
    st.lists(
        st.lists(st.integers(0, 60), max_size=20, unique=True).map(sorted),
        max_size=8,
    )
)
def test_resolution_matches_replaying_the_writes(step_lists: list[list[int]]) -> None:
    chunks = [chunk(s, tag=i / 10) for i, s in enumerate(step_lists)]
    got = resolve_last_write(chunks)
    assert [a.tolist() for a in got] == list(reference_last_write(chunks))
    assert np.all(np.diff(got[0]) > 0)


# --- sample_evenly -------------------------------------------------------------------


def test_sample_evenly_keeps_everything_when_it_fits() -> None:
    assert sample_evenly(5, 5).tolist() == [0, 1, 2, 3, 4]
    assert sample_evenly(5, 100).tolist() == [0, 1, 2, 3, 4]
    assert sample_evenly(0, 3).tolist() == []


def test_sample_evenly_without_a_limit_keeps_everything() -> None:
    assert sample_evenly(4, 0).tolist() == [0, 1, 2, 3]
    assert sample_evenly(4, -3).tolist() == [0, 1, 2, 3]


def test_sample_evenly_one_sample_is_the_latest() -> None:
    assert sample_evenly(10, 1).tolist() == [9]


def test_sample_evenly_includes_both_ends_and_spaces_evenly() -> None:
    assert sample_evenly(11, 3).tolist() == [0, 5, 10]
    assert sample_evenly(10, 2).tolist() == [0, 9]
    assert sample_evenly(101, 5).tolist() == [0, 25, 50, 75, 100]


def test_sample_evenly_rejects_negative_lengths() -> None:
    with pytest.raises(ValueError, match="n must be"):
        sample_evenly(-1, 3)


@given(st.integers(0, 10_000), st.integers(-2, 300))
def test_sample_evenly_properties(n: int, k: int) -> None:
    picked = sample_evenly(n, k)
    assert picked.dtype == np.int64
    if k <= 0 or n <= k:
        assert picked.tolist() == list(range(n))
        return
    assert len(picked) == k
    assert np.all(np.diff(picked) > 0)
    assert picked[-1] == n - 1
    if k >= 2:
        assert picked[0] == 0
        gaps = np.diff(picked)
        assert gaps.max() - gaps.min() <= 1
