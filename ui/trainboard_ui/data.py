"""Pure data shaping for the dashboard: no Streamlit, no network.

The pages hand in what the read API returned (runs, series, histograms) and get
arrays and DataFrames back, ready to draw. Everything here is unit-tested on its own.

- run colours: stable per run, from the run's place among its experiment's runs;
- tag filtering by regular expression and grouping by the first ``/`` scope;
- the time axis of a chart: step, relative time or wall time;
- scalar lines: raw and smoothed values (``trainboard.smooth``), the y-range that
  ignores outliers, and the CSV table of what a chart shows;
- distributions: TensorBoard's bands over steps (``Histogram.bands()``);
- histograms: slices sampled evenly over steps, rebinned onto shared edges;
- the runs table: status, tags, start, duration, params and last scalar values.
"""

from __future__ import annotations

import json
import math
import re
import zoneinfo
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from trainboard import smooth
from trainboard.histogram import BASIS_POINTS
from trainboard.types import Histogram, Run

#: The axes of time a chart can have: steps, time since the run's start, clock time.
X_AXES: tuple[str, ...] = ("step", "relative", "wall")
X_AXIS_LABELS: Mapping[str, str] = {
    "step": "Step",
    "relative": "Relative time",
    "wall": "Wall time",
}

# Twelve colours that stay apart on a white and a dark background (Paul Tol's
# "bright" and "muted" schemes, interleaved). A run's colour is its place among its
# experiment's runs (oldest first), so the first twelve runs never share one.
PALETTE: tuple[str, ...] = (
    "#4477AA",
    "#EE6677",
    "#228833",
    "#CCBB44",
    "#66CCEE",
    "#AA3377",
    "#EE7733",
    "#332288",
    "#117733",
    "#882255",
    "#44AA99",
    "#999933",
)

# Where the y-range goes with "ignore outliers": these quantiles of the drawn
# values, widened by OUTLIER_MARGIN of their spread on each side.
OUTLIER_QUANTILES = (0.05, 0.95)
OUTLIER_MARGIN = 0.1

#: Band column names of a distribution frame, low to high (one per basis point).
BAND_COLUMNS: tuple[str, ...] = tuple(f"bp{b}" for b in BASIS_POINTS)
#: Pairs of band columns (by index) that enclose each shaded band, outermost first.
BAND_PAIRS: tuple[tuple[int, int], ...] = ((0, 8), (1, 7), (2, 6), (3, 5))
MEDIAN_INDEX = 4


# --------------------------------------------------------------------- runs


def run_colours(runs: Iterable[Run]) -> dict[int, str]:
    """A colour per run id: the palette in order of run id, cycling.

    Derived from the experiment's whole run list, never from what is selected, so
    a run keeps its colour on every page and whatever else is shown.
    """
    ordered = sorted(runs, key=lambda r: r.id)
    return {run.id: PALETTE[i % len(PALETTE)] for i, run in enumerate(ordered)}


def with_alpha(colour: str, alpha: float) -> str:
    """``#RRGGBB`` as an ``rgba(...)`` string with the given opacity."""
    r, g, b = _rgb(colour)
    return f"rgba({r},{g},{b},{alpha:g})"


def blend(colour: str, towards: str, fraction: float) -> str:
    """``colour`` moved ``fraction`` of the way to ``towards``, as ``#RRGGBB``."""
    a = np.array(_rgb(colour), dtype=np.float64)
    b = np.array(_rgb(towards), dtype=np.float64)
    mixed = np.rint(a + (b - a) * min(max(fraction, 0.0), 1.0)).astype(int)
    return "#{:02X}{:02X}{:02X}".format(*mixed.tolist())


def _rgb(colour: str) -> tuple[int, int, int]:
    text = colour.lstrip("#")
    if len(text) != 6:
        raise ValueError(f"colour must be #RRGGBB, got {colour!r}")
    return int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16)


# --------------------------------------------------------------------- tags


