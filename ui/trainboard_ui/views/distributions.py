"""Distributions: TensorBoard's percentile bands of each histogram tag over time."""

from __future__ import annotations

import numpy as np
import streamlit as st

from trainboard.types import Histogram, Run
from trainboard_ui import state
from trainboard_ui.charts import distribution_figure
from trainboard_ui.data import (
    BAND_COLUMNS,
    X_AXES,
    X_AXIS_LABELS,
    axis_title,
    band_range,
    distribution_frame,
    filter_tags,
    relative_unit,
    time_axis,
)
from trainboard_ui.views.base import View, ViewContext, grid, no_runs_selected, no_tags_match

# Histogram steps per run and tag: sampled evenly on the server, the last kept.
MAX_STEPS = 200


def settings(selection: state.Selection) -> None:
    st.radio(
        "Horizontal axis",
        X_AXES,
        format_func=X_AXIS_LABELS.__getitem__,
        horizontal=True,
        **state.bound("x_axis"),
    )


def histogram_tags(ctx: ViewContext) -> list[str] | None:
    """The selected runs' histogram tags that pass the filter; None (having said
    what to do) when there are none to draw."""
    if no_runs_selected(ctx):
        return None
    run_ids = ctx.selected_ids
    ctx.data.tags(run_ids)
    every_tag = ctx.data.tag_names(run_ids, "histogram")
    if not every_tag:
        st.info(
            "The selected runs have no histograms. Log some with "
            "`client.log_histogram(tag, values, step)`, or select other runs."
        )
        return None
    without = [r.name for r in ctx.selected if not ctx.data.tag_names([r.id], "histogram")]
    if without:
        st.caption("No histograms in " + ", ".join(f"**{name}**" for name in without) + ".")
    tags = filter_tags(every_tag, ctx.tag_filter)
    if not tags:
        no_tags_match(ctx, "histogram", len(every_tag))
        return None
    return tags


def runs_with(
    ctx: ViewContext, tag: str, found: dict[tuple[int, str], tuple[Histogram, ...]]
) -> list[tuple[Run, tuple[Histogram, ...]]]:
    return [(run, found[(run.id, tag)]) for run in ctx.selected if found.get((run.id, tag))]


def draw(ctx: ViewContext) -> None:
    tags = histogram_tags(ctx)
    if tags is None:
        return
    found = ctx.data.histograms(ctx.selected_ids, tags, MAX_STEPS)
    axis = ctx.selection.x_axis
    for tag in tags:
        st.subheader(tag, divider="gray")
        for run, histograms in grid(runs_with(ctx, tag, found)):
            frame = distribution_frame(histograms)
            walls = frame["wall_time"].to_numpy()
            unit, unit_name = relative_unit(float(np.max(walls - run.started_at)))
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
