"""Checks shared by the SDK (at the call site) and the server (on every request).

Each check raises :class:`trainboard.errors.InvalidArgument` (a ``ValueError``)
or ``TypeError`` with a message that names the offending field, and returns the
normalised value.
"""

from __future__ import annotations

import itertools
import json
import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from trainboard.errors import InvalidArgument
from trainboard.types import FINAL_STATUSES, HistogramSummary

MAX_NAME_LENGTH = 256
#: A client's id (the SDK's writer of batches; runs record the one that created them).
MAX_CLIENT_ID_LENGTH = 128
MAX_STEP = 2**53 - 1  # exact in a double, so charts and JSON keep it
MIN_BUCKETS = 1
MAX_BUCKETS = 512
#: Values a summary carries for the distribution bands: one per basis point
#: (trainboard.histogram.BASIS_POINTS).
BASIS_COUNT = 9
DEFAULT_BUCKETS = 64
MAX_GRAPH_NODES = 100_000
MAX_COUNT = 2**63 - 1  # counts are stored as signed 64-bit integers
#: The largest batch sequence number: stored as a signed 64-bit integer.
MAX_SEQUENCE = 2**63 - 1
MAX_RUN_TAGS = 64

# ---------------------------------------------------------------- size limits
# The limits that keep one request, one answer and one run bounded, in one place.
# Each refusal names its limit by these words ("tags per write batch", ...).

#: Bytes of one gRPC message, either way (the SDK's channel and the server alike).
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
#: Params of a run: at most this many bytes as JSON...
MAX_PARAMS_JSON = 64 * 1024
#: ...nested at most this deep (a dict or list inside a dict is depth 2).
MAX_PARAMS_DEPTH = 32
#: Distinct tags one write batch may touch (scalar and histogram tags counted apart).
MAX_TAGS_PER_BATCH = 10_000
#: Tags one run may hold (a tag with scalars and histograms counts twice).
MAX_TAGS_PER_RUN = 100_000
#: Scalar points in one ReadScalars answer, all its series together (24 MB on the
#: wire). A full-resolution read beyond it comes in pages on the wire (``next_step``),
#: which ``RemoteStore`` joins.
MAX_READ_POINTS = 1_000_000
#: Bytes of histogram summaries in one ReadHistograms answer (estimated from storage
#: before the answer is built).
MAX_READ_HISTOGRAM_BYTES = 32 * 1024 * 1024
#: (run, tag) pairs one read may ask for.
MAX_READ_SERIES = 100_000
#: Tags in one ListTags page, and bytes of their names; the SDK joins pages.
MAX_TAGS_PAGE = 100_000
MAX_TAGS_PAGE_BYTES = 16 * 1024 * 1024


def _has_control_character(text: str) -> bool:
    return any(ord(c) < 32 or 127 <= ord(c) < 160 for c in text)


def check_name(field: str, value: object) -> str:
    """A tag, run or experiment name: a non-empty str of at most 256 characters,
    without control characters."""
    if not isinstance(value, str):
        raise TypeError(f"{field} must be a str, got {type(value).__name__}")
    if not value:
        raise InvalidArgument(f"{field} must not be empty")
    if len(value) > MAX_NAME_LENGTH:
        raise InvalidArgument(
            f"{field} is {len(value)} characters long; at most {MAX_NAME_LENGTH} are allowed"
        )
    if _has_control_character(value):
        raise InvalidArgument(f"{field} {value!r} contains a control character")
    return value


def check_tag(value: object) -> str:
    return check_name("tag", value)


def check_client_id(value: object, field: str = "client_id") -> str:
    """A client's id: a name (see ``check_name``) of at most ``MAX_CLIENT_ID_LENGTH``
    characters."""
    if isinstance(value, str) and len(value) > MAX_CLIENT_ID_LENGTH:
        raise InvalidArgument(f"{field} is longer than {MAX_CLIENT_ID_LENGTH} characters")
    return check_name(field, value)


