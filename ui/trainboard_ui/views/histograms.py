"""Histograms: each histogram tag's summaries over time, as a ridge or overlaid."""

from __future__ import annotations

import numpy as np
import streamlit as st

from trainboard_ui import state
from trainboard_ui.charts import histogram_figure
from trainboard_ui.data import X_AXES, X_AXIS_LABELS, axis_title, histogram_slices, relative_unit
from trainboard_ui.views.base import View, ViewContext, grid
from trainboard_ui.views.distributions import MAX_STEPS, histogram_tags, runs_with

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
    st.radio(
        "Axis of time",
        X_AXES,
        format_func=X_AXIS_LABELS.__getitem__,
        horizontal=True,
        **state.bound("x_axis"),
    )


def draw(ctx: ViewContext) -> None:
    tags = histogram_tags(ctx)
    if tags is None:
        return
    found = ctx.data.histograms(ctx.selected_ids, tags, MAX_STEPS)
    axis = ctx.selection.x_axis
    mode = ctx.selection.hist_mode
    for tag in tags:
        st.subheader(tag, divider="gray")
        for run, histograms in grid(runs_with(ctx, tag, found)):
            walls = np.array([h.wall_time for h in histograms], dtype=np.float64)
            unit, unit_name = relative_unit(float(np.max(walls - run.started_at)))
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