def compile_pattern(text: str) -> tuple[re.Pattern[str] | None, str | None]:
    """A filter (of tags, of run names) as a compiled regular expression, or
    ``(None, message)`` when ``text`` is not a valid one. An empty filter gives
    ``(None, None)``: no filter."""
    if not text.strip():
        return None, None
    try:
        return re.compile(text), None
    except re.error as exc:
        return None, f"Not a valid regular expression: {exc}"


def filter_tags(tags: Iterable[str], pattern: re.Pattern[str] | None) -> list[str]:
    """Sorted unique tags that the pattern finds anywhere in (``re.search``)."""
    return sorted({t for t in tags if pattern is None or pattern.search(t)})


def group_tags(tags: Iterable[str]) -> list[tuple[str, list[str]]]:
    """Tags grouped by their first ``/`` scope, as TensorBoard does: ``test/loss``
    goes to ``test``; tags without a scope go to the group ``""``, which comes first."""
    groups: dict[str, list[str]] = {}
    for tag in sorted(set(tags)):
        scope, sep, _ = tag.partition("/")
        groups.setdefault(scope if sep else "", []).append(tag)
    return sorted(groups.items(), key=lambda item: (item[0] != "", item[0]))


# --------------------------------------------------------------------- time axis


def relative_unit(max_seconds: float) -> tuple[float, str]:
    """``(seconds per unit, unit name)`` that keeps relative times readable."""
    if not math.isfinite(max_seconds) or max_seconds < 120:
        return 1.0, "s"
    if max_seconds < 2 * 3600:
        return 60.0, "min"
    if max_seconds < 2 * 86400:
        return 3600.0, "h"
    return 86400.0, "days"


def valid_timezone(name: str | None) -> str:
    """``name`` when it is a time zone this machine knows, else ``"UTC"``."""
    if not name:
        return "UTC"
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return "UTC"
    return name


def wall_datetimes(wall_times: np.ndarray, timezone: str | None = None) -> np.ndarray:
    """Seconds since the epoch as naive local ``datetime64`` values in ``timezone``
    (UTC when unknown): what a date axis shows without converting again."""
    stamps = pd.to_datetime(np.asarray(wall_times, dtype=np.float64), unit="s", utc=True)
    local = pd.DatetimeIndex(stamps).tz_convert(valid_timezone(timezone)).tz_localize(None)
    result: np.ndarray = local.to_numpy()
    return result


def time_axis(
    steps: np.ndarray,
    wall_times: np.ndarray,
    axis: str,
    *,
    start: float = 0.0,
    unit: float = 1.0,
    timezone: str | None = None,
) -> np.ndarray:
    """The x values of points for a chart's axis of time.

    ``"step"``: the steps. ``"relative"``: ``(wall_time - start) / unit``, with
    ``start`` the run's start. ``"wall"``: local datetimes (:func:`wall_datetimes`).
    """
    if axis == "step":
        return np.asarray(steps, dtype=np.int64)
    if axis == "relative":
        return (np.asarray(wall_times, dtype=np.float64) - start) / unit
    if axis == "wall":
        return wall_datetimes(wall_times, timezone)
    raise ValueError(f"axis must be one of {X_AXES}, got {axis!r}")


def axis_title(axis: str, unit: str = "s") -> str:
    if axis == "relative":
        return f"Relative time ({unit})"
    return X_AXIS_LABELS.get(axis, axis)


# --------------------------------------------------------------------- scalars


@dataclass(frozen=True, slots=True)
class SeriesPoints:
    """One run's points of one tag, as read (possibly downsampled)."""

    run: Run
    steps: np.ndarray
    wall_times: np.ndarray
    values: np.ndarray


@dataclass(frozen=True, slots=True)
class ScalarLine:
    """What a chart draws for one run: x values and raw and smoothed y values."""

    run: str
    colour: str
    steps: np.ndarray
    wall_times: np.ndarray
    x: np.ndarray
    raw: np.ndarray
    smoothed: np.ndarray

    @property
    def non_finite(self) -> int:
        return int(np.count_nonzero(~np.isfinite(self.raw)))


