"""Histogram compression (docs/design.md): summaries, snapshots and distribution bands."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from trainboard.errors import InvalidArgument
from trainboard.histogram import BASIS_POINTS, Snapshot, bands, snapshot, summarize
from trainboard.types import HistogramSummary
from trainboard.validation import DEFAULT_BUCKETS, MAX_BUCKETS

RNG_SEED = 20240611


def rng() -> np.random.Generator:
    return np.random.default_rng(RNG_SEED)


def finite_of(values: np.ndarray) -> np.ndarray:
    flat = np.asarray(values, dtype=np.float64).reshape(-1)
    return flat[np.isfinite(flat)]


def assert_consistent(summary: HistogramSummary, values: object, buckets: int) -> None:
    """The invariants (docs/design.md) of a summary of ``values``."""
    flat = np.asarray(values).reshape(-1)
    wide = flat.astype(np.float64)
    finite = wide[np.isfinite(wide)]
    assert summary.count == flat.size
    assert summary.nan_count == np.count_nonzero(np.isnan(wide))
    assert summary.posinf_count == np.count_nonzero(wide == np.inf)
    assert summary.neginf_count == np.count_nonzero(wide == -np.inf)
    assert summary.finite_count == finite.size
    assert sum(summary.bucket_counts) == finite.size
    assert all(c >= 0 for c in summary.bucket_counts)
    if finite.size == 0:
        assert summary.bucket_counts == ()
        assert (summary.min, summary.max, summary.sum, summary.sum_squares) == (0, 0, 0, 0)
        return
    assert summary.min == finite.min()
    assert summary.max == finite.max()
    if summary.min == summary.max:
        assert summary.bucket_counts == (finite.size,)
    else:
        # At most `buckets` buckets (fewer when values repeat), between edges that
        # run from min to max, holding what numpy's histogram puts between them.
        edges = summary.bucket_edges()
        assert 1 <= len(summary.bucket_counts) <= buckets
        assert len(edges) == len(summary.bucket_counts) + 1
        assert edges[0] == summary.min
        assert edges[-1] == summary.max
        assert np.all(edges[1:] > edges[:-1])
        with np.errstate(over="ignore", invalid="ignore"):
            expected, _ = np.histogram(finite, bins=edges)
        assert summary.bucket_counts == tuple(expected.tolist())
        assert summary.bucket_counts[0] >= 1  # min is in the first bucket
        assert summary.bucket_counts[-1] >= 1  # max is in the last
    with np.errstate(over="ignore"):
        magnitude = float(np.abs(finite).sum())
        expected_squares = float(np.square(finite).sum())
    if math.isfinite(magnitude):  # else the sum may overflow, depending on the order
        expected_sum = math.fsum(finite.tolist())
        assert summary.sum == pytest.approx(expected_sum, rel=1e-9, abs=1e-12 * magnitude)
    if math.isfinite(expected_squares):
        assert summary.sum_squares == pytest.approx(expected_squares, rel=1e-9)


def bucket_width(summary: HistogramSummary) -> float:
    n = max(len(summary.bucket_counts), 1)
    return summary.max / n - summary.min / n  # no overflow for huge ranges


def assert_bands_are_numpys(summary: HistogramSummary, values: np.ndarray) -> None:
    """The bands are numpy's percentiles of the finite values, to float rounding
    (where numpy's own arithmetic overflows, on ranges wider than the largest float,
    between the two order statistics around the rank)."""
    finite = finite_of(values)
    result = bands(summary)
    q = np.asarray(BASIS_POINTS) / 100.0
    with np.errstate(over="ignore", invalid="ignore"):
        exact = np.percentile(finite, q)
    low = np.percentile(finite, q, method="lower")
    high = np.percentile(finite, q, method="higher")
    ok = np.isfinite(exact)
    np.testing.assert_allclose(result[ok], exact[ok], rtol=1e-12, atol=1e-300)
    assert np.all((result[~ok] >= low[~ok]) & (result[~ok] <= high[~ok]))
    assert result[0] == summary.min
    assert result[-1] == summary.max
    assert np.all(result[1:] >= result[:-1])


def assert_bands_near_numpy(summary: HistogramSummary, values: np.ndarray) -> None:
    """Each band derived from the buckets (summaries without exact bands) is within
    one bucket width of numpy's exact percentile.

    With linear interpolation numpy may land anywhere between the two order
    statistics around a rank; the band lies within a bucket of one of them, so the
    bound is checked against that interval (it is the percentile itself when the
    data are dense)."""
    finite = finite_of(values)
    result = bands(summary)
    q = np.asarray(BASIS_POINTS) / 100.0
    low = np.percentile(finite, q, method="lower")
    high = np.percentile(finite, q, method="higher")
    eps = float(np.finfo(np.float64).eps)
    slack = bucket_width(summary) + 8 * eps * abs(summary.min) + 8 * eps * abs(summary.max)
    with np.errstate(over="ignore"):  # -inf when a band is far above its interval
        distance = np.maximum(np.maximum(low - result, result - high), 0.0)
    assert np.all(distance <= slack), (result, low, high, slack)
    assert result[0] == summary.min
    assert result[-1] == summary.max
    assert np.all(result[1:] >= result[:-1])


# --- summaries ---------------------------------------------------------------------


def test_summary_counts_every_element_and_bins_the_finite_ones() -> None:
    values = rng().standard_normal(100_000).astype(np.float32)
    summary = summarize(values)
    assert_consistent(summary, values, DEFAULT_BUCKETS)
    assert summary.mean == pytest.approx(float(values.astype(np.float64).mean()))
    assert summary.std == pytest.approx(float(values.astype(np.float64).std()), rel=1e-6)


@pytest.mark.parametrize("buckets", [1, 2, 7, 64, 512])
def test_buckets_hold_what_lies_between_the_edges_they_report(buckets: int) -> None:
    values = rng().standard_normal(50_000)
    summary = summarize(values, buckets)
    expected, _ = np.histogram(values, bins=summary.bucket_edges())
    assert summary.bucket_counts == tuple(expected.tolist())
    assert len(summary.bucket_counts) == buckets  # distinct values: no edges merged


def test_buckets_follow_the_data_so_an_outlier_cannot_squash_the_bulk() -> None:
    values = np.append(rng().standard_normal(1_000_000), 1000.0).astype(np.float32)
    summary = summarize(values)
    edges = summary.bucket_edges()
    # The bulk keeps almost every bucket; the outlier shares the last one with at
    # most the largest few bulk values.
    assert np.count_nonzero(edges < 6.0) >= DEFAULT_BUCKETS - 1
    assert summary.bucket_counts[-1] <= 3
    assert summary.bands()[4] == pytest.approx(float(np.median(values)), abs=1e-9)


def test_the_max_goes_in_the_last_bucket() -> None:
    values = np.arange(65, dtype=np.float32)
    summary = summarize(values, 64)
    assert summary.bucket_counts[-1] >= 1
    assert summary.bucket_edges()[-1] == 64.0
    assert sum(summary.bucket_counts) == 65


def test_repeated_values_merge_edges_into_fewer_buckets() -> None:
    values = np.array([0.0] * 900 + [1.0] * 100)  # a ReLU-like spike at 0
    summary = summarize(values, 64)
    up, down = np.nextafter(0.0, 1.0), np.nextafter(1.0, 0.0)
    assert summary.bucket_edges().tolist() == [0.0, up, down, 1.0]  # a bucket for each
    assert summary.bucket_counts == (900, 0, 100)


def test_non_finite_values_are_counted_not_binned() -> None:
    values = rng().uniform(-1.0, 1.0, size=1000).astype(np.float32)
    values[:7] = np.nan
    values[7:12] = np.inf
    values[12:15] = -np.inf
    summary = summarize(values)
    assert summary.count == 1000
    assert (summary.nan_count, summary.posinf_count, summary.neginf_count) == (7, 5, 3)
    assert sum(summary.bucket_counts) == 1000 - 15
    finite = values[15:].astype(np.float64)
    assert (summary.min, summary.max) == (finite.min(), finite.max())
    assert summary.sum == pytest.approx(finite.sum())
    assert summary.sum_squares == pytest.approx(np.square(finite).sum())
    assert_consistent(summary, values, DEFAULT_BUCKETS)


def test_all_non_finite_values_give_zeros_and_no_buckets() -> None:
    summary = summarize(np.array([np.nan, np.inf, -np.inf, np.nan]))
    assert summary == HistogramSummary(
        count=4,
        min=0.0,
        max=0.0,
        sum=0.0,
        sum_squares=0.0,
        nan_count=2,
        posinf_count=1,
        neginf_count=1,
        bucket_counts=(),
    )


@pytest.mark.parametrize("buckets", [1, 64, 512])
def test_constant_tensor_is_one_bucket(buckets: int) -> None:
    summary = summarize(np.full((30, 40), 0.25, dtype=np.float32), buckets)
    assert summary.bucket_counts == (1200,)
    assert (summary.min, summary.max) == (0.25, 0.25)
    assert summary.sum == 300.0
    assert summary.sum_squares == 75.0


def test_constant_finite_values_among_non_finite_ones_are_one_bucket() -> None:
    summary = summarize([3.0, np.nan, 3.0, np.inf])
    assert summary.bucket_counts == (2,)
    assert (summary.count, summary.min, summary.max, summary.sum) == (4, 3.0, 3.0, 6.0)


@pytest.mark.parametrize("buckets", [1, 2, 64, MAX_BUCKETS])
def test_bucket_count_is_honoured(buckets: int) -> None:
    summary = summarize(rng().uniform(size=10_000), buckets)
    assert len(summary.bucket_counts) == buckets
    assert sum(summary.bucket_counts) == 10_000


@pytest.mark.parametrize(
    ("buckets", "error"),
    [(0, InvalidArgument), (MAX_BUCKETS + 1, InvalidArgument), (2.5, TypeError), (True, TypeError)],
)
def test_bucket_count_out_of_range_is_rejected(buckets: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="buckets"):
        summarize([1.0, 2.0], buckets)
    with pytest.raises(error, match="buckets"):
        snapshot([1.0, 2.0]).summarize(buckets)


def test_float64_range_wider_than_the_largest_float_is_binned() -> None:
    big = np.finfo(np.float64).max
    values = np.array([-big, 0.0, big, big])
    summary = summarize(values, 64)
    assert (summary.min, summary.max) == (-big, big)
    assert np.all(np.isfinite(summary.bucket_edges()))
    assert summary.bucket_counts[0] == 1
    assert summary.bucket_counts[-1] >= 2
    assert sum(summary.bucket_counts) == 4
    assert_consistent(summary, values, 64)


def test_subnormal_range_is_binned() -> None:
    tiny = 5e-324  # the smallest subnormal double
    summary = summarize(np.array([0.0, tiny, 2 * tiny, 3 * tiny]), 3)
    assert summary.bucket_counts == (1, 1, 2)


def test_integer_values_are_summarised_as_float64() -> None:
    values = np.array([[1, 2, 3], [4, 5, 1000]], dtype=np.int64)
    summary = summarize(values, 4)
    assert (summary.count, summary.min, summary.max, summary.sum) == (6, 1.0, 1000.0, 1015.0)
    assert_consistent(summary, values, 4)
    assert_bands_are_numpys(summary, values)
    assert_consistent(summarize(np.arange(256, dtype=np.uint8)), np.arange(256), 64)


@pytest.mark.parametrize(
    "values",
    [
        pytest.param(3.5, id="python-float"),
        pytest.param(7, id="python-int"),
        pytest.param(np.float32(2.0), id="numpy-scalar"),
        pytest.param(np.array(1.5), id="zero-dim"),
        pytest.param([[1.0, 2.0], [3.0, float("nan")]], id="nested-list"),
        pytest.param(np.arange(24.0).reshape(2, 3, 4), id="3-d"),
        pytest.param(np.arange(24.0).reshape(2, 3, 4).transpose(2, 0, 1), id="transposed"),
        pytest.param(np.arange(100.0)[::7], id="strided"),
        pytest.param(np.asfortranarray(np.arange(12.0).reshape(3, 4)), id="fortran"),
        pytest.param(np.arange(8.0).astype(np.float16), id="float16"),
        pytest.param(np.arange(8.0).astype(">f8"), id="big-endian"),
        pytest.param(np.ones((1, 1, 1, 1, 1, 5), dtype=np.int16), id="6-d-int16"),
        pytest.param(np.broadcast_to(np.arange(3.0), (4, 3)), id="broadcast-read-only"),
    ],
)
def test_any_shape_is_accepted(values: object) -> None:
    summary = summarize(values, 16)
    assert_consistent(summary, values, 16)


@pytest.mark.parametrize(
    "values",
    [
        pytest.param(None, id="None"),
        pytest.param("1.0", id="str"),
        pytest.param(b"\x00", id="bytes"),
        pytest.param(True, id="bool"),
        pytest.param(np.bool_(False), id="numpy-bool"),
        pytest.param(1 + 2j, id="complex"),
        pytest.param(np.array([True, False]), id="bool-array"),
        pytest.param(np.array([1j, 2.0]), id="complex-array"),
        pytest.param(np.array([1.0, "a"], dtype=object), id="object-array"),
        pytest.param(["a", "b"], id="list-of-str"),
        pytest.param([1.0, None], id="list-with-None"),
        pytest.param([[1.0, 2.0], [3.0]], id="ragged"),
        pytest.param(np.array(["2024-01-01"], dtype="datetime64[D]"), id="datetime"),
        pytest.param({"a": 1.0}, id="dict"),
    ],
)
def test_non_numeric_values_are_rejected_with_type_error(values: object) -> None:
    with pytest.raises(TypeError, match="values"):
        snapshot(values)


@pytest.mark.parametrize(
    "values",
    [np.array([], dtype=np.float32), [], np.zeros((3, 0)), [[], []]],
    ids=["empty-array", "empty-list", "zero-dimension", "nested-empty"],
)
def test_empty_tensor_is_rejected_at_the_call_site(values: object) -> None:
    with pytest.raises(InvalidArgument, match="at least one element"):
        snapshot(values)


def test_summary_fits_one_kib_on_the_wire() -> None:
    from trainboard.v1 import trainboard_pb2

    def wire_size(summary: HistogramSummary) -> int:
        message = trainboard_pb2.HistogramSummary(
            count=summary.count,
            min=summary.min,
            max=summary.max,
            sum=summary.sum,
            sum_squares=summary.sum_squares,
            nan_count=summary.nan_count,
            posinf_count=summary.posinf_count,
            neginf_count=summary.neginf_count,
            bucket_counts=summary.bucket_counts,
        )
        return int(message.ByteSize())

    values = rng().standard_normal(1_000_000).astype(np.float32)
    values[:10] = [np.nan, np.inf, -np.inf] * 3 + [np.nan]
    summary = summarize(values, DEFAULT_BUCKETS)
    assert len(summary.bucket_counts) == DEFAULT_BUCKETS
    assert wire_size(summary) <= 1024
    # Worst case: every count at the largest uint64 (ten varint bytes each).
    most = 2**64 - 1
    worst = HistogramSummary(
        count=most,
        min=-1.5,
        max=1.5,
        sum=0.1,
        sum_squares=0.2,
        nan_count=most,
        posinf_count=most,
        neginf_count=most,
        bucket_counts=(most,) * DEFAULT_BUCKETS,
    )
    assert wire_size(worst) <= 1024


# --- snapshots -------------------------------------------------------------------


def test_snapshot_is_a_private_copy_that_keeps_float32() -> None:
    values = rng().standard_normal((300, 400)).astype(np.float32)
    expected = summarize(values.copy())
    taken = snapshot(values)
    assert isinstance(taken, Snapshot)
    assert taken.values.dtype == np.float32
    assert taken.values.flags.c_contiguous
    assert taken.nbytes == values.nbytes
    assert not np.shares_memory(taken.values, values)
    values[:] = 0.0  # the trainer goes on changing its weights
    assert taken.summarize() == expected


def test_snapshot_of_a_buffer_does_not_alias_the_callers_memory() -> None:
    buffer = bytearray(np.arange(4, dtype=np.float64).tobytes())
    values = np.frombuffer(buffer, dtype=np.float64)
    taken = snapshot(memoryview(buffer).cast("d"))
    values_before = summarize(values.copy())
    buffer[:8] = np.float64(99.0).tobytes()
    assert taken.summarize() == values_before


def test_recycled_buffers_never_mix_snapshots() -> None:
    generator = rng()
    first = generator.standard_normal(1_000_000).astype(np.float32)
    second = generator.uniform(5.0, 6.0, size=1_000_000).astype(np.float32)
    expected_first, expected_second = summarize(first.copy()), summarize(second.copy())
    taken_first = snapshot(first)
    taken_second = snapshot(second)  # both alive: two distinct buffers
    assert not np.shares_memory(taken_first.values, taken_second.values)
    assert taken_first.summarize() == expected_first
    taken_third = snapshot(second)  # may reuse the first's buffer
    assert taken_second.summarize() == expected_second
    assert taken_third.summarize() == expected_second


def test_summarising_consumes_the_snapshot_but_answers_again() -> None:
    taken = snapshot(np.arange(10.0))
    summary = taken.summarize(8)
    assert taken.summarize(8) is summary
    with pytest.raises(RuntimeError, match="8 buckets"):
        taken.summarize(16)
    with pytest.raises(RuntimeError, match="summarised"):
        _ = taken.values
    assert taken.nbytes == 80


def test_module_imports_and_summarises_without_torch() -> None:
    script = textwrap.dedent(
        """
        import sys

        class BlockTorch:
            def find_spec(self, name, path=None, target=None):
                if name == "torch" or name.startswith("torch."):
                    raise ImportError("torch is blocked for this test")
                return None

        sys.meta_path.insert(0, BlockTorch())
        import numpy as np
        from trainboard.histogram import bands, summarize
        summary = summarize(np.arange(100, dtype=np.float32))
        assert sum(summary.bucket_counts) == 100, summary
        assert bands(summary)[-1] == 99.0
        assert "torch" not in sys.modules
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


