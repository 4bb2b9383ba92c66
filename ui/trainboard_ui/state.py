"""The dashboard's selection and its place in the URL.

:class:`Selection` is everything that defines a view: page, experiment, runs, tag
filter, smoothing, axes, histogram mode, live refresh and a maximised chart. It is
kept in the session (the one source of truth while the app runs) and mirrored into
the URL's query parameters after every change, so a copied link opens the same view.
Only values that differ from the defaults go into the URL:

======== ============================ ==========================================
param    meaning                      values (default)
======== ============================ ==========================================
page     the page                     scalars, distributions, histograms, runs
exp      experiment                   name (the first experiment)
run      selected runs, repeated      names; absent: every run; ``run=`` alone:
                                      none
tags     tag filter                   a regular expression (none)
smooth   smoothing weight             0 to 0.999 (0.6)
x        axis of time                 step, relative, wall (step)
logy     log-scale y axis             1 or 0 (0)
outliers ignore outliers in y-range   1 or 0 (1)
mode     histogram mode               offset, overlay (offset)
live     live refresh                 1 or 0 (1)
every    refresh interval, seconds    2, 5, 10, 30, 60 (10)
focus    the maximised scalar chart   a tag (none)
pin      pinned scalar charts,        tags (none)
         repeated
size     scalar card size             S, M, L (M)
grun     the run whose graph is shown a run name (the first selected)
open     expanded graph scopes,       scope paths (none: all collapsed)
         repeated
aux      auxiliary graph parts drawn  1 or 0 (0: aside)
         in the main graph
node     the selected graph node      a node or scope name (none)
======== ============================ ==========================================

:func:`from_query` and :func:`to_query` are pure; the rest reads and writes
``st.session_state`` and ``st.query_params``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

import streamlit as st

from trainboard_ui.time_axes import X_AXES

SMOOTHING_MAX = 0.999
INTERVALS: tuple[int, ...] = (2, 5, 10, 30, 60)
HIST_MODES: tuple[str, ...] = ("offset", "overlay")
CARD_SIZES: tuple[str, ...] = ("S", "M", "L")

_SESSION_KEY = "trainboard.selection"
_PAGE_RUNS_KEY = "trainboard.page_runs"
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


@dataclass(frozen=True, slots=True)
class Selection:
    """What the user looks at. ``runs`` is ``None`` for every run of the experiment
    (new runs join as they start) or the names picked."""

    page: str = "scalars"
    experiment: str | None = None
    runs: tuple[str, ...] | None = None
    tags: str = ""
    smoothing: float = 0.6
    x_axis: str = "step"
    log_y: bool = False
    ignore_outliers: bool = True
    hist_mode: str = "offset"
    live: bool = True
    interval: int = 10
    focus: str | None = None
    pinned: tuple[str, ...] = ()
    card_size: str = "M"
    graph_run: str | None = None
    graph_open: tuple[str, ...] = ()
    graph_aux: bool = False
    graph_node: str | None = None

    def selected_names(self, all_names: Sequence[str]) -> list[str]:
        """The selected runs among ``all_names``, in their order."""
        if self.runs is None:
            return list(all_names)
        chosen = set(self.runs)
        return [n for n in all_names if n in chosen]


DEFAULT = Selection()

# Selection field -> URL parameter.
PARAMS: Mapping[str, str] = {
    "page": "page",
    "experiment": "exp",
    "runs": "run",
    "tags": "tags",
    "smoothing": "smooth",
    "x_axis": "x",
    "log_y": "logy",
    "ignore_outliers": "outliers",
    "hist_mode": "mode",
    "live": "live",
    "interval": "every",
    "focus": "focus",
    "pinned": "pin",
    "card_size": "size",
    "graph_run": "grun",
    "graph_open": "open",
    "graph_aux": "aux",
    "graph_node": "node",
}


def from_query(params: Mapping[str, Sequence[str]], pages: Sequence[str]) -> Selection:
    """The selection a URL's query parameters describe; values that make no sense
    fall back to the default (a link never breaks the app)."""

    def last(name: str) -> str | None:
        values = params.get(name)
        return values[-1] if values else None

    def choice(name: str, options: Sequence[str], default: str) -> str:
        value = last(name)
        return value if value is not None and value in options else default

    def flag(name: str, default: bool) -> bool:
        value = (last(name) or "").strip().lower()
        return True if value in _TRUE else False if value in _FALSE else default

    run_values = params.get("run")
    runs: tuple[str, ...] | None = None
    if run_values is not None and len(run_values) > 0:
        runs = tuple(dict.fromkeys(v for v in run_values if v))

    return Selection(
        page=choice("page", pages, pages[0] if pages else DEFAULT.page),
        experiment=last("exp") or None,
        runs=runs,
        tags=last("tags") or "",
        smoothing=_smoothing(last("smooth")),
        x_axis=choice("x", X_AXES, DEFAULT.x_axis),
        log_y=flag("logy", DEFAULT.log_y),
        ignore_outliers=flag("outliers", DEFAULT.ignore_outliers),
        hist_mode=choice("mode", HIST_MODES, DEFAULT.hist_mode),
        live=flag("live", DEFAULT.live),
        interval=_interval(last("every")),
        focus=last("focus") or None,
        pinned=tuple(dict.fromkeys(v for v in params.get("pin", ()) if v)),
        card_size=choice("size", CARD_SIZES, DEFAULT.card_size),
        graph_run=last("grun") or None,
        graph_open=tuple(dict.fromkeys(v for v in params.get("open", ()) if v)),
        graph_aux=flag("aux", DEFAULT.graph_aux),
        graph_node=last("node") or None,
    )


def to_query(selection: Selection, pages: Sequence[str] = ()) -> dict[str, list[str]]:
    """The query parameters of a selection: only what differs from the default
    (the first of ``pages`` is the default page)."""
    default = replace(DEFAULT, page=pages[0]) if pages else DEFAULT
    query: dict[str, list[str]] = {}
    for f in fields(Selection):
        value = getattr(selection, f.name)
        if value == getattr(default, f.name):
            continue
        name = PARAMS[f.name]
        if f.name == "runs":
            query[name] = list(value) if value else [""]
        elif f.name in ("graph_open", "pinned"):
            query[name] = list(value)
        elif isinstance(value, bool):
            query[name] = ["1" if value else "0"]
        elif isinstance(value, float):
            query[name] = [format_smoothing(value)]
        else:
            query[name] = [str(value)]
    return query


def format_smoothing(weight: float) -> str:
    return f"{round(weight, 3):g}"


def _smoothing(text: str | None) -> float:
    try:
        value = float(text) if text is not None else DEFAULT.smoothing
    except ValueError:
        return DEFAULT.smoothing
    return clamp_smoothing(value)


def clamp_smoothing(value: float) -> float:
    """A smoothing weight rounded to the slider's steps and kept in its range (the
    default for a value that is not a number)."""
    if not math.isfinite(value):
        return DEFAULT.smoothing
    return round(min(max(value, 0.0), SMOOTHING_MAX), 3)


def _interval(text: str | None) -> int:
    try:
        value = float(text) if text is not None else DEFAULT.interval
    except ValueError:
        return DEFAULT.interval
    if not math.isfinite(value):
        return DEFAULT.interval
    return min(INTERVALS, key=lambda option: abs(option - value))


# --------------------------------------------------------------------- session


def current(pages: Sequence[str]) -> Selection:
    """The session's selection; on a session's first run, the URL's."""
    if _SESSION_KEY not in st.session_state:
        query = {key: st.query_params.get_all(key) for key in st.query_params}
        st.session_state[_SESSION_KEY] = from_query(query, pages)
    selection: Selection = st.session_state[_SESSION_KEY]
    return selection


