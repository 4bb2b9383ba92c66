"""Plotly figures of the dashboard, built from what the pure shaping modules
(:mod:`~trainboard_ui.distribution_data`, :mod:`~trainboard_ui.histogram_data`, ...) give.

Pure: no Streamlit and no network, so tests can inspect a figure's traces. Scalar
series are WebGL traces (``Scattergl``), which draw thousands of points per run
without slowing the page; distributions and histograms have a few hundred points
per trace at most and use SVG traces, which fill areas more cleanly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from trainboard_ui.colours import blend, with_alpha
from trainboard_ui.distribution_data import BAND_COLUMNS, BAND_PAIRS, MEDIAN_INDEX
from trainboard_ui.histogram_data import HistogramSlices
from trainboard_ui.scalar_data import ScalarLine
from trainboard_ui.time_axes import wall_datetimes

CHART_HEIGHT = 320
FOCUS_HEIGHT = 620
RAW_ALPHA = 0.25  # the raw curve, faint behind the smoothed one
BAND_ALPHA = 0.22  # per band; bands nest, so the middle is darkest
# TensorBoard's labels of the basis points, low to high.
BAND_LABELS: tuple[str, ...] = ("min", "7%", "16%", "31%", "median", "69%", "84%", "93%", "max")
# A histogram slice in offset mode rises this many slice spacings at its peak.
RIDGE_OVERLAP = 2.5
# Slices go from this share of the run's colour (oldest, light) to all of it.
RAMP_START = 0.2


def _layout(
    title: str, *, height: int, x_title: str, y_title: str = "", legend: bool = False
) -> dict[str, Any]:
    return {
        "title": {"text": title, "x": 0.0, "xanchor": "left", "font": {"size": 14}},
        "height": height,
        "margin": {"l": 10, "r": 10, "t": 40, "b": 10},
        "xaxis": {"title": {"text": x_title}},
        "yaxis": {"title": {"text": y_title}},
        "showlegend": legend,
        "legend": {"orientation": "h", "y": -0.2},
    }


def scalar_figure(
    lines: Sequence[ScalarLine],
    *,
    title: str,
    x_title: str,
    smoothed: bool,
    log_y: bool = False,
    y_range: tuple[float, float] | None = None,
    legend: bool = False,
    height: int = CHART_HEIGHT,
    revision: str = "",
) -> go.Figure:
    """One scalar chart: per run a smoothed line, with its raw line faint behind it
    when ``smoothed``. Hovering shows each run's step, raw and smoothed value.
    ``y_range`` is in the axis' own units (``log10`` for a log axis); ``revision``
    keeps the user's zoom across redraws until it changes."""
    figure = go.Figure()
    for line in lines:
        x = _finite_for_plot(line.x)
        custom = np.column_stack([line.steps.astype(np.float64), line.raw])
        if smoothed:
            figure.add_trace(
                go.Scattergl(
                    x=x,
                    y=_finite_for_plot(line.raw),
                    mode="lines",
                    name=f"{line.run} (raw)",
                    legendgroup=line.run,
                    showlegend=False,
                    hoverinfo="skip",
                    line={"color": with_alpha(line.colour, RAW_ALPHA), "width": 1},
                )
            )
            template = (
                "%{fullData.name}: %{y:.5g} (raw %{customdata[1]:.5g}, "
                "step %{customdata[0]:d})<extra></extra>"
            )
        else:
            template = "%{fullData.name}: %{y:.5g} (step %{customdata[0]:d})<extra></extra>"
        figure.add_trace(
            go.Scattergl(
                x=x,
                y=_finite_for_plot(line.smoothed),
                mode="lines",
                name=line.run,
                legendgroup=line.run,
                customdata=custom,
                hovertemplate=template,
                line={"color": line.colour, "width": 1.75},
            )
        )
    layout = _layout(title, height=height, x_title=x_title, legend=legend)
    layout["hovermode"] = "x unified"
    layout["uirevision"] = revision or title
    layout["yaxis"]["type"] = "log" if log_y else "linear"
    if y_range is not None:
        layout["yaxis"]["range"] = list(y_range)
    figure.update_layout(**layout)
    return figure