# --- bands -----------------------------------------------------------------------


def _distribution(name: str, size: int) -> np.ndarray:
    generator = rng()
    if name == "normal":
        return generator.normal(0.3, 2.0, size)
    if name == "uniform":
        return generator.uniform(-0.05, 0.05, size)
    if name == "lognormal":
        return generator.lognormal(0.0, 1.0, size)
    if name == "exponential":
        return generator.exponential(0.01, size)
    if name == "softmax":  # most mass near 0, a smaller peak near 1 (docs/design.md, point 5)
        logits = generator.normal(0.0, 3.0, (size // 10, 10))
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        probabilities: np.ndarray = (e / e.sum(axis=1, keepdims=True)).reshape(-1)
        return probabilities
    raise AssertionError(name)


@pytest.mark.parametrize("name", ["normal", "uniform", "lognormal", "exponential", "softmax"])
@pytest.mark.parametrize("buckets", [1, 8, 30, 64, 512])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bands_are_numpys_percentiles(
    name: str, buckets: int, dtype: type[np.floating[Any]]
) -> None:
    values = _distribution(name, 20_000).astype(dtype)
    summary = summarize(values, buckets)
    result = bands(summary)
    assert result.shape == (9,)
    assert result.dtype == np.float64
    exact = np.percentile(values, np.asarray(BASIS_POINTS) / 100.0)
    np.testing.assert_allclose(result, exact, rtol=1e-12)
    assert_bands_are_numpys(summary, values)


@pytest.mark.parametrize("name", ["normal", "lognormal", "exponential"])
def test_bands_of_a_summary_without_them_come_from_its_buckets(name: str) -> None:
    """Summaries stored before exact bands existed: equal-width buckets, no edges."""
    values = _distribution(name, 20_000)
    counts, _ = np.histogram(values, bins=64, range=(values.min(), values.max()))
    old = HistogramSummary(
        values.size,
        values.min(),
        values.max(),
        values.sum(),
        values @ values,
        0,
        0,
        0,
        tuple(counts.tolist()),
    )
    assert old.bucket_edges().tolist() == np.linspace(values.min(), values.max(), 65).tolist()
    assert_bands_near_numpy(old, values)


def test_bands_outer_values_are_exactly_min_and_max() -> None:
    values = rng().lognormal(size=5000).astype(np.float32)
    result = summarize(values, 10).bands()  # through HistogramSummary.bands()
    assert result[0] == float(values.min())
    assert result[-1] == float(values.max())


def test_bands_of_a_constant_are_the_constant() -> None:
    result = bands(summarize(np.full(100, -2.5)))
    assert result.tolist() == [-2.5] * 9


def test_bands_without_finite_values_are_nan() -> None:
    result = bands(summarize([np.nan, np.inf]))
    assert result.shape == (9,)
    assert np.all(np.isnan(result))


def test_bands_ignore_non_finite_values() -> None:
    values = rng().uniform(0.0, 1.0, size=10_000)
    with_non_finite = np.concatenate([values, [np.nan] * 500, [np.inf] * 500])
    assert np.array_equal(bands(summarize(with_non_finite)), bands(summarize(values)))


def test_bands_of_a_hand_built_summary_interpolate_inside_buckets() -> None:
    # Two buckets over [0, 2], 50 values each: uniform, so the band is linear.
    summary = HistogramSummary(100, 0.0, 2.0, 100.0, 133.0, 0, 0, 0, (50, 50))
    expected = np.asarray(BASIS_POINTS) / 10_000 * 2.0
    np.testing.assert_allclose(bands(summary), expected, rtol=1e-12)


finite_floats = st.floats(allow_nan=False, allow_infinity=False, width=64)
any_floats = st.floats(width=64) | finite_floats  # finite ones more often
moderate_floats = st.floats(-1e6, 1e6, allow_nan=False, width=32)


@settings(max_examples=300, deadline=None)
@given(
    values=hnp.arrays(np.float64, st.integers(1, 300), elements=any_floats),
    buckets=st.integers(1, MAX_BUCKETS),
)
def test_any_float64_values_give_a_consistent_summary_and_bands(
    values: np.ndarray, buckets: int
) -> None:
    summary = summarize(values, buckets)
    assert_consistent(summary, values, buckets)
    if summary.finite_count:
        assert_bands_are_numpys(summary, values)
    else:
        assert np.all(np.isnan(bands(summary)))


@settings(max_examples=200, deadline=None)
@given(
    values=hnp.arrays(
        np.float32,
        hnp.array_shapes(min_dims=0, max_dims=4, min_side=1, max_side=6),
        elements=moderate_floats,
    ),
    buckets=st.sampled_from([1, 2, 3, 16, 64, 100, 512]),
)
def test_float32_bands_are_numpys(values: np.ndarray, buckets: int) -> None:
    summary = summarize(values, buckets)
    assert_consistent(summary, values, buckets)
    assert_bands_are_numpys(summary, values)


# --- torch -----------------------------------------------------------------------


def _summaries_match(left: HistogramSummary, right: HistogramSummary, exact: bool) -> None:
    """Everything equal; the float64 sums exactly when the data make them exact,
    otherwise to rounding (numpy and torch add in different orders)."""
    if exact:
        assert left == right
        return
    assert left.bucket_counts == right.bucket_counts
    assert (left.count, left.min, left.max) == (right.count, right.min, right.max)
    assert (left.nan_count, left.posinf_count, left.neginf_count) == (
        right.nan_count,
        right.posinf_count,
        right.neginf_count,
    )
    assert left.sum == pytest.approx(right.sum, rel=1e-12, abs=1e-9)
    assert left.sum_squares == pytest.approx(right.sum_squares, rel=1e-12)


@pytest.mark.parametrize("non_finite", [False, True], ids=["finite", "with-non-finite"])
@pytest.mark.parametrize("buckets", [1, 13, 64, 512])
def test_torch_and_numpy_give_identical_summaries(non_finite: bool, buckets: int) -> None:
    torch = pytest.importorskip("torch")
    generator = rng()
    # Multiples of 1/64 below 2**10: every float64 sum is exact, in any order.
    dyadic = (generator.integers(-(2**16), 2**16, size=(64, 50)) / 64.0).astype(np.float32)
    noisy = generator.standard_normal((64, 50)).astype(np.float32)
    for values, exact in ((dyadic, True), (noisy, False)):
        if non_finite:
            values = values.copy()
            values[0, :5] = [np.nan, np.inf, -np.inf, np.nan, np.inf]
        from_numpy = summarize(values, buckets)
        from_torch = summarize(torch.from_numpy(values.copy()), buckets)
        _summaries_match(from_numpy, from_torch, exact)


@pytest.mark.parametrize(
    "values",
    [
        pytest.param([-1.7e308, 0.0, 1.7e308, 1e308], id="wider-than-the-largest-float"),
        pytest.param([0.0, 5e-324, 1e-323, 1.5e-323], id="subnormals"),
        pytest.param([1.0, 1.0 + 2**-52, 1.0 + 2**-51], id="one-ulp-apart"),
        pytest.param([-3.4e38, 3.4e38, 1.0], id="float32-extremes"),
    ],
)
def test_torch_and_numpy_agree_on_extreme_ranges(values: list[float]) -> None:
    torch = pytest.importorskip("torch")
    array = np.asarray(values, dtype=np.float64)
    for buckets in (1, 3, 64, 512):
        from_numpy = summarize(array, buckets)
        assert_consistent(from_numpy, array, buckets)
        _summaries_match(from_numpy, summarize(torch.from_numpy(array.copy()), buckets), False)


@settings(max_examples=150, deadline=None)
@given(
    values=hnp.arrays(np.float32, st.integers(1, 200), elements=st.floats(width=32))
    | hnp.arrays(np.float64, st.integers(1, 200), elements=st.floats(width=64)),
    buckets=st.integers(1, MAX_BUCKETS),
)
def test_torch_and_numpy_bucket_any_values_alike(values: np.ndarray, buckets: int) -> None:
    torch = pytest.importorskip("torch")
    finite = finite_of(values)
    from_numpy = summarize(values, buckets)
    from_torch = summarize(torch.from_numpy(values.copy()), buckets)
    assert from_numpy.bucket_counts == from_torch.bucket_counts
    assert (from_numpy.count, from_numpy.min, from_numpy.max) == (
        from_torch.count,
        from_torch.min,
        from_torch.max,
    )
    assert (from_numpy.nan_count, from_numpy.posinf_count, from_numpy.neginf_count) == (
        from_torch.nan_count,
        from_torch.posinf_count,
        from_torch.neginf_count,
    )
    with np.errstate(over="ignore"):
        scale = float(np.abs(finite).sum()) if finite.size else 0.0
    if math.isfinite(scale):  # else the sums overflow, to inf or not by order
        assert abs(from_numpy.sum - from_torch.sum) <= 1e-12 * scale


@pytest.mark.parametrize(
    ("torch_dtype", "numpy_dtype"),
    [
        ("float16", np.float16),
        ("float32", np.float32),
        ("float64", np.float64),
        ("int8", np.int8),
        ("uint8", np.uint8),
        ("int32", np.int32),
        ("int64", np.int64),
    ],
)
def test_torch_dtypes_match_numpy(torch_dtype: str, numpy_dtype: type[np.generic]) -> None:
    torch = pytest.importorskip("torch")
    values = rng().integers(0, 100, size=(17, 19)).astype(numpy_dtype)
    tensor = torch.from_numpy(values.copy())
    assert tensor.dtype == getattr(torch, torch_dtype)
    assert summarize(tensor, 10) == summarize(values, 10)


def test_torch_bfloat16_is_summarised() -> None:
    torch = pytest.importorskip("torch")
    tensor = torch.linspace(-3, 3, 1001, dtype=torch.bfloat16)
    expected = summarize(tensor.to(torch.float32).numpy())
    _summaries_match(summarize(tensor), expected, exact=False)


def test_torch_tensor_is_summarised_on_its_own_device(monkeypatch: pytest.MonkeyPatch) -> None:
    torch = pytest.importorskip("torch")
    weights = torch.nn.Parameter(torch.randn(128, 64))  # requires grad
    expected = summarize(weights.detach().numpy().copy())

    def no_host_copy(*args: object, **kwargs: object) -> None:
        raise AssertionError("snapshot() must not copy a tensor to the host")

    with monkeypatch.context() as patch:
        for name in ("cpu", "to", "tolist", "item"):
            patch.setattr(torch.Tensor, name, no_host_copy)
        taken = snapshot(weights)
    assert isinstance(taken.values, torch.Tensor)
    assert taken.values.device == weights.device
    assert taken.values.dtype == torch.float32
    assert not taken.values.requires_grad
    assert taken.values.data_ptr() != weights.data_ptr()
    assert taken.nbytes == 128 * 64 * 4
    with torch.no_grad():
        weights.zero_()  # the optimizer steps on
    _summaries_match(taken.summarize(), expected, exact=False)


def test_torch_non_contiguous_and_scalar_tensors_are_accepted() -> None:
    torch = pytest.importorskip("torch")
    base = torch.arange(60.0).reshape(3, 4, 5)
    for tensor in (
        base.permute(2, 0, 1),
        base[:, ::2, 1:],
        torch.tensor(4.5),
        torch.arange(3.0).expand(4, 3),  # stride 0
        base._neg_view(),  # a lazily negated view that numpy cannot see
    ):
        expected = summarize(tensor.resolve_neg().numpy().copy(), 8)
        assert summarize(tensor, 8) == expected


@pytest.mark.parametrize("dtype", ["bool", "complex64", "complex128"])
def test_torch_bool_and_complex_tensors_are_rejected(dtype: str) -> None:
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match="values"):
        snapshot(torch.zeros(3, dtype=getattr(torch, dtype)))


def test_torch_sparse_tensor_is_rejected() -> None:
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match="dense"):
        snapshot(torch.eye(3).to_sparse())