def scalar_lines(
    series: Sequence[SeriesPoints],
    *,
    colours: Mapping[int, str],
    weight: float,
    axis: str,
    timezone: str | None = None,
) -> tuple[list[ScalarLine], str]:
    """The lines of one chart and its x-axis title.

    Smoothing is ``trainboard.smooth`` with ``weight``; relative times
    count from each run's start and share one unit per chart.
    """
    unit, unit_name = 1.0, "s"
    if axis == "relative":
        spans = [float(s.wall_times[-1]) - s.run.started_at for s in series if len(s.steps)]
        unit, unit_name = relative_unit(max(spans, default=0.0))
    lines = []
    for s in series:
        values = np.asarray(s.values, dtype=np.float64)
        lines.append(
            ScalarLine(
                run=s.run.name,
                colour=colours.get(s.run.id, PALETTE[0]),
                steps=np.asarray(s.steps, dtype=np.int64),
                wall_times=np.asarray(s.wall_times, dtype=np.float64),
                x=time_axis(
                    s.steps,
                    s.wall_times,
                    axis,
                    start=s.run.started_at,
                    unit=unit,
                    timezone=timezone,
                ),
                raw=values,
                smoothed=smooth(values, weight) if weight > 0 else values,
            )
        )
    return lines, axis_title(axis, unit_name)


def outlier_range(arrays: Iterable[np.ndarray], *, log: bool = False) -> tuple[float, float] | None:
    """A y-range that ignores outliers: the 5th to 95th percentile of the finite
    values, widened by a tenth of that spread on each side (at least the values'
    own magnitude / 10 when they are all equal). With ``log`` the range is of
    ``log10`` of the positive values, as Plotly's log axes take it. ``None`` when
    there is nothing to range over."""
    parts = [np.asarray(a, dtype=np.float64).ravel() for a in arrays]
    values = np.concatenate(parts) if parts else np.empty(0)
    values = values[np.isfinite(values)]
    if log:
        values = np.log10(values[values > 0])
    if values.size == 0:
        return None
    lo, hi = (float(q) for q in np.quantile(values, OUTLIER_QUANTILES))
    spread = hi - lo
    if spread <= 0:
        spread = abs(lo) if lo != 0 else 1.0
    return lo - OUTLIER_MARGIN * spread, hi + OUTLIER_MARGIN * spread


def lines_frame(lines: Sequence[ScalarLine]) -> pd.DataFrame:
    """The points a scalar chart shows, one row per point: run, step, wall time
    (seconds since the epoch), value and smoothed value. What its CSV holds."""
    columns = ["run", "step", "wall_time", "value", "smoothed"]
    if not lines:
        return pd.DataFrame({c: [] for c in columns})
    return pd.DataFrame(
        {
            "run": np.concatenate(
                [np.full(len(line.steps), line.run, dtype=object) for line in lines]
            ),
            "step": np.concatenate([line.steps for line in lines]),
            "wall_time": np.concatenate([line.wall_times for line in lines]),
            "value": np.concatenate([line.raw for line in lines]),
            "smoothed": np.concatenate([line.smoothed for line in lines]),
        },
        columns=columns,
    )


