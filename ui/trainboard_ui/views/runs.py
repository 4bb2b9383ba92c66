"""Runs: a table of the experiment's runs; the rows ticked are the runs selected.

Below the table, the ticked runs (those the table shows) can be renamed (one at a
time), tagged and deleted, and the experiment deleted; a deletion asks again
before it happens. After a change the whole app runs again, so the sidebar and
every page see it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import streamlit as st

from trainboard.errors import TrainboardError
from trainboard.types import RUN_STATUSES, Run
from trainboard_ui import state
from trainboard_ui.runs_table import LAST_PREFIX, PARAM_PREFIX, filter_runs_frame, runs_frame
from trainboard_ui.tag_filters import filter_tags
from trainboard_ui.views.base import View, ViewContext

TABLE_KEY = "runs.table"
# What the table showed last time: its run names and the rows ticked.
_SHOWN_KEY = "runs.table.shown"
# Widgets of the housekeeping below the table.
RENAME_KEY = "runs.rename"
NEW_NAME_KEY = "runs.rename.name"
TAGS_TEXT_KEY = "runs.tags.text"
ADD_TAGS_KEY = "runs.tags.add"
REMOVE_TAGS_KEY = "runs.tags.remove"
DELETE_KEY = "runs.delete"
CONFIRM_DELETE_KEY = "runs.delete.confirm"
CANCEL_DELETE_KEY = "runs.delete.cancel"
DELETE_EXPERIMENT_KEY = "runs.experiment.delete"
CONFIRM_EXPERIMENT_KEY = "runs.experiment.confirm"
CANCEL_EXPERIMENT_KEY = "runs.experiment.cancel"
# A deletion waiting for its confirmation: the experiment and its runs' (id, name)
# pairs, or the experiment's name.
_PENDING_RUNS = "runs.pending.runs"
_PENDING_EXPERIMENT = "runs.pending.experiment"
# What the last change did, shown once after the app ran again.
_NOTICE = "runs.notice"
# Set when the text inputs are to be emptied before they are drawn next.
_RESET_INPUTS = "runs.reset_inputs"


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
            "Filter runs", key="runs.filter", placeholder="part of a name, a tag or a param value"
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
    _housekeeping(ctx, [r for r in ctx.runs if r.name in selected and r.name in names])


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
        "status": st.column_config.TextColumn(
            "status",
            help="crashed: still running as far as the server knows, but nothing has "
            "reached it for a while (its trainer stopped without closing the run)",
        ),
        "tags": st.column_config.TextColumn("tags"),
        "started": st.column_config.DatetimeColumn("started", format="YYYY-MM-DD HH:mm:ss"),
        "duration": st.column_config.NumberColumn("duration", format="%.1f s"),
    }
    for column in columns:
        if column.startswith(LAST_PREFIX):
            config[column] = st.column_config.NumberColumn(column, format="%.5g")
        elif column.startswith(PARAM_PREFIX):
            config[column] = st.column_config.Column(column)
    return config


# --------------------------------------------------------------------- housekeeping


def parse_tags(text: str) -> list[str]:
    """Tags typed into the tags field: comma-separated, blanks ignored."""
    return [t.strip() for t in text.split(",") if t.strip()]


def _housekeeping(ctx: ViewContext, ticked: list[Run]) -> None:
    """Rename, tag and delete the ticked runs; delete the experiment."""
    if st.session_state.pop(_RESET_INPUTS, False):
        st.session_state[NEW_NAME_KEY] = ""
        st.session_state[TAGS_TEXT_KEY] = ""
    notice = st.session_state.pop(_NOTICE, None)
    if notice:
        st.success(notice, icon=":material/check:")
    if not ticked:
        st.caption("Tick runs to rename, tag or delete them.")
    else:
        _run_actions(ctx, ticked)
    _confirm_run_deletion(ctx)
    _experiment_deletion(ctx)


def _run_actions(ctx: ViewContext, ticked: list[Run]) -> None:
    rename_column, tags_column, delete_column = st.columns([3, 4, 2], vertical_alignment="bottom")
    with rename_column:
        if len(ticked) == 1:
            run = ticked[0]
            new_name = st.text_input("New name", key=NEW_NAME_KEY, placeholder=run.name).strip()
            if st.button("Rename", key=RENAME_KEY, disabled=not new_name):
                _act(
                    lambda: _rename(ctx, run, new_name),
                    f"Renamed **{_md(run.name)}** to **{_md(new_name)}**.",
                )
        else:
            st.caption("Tick one run to rename it.")
    with tags_column:
        text = st.text_input(
            "Tags", key=TAGS_TEXT_KEY, placeholder="comma-separated, e.g. baseline, best"
        )
        tags = parse_tags(text)
        add_column, remove_column = st.columns(2)
        with add_column:
            if st.button("Add tags", key=ADD_TAGS_KEY, disabled=not tags):
                _act(lambda: _retag(ctx, ticked, tags, add=True), _tagged(ticked, "Tagged"))
        with remove_column:
            if st.button("Remove tags", key=REMOVE_TAGS_KEY, disabled=not tags):
                _act(lambda: _retag(ctx, ticked, tags, add=False), _tagged(ticked, "Untagged"))
    with delete_column:
        count = len(ticked)
        st.button(
            f"Delete {_runs(count)}",
            key=DELETE_KEY,
            icon=":material/delete:",
            on_click=_ask,
            args=(_PENDING_RUNS, (ctx.selection.experiment, tuple((r.id, r.name) for r in ticked))),
        )


def _md(text: str) -> str:
    """``text`` shown as it is in Markdown (a run named ``*best*`` stays so)."""
    return re.sub(r"([\\`*_{}\[\]()#+\-.!|~<>$])", r"\\\1", text)


def _runs(count: int) -> str:
    return f"{count} run{'' if count == 1 else 's'}"


def _tagged(runs: Sequence[Run], verb: str) -> str:
    return f"{verb} {_runs(len(runs))}."


def _confirm_run_deletion(ctx: ViewContext) -> None:
    waiting: tuple[str, tuple[tuple[int, str], ...]] | None = st.session_state.get(_PENDING_RUNS)
    if waiting is None:
        return
    experiment, pending = waiting
    if experiment != ctx.selection.experiment:  # asked on another experiment: forget it
        st.session_state.pop(_PENDING_RUNS, None)
        return
    names = ", ".join(f"**{_md(name)}**" for _, name in pending)
    count = len(pending)
    _confirm(
        f"Really delete {_runs(count)} ({names})? Their scalars, "
        "histograms and graphs are deleted with them; this cannot be undone.",
        label="Delete",
        keys=(CONFIRM_DELETE_KEY, CANCEL_DELETE_KEY),
        pending=_PENDING_RUNS,
        change=lambda: _delete_runs(ctx, pending),
        notice=f"Deleted {_runs(count)}.",
    )


def _experiment_deletion(ctx: ViewContext) -> None:
    experiment = ctx.selection.experiment
    if experiment is None:
        return
    pending = st.session_state.get(_PENDING_EXPERIMENT)
    if pending != experiment:
        st.button(
            "Delete experiment",
            key=DELETE_EXPERIMENT_KEY,
            icon=":material/delete_forever:",
            help=f"Delete experiment {experiment} with all its runs",
            on_click=_ask,
            args=(_PENDING_EXPERIMENT, experiment),
        )
        return
    _confirm(
        f"Really delete experiment **{_md(experiment)}** and its {_runs(len(ctx.runs))}? "
        "This cannot be undone.",
        label="Delete experiment",
        keys=(CONFIRM_EXPERIMENT_KEY, CANCEL_EXPERIMENT_KEY),
        pending=_PENDING_EXPERIMENT,
        change=lambda: _delete_experiment(ctx, experiment),
        notice=f"Deleted experiment **{_md(experiment)}**.",
    )


def _confirm(
    question: str,
    *,
    label: str,
    keys: tuple[str, str],
    pending: str,
    change: Callable[[], None],
    notice: str,
) -> None:
    """Asks ``question`` again of a deletion waiting under the session key
    ``pending``: the button ``label`` makes the ``change`` (saying ``notice``),
    Cancel forgets it. ``keys`` are the two buttons' widget keys."""
    st.warning(question, icon=":material/warning:")
    confirm_column, cancel_column, _ = st.columns([1, 1, 4])
    with confirm_column:
        if st.button(label, key=keys[0], type="primary"):
            st.session_state.pop(pending, None)
            _act(change, notice)
    with cancel_column:
        st.button("Cancel", key=keys[1], on_click=_ask, args=(pending, None))