def test_empty_torch_tensor_is_rejected_at_the_call_site() -> None:
    torch = pytest.importorskip("torch")
    with pytest.raises(InvalidArgument, match="at least one element"):
        snapshot(torch.empty(0, 3))


def test_torch_all_non_finite_tensor_gives_no_buckets() -> None:
    torch = pytest.importorskip("torch")
    tensor = torch.tensor([float("nan"), float("inf"), float("-inf")])
    assert summarize(tensor) == summarize(tensor.numpy().copy())
    assert summarize(tensor).bucket_counts == ()


# --- against TensorBoard ------------------------------------------------------------


def _tensorboard_bands(values: np.ndarray, logdir: Path) -> np.ndarray:
    """TensorBoard's distribution bands of ``values``: the histogram tensorboardX's
    ``add_histogram`` writes (its default "tensorflow" bins, which its writer holds),
    compressed as TensorBoard's distribution plugin does."""
    from tensorboard.plugins.distribution.compressor import compress_histogram_proto
    from tensorboardX import SummaryWriter
    from tensorboardX.summary import histogram

    writer = SummaryWriter(logdir=str(logdir))
    try:
        proto = histogram("w", values, bins=writer.default_bins).value[0].histo
    finally:
        writer.close()
    return np.array([value for _, value in compress_histogram_proto(proto)])


