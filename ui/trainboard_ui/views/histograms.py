"""Histograms: each histogram tag's summaries over time, as a ridge or overlaid."""

from __future__ import annotations

import streamlit as st

from trainboard_ui import state
from trainboard_ui.charts import histogram_figure
from trainboard_ui.histogram_data import histogram_slices
from trainboard_ui.time_axes import axis_title
from trainboard_ui.views.base import View, ViewContext, x_axis_setting
from trainboard_ui.views.distributions import histogram_charts

# Slices drawn per chart (sampled evenly, the last always shown) and bins per slice.
MAX_SLICES = 50
BINS = 40

MODE_LABELS = {"offset": "Offset", "overlay": "Overlay"}


def settings(selection: state.Selection) -> None:
    st.radio(
        "Histogram mode",
        state.HIST_MODES,
        format_func=MODE_LABELS.__getitem__,
        horizontal=True,
        help="Offset: a ridge of slices, older ones behind. Overlay: outlines on one axis.",
        **state.bound("hist_mode"),
    )
    x_axis_setting("Axis of time")


def draw(ctx: ViewContext) -> None:
    axis = ctx.selection.x_axis
    mode = ctx.selection.hist_mode
    for tag, run, histograms, (unit, unit_name) in histogram_charts(ctx):
        slices = histogram_slices(
            histograms,
            max_slices=MAX_SLICES,
            bins=BINS,
            axis=axis,
            start=run.started_at,
            unit=unit,
        )
        figure = histogram_figure(
            slices,
            mode=mode,
            colour=ctx.colours[run.id],
            title=run.name,
            time_title=axis_title(axis, unit_name),
            wall_time=axis == "wall",
            timezone=ctx.timezone,
            revision=f"{tag}|{run.id}|{axis}|{mode}",
        )
        st.plotly_chart(
            figure,
            key=f"histograms:{tag}:{run.id}",
            config={"displaylogo": False},
            width="stretch",
        )
        if slices.left_out:
            st.caption(slices.left_out)


VIEW = View(slug="histograms", title="Histograms", draw=draw, settings=settings)
