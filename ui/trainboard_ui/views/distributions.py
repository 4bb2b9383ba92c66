"""Distributions: TensorBoard's percentile bands of each histogram tag over time."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import streamlit as st

from trainboard.types import Histogram, Run
from trainboard_ui import state
from trainboard_ui.charts import distribution_figure
from trainboard_ui.distribution_data import BAND_COLUMNS, band_range, distribution_frame
from trainboard_ui.time_axes import axis_title, relative_unit, time_axis
from trainboard_ui.views.base import View, ViewContext, grid, matching_tags, x_axis_setting

# Histogram steps per run and tag: sampled evenly on the server, the last kept.
MAX_STEPS = 200


def settings(selection: state.Selection) -> None:
    x_axis_setting()


def histogram_charts(
    ctx: ViewContext,
) -> Iterator[tuple[str, Run, tuple[Histogram, ...], tuple[float, str]]]:
    """The charts of a page of histograms: for each histogram tag that passes the
    filter (under its heading), each selected run that has it, with its histograms
    and the unit of relative time that fits them, inside its own cell of a grid.
    Nothing, having said what to do, when there is nothing to draw."""
    tags = matching_tags(
        ctx,
        "histogram",
        "The selected runs have no histograms. Log some with "
        "`client.log_histogram(tag, values, step)`, or select other runs.",
        name_runs_without=True,
    )
    if tags is None:
        return
    found = ctx.data.histograms(ctx.selected_ids, tags, MAX_STEPS)
    for tag in tags:
        st.subheader(tag, divider="gray")
        with_tag = [(run, found[(run.id, tag)]) for run in ctx.selected if found.get((run.id, tag))]
        for run, histograms in grid(with_tag):
            walls = np.array([h.wall_time for h in histograms], dtype=np.float64)
            yield tag, run, histograms, relative_unit(float(np.max(walls - run.started_at)))


def draw(ctx: ViewContext) -> None:
    axis = ctx.selection.x_axis
    for tag, run, histograms, (unit, unit_name) in histogram_charts(ctx):
        frame = distribution_frame(histograms)
        walls = frame["wall_time"].to_numpy()
        x = time_axis(
            frame["step"].to_numpy(),
            walls,
            axis,
            start=run.started_at,
            unit=unit,
            timezone=ctx.timezone,
        )
        y_range = band_range(frame)
        figure = distribution_figure(
            frame,
            x,
            colour=ctx.colours[run.id],
            title=run.name,
            x_title=axis_title(axis, unit_name),
            revision=f"{tag}|{run.id}|{axis}",
            y_range=y_range,
        )
        st.plotly_chart(
            figure,
            key=f"distributions:{tag}:{run.id}",
            config={"displaylogo": False},
            width="stretch",
        )
        if y_range is not None:
            lo, hi = frame[BAND_COLUMNS[0]].min(), frame[BAND_COLUMNS[-1]].max()
            st.caption(
                f"The min-max band reaches {lo:.4g} to {hi:.4g}, beyond the range shown "
                "(which would flatten the other bands)."
            )


VIEW = View(slug="distributions", title="Distributions", draw=draw, settings=settings)