def count_page_run() -> int:
    """Counts the runs of the page (the frame calls it once per run, whole or
    fragment), so that a page can tell whether it was drawn in the run before."""
    runs = page_runs() + 1
    st.session_state[_PAGE_RUNS_KEY] = runs
    return runs


def page_runs() -> int:
    return int(st.session_state.get(_PAGE_RUNS_KEY, 0))


def update(**changes: Any) -> Selection:
    """Changes the session's selection (from widget callbacks, before the run)."""
    selection: Selection = replace(st.session_state[_SESSION_KEY], **changes)
    st.session_state[_SESSION_KEY] = selection
    return selection


def change(**changes: Any) -> None:
    """:func:`update` for a button's ``on_click``."""
    update(**changes)


def sync_url(selection: Selection, pages: Sequence[str]) -> None:
    """Writes the selection into the URL, touching only parameters that changed."""
    wanted = to_query(selection, pages)
    for name in PARAMS.values():
        have = st.query_params.get_all(name)
        want = wanted.get(name, [])
        if have == want:
            continue
        if not want:
            del st.query_params[name]
        else:
            st.query_params[name] = want if len(want) > 1 else want[0]


def widget_key(field: str) -> str:
    """The key of the widget bound to a selection field (also its CSS class name,
    ``st-key-<key>``)."""
    return f"w_{field}"


def bound(
    field: str,
    *,
    shown: Callable[[Any], Any] = lambda value: value,
    stored: Callable[[Any], Any] = lambda value: value,
    reset: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Keyword arguments that bind a widget to a selection field: its key, primed
    with the field's value (through ``shown``) before the widget is drawn, and an
    ``on_change`` that writes the widget's value back (through ``stored``), along
    with the fields in ``reset`` (what a new experiment makes stale).

    The widget's own state is not the store, because Streamlit forgets the state
    of a widget that a run does not draw (a page's settings on another page).
    """
    key = widget_key(field)
    st.session_state[key] = shown(getattr(st.session_state[_SESSION_KEY], field))

    def write_back() -> None:
        update(**{field: stored(st.session_state[key]), **(reset or {})})

    return {"key": key, "on_change": write_back}