def distribution_figure(
    frame: pd.DataFrame,
    x: np.ndarray,
    *,
    colour: str,
    title: str,
    x_title: str,
    height: int = CHART_HEIGHT,
    revision: str = "",
    y_range: tuple[float, float] | None = None,
) -> go.Figure:
    """TensorBoard's distribution chart: four nested bands between the basis
    points (min-max, 7-93 %, 16-84 %, 31-69 %), darker towards the median line;
    hovering the median shows all nine values at that step. ``y_range`` cuts the
    chart to a range (:func:`trainboard_ui.distribution_data.band_range`)."""
    bands = frame[list(BAND_COLUMNS)].to_numpy(dtype=np.float64)
    keep = np.isfinite(bands).all(axis=1)
    bands, xs = bands[keep], np.asarray(x)[keep]
    steps = frame["step"].to_numpy()[keep]
    figure = go.Figure()
    for lo, hi in BAND_PAIRS:
        figure.add_trace(
            go.Scatter(
                x=np.concatenate([xs, xs[::-1]]),
                y=np.concatenate([bands[:, hi], bands[::-1, lo]]),
                mode="lines",
                fill="toself",
                fillcolor=with_alpha(colour, BAND_ALPHA),
                line={"width": 0, "color": colour},
                hoverinfo="skip",
                showlegend=False,
                name=f"{BAND_LABELS[lo]}-{BAND_LABELS[hi]}",
            )
        )
    lines = "<br>".join(
        f"{BAND_LABELS[i]} %{{customdata[{i + 1}]:.4g}}" for i in reversed(range(len(BAND_LABELS)))
    )
    figure.add_trace(
        go.Scatter(
            x=xs,
            y=bands[:, MEDIAN_INDEX],
            mode="lines",
            name="median",
            line={"color": colour, "width": 1.5},
            customdata=np.column_stack([steps.astype(np.float64), bands]),
            hovertemplate=f"step %{{customdata[0]:d}}<br>{lines}<extra></extra>",
            showlegend=False,
        )
    )
    layout = _layout(title, height=height, x_title=x_title)
    layout["uirevision"] = revision or title
    layout["hovermode"] = "closest"
    if y_range is not None:
        layout["yaxis"]["range"] = list(y_range)
    figure.update_layout(**layout)
    return figure


def histogram_figure(
    slices: HistogramSlices,
    *,
    mode: str,
    colour: str,
    title: str,
    time_title: str,
    wall_time: bool = False,
    timezone: str | None = None,
    height: int = CHART_HEIGHT,
    revision: str = "",
) -> go.Figure:
    """Histograms of one run and tag over time, one trace per slice, oldest first,
    coloured from light (old) to the run's colour (new).

    ``"offset"``: a ridge, each slice raised above its own baseline at its time on
    the y axis (older ones higher up and behind). ``"overlay"``: outlines of all the
    slices on one pair of axes. ``wall_time`` labels the time axis with dates (the
    slices' ``time`` then being seconds since the epoch).
    """
    if mode not in ("offset", "overlay"):
        raise ValueError(f"mode must be 'offset' or 'overlay', got {mode!r}")
    figure = go.Figure()
    k = len(slices.steps)
    centres = slices.centres
    peak = float(slices.counts.max()) if slices.counts.size else 0.0
    span = float(slices.time[-1] - slices.time[0]) if k > 1 else 0.0
    spacing = span / (k - 1) if k > 1 and span > 0 else 1.0
    scale = RIDGE_OVERLAP * spacing / peak if peak > 0 else 0.0
    for i in range(k):
        shade = blend("#FFFFFF", colour, RAMP_START + (1 - RAMP_START) * (i / max(k - 1, 1)))
        counts = slices.counts[i]
        name = f"step {int(slices.steps[i])}"
        template = "%{fullData.name}<br>value %{x:.4g}<br>count %{customdata:.4g}<extra></extra>"
        if mode == "offset":
            base = float(slices.time[i])
            figure.add_trace(
                go.Scatter(
                    x=np.concatenate([[slices.edges[0]], centres, [slices.edges[-1]]]),
                    y=np.concatenate([[base], base - counts * scale, [base]]),
                    customdata=np.concatenate([[0.0], counts, [0.0]]),
                    mode="lines",
                    fill="toself",
                    fillcolor=shade,
                    line={"color": blend(shade, "#000000", 0.25), "width": 1},
                    name=name,
                    hovertemplate=template,
                    hoveron="points",
                    showlegend=False,
                )
            )
        else:
            figure.add_trace(
                go.Scatter(
                    x=centres,
                    y=counts,
                    customdata=counts,
                    mode="lines",
                    line={"color": shade, "width": 1.5},
                    name=name,
                    hovertemplate=template,
                    showlegend=False,
                )
            )
    layout = _layout(
        title,
        height=height,
        x_title="value",
        y_title=time_title if mode == "offset" else "count",
    )
    layout["uirevision"] = revision or title
    layout["hovermode"] = "closest"
    if mode == "offset":
        layout["yaxis"]["autorange"] = "reversed"
        if k:
            # Ticks only at slices: the oldest ridge rises above its own time, and
            # free ticks would label that space with times no slice has (step -20).
            ticks = np.unique(np.linspace(0, k - 1, min(k, 5)).round().astype(int))
            layout["yaxis"]["tickvals"] = slices.time[ticks].tolist()
            if wall_time:
                stamps = wall_datetimes(slices.time[ticks], timezone)
                layout["yaxis"]["ticktext"] = [
                    pd.Timestamp(s).strftime("%Y-%m-%d %H:%M:%S") for s in stamps
                ]
            else:
                layout["yaxis"]["ticktext"] = [f"{t:g}" for t in slices.time[ticks].tolist()]
    figure.update_layout(**layout)
    return figure


def _finite_for_plot(values: np.ndarray) -> np.ndarray:
    """±Inf as NaN, which Plotly draws as a gap (it cannot place an infinity)."""
    array = np.asarray(values)
    if array.dtype.kind != "f":
        return array
    return np.where(np.isinf(array), np.nan, array)
