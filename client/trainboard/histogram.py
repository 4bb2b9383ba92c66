"""Histogram compression (docs/design.md): a tensor of any shape to a small summary.

Logging a histogram happens in two halves so that the trainer's thread pays only
for a copy:

* :func:`snapshot` runs at the call site. It validates the input and takes a
  private copy: a contiguous numpy copy in the input's own dtype, or, for a torch
  tensor, a detached clone on the tensor's own device.
* :meth:`Snapshot.summarize` runs later (the SDK's background thread). It reduces
  the copy to a :class:`~trainboard.types.HistogramSummary`; a torch tensor is
  reduced on its device with torch ops and only the summary reaches the host.

Both paths compute the same summary (``trainboard.histogram_reduce``), so numpy
and torch give identical counts for identical data.

:func:`bands` gives TensorBoard's distribution bands of a summary: the exact values
it carries, or, for a summary stored before it carried them, values derived from
its equal-width buckets.

torch is never imported here: a tensor is recognised only when the caller has
already imported torch (``sys.modules``).
"""

from __future__ import annotations

import numbers
import sys
import threading
from typing import Any

import numpy as np

from trainboard.errors import InvalidArgument
from trainboard.histogram_reduce import BASIS_POINTS, summarize_numpy, summarize_torch
from trainboard.types import HistogramSummary
from trainboard.validation import DEFAULT_BUCKETS, check_buckets

__all__ = ["BASIS_POINTS", "Snapshot", "bands", "snapshot", "summarize"]


_NUMERIC_KINDS = frozenset("iuf")  # signed int, unsigned int, float
_KIND_NAMES = {
    "b": "bool",
    "c": "complex",
    "O": "object",
    "U": "str",
    "S": "bytes",
    "M": "datetime",
    "m": "timedelta",
    "V": "void",
}
_TORCH_INTEGER_DTYPES = ("uint8", "int8", "int16", "int32", "int64", "uint16", "uint32", "uint64")


class Snapshot:
    """A private copy of the values passed to ``log_histogram``, not yet reduced.

    Take one with :func:`snapshot` (not with this constructor: a snapshot owns
    its copy and summarising may reuse it); reduce it, once, with :meth:`summarize`.
    Summarising consumes the snapshot: its copy is dropped (a host buffer goes
    back to a small pool, so that the next snapshot of the same size is spared
    the page faults of a fresh multi-megabyte allocation) and the summary is kept,
    so asking again with the same bucket count answers the same summary.
    """

    __slots__ = ("_buffer", "_nbytes", "_ready", "_result", "_values")

    def __init__(self, values: Any, *, ready: Any = None, buffer: np.ndarray | None = None) -> None:
        self._values: Any = values
        # For a CUDA tensor, an event recorded on the caller's stream after the
        # clone: the reduction, on another thread and stream, waits on it.
        self._ready = ready
        # The pooled host buffer behind ``values``, returned to the pool when consumed.
        self._buffer = buffer
        if isinstance(values, np.ndarray):
            self._nbytes = int(values.nbytes)
        else:
            self._nbytes = int(values.numel()) * int(values.element_size())
        self._result: tuple[int, HistogramSummary] | None = None

    @property
    def values(self) -> Any:
        """The copy: a C-contiguous numpy array in the input's dtype, or a torch
        tensor on the input's device. Valid until :meth:`summarize` is called
        (a host buffer is then reused for later snapshots)."""
        if self._values is None:
            raise RuntimeError("this snapshot was summarised; its copy is gone")
        return self._values

    @property
    def nbytes(self) -> int:
        """Bytes the copy occupies (on its device), for bounding queued memory."""
        return self._nbytes

    def summarize(self, buckets: int = DEFAULT_BUCKETS) -> HistogramSummary:
        """Reduces the copy to a summary with at most ``buckets`` (1 to 512) buckets
        whose edges follow the data, and the exact basis-point values; a torch
        tensor is reduced on its own device. Call it from one thread at a time."""
        buckets = check_buckets(buckets)
        if self._result is not None:
            done_buckets, summary = self._result
            if done_buckets != buckets:
                raise RuntimeError(
                    f"this snapshot was summarised with {done_buckets} buckets; "
                    f"take a new snapshot for {buckets}"
                )
            return summary
        values = self._values
        if isinstance(values, np.ndarray):
            summary = summarize_numpy(values, buckets)
        else:
            summary = summarize_torch(values, buckets, self._ready)
        self._result = (buckets, summary)
        self._values = self._ready = None
        if self._buffer is not None:
            _POOL.give(self._buffer)
            self._buffer = None
        return summary


