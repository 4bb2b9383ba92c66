"""Scalars: one chart per tag, every selected run overlaid, smoothed."""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from trainboard_ui import state
from trainboard_ui.charts import FOCUS_HEIGHT, scalar_figure
from trainboard_ui.data import (
    X_AXES,
    X_AXIS_LABELS,
    ScalarLine,
    SeriesPoints,
    csv_file_name,
    filter_tags,
    group_tags,
    lines_frame,
    outlier_range,
    scalar_lines,
)
from trainboard_ui.live import CachedScalars
from trainboard_ui.views.base import View, ViewContext, grid, no_runs_selected, no_tags_match

# Points per series read for a chart of the grid, and for a maximised one. The
# server keeps each bucket's first, last, lowest and highest point (SPEC §7), so
# 800 points are 200 buckets: finer than a third of a screen is wide, with every
# spike kept. 20 runs x 10 tags of them are 3.8 MB (24 bytes a point).
MAX_POINTS = 800
FOCUS_MAX_POINTS = 4000

SeriesMap = dict[tuple[int, str], CachedScalars]


def settings(selection: state.Selection) -> None:
    st.slider(
        "Smoothing",
        min_value=0.0,
        max_value=state.SMOOTHING_MAX,
        step=0.001,
        format="%.3f",
        help="TensorBoard's debiased exponential moving average; 0 draws the raw values.",
        **state.bound("smoothing", stored=lambda v: round(float(v), 3)),
    )
    st.radio(
        "Horizontal axis",
        X_AXES,
        format_func=X_AXIS_LABELS.__getitem__,
        horizontal=True,
        **state.bound("x_axis"),
    )
    st.toggle("Log-scale y axis", **state.bound("log_y"))
    st.toggle(
        "Ignore outliers in y range",
        help="Scale each chart to the 5th-95th percentile of its values.",
        **state.bound("ignore_outliers"),
    )


def draw(ctx: ViewContext) -> None:
    if no_runs_selected(ctx):
        return
    run_ids = ctx.selected_ids
    ctx.data.tags(run_ids)
    every_tag = ctx.data.tag_names(run_ids, "scalar")
    if not every_tag:
        st.info(
            "The selected runs have no scalars yet. Log some with "
            "`client.log_scalar(tag, value, step)`."
        )
        return
    tags = filter_tags(every_tag, ctx.tag_filter)
    if not tags:
        no_tags_match(ctx, "scalar", len(every_tag))
        return
    focus = ctx.selection.focus
    if focus is not None and focus in tags:
        series = ctx.data.scalars(run_ids, [focus], FOCUS_MAX_POINTS)
        st.button(
            "Back to all charts",
            icon=":material/close_fullscreen:",
            on_click=state.change,
            kwargs={"focus": None},
        )
        _chart(ctx, focus, series, maximised=True)
        return
    series = ctx.data.scalars(run_ids, tags, MAX_POINTS)
    for group, names in group_tags(tags):
        if group:
            st.subheader(group, divider="gray")
        for tag in grid(names):
            _chart(ctx, tag, series, maximised=False)


def _chart(ctx: ViewContext, tag: str, series: SeriesMap, *, maximised: bool) -> None:
    selection = ctx.selection
    points = [
        SeriesPoints(run=run, steps=found.steps, wall_times=found.wall_times, values=found.values)
        for run in ctx.selected
        if (found := series.get((run.id, tag))) is not None
    ]
    lines, x_title = scalar_lines(
        points,
        colours=ctx.colours,
        weight=selection.smoothing,
        axis=selection.x_axis,
        timezone=ctx.timezone,
    )
    y_range = None
    if selection.ignore_outliers:
        y_range = outlier_range(
            [line.raw for line in lines] + [line.smoothed for line in lines], log=selection.log_y
        )
    figure = scalar_figure(
        lines,
        title=tag,
        x_title=x_title,
        smoothed=selection.smoothing > 0,
        log_y=selection.log_y,
        y_range=y_range,
        legend=maximised,
        revision=f"{tag}|{selection.x_axis}|{selection.log_y}|{selection.ignore_outliers}",
        **({"height": FOCUS_HEIGHT} if maximised else {}),
    )
    st.plotly_chart(figure, key=f"scalars:{tag}", config={"displaylogo": False}, width="stretch")
    left, right = st.columns(2)
    with left:
        if not maximised:
            st.button(
                "Maximise",
                key=f"scalars:maximise:{tag}",
                icon=":material/open_in_full:",
                type="tertiary",
                on_click=state.change,
                kwargs={"focus": tag},
            )
    with right:
        st.download_button(
            "CSV",
            data=_csv(lines),
            file_name=csv_file_name(tag),
            mime="text/csv",
            key=f"scalars:csv:{tag}",
            icon=":material/download:",
            type="tertiary",
            on_click="ignore",
        )
    odd = [f"{line.run} ({line.non_finite})" for line in lines if line.non_finite]
    if odd:
        st.caption("NaN or ±Inf values, drawn as gaps: " + ", ".join(odd))


def _csv(lines: list[ScalarLine]) -> Callable[[], str]:
    """The chart's points as CSV, made only when the button is pressed."""

    def make() -> str:
        text: str = lines_frame(lines).to_csv(index=False)
        return text

    return make


VIEW = View(slug="scalars", title="Scalars", draw=draw, settings=settings)