def _check_int(field: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{field} must be an int, got {type(value).__name__}")
    return int(value)


def check_run_id(value: object, field: str = "run_id") -> int:
    """A run id: a positive integer."""
    run_id = _check_int(field, value)
    if run_id <= 0:
        raise InvalidArgument(f"{field} must be a positive run id, got {run_id}")
    return run_id


def check_read_keys(
    run_ids: Iterable[object], tags: Iterable[object]
) -> tuple[list[int], list[str]]:
    """The run ids and tags of a read, each once (a repeat is ignored; the first
    occurrence keeps its place): neither empty, at most ``MAX_READ_SERIES`` pairs."""
    for field, values in (("run_ids", run_ids), ("tags", tags)):
        if isinstance(values, str | bytes) or not isinstance(values, Iterable):
            raise TypeError(f"{field} must be a sequence, got {type(values).__name__}")
    unique_ids = list(dict.fromkeys(run_ids))
    unique_tags = list(dict.fromkeys(tags))
    if not unique_ids:
        raise InvalidArgument("run_ids must not be empty")
    if not unique_tags:
        raise InvalidArgument("tags must not be empty")
    if len(unique_ids) * len(unique_tags) > MAX_READ_SERIES:
        raise InvalidArgument(
            f"run_ids x tags asks for {len(unique_ids) * len(unique_tags):,} series; "
            f"at most {MAX_READ_SERIES:,} (series per read)"
        )
    ids = [check_run_id(r, f"run_ids[{i}]") for i, r in enumerate(unique_ids)]
    names = [check_name(f"tags[{i}]", t) for i, t in enumerate(unique_tags)]
    return ids, names


def check_sequence(value: object, field: str = "sequence") -> int:
    """A write batch's sequence number: an integer in [1, ``MAX_SEQUENCE``]. A
    client's sequence numbers rise from 1 (``trainboard.store`` says why)."""
    sequence = _check_int(field, value)
    if sequence <= 0:
        raise InvalidArgument(f"{field} must be > 0, got {sequence}")
    if sequence > MAX_SEQUENCE:
        raise InvalidArgument(f"{field} must be <= {MAX_SEQUENCE}, got {sequence}")
    return sequence


def check_final_status(status: str, field: str = "status") -> str:
    """A run's final status: one of ``FINAL_STATUSES`` (finished, failed or killed;
    never "running", nor "crashed", which is only ever reported)."""
    if status not in FINAL_STATUSES:
        raise InvalidArgument(f"{field} must be one of {', '.join(FINAL_STATUSES)}; got {status!r}")
    return status


def check_run_tags(values: object, field: str = "tags") -> tuple[str, ...]:
    """A run's tags (labels such as "baseline"): a list of at most 64 names, each
    checked like a name. Returns them sorted, without repeats."""
    if isinstance(values, str) or not isinstance(values, Iterable):
        raise TypeError(f"{field} must be a list of str, got {type(values).__name__}")
    tags = [check_name(f"{field}[{i}]", value) for i, value in enumerate(values)]
    unique = tuple(sorted(set(tags)))
    if len(unique) > MAX_RUN_TAGS:
        raise InvalidArgument(f"{field} holds {len(unique)} tags; a run has at most {MAX_RUN_TAGS}")
    return unique


def check_step(value: object, field: str = "step") -> int:
    """A step: an integer (Python or numpy) in [0, 2**53 - 1]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        if isinstance(value, float) and math.isnan(value):
            raise InvalidArgument(f"{field} must be an integer, got NaN")
        raise TypeError(f"{field} must be an int, got {type(value).__name__} {value!r}")
    step = int(value)
    if step < 0:
        raise InvalidArgument(f"{field} must be >= 0, got {step}")
    if step > MAX_STEP:
        raise InvalidArgument(f"{field} must be <= {MAX_STEP}, got {step}")
    return step


def check_value(value: object, field: str = "value") -> float:
    """A scalar value: a real number (Python, numpy, or a one-element tensor).
    NaN and infinities are allowed and stored exactly."""
    if type(value) is float:
        return value
    if isinstance(value, bool):
        raise TypeError(f"{field} must be a real number, got bool")
    if isinstance(value, numbers.Real):
        return float(value)
    item = getattr(value, "item", None)
    size = getattr(value, "size", None)
    if callable(size):  # torch.Tensor.size is a method; numel() is the count
        numel = getattr(value, "numel", None)
        size = numel() if callable(numel) else None
    if callable(item) and size == 1:
        inner = item()
        if isinstance(inner, numbers.Real) and not isinstance(inner, bool):
            return float(inner)
    raise TypeError(f"{field} must be a real number, got {type(value).__name__}")


def check_wall_time(value: object, field: str = "wall_time") -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{field} must be a number of seconds, got {type(value).__name__}")
    wall_time = float(value)
    if not math.isfinite(wall_time) or wall_time < 0:
        raise InvalidArgument(f"{field} must be a finite number >= 0, got {wall_time}")
    return wall_time


def check_buckets(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"buckets must be an int, got {type(value).__name__}")
    buckets = int(value)
    if not MIN_BUCKETS <= buckets <= MAX_BUCKETS:
        raise InvalidArgument(
            f"buckets must be between {MIN_BUCKETS} and {MAX_BUCKETS}, got {buckets}"
        )
    return buckets


def params_to_json(params: object) -> str:
    """Params: a mapping of str keys to JSON-serialisable values, as a JSON object of
    at most ``MAX_PARAMS_JSON`` bytes nested at most ``MAX_PARAMS_DEPTH`` deep, with
    finite numbers only (JSON has no NaN or Infinity)."""
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be a dict, got {type(params).__name__}")
    for key in params:
        if not isinstance(key, str):
            raise TypeError(f"params keys must be str, got {type(key).__name__} {key!r}")
        check_name("params key", key)
    _check_params_value(params, "params")
    try:
        text = json.dumps(dict(params), sort_keys=True, allow_nan=False, default=_json_default)
    except RecursionError:  # nesting that only a default= conversion revealed
        raise InvalidArgument(
            f"params nest deeper than {MAX_PARAMS_DEPTH} levels (params depth limit)"
        ) from None
    except (TypeError, ValueError) as exc:
        if "Out of range float" in str(exc):  # a non-finite value a conversion revealed
            raise InvalidArgument(
                f"params must hold finite numbers only (JSON has no NaN or Infinity): {exc}"
            ) from exc
        raise TypeError(f"params must be JSON-serialisable: {exc}") from exc
    if len(text) > MAX_PARAMS_JSON:
        raise InvalidArgument(
            f"params are {len(text):,} bytes as JSON; at most {MAX_PARAMS_JSON:,} "
            "(params size limit)"
        )
    return text


def _json_default(value: Any) -> Any:
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        return item()
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return tolist()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def _check_params_value(value: object, field: str) -> None:
    """``InvalidArgument`` when dicts and lists in ``value`` nest deeper than
    ``MAX_PARAMS_DEPTH`` or a number in it is NaN or infinite. Walked with an
    explicit stack, so that no nesting can raise RecursionError."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, Mapping):
            children: Iterable[object] = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            if (
                isinstance(item, numbers.Real)
                and not isinstance(item, numbers.Integral)
                and not math.isfinite(float(item))
            ):
                raise InvalidArgument(
                    f"{field} must hold finite numbers only (JSON has no NaN or "
                    f"Infinity), got {item!r}"
                )
            continue
        if depth > MAX_PARAMS_DEPTH:
            raise InvalidArgument(
                f"{field} nest deeper than {MAX_PARAMS_DEPTH} levels (params depth limit)"
            )
        stack.extend((child, depth + 1) for child in children)


def _json_nesting(text: str) -> int:
    """The deepest nesting of ``[`` and ``{`` in JSON text, strings skipped."""
    if text.count("[") + text.count("{") <= MAX_PARAMS_DEPTH:
        return 0  # cannot be deeper than the limit
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text} is out of a double's range")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def params_from_json(text: str, field: str = "params_json") -> dict[str, Any]:
    """Parses a params JSON object (server side), naming the field on error: at most
    ``MAX_PARAMS_JSON`` bytes, nested at most ``MAX_PARAMS_DEPTH`` deep, finite
    numbers only (NaN, Infinity and numbers beyond a double, such as 1e400, are refused)."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_PARAMS_JSON:
        raise InvalidArgument(
            f"{field} is {size:,} bytes; at most {MAX_PARAMS_JSON:,} (params size limit)"
        )
    if _json_nesting(text) > MAX_PARAMS_DEPTH:
        raise InvalidArgument(
            f"{field} nests deeper than {MAX_PARAMS_DEPTH} levels (params depth limit)"
        )
    try:
        value = json.loads(text, parse_float=_finite_float, parse_constant=_no_constant)
    except RecursionError:
        raise InvalidArgument(
            f"{field} nests deeper than {MAX_PARAMS_DEPTH} levels (params depth limit)"
        ) from None
    except ValueError as exc:
        raise InvalidArgument(f"{field} is not valid JSON with finite numbers: {exc}") from exc
    if not isinstance(value, dict):
        raise InvalidArgument(f"{field} must be a JSON object, got {type(value).__name__}")
    for key in value:
        check_name(f"{field} key", key)
    _check_params_value(value, field)
    return value


def check_tags_per_batch(count: int) -> int:
    """``InvalidArgument`` when one write batch touches more than
    ``MAX_TAGS_PER_BATCH`` tags (scalar and histogram tags counted apart)."""
    if count > MAX_TAGS_PER_BATCH:
        raise InvalidArgument(
            f"the batch writes {count:,} tags; at most {MAX_TAGS_PER_BATCH:,} "
            "(tags per write batch): send them in several batches"
        )
    return count


def check_tags_per_run(
    count: int, run: object = "the run", error: type[Exception] = InvalidArgument
) -> int:
    """``error`` (``InvalidArgument`` by default; the server raises
    ``ResourceExhausted``) when a run would hold more than ``MAX_TAGS_PER_RUN``
    tags. The SDK checks this before a new tag enters its queue."""
    if count > MAX_TAGS_PER_RUN:
        raise error(f"{run} would hold {count:,} tags; at most {MAX_TAGS_PER_RUN:,} (tags per run)")
    return count


def check_summary(summary: HistogramSummary, field: str = "summary") -> HistogramSummary:
    """A histogram summary that is consistent (docs/design.md): counts are integers in
    [0, 2**63), at least one element; at most 512 buckets holding exactly the
    finite values; min and max finite with min <= max; sum and sum_squares not
    NaN (they may overflow to ±inf for huge values). Returns it with plain
    Python ints and floats."""
    counts = {
        "count": summary.count,
        "nan_count": summary.nan_count,
        "posinf_count": summary.posinf_count,
        "neginf_count": summary.neginf_count,
    }
    for name, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"{field}.{name} must be an int, got {type(value).__name__}")
        if not 0 <= value <= MAX_COUNT:
            raise InvalidArgument(f"{field}.{name} must be in [0, 2**63), got {value}")
    buckets = summary.bucket_counts
    if len(buckets) > MAX_BUCKETS:
        raise InvalidArgument(
            f"{field}.bucket_counts has {len(buckets)} buckets; at most {MAX_BUCKETS}"
        )
    if any(isinstance(c, bool) or not isinstance(c, numbers.Integral) or c < 0 for c in buckets):
        raise InvalidArgument(f"{field}.bucket_counts must be non-negative integers")
    floats = (summary.min, summary.max, summary.sum, summary.sum_squares)
    if not all(isinstance(x, numbers.Real) and not isinstance(x, bool) for x in floats):
        raise TypeError(f"{field}: min, max, sum and sum_squares must be numbers")
    if not (math.isfinite(summary.min) and math.isfinite(summary.max)):
        raise InvalidArgument(f"{field}: min and max must be finite")
    if math.isnan(summary.sum) or math.isnan(summary.sum_squares):
        raise InvalidArgument(f"{field}: sum and sum_squares must not be NaN")
    if summary.min > summary.max:
        raise InvalidArgument(f"{field}.min is above {field}.max")
    if summary.count == 0:
        raise InvalidArgument(f"{field}.count must be > 0 (a tensor with no elements)")
    non_finite = summary.nan_count + summary.posinf_count + summary.neginf_count
    if non_finite > summary.count:
        raise InvalidArgument(f"{field}: nan/posinf/neginf counts exceed count")
    finite = summary.count - non_finite
    if sum(buckets) != finite:
        raise InvalidArgument(
            f"{field}.bucket_counts sum to {sum(buckets)}, but {finite} values are finite"
        )
    edges = _check_floats(summary.edges, f"{field}.edges")
    if edges:
        if len(edges) != len(buckets) + 1:
            raise InvalidArgument(
                f"{field}.edges has {len(edges)} edges; {len(buckets)} buckets need "
                f"{len(buckets) + 1}"
            )
        if any(b <= a for a, b in itertools.pairwise(edges)):
            raise InvalidArgument(f"{field}.edges must be strictly increasing")
        if edges[0] != summary.min or edges[-1] != summary.max:
            raise InvalidArgument(f"{field}.edges must run from min to max")
    basis = _check_floats(summary.basis_values, f"{field}.basis_values")
    if basis:
        if len(basis) != BASIS_COUNT:
            raise InvalidArgument(
                f"{field}.basis_values has {len(basis)} values; one per basis point: {BASIS_COUNT}"
            )
        if any(b < a for a, b in itertools.pairwise(basis)):
            raise InvalidArgument(f"{field}.basis_values must not decrease")
        if basis[0] != summary.min or basis[-1] != summary.max:
            raise InvalidArgument(f"{field}.basis_values must run from min to max")
    if (edges or basis) and finite == 0:
        raise InvalidArgument(f"{field}: a summary without finite values has no edges or bands")
    return HistogramSummary(
        count=int(summary.count),
        min=float(summary.min),
        max=float(summary.max),
        sum=float(summary.sum),
        sum_squares=float(summary.sum_squares),
        nan_count=int(summary.nan_count),
        posinf_count=int(summary.posinf_count),
        neginf_count=int(summary.neginf_count),
        bucket_counts=tuple(int(c) for c in buckets),
        edges=edges,
        basis_values=basis,
    )


def _check_floats(values: Sequence[float], field: str) -> tuple[float, ...]:
    if len(values) > MAX_BUCKETS + 1:
        raise InvalidArgument(f"{field} has {len(values)} values; at most {MAX_BUCKETS + 1}")
    if not all(isinstance(x, numbers.Real) and not isinstance(x, bool) for x in values):
        raise InvalidArgument(f"{field} must be numbers")
    out = tuple(float(x) for x in values)
    if not all(math.isfinite(x) for x in out):
        raise InvalidArgument(f"{field} must be finite")
    return out