def csv_file_name(tag: str) -> str:
    """A file name for a tag's CSV: scopes joined by ``_``, nothing unsafe."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", tag).strip("._") or "series"
    return f"{safe}.csv"


# --------------------------------------------------------------------- distributions


def distribution_frame(histograms: Sequence[Histogram]) -> pd.DataFrame:
    """TensorBoard's distribution over steps: one row per histogram with its step,
    wall time and the values at the nine basis points (:data:`BAND_COLUMNS`, low to
    high), by linear interpolation inside the buckets. A histogram with
    no finite values gives a row of NaN bands."""
    bands = (
        np.vstack([h.bands() for h in histograms])
        if histograms
        else np.empty((0, len(BASIS_POINTS)))
    )
    frame = pd.DataFrame(
        {
            "step": np.array([h.step for h in histograms], dtype=np.int64),
            "wall_time": np.array([h.wall_time for h in histograms], dtype=np.float64),
        }
    )
    for i, column in enumerate(BAND_COLUMNS):
        frame[column] = bands[:, i]
    return frame


#: A distribution chart is cut to its inner bands when the 7%-93% band spans less
#: than this share of min to max (a normal tensor's spans about a third of it).
BANDS_NARROWED = 0.15


def band_range(frame: pd.DataFrame) -> tuple[float, float] | None:
    """A y range for a distribution chart whose min-max band would flatten the rest:
    when the 7%-93% band spans under :data:`BANDS_NARROWED` of min to max (over all
    its steps), that band widened by half its span each way (the outer band is then
    drawn cut off, and the view says how far it reaches). ``None``: show it all."""
    bands = frame[list(BAND_COLUMNS)].to_numpy(dtype=np.float64)
    bands = bands[np.isfinite(bands).all(axis=1)]
    if not len(bands):
        return None
    lo, hi = float(bands[:, 0].min()), float(bands[:, -1].max())
    inner_lo, inner_hi = float(bands[:, 1].min()), float(bands[:, -2].max())
    span = inner_hi / 2 - inner_lo / 2
    if not (0 < span < BANDS_NARROWED * (hi / 2 - lo / 2)):
        return None
    return max(lo, inner_lo - span), min(hi, inner_hi + span)


# --------------------------------------------------------------------- histograms


def sample_evenly(n: int, k: int) -> np.ndarray:
    """Up to ``k`` evenly spaced indices into ``n`` items, sorted; the last item is
    always among them (and the first, for ``k >= 2``). All of them when ``n <= k``."""
    if n <= 0 or k <= 0:
        return np.arange(max(n, 0), dtype=np.int64)
    if n <= k:
        return np.arange(n, dtype=np.int64)
    if k == 1:
        return np.array([n - 1], dtype=np.int64)
    return np.unique(np.rint(np.linspace(0, n - 1, k)).astype(np.int64))


#: A histogram chart leaves out this share of the values at each end when that
#: narrows its range to under :data:`NARROWED` of the whole: an outlier or a long
#: tail would otherwise squeeze the bulk into one or two bins. What is left out is
#: counted under the chart.
LEFT_OUT_SHARE = 0.001
NARROWED = 0.5


def value_at_share(histogram: Histogram, share: float) -> float:
    """The value below which ``share`` of the histogram's finite values lie, values
    spread evenly inside each bucket (exact at the buckets' edges)."""
    counts = np.asarray(histogram.bucket_counts, dtype=np.float64)
    cumulative = np.concatenate([[0.0], np.cumsum(counts)])
    if cumulative[-1] <= 0:
        return float("nan")
    return float(np.interp(share * cumulative[-1], cumulative, histogram.bucket_edges()))


def common_edges(histograms: Sequence[Histogram], bins: int) -> np.ndarray:
    """``bins + 1`` equal-width edges over the range the histograms' chart shows:
    their whole finite range, or, when leaving out :data:`LEFT_OUT_SHARE` of each
    one's values at each end narrows it to under :data:`NARROWED` of that, the rest
    (widened to a unit, or a tenth of the value, around a single constant)."""
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    finite = [h for h in histograms if sum(h.bucket_counts) > 0]
    if not finite:
        return np.linspace(-0.5, 0.5, bins + 1)
    lo = min(float(h.min) for h in finite)
    hi = max(float(h.max) for h in finite)
    bulk_lo = min(value_at_share(h, LEFT_OUT_SHARE) for h in finite)
    bulk_hi = max(value_at_share(h, 1.0 - LEFT_OUT_SHARE) for h in finite)
    if bulk_lo < bulk_hi and bulk_hi / 2 - bulk_lo / 2 < NARROWED * (hi / 2 - lo / 2):
        lo, hi = bulk_lo, bulk_hi
    if lo == hi:
        half = abs(lo) / 10 if lo != 0 else 0.5
        lo, hi = lo - half, hi + half
    return np.linspace(lo, hi, bins + 1)


def rebin(histogram: Histogram, edges: np.ndarray) -> np.ndarray:
    """The histogram's finite counts redistributed over ``edges``, assuming values
    spread evenly inside each stored bucket; a constant histogram puts its whole
    count in the bin holding the constant. Counts outside ``edges`` are dropped."""
    edges = np.asarray(edges, dtype=np.float64)
    counts = np.asarray(histogram.bucket_counts, dtype=np.float64)
    out = np.zeros(len(edges) - 1)
    if counts.size == 0 or counts.sum() <= 0:
        return out
    lo, hi = float(histogram.min), float(histogram.max)
    if lo == hi:
        if edges[0] <= lo <= edges[-1]:
            index = int(np.searchsorted(edges, lo, side="right")) - 1
            out[min(max(index, 0), len(out) - 1)] = counts.sum()
        return out
    source = histogram.bucket_edges()
    cumulative = np.concatenate([[0.0], np.cumsum(counts)])
    # The cumulative count is piecewise linear over the stored edges: read it at
    # the new edges and take differences.
    at_edges = np.interp(edges, source, cumulative)
    return np.diff(at_edges)


@dataclass(frozen=True, slots=True)
class HistogramSlices:
    """Histograms of one run and tag, sampled over steps and rebinned onto shared
    edges: ``counts[i]`` is the slice at ``steps[i]``, oldest first. ``below[i]``
    and ``above[i]`` count its finite values outside the edges, and ``lowest`` and
    ``highest`` are the extremes of all the slices."""

    edges: np.ndarray
    counts: np.ndarray
    steps: np.ndarray
    wall_times: np.ndarray
    time: np.ndarray
    below: np.ndarray
    above: np.ndarray
    lowest: float
    highest: float

    @property
    def left_out(self) -> str:
        """What the newest slice has outside the range shown, in words ("" if
        nothing)."""
        if not len(self.steps):
            return ""
        parts = []
        if self.below[-1] >= 0.5:
            parts.append(
                f"{self.below[-1]:,.0f} below {self.edges[0]:.4g} (down to {self.lowest:.4g})"
            )
        if self.above[-1] >= 0.5:
            parts.append(
                f"{self.above[-1]:,.0f} above {self.edges[-1]:.4g} (up to {self.highest:.4g})"
            )
        if not parts:
            return ""
        return f"Step {int(self.steps[-1])}, outside the range shown: " + "; ".join(parts)

    @property
    def centres(self) -> np.ndarray:
        centres: np.ndarray = (self.edges[:-1] + self.edges[1:]) / 2
        return centres


def histogram_slices(
    histograms: Sequence[Histogram],
    *,
    max_slices: int,
    bins: int,
    axis: str,
    start: float = 0.0,
    unit: float = 1.0,
) -> HistogramSlices:
    """At most ``max_slices`` of the histograms, evenly over their steps with the
    last always kept, on ``bins`` shared bins; ``time`` is each slice's position on
    the axis of time (steps, relative time in ``unit`` from ``start``, or seconds
    since the epoch for wall time)."""
    chosen = [histograms[int(i)] for i in sample_evenly(len(histograms), max_slices)]
    edges = common_edges(chosen, bins)
    counts = np.vstack([rebin(h, edges) for h in chosen]) if chosen else np.zeros((0, bins))
    finite = np.array([float(sum(h.bucket_counts)) for h in chosen])
    below = np.array([_count_below(h, float(edges[0])) for h in chosen])
    above = finite - below - (counts.sum(axis=1) if chosen else 0.0)
    held = [h for h in chosen if sum(h.bucket_counts) > 0]
    steps = np.array([h.step for h in chosen], dtype=np.int64)
    walls = np.array([h.wall_time for h in chosen], dtype=np.float64)
    if axis == "step":
        time = steps.astype(np.float64)
    elif axis == "relative":
        time = (walls - start) / unit
    elif axis == "wall":
        time = walls
    else:
        raise ValueError(f"axis must be one of {X_AXES}, got {axis!r}")
    return HistogramSlices(
        edges=edges,
        counts=counts,
        steps=steps,
        wall_times=walls,
        time=time,
        below=below,
        above=np.maximum(above, 0.0),
        lowest=min((float(h.min) for h in held), default=float("nan")),
        highest=max((float(h.max) for h in held), default=float("nan")),
    )


def _count_below(histogram: Histogram, value: float) -> float:
    counts = np.asarray(histogram.bucket_counts, dtype=np.float64)
    if counts.size == 0 or counts.sum() <= 0 or histogram.min == histogram.max:
        return 0.0 if counts.size == 0 or histogram.min >= value else float(counts.sum())
    cumulative = np.concatenate([[0.0], np.cumsum(counts)])
    return float(np.interp(value, histogram.bucket_edges(), cumulative))


# --------------------------------------------------------------------- runs table

PARAM_PREFIX = "param: "
LAST_PREFIX = "last: "


def runs_frame(
    runs: Sequence[Run],
    last_values: Mapping[tuple[int, str], float],
    scalar_tags: Sequence[str],
    *,
    timezone: str | None = None,
) -> pd.DataFrame:
    """One row per run: name, status (crashed for a silent running run), its
    tags (comma-separated), start (local time), duration, one ``param: <name>``
    column per param and one ``last: <tag>`` column per scalar tag (the value at
    the tag's last step; empty where the run lacks the tag)."""
    frame = pd.DataFrame(
        {
            "name": [r.name for r in runs],
            "status": [r.status for r in runs],
            "tags": [", ".join(r.tags) for r in runs],
            "started": wall_datetimes(
                np.array([r.started_at for r in runs], dtype=np.float64), timezone
            ),
            "duration": [float(r.duration) for r in runs],  # seconds: sortable
        }
    )
    names = sorted({k for r in runs for k in r.params})
    for name in names:
        frame[PARAM_PREFIX + name] = _param_column([r.params.get(name) for r in runs])
    for tag in scalar_tags:
        frame[LAST_PREFIX + tag] = np.array(
            [last_values.get((r.id, tag), np.nan) for r in runs], dtype=np.float64
        )
    return frame


def _param_column(values: list[object]) -> list[object]:
    """Numbers stay numbers (so the column sorts as such) when every present value
    is one; otherwise every value becomes text."""
    present = [v for v in values if v is not None]
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        return [float(v) if isinstance(v, int | float) else np.nan for v in values]
    return [None if v is None else v if isinstance(v, str) else json.dumps(v) for v in values]


def filter_runs_frame(frame: pd.DataFrame, text: str, statuses: Sequence[str]) -> pd.DataFrame:
    """Rows whose status is among ``statuses`` (all when empty) and whose name, a
    tag or a param holds ``text`` (case-insensitive; all when empty)."""
    keep = np.ones(len(frame), dtype=bool)
    if statuses:
        keep &= frame["status"].isin(list(statuses)).to_numpy()
    needle = text.strip().lower()
    if needle:
        searchable = [
            "name",
            "tags",
            *[c for c in frame.columns if c.startswith(PARAM_PREFIX)],
        ]
        hit = np.zeros(len(frame), dtype=bool)
        for column in searchable:
            hit |= (
                frame[column].astype(str).str.lower().str.contains(needle, regex=False).to_numpy()
            )
        keep &= hit
    return frame[keep].reset_index(drop=True)