def _ask(key: str, value: object) -> None:
    """Starts (or, with ``None``, cancels) waiting for a confirmation."""
    if value is None:
        st.session_state.pop(key, None)
    else:
        st.session_state[key] = value


def _act(change: Callable[[], None], notice: str) -> None:
    """Makes the change on the server, then runs the whole app again (the sidebar
    lists runs too); says what went wrong instead when the server refuses."""
    try:
        change()
    except TrainboardError as error:
        st.error(f"The server refused: {error}", icon=":material/error:")
        return
    st.session_state[_NOTICE] = notice
    st.session_state[_RESET_INPUTS] = True
    st.rerun()


def _rename(ctx: ViewContext, run: Run, new_name: str) -> None:
    ctx.data.rename_run(run.id, new_name)
    selection = ctx.selection
    state.update(
        runs=None
        if selection.runs is None
        else tuple(new_name if n == run.name else n for n in selection.runs),
        graph_run=new_name if selection.graph_run == run.name else selection.graph_run,
    )


def _retag(ctx: ViewContext, runs: Sequence[Run], tags: Sequence[str], *, add: bool) -> None:
    dropped = set(tags)
    for run in runs:
        wanted = [*run.tags, *tags] if add else [t for t in run.tags if t not in dropped]
        ctx.data.set_run_tags(run.id, wanted)


def _delete_runs(ctx: ViewContext, pending: Sequence[tuple[int, str]]) -> None:
    ctx.data.delete_runs([run_id for run_id, _ in pending])
    gone = {name for _, name in pending}
    if all(r.name in gone for r in ctx.runs):  # the experiment is gone too
        state.update(experiment=None, runs=None, focus=None, graph_run=None)
    elif ctx.selection.runs is not None:
        state.update(runs=tuple(n for n in ctx.selection.runs if n not in gone))


def _delete_experiment(ctx: ViewContext, experiment: str) -> None:
    ctx.data.delete_experiment(experiment)
    state.update(experiment=None, runs=None, focus=None, graph_run=None)


VIEW = View(slug="runs", title="Runs", draw=draw)