def _outlier() -> np.ndarray:
    return np.append(rng().standard_normal(1_000_000), 1000.0)


def _gradient_like() -> np.ndarray:
    return np.append(rng().normal(0.0, 1e-4, 100_000), np.full(10, 0.5))


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: rng().standard_normal(4096), id="normal-4096"),
        pytest.param(_outlier, id="normal-1M-plus-one-at-1000"),
        pytest.param(lambda: rng().lognormal(size=100_000), id="lognormal"),
        pytest.param(_gradient_like, id="gradient-like"),
        pytest.param(lambda: rng().standard_t(1.5, size=50_000), id="heavy-tailed"),
        pytest.param(lambda: np.array([3.0, -1.0, 2.5]), id="tiny"),
    ],
)
def test_band_error_is_never_larger_than_tensorboards(
    make: Callable[[], np.ndarray], tmp_path: Path
) -> None:
    pytest.importorskip("tensorboard")
    pytest.importorskip("tensorboardX")
    values = make().astype(np.float64)
    exact = np.percentile(values, np.asarray(BASIS_POINTS) / 100.0)
    spread = float(exact[6] - exact[2]) or 1.0  # the true 16th-84th percentile spread
    ours = float(np.max(np.abs(summarize(values).bands() - exact))) / spread
    theirs = float(np.max(np.abs(_tensorboard_bands(values, tmp_path) - exact))) / spread
    assert ours <= theirs, (ours, theirs)
    assert ours <= 1e-12
