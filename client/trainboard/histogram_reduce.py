"""Reducing a histogram snapshot to its summary (docs/design.md), in the SDK's
background thread: a numpy copy with numpy, a torch tensor with torch ops on its
own device. Both paths take the values at the needed ranks (numpy partitions the
copy, torch sorts it on its device), compute the exact basis-point values and the
bucket edges from them with the same float64 arithmetic on the host
(:func:`_edges_and_basis`), and count each value's bucket by comparing it, in
float64, with those edges; so numpy and torch give identical counts for
identical data. ``trainboard.histogram`` takes the snapshots and calls these.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from trainboard.types import HistogramSummary

#: TensorBoard's basis points (per ten thousand) of the distribution bands:
#: min, mean -1.5σ, -1σ, -0.5σ, median, +0.5σ, +1σ, +1.5σ, max of a normal.
BASIS_POINTS: tuple[int, ...] = (0, 668, 1587, 3085, 5000, 6915, 8413, 9332, 10000)


def _empty_summary(count: int, nan: int, posinf: int, neginf: int) -> HistogramSummary:
    return HistogramSummary(
        count=count,
        min=0.0,
        max=0.0,
        sum=0.0,
        sum_squares=0.0,
        nan_count=nan,
        posinf_count=posinf,
        neginf_count=neginf,
        bucket_counts=(),
    )


#: Shares of the finite values below the buckets' outer edges at each end: ten
#: edges sit at these tail quantiles, the rest at equal shares in between. A lone
#: outlier or a long tail then gets buckets of its own instead of stretching one
#: over the bulk (with equal-width buckets an outlier at 1000 put a million N(0, 1)
#: values into a single bucket).
TAIL_SHARES: tuple[float, ...] = (1e-6, 1e-5, 1e-4, 1e-3)


def edge_shares(buckets: int) -> np.ndarray:
    """The ``buckets + 1`` shares (0 to 1) of the finite values at which the edges
    sit: 0, the :data:`TAIL_SHARES`, equal shares from 1% to 99%, their mirror
    images and 1; equal shares alone for fewer than 16 buckets."""
    if buckets < 16:
        return np.linspace(0.0, 1.0, buckets + 1)
    tail = np.asarray(TAIL_SHARES)
    inner = np.linspace(0.01, 0.99, buckets + 1 - 2 * (len(tail) + 1))
    return np.concatenate([[0.0], tail, inner, (1.0 - tail)[::-1], [1.0]])


#: The basis points as shares, as ``numpy.percentile`` takes them (per cent / 100).
_BASIS_SHARES = np.asarray(BASIS_POINTS, dtype=np.float64) / 100.0 / 100.0


def _ranks(n: int, shares: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For ``numpy.percentile``'s default ("linear") rule over ``n`` sorted values:
    each share's lower and upper rank and the weight between them."""
    virtual = (n - 1) * shares
    lower = np.floor(virtual).astype(np.int64)
    upper = np.minimum(lower + 1, n - 1)
    return lower, upper, virtual - lower


@np.errstate(over="ignore", invalid="ignore")
def _lerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """``numpy.percentile``'s interpolation, operation for operation; where the
    difference of two values overflows (a range wider than the largest float64,
    where numpy answers ±inf), ``a * (1 - t) + b * t`` instead, which cannot."""
    diff = b - a
    out: np.ndarray = np.where(t >= 0.5, b - diff * (1 - t), a + diff * t)
    wide = ~np.isfinite(out)
    out[wide] = a[wide] * (1 - t[wide]) + b[wide] * t[wide]
    return out


def _edges_and_basis(
    n: int, lo: float, hi: float, buckets: int, order_values: Callable[[np.ndarray], np.ndarray]
) -> tuple[np.ndarray, tuple[float, ...]]:
    """Bucket edges (strictly increasing, from ``lo`` to ``hi``) and the exact
    values at the basis points, from ``order_values(ranks)``: the values of the
    ``n`` finite ones at those ranks (0 the smallest), ranks sorted."""
    shares = np.concatenate([_BASIS_SHARES, edge_shares(buckets)])
    lower, upper, weight = _ranks(n, shares)
    ranks = np.unique(np.concatenate([lower, upper]))
    values = np.asarray(order_values(ranks), dtype=np.float64)
    quantiles = _lerp(
        values[np.searchsorted(ranks, lower)], values[np.searchsorted(ranks, upper)], weight
    )
    # (The interpolation can step back by an ulp between neighbouring shares.)
    basis = tuple(float(v) for v in np.maximum.accumulate(quantiles[: len(_BASIS_SHARES)]))
    edges, repeats = np.unique(quantiles[len(_BASIS_SHARES) :], return_counts=True)
    edges[0], edges[-1] = lo, hi
    # An edge several shares fell on is a value many elements hold (a spike: the
    # zeros of a ReLU's output). A boundary one ulp beside it gives it a bucket of
    # its own; the edges merged there leave room for it within ``buckets``.
    spikes = edges[repeats > 1]
    with np.errstate(over="ignore"):  # the unused branch at the largest float
        beside = np.where(spikes < hi, np.nextafter(spikes, np.inf), np.nextafter(spikes, -np.inf))
    edges = np.unique(np.concatenate([edges, beside]))
    return edges, basis


