"""What every page gets, and how a page is registered.

A page (a :class:`View`) only draws: it asks :class:`~trainboard_ui.live.LiveData`
for data, shapes it with :mod:`trainboard_ui.data`, builds figures with
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
from trainboard_ui.state import Selection

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
