"""What every page gets, and how a page is registered.

A page (a :class:`View`) only draws: it asks :class:`~trainboard_ui.live.LiveData`
for data, shapes it with the pure modules beside it (:mod:`trainboard_ui.time_axes`,
:mod:`trainboard_ui.histogram_data`, ...), builds figures with
:mod:`trainboard_ui.charts` and hands them to Streamlit. Adding a page (the graph
view, for one) is a module with a ``VIEW`` and a line in :data:`trainboard_ui.views.VIEWS`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

import streamlit as st

from trainboard.types import Run
from trainboard_ui.live import LiveData
from trainboard_ui.state import Selection, bound
from trainboard_ui.tag_filters import filter_tags
from trainboard_ui.time_axes import X_AXES, X_AXIS_LABELS

#: Charts per row in a page's grid.
GRID_COLUMNS = 3

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ViewContext:
    """One refresh of a page: the selection, the session's data cache, the
    experiment's runs (oldest first), the selected ones and their colours."""

    server: str
    selection: Selection
    data: LiveData
    runs: tuple[Run, ...]
    selected: tuple[Run, ...]
    colours: Mapping[int, str]
    tag_filter: re.Pattern[str] | None
    timezone: str | None

    @property
    def selected_ids(self) -> list[int]:
        return [r.id for r in self.selected]


@dataclass(frozen=True, slots=True)
class View:
    """A page: its URL slug, its title, what it draws in the main area and what
    settings it adds to the sidebar (given the current selection)."""

    slug: str
    title: str
    draw: Callable[[ViewContext], None]
    settings: Callable[[Selection], None] | None = None


def rows_of(items: Sequence[T], size: int = GRID_COLUMNS) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def grid(items: Sequence[T], size: int = GRID_COLUMNS) -> Iterator[T]:
    """Yields the items, each inside its own cell of a grid ``size`` wide."""
    for row in rows_of(items, size):
        for column, item in zip(st.columns(size), row, strict=False):
            with column:
                yield item


def no_runs_selected(ctx: ViewContext) -> bool:
    """Says so and returns True when there is nothing to draw for lack of runs."""
    if not ctx.runs:
        st.info(
            f"Experiment **{ctx.selection.experiment}** has no runs yet. Start one with "
            "`trainboard.Client(experiment=..., run=...)`."
        )
        return True
    if not ctx.selected:
        st.info("No runs selected. Pick some in the sidebar, or on the **Runs** page.")
        return True
    return False


def no_tags_match(ctx: ViewContext, kind: str, total: int) -> None:
    st.info(
        f"No {kind} tag matches the filter `{ctx.selection.tags}` "
        f"({total} {kind} tags in the selected runs). Change or clear the tag filter."
    )


def matching_tags(
    ctx: ViewContext, kind: str, none_logged: str, *, name_runs_without: bool = False
) -> list[str] | None:
    """The selected runs' tags of ``kind`` (``"scalar"``, ``"histogram"``) that
    pass the tag filter; None, having said what to do, when there are none to draw
    (``none_logged`` when the runs have no such tag at all). ``name_runs_without``
    also names the selected runs that have none."""
    if no_runs_selected(ctx):
        return None
    run_ids = ctx.selected_ids
    ctx.data.tags(run_ids)
    every_tag = ctx.data.tag_names(run_ids, kind)
    if not every_tag:
        st.info(none_logged)
        return None
    if name_runs_without:
        without = [r.name for r in ctx.selected if not ctx.data.tag_names([r.id], kind)]
        if without:
            st.caption(f"No {kind}s in " + ", ".join(f"**{name}**" for name in without) + ".")
    tags = filter_tags(every_tag, ctx.tag_filter)
    if not tags:
        no_tags_match(ctx, kind, len(every_tag))
        return None
    return tags


def x_axis_setting(label: str = "Horizontal axis") -> None:
    """The setting the chart pages share: their charts' axis of time."""
    st.radio(
        label,
        X_AXES,
        format_func=X_AXIS_LABELS.__getitem__,
        horizontal=True,
        **bound("x_axis"),
    )