@np.errstate(over="ignore")  # huge float64 values: sums (or long doubles) overflow to inf
def summarize_numpy(array: np.ndarray, buckets: int) -> HistogramSummary:
    flat = array.reshape(-1)
    count = int(flat.size)
    if flat.dtype.kind != "f" or flat.dtype.itemsize > 8:
        # Integers (exactly as torch sees them) and long doubles go via float64.
        flat = flat.astype(np.float64)
    nan = posinf = neginf = 0
    lo, hi = float(flat.min()), float(flat.max())
    # NaN propagates into min and max, so two finite ends mean all are finite.
    if not (math.isfinite(lo) and math.isfinite(hi)):
        nan = int(np.count_nonzero(np.isnan(flat)))
        posinf = int(np.count_nonzero(flat == np.inf))
        neginf = int(np.count_nonzero(flat == -np.inf))
        flat = flat[np.isfinite(flat)]
        if flat.size == 0:
            return _empty_summary(count, nan, posinf, neginf)
        lo, hi = float(flat.min()), float(flat.max())
    finite = int(flat.size)
    wide = flat.astype(np.float64, copy=False)
    total = float(wide.sum())
    squares = float(np.dot(wide, wide))
    if lo == hi:
        bucket_counts: tuple[int, ...] = (finite,)
        edges: tuple[float, ...] = ()
        basis = (lo,) * len(BASIS_POINTS)
    else:

        def order_values(ranks: np.ndarray) -> np.ndarray:
            # In place: ``wide`` is this snapshot's own copy (or a temporary), and
            # the sums above are taken already.
            wide.partition(ranks)
            picked: np.ndarray = wide[ranks]
            return picked

        edge_array, basis = _edges_and_basis(finite, lo, hi, buckets, order_values)
        index = np.searchsorted(edge_array, wide, side="right")
        index -= 1
        np.minimum(index, len(edge_array) - 2, out=index)  # max itself: the last bucket
        counts = np.bincount(index, minlength=len(edge_array) - 1)
        bucket_counts = tuple(int(c) for c in counts.tolist())
        edges = tuple(float(e) for e in edge_array.tolist())
    return HistogramSummary(
        count=count,
        min=lo,
        max=hi,
        sum=total,
        sum_squares=squares,
        nan_count=nan,
        posinf_count=posinf,
        neginf_count=neginf,
        bucket_counts=bucket_counts,
        edges=edges,
        basis_values=basis,
    )


def _to_host(tensor: Any) -> list[Any]:
    """A small tensor's values on the host. ``cpu()`` waits for the device with
    the GIL released, so the trainer's thread runs on meanwhile."""
    values: list[Any] = tensor.cpu().tolist()
    return values


def summarize_torch(tensor: Any, buckets: int, ready: Any) -> HistogramSummary:
    torch = sys.modules["torch"]
    device = tensor.device
    if ready is not None:
        torch.cuda.current_stream(device).wait_event(ready)
    # float64 wherever the device has it (MPS has not): the same arithmetic as numpy.
    wide_dtype = torch.float32 if device.type == "mps" else torch.float64
    with torch.no_grad():
        flat = tensor.reshape(-1)
        count = int(flat.numel())
        if not flat.is_floating_point():
            flat = flat.to(wide_dtype)
        nan = posinf = neginf = 0
        lo, hi = (float(v) for v in _to_host(torch.stack(torch.aminmax(flat))))
        if not (math.isfinite(lo) and math.isfinite(hi)):
            non_finite = torch.stack(
                [
                    torch.isnan(flat).sum(),
                    torch.isposinf(flat).sum(),
                    torch.isneginf(flat).sum(),
                ]
            )
            nan, posinf, neginf = (int(v) for v in _to_host(non_finite))
            flat = flat[torch.isfinite(flat)]
            if flat.numel() == 0:
                return _empty_summary(count, nan, posinf, neginf)
            lo, hi = (float(v) for v in _to_host(torch.stack(torch.aminmax(flat))))
        finite = int(flat.numel())
        wide = flat.to(wide_dtype)
        moments = torch.stack([wide.sum(), torch.dot(wide, wide)])
        if lo == hi:
            bucket_counts: tuple[int, ...] = (finite,)
            edges: tuple[float, ...] = ()
            basis = (lo,) * len(BASIS_POINTS)
        else:
            # Sorted on the device; only the values at the needed ranks, and then
            # the bucket counts, come to the host.
            ordered = torch.sort(wide).values

            def order_values(ranks: np.ndarray) -> np.ndarray:
                index = torch.as_tensor(ranks, device=device)
                return np.asarray(_to_host(ordered[index]), dtype=np.float64)

            edge_array, basis = _edges_and_basis(finite, lo, hi, buckets, order_values)
            del ordered
            boundaries = torch.as_tensor(edge_array, dtype=wide.dtype, device=device)
            index = torch.bucketize(wide, boundaries, right=True).sub_(1)
            index.clamp_(max=len(edge_array) - 2)  # max itself: the last bucket
            counts = torch.bincount(index, minlength=len(edge_array) - 1)
            bucket_counts = tuple(int(c) for c in _to_host(counts))
            edges = tuple(float(e) for e in edge_array.tolist())
        total, squares = (float(v) for v in _to_host(moments))
    return HistogramSummary(
        count=count,
        min=lo,
        max=hi,
        sum=total,
        sum_squares=squares,
        nan_count=nan,
        posinf_count=posinf,
        neginf_count=neginf,
        bucket_counts=bucket_counts,
        edges=edges,
        basis_values=basis,
    )