class _BufferPool:
    """Host buffers of summarised snapshots, kept for the next snapshot of the
    same size. A fresh 4 MB buffer costs the trainer's thread about 1 ms of page
    faults (more than the copy itself); a recycled one costs none. Holds at most
    ``capacity`` bytes, dropping the least recently returned buffers first."""

    def __init__(self, capacity: int, min_size: int) -> None:
        self._capacity = capacity
        self._min_size = min_size  # below this malloc serves from the heap anyway
        self._free: list[np.ndarray] = []
        self._bytes = 0
        self._lock = threading.Lock()

    def take(self, nbytes: int) -> tuple[np.ndarray, bool]:
        """A uint8 buffer of ``nbytes`` and whether it is pooled (worth giving back)."""
        if not self._min_size <= nbytes <= self._capacity:
            return np.empty(nbytes, dtype=np.uint8), False
        with self._lock:
            for i in range(len(self._free) - 1, -1, -1):
                if self._free[i].nbytes == nbytes:
                    self._bytes -= nbytes
                    return self._free.pop(i), True
        return np.empty(nbytes, dtype=np.uint8), True

    def give(self, buffer: np.ndarray) -> None:
        with self._lock:
            self._free.append(buffer)
            self._bytes += buffer.nbytes
            while self._bytes > self._capacity:
                self._bytes -= self._free.pop(0).nbytes


_POOL = _BufferPool(capacity=64 * 2**20, min_size=128 * 2**10)


def snapshot(values: object) -> Snapshot:
    """Validates ``values`` and takes a private copy of them, cheaply.

    Accepts a numpy array (or anything numpy turns into a numeric array: nested
    lists, Python or numpy scalars) or a torch tensor, of any shape, with an
    integer or floating dtype. NaN and infinities are allowed.

    Raises ``TypeError`` for anything else (None, str, bool, complex, object
    dtypes, sparse tensors) and :class:`~trainboard.errors.InvalidArgument` for
    an input with no elements. The copy keeps the dtype (float32 stays float32);
    a torch tensor is detached and cloned on its own device, never moved to the
    host here.
    """
    tensor_type = _torch_tensor_type()
    if tensor_type is not None and isinstance(values, tensor_type):
        return _snapshot_torch(values)
    return _snapshot_numpy(values)


def summarize(values: object, buckets: int = DEFAULT_BUCKETS) -> HistogramSummary:
    """Summarises ``values`` in one go: ``snapshot(values).summarize(buckets)``."""
    buckets = check_buckets(buckets)
    return snapshot(values).summarize(buckets)


def bands(summary: HistogramSummary) -> np.ndarray:
    """The values at :data:`BASIS_POINTS`, low to high, as 9 float64 values: the
    exact ones a summary carries (``numpy.percentile`` of the finite values), else
    derived from its buckets (summaries stored before they carried them).

    Derived, each is found by linear interpolation inside the bucket where the
    cumulative count reaches that fraction of the finite values; the first and
    last are exactly ``min`` and ``max``. The error is at most one bucket width. A
    summary without finite values gives nine NaNs; a constant one nine times the
    constant.
    """
    if summary.basis_values:
        return np.asarray(summary.basis_values, dtype=np.float64)
    counts = np.asarray(summary.bucket_counts, dtype=np.float64)
    total = float(counts.sum()) if counts.size else 0.0
    if total <= 0:
        return np.full(len(BASIS_POINTS), np.nan)
    lo, hi = float(summary.min), float(summary.max)
    if lo == hi:
        return np.full(len(BASIS_POINTS), lo)
    cumulative = np.cumsum(counts)
    targets = np.asarray(BASIS_POINTS, dtype=np.float64) * (total / 10_000.0)
    # The first bucket whose cumulative count reaches the target holds it.
    index = np.searchsorted(cumulative, targets, side="left").clip(0, counts.size - 1)
    in_bucket = counts[index]
    before = cumulative[index] - in_bucket
    fraction = np.divide(
        targets - before, in_bucket, out=np.zeros_like(targets), where=in_bucket > 0
    )
    # Position in [0, 1] over [min, max]; lerp from both ends so that a range
    # wider than the largest float64 does not overflow.
    position = (index + fraction.clip(0.0, 1.0)) / counts.size
    values = lo * (1.0 - position) + hi * position
    values = np.maximum.accumulate(values.clip(lo, hi))
    values[0], values[-1] = lo, hi
    return values


