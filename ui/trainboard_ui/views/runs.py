"""Runs: a table of the experiment's runs; the rows ticked are the runs selected."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import streamlit as st

from trainboard.types import RUN_STATUSES
from trainboard_ui import state
from trainboard_ui.data import LAST_PREFIX, PARAM_PREFIX, filter_runs_frame, filter_tags, runs_frame
from trainboard_ui.views.base import View, ViewContext

TABLE_KEY = "runs.table"
# What the table showed last time: its run names and the rows ticked.
_SHOWN_KEY = "runs.table.shown"


def draw(ctx: ViewContext) -> None:
    if not ctx.runs:
        st.info(
            f"Experiment **{ctx.selection.experiment}** has no runs yet. Start one with "
            "`trainboard.Client(experiment=..., run=...)`."
        )
        return
    run_ids = [r.id for r in ctx.runs]
    ctx.data.tags(run_ids)
    tags = filter_tags(ctx.data.tag_names(run_ids, "scalar"), ctx.tag_filter)
    last = ctx.data.last_values(run_ids, tags)
    frame = runs_frame(ctx.runs, last, tags, timezone=ctx.timezone)

    text_column, status_column = st.columns([3, 2])
    with text_column:
        text = st.text_input(
            "Filter runs", key="runs.filter", placeholder="part of a name or a param value"
        )
    with status_column:
        statuses = st.multiselect("Status", RUN_STATUSES, key="runs.status")
    shown = filter_runs_frame(frame, text, statuses)
    names = [str(n) for n in shown["name"]]
    all_names = [r.name for r in ctx.runs]

    selected = _apply_ticks(ctx.selection, names, all_names)
    ticked = [i for i, name in enumerate(names) if name in selected]
    current = st.session_state.get(TABLE_KEY)
    if current is None or _rows(current) != ticked:
        st.session_state[TABLE_KEY] = {"selection": {"rows": ticked, "columns": [], "cells": []}}
    st.session_state[_SHOWN_KEY] = (names, ticked)

    st.caption(
        f"{len(selected)} of {len(all_names)} runs selected. Tick rows to choose the runs "
        "the other pages show; click a column header to sort."
    )
    st.dataframe(
        shown,
        key=TABLE_KEY,
        on_select="rerun",
        selection_mode="multi-row",
        hide_index=True,
        width="stretch",
        column_config=_column_config(shown.columns),
    )


def _apply_ticks(selection: state.Selection, names: list[str], all_names: list[str]) -> set[str]:
    """The selected run names, after the user's ticks in the table (if any since it
    was last drawn with the same rows) have replaced the shown rows' selection."""
    selected = set(selection.selected_names(all_names))
    current = st.session_state.get(TABLE_KEY)
    shown_before = st.session_state.get(_SHOWN_KEY)
    if current is None or shown_before is None:
        return selected
    before_names, before_rows = shown_before
    rows = _rows(current)
    if before_names != names or rows == before_rows:
        return selected
    ticked = {names[i] for i in rows if 0 <= i < len(names)}
    new = {n for n in all_names if n in ticked or (n in selected and n not in names)}
    runs = None if new == set(all_names) else tuple(n for n in all_names if n in new)
    state.update(runs=runs)
    return new


def _rows(table_state: Any) -> list[int]:
    selection = table_state.get("selection", {}) if hasattr(table_state, "get") else {}
    return sorted(int(i) for i in selection.get("rows", []))


def _column_config(columns: Sequence[str]) -> dict[str, Any]:
    config: dict[str, Any] = {
        "name": st.column_config.TextColumn("run", pinned=True),
        "status": st.column_config.TextColumn("status"),
        "started": st.column_config.DatetimeColumn("started", format="YYYY-MM-DD HH:mm:ss"),
        "duration": st.column_config.NumberColumn("duration", format="%.1f s"),
    }
    for column in columns:
        if column.startswith(LAST_PREFIX):
            config[column] = st.column_config.NumberColumn(column, format="%.5g")
        elif column.startswith(PARAM_PREFIX):
            config[column] = st.column_config.Column(column)
    return config


VIEW = View(slug="runs", title="Runs", draw=draw)
