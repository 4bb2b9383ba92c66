"""Scalars: one card per tag, every selected run overlaid, smoothed in the browser.

The cards are one component (:mod:`trainboard_ui.cards`): the page hands it the
layout (groups of tags, pinned tags, the maximised one), the settings, and the
series of the cards the browser asked for, then only what changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import streamlit as st

from trainboard_ui import state
from trainboard_ui.cards import Feed, RunInfo, component
from trainboard_ui.tag_filters import group_tags
from trainboard_ui.views.base import View, ViewContext, matching_tags, x_axis_setting

# Points per series read for a card of the grid, and for a maximised one. The
# server keeps each bucket's first, last, lowest and highest point, so 500 points
# are 125 buckets, a few pixels each in a card, with every spike kept. (800 drew
# no better and took 60% longer to redraw: 234 vs 144 ms per smoothing change with
# 20 runs a chart, bench.browser.)
MAX_POINTS = 500
FOCUS_MAX_POINTS = 4000
#: Cards whose data comes with the page's first payload (the first row); the
#: browser asks for the others as they come near the screen. Reading 100,000-step
#: series costs the server about 6 ms each, so the first chart of 20 runs comes
#: sooner with two cards' series than with a whole screen's.
FIRST_CARDS = 2

_FEED_KEY = "trainboard.feed"


def settings(selection: state.Selection) -> None:
    x_axis_setting()
    st.toggle("Log-scale y axis", **state.bound("log_y"))
    st.toggle(
        "Ignore outliers in y range",
        help="Scale each chart to the 5th-95th percentile of its values.",
        **state.bound("ignore_outliers"),
    )
    st.caption("Smoothing and card size are above the charts.")


def draw(ctx: ViewContext) -> None:
    tags = matching_tags(
        ctx,
        "scalar",
        "The selected runs have no scalars yet. Log some with "
        "`client.log_scalar(tag, value, step)`.",
    )
    if tags is None:
        return
    focus = ctx.selection.focus
    if focus is not None and focus in tags:
        _board(ctx, "cards:focus", [("", [focus])], (), focus, FOCUS_MAX_POINTS)
    else:
        pinned = tuple(t for t in ctx.selection.pinned if t in set(tags))
        _board(ctx, "cards", group_tags(tags), pinned, None, MAX_POINTS)


def feed(key: str) -> Feed:
    """The session's feed of the board ``key``; a new one when the board was not on
    the page in the page's run before (then its browser side is new too)."""
    runs = state.page_runs()
    slot = f"{_FEED_KEY}:{key}"
    held: tuple[int, Feed] | None = st.session_state.get(slot)
    found = held[1] if held is not None and held[0] in (runs - 1, runs) else Feed()
    st.session_state[slot] = (runs, found)
    return found


def _board(
    ctx: ViewContext,
    key: str,
    groups: Sequence[tuple[str, Sequence[str]]],
    pinned: Sequence[str],
    focus: str | None,
    max_points: int,
) -> None:
    selection = ctx.selection
    board = feed(key)
    ordered = list(dict.fromkeys([*pinned, *(t for _, names in groups for t in names)]))
    loaded = board.to_load(ordered, FIRST_CARDS)
    series = ctx.data.scalars(ctx.selected_ids, loaded, max_points) if loaded else {}
    payload = board.payload(
        settings={
            "smoothing": selection.smoothing,
            "x_axis": selection.x_axis,
            "log_y": selection.log_y,
            "ignore_outliers": selection.ignore_outliers,
            "card_size": selection.card_size,
        },
        runs=[RunInfo(r.id, r.name, ctx.colours[r.id], float(r.started_at)) for r in ctx.selected],
        groups=groups,
        pinned=pinned,
        focus=focus,
        loaded=loaded,
        series=series,
    )
    component()(
        key=key,
        data=payload,
        on_want_change=lambda: board.want(_event(key, "want") or ()),
        on_resync_change=board.reset,
        on_focus_change=lambda: state.update(focus=_event(key, "focus") or None),
        on_smoothing_change=lambda: _set_smoothing(key),
        on_card_size_change=lambda: _set_card_size(key),
        on_pinned_change=lambda: _set_pinned(key),
    )


def _event(key: str, name: str) -> Any:
    value = st.session_state.get(key)
    return value.get(name) if isinstance(value, dict) else None


def _set_smoothing(key: str) -> None:
    value = _event(key, "smoothing")
    if isinstance(value, int | float):
        state.update(smoothing=state.clamp_smoothing(float(value)))


def _set_card_size(key: str) -> None:
    value = _event(key, "card_size")
    if value in state.CARD_SIZES:
        state.update(card_size=value)


def _set_pinned(key: str) -> None:
    value = _event(key, "pinned")
    if isinstance(value, list):
        state.update(pinned=tuple(dict.fromkeys(t for t in value if isinstance(t, str))))


VIEW = View(slug="scalars", title="Scalars", draw=draw, settings=settings)