# --- validation and copying in the caller's thread -------------------------------


def _torch_tensor_type() -> type[Any] | None:
    torch = sys.modules.get("torch")
    tensor_type = getattr(torch, "Tensor", None)
    return tensor_type if isinstance(tensor_type, type) else None


def _snapshot_numpy(values: object) -> Snapshot:
    if values is None or isinstance(values, (str, bytes, bytearray, bool, np.bool_)):
        raise TypeError(f"values must be a numeric array or tensor, got {type(values).__name__}")
    if isinstance(values, numbers.Complex) and not isinstance(values, numbers.Real):
        raise TypeError(f"values must be real numbers, got {type(values).__name__}")
    if isinstance(values, np.ndarray):
        _check_numpy_dtype(values.dtype)
        _check_not_empty(values.size)
        buffer, pooled = _POOL.take(values.nbytes)
        copy = buffer.view(values.dtype).reshape(values.shape)
        np.copyto(copy, values, casting="no")
        return Snapshot(copy, buffer=buffer if pooled else None)
    try:
        array = np.asarray(values)
    except (ValueError, TypeError) as exc:  # ragged nesting, unconvertible objects
        raise TypeError(
            f"values must be a rectangular numeric array, got {type(values).__name__}: {exc}"
        ) from exc
    _check_numpy_dtype(array.dtype)
    _check_not_empty(array.size)
    if array is values or not (array.flags.owndata and array.flags.c_contiguous):
        # A view of the caller's memory (a buffer, an __array__ view): copy it.
        array = np.array(array, order="C", copy=True)
    return Snapshot(array)


def _check_numpy_dtype(dtype: np.dtype[Any]) -> None:
    if dtype.kind not in _NUMERIC_KINDS:
        name = _KIND_NAMES.get(dtype.kind, str(dtype))
        raise TypeError(f"values must be integers or floats, got dtype {dtype} ({name})")


def _check_not_empty(size: int) -> None:
    if size == 0:
        raise InvalidArgument("values must have at least one element, got an empty tensor")


def _snapshot_torch(tensor: Any) -> Snapshot:
    torch = sys.modules["torch"]
    dtype = tensor.dtype
    integer_dtypes = {getattr(torch, name, None) for name in _TORCH_INTEGER_DTYPES}
    if dtype == torch.bool or tensor.is_complex() or tensor.is_quantized:
        raise TypeError(f"values must be integers or floats, got tensor of {dtype}")
    if not (tensor.is_floating_point() or dtype in integer_dtypes):
        raise TypeError(f"values must be integers or floats, got tensor of {dtype}")
    if tensor.layout != torch.strided:
        raise TypeError(f"values must be a dense tensor, got layout {tensor.layout}; to_dense() it")
    if tensor.device.type == "meta":
        raise InvalidArgument("values is a meta tensor: it has no data to summarise")
    _check_not_empty(int(tensor.numel()))
    detached = tensor.detach()
    if detached.device.type == "cpu":
        # Into a recycled host buffer, as for numpy: torch's CPU allocator keeps
        # no cache, so a clone would pay the page faults of a fresh allocation.
        nbytes = int(detached.numel()) * int(detached.element_size())
        buffer, pooled = _POOL.take(nbytes)
        copy = torch.from_numpy(buffer).view(detached.dtype).view(detached.shape)
        try:
            source = detached.numpy()  # a view, no copy
        except (TypeError, RuntimeError):  # bfloat16 and other dtypes numpy lacks
            copy.copy_(detached)
        else:
            # A plain memcpy: torch's copy_ wakes its thread pool, which on a
            # busy machine costs the caller milliseconds.
            np.copyto(copy.numpy(), source, casting="no")
        return Snapshot(copy, buffer=buffer if pooled else None)
    # Same device, caller's stream: an asynchronous device-to-device copy.
    copy = detached.clone(memory_format=torch.contiguous_format)
    ready = None
    if copy.device.type == "cuda":
        ready = torch.cuda.Event()
        ready.record(torch.cuda.current_stream(copy.device))
    return Snapshot(copy, ready=ready)
