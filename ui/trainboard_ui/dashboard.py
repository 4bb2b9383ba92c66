"""The dashboard's frame: sidebar, navigation, live refresh and clear error states.

:func:`main` draws the sidebar (experiment, runs, tag filter, the page's settings,
live refresh) and the navigation, then the page inside a fragment that Streamlit
reruns on its own every few seconds while live refresh is on. Each page run lists
runs and tags again and reads only the steps the session's cache lacks
(:mod:`trainboard_ui.live`).
"""

from __future__ import annotations

from collections.abc import Sequence

import streamlit as st

from trainboard import Reader
from trainboard.errors import TrainboardError, Unavailable
from trainboard.types import Run
from trainboard_ui import state
from trainboard_ui.cards import preload
from trainboard_ui.colours import run_colours
from trainboard_ui.live import LiveData
from trainboard_ui.tag_filters import compile_pattern
from trainboard_ui.views import VIEWS, View, ViewContext

# Seconds a read may take before the dashboard reports the server as unreachable.
READ_TIMEOUT = 15.0
_LIVE_KEY = "trainboard.live"
RUNS_WIDGET = state.widget_key("runs")


@st.cache_resource(show_spinner=False)
def _reader(server: str) -> Reader:
    """One reader (one gRPC channel) per server for every session of the app."""
    return Reader(server, timeout=READ_TIMEOUT)


def live_data(server: str) -> LiveData:
    """The session's cache in front of the server."""
    key = f"{_LIVE_KEY}:{server}"
    if key not in st.session_state:
        st.session_state[key] = LiveData(_reader(server))
    data: LiveData = st.session_state[key]
    return data


def _forget_connection(server: str) -> None:
    """Drops the session's cache and the shared reader, so that the next try opens
    a fresh channel instead of waiting out the old one's reconnection back-off."""
    st.session_state.pop(f"{_LIVE_KEY}:{server}", None)
    _reader.clear()


def show_error(server: str, error: TrainboardError, *, retry_every: int | None = None) -> None:
    """A short message saying what went wrong and what to do: never a traceback.
    With ``retry_every`` (seconds), an unreachable server is tried again that often
    and the dashboard comes back by itself once it answers."""
    if isinstance(error, Unavailable):
        st.error(
            f"Cannot reach the Trainboard server at `{server}`.\n\n"
            "Start one with `trainboard server` (or `trainboard up` for the server and "
            "the dashboard together), or point the dashboard at yours with "
            "`trainboard ui --server HOST:PORT` or the `TRAINBOARD_SERVER` variable.",
            icon=":material/cloud_off:",
        )
        _forget_connection(server)
        if retry_every is not None:
            st.caption(f"Trying again every {retry_every} s.")
            st.fragment(_probe, run_every=f"{retry_every}s")(server)
    else:
        st.error(f"The server at `{server}` answered: {error}", icon=":material/error:")
    st.button("Retry", icon=":material/refresh:", key="retry")


def _probe(server: str) -> None:
    with Reader(server, timeout=READ_TIMEOUT) as reader:
        if reader.healthy(timeout=2.0):
            st.rerun()


def main(server: str) -> None:
    slugs = [view.slug for view in VIEWS]
    selection = state.current(slugs)
    data = live_data(server)
    st.sidebar.title("Trainboard")
    st.sidebar.caption(f"Server `{server}`")
    if selection.page == "scalars":
        with st.sidebar:
            preload()
    try:
        experiments = data.experiments()
        if not experiments:
            st.info(
                f"The server at `{server}` has no experiments yet. Log a run with "
                "`trainboard.Client(experiment=..., run=..., server=...)`, or try "
                f"`trainboard demo --server {server}`."
            )
            state.sync_url(selection, slugs)
            return
        if selection.experiment is None:
            # A link without `exp=` means the first experiment, with the rest of the
            # view it describes (a maximised chart, runs, pins) kept.
            selection = state.update(experiment=experiments[0])
        elif selection.experiment not in experiments:
            st.warning(
                f"The server has no experiment **{selection.experiment}**; "
                f"showing **{experiments[0]}**."
            )
            selection = state.update(experiment=experiments[0], runs=None, focus=None)
        runs = data.runs(selection.experiment or experiments[0])
    except TrainboardError as error:
        show_error(server, error, retry_every=selection.interval if selection.live else None)
        return

    _sidebar(data, experiments, runs, selection)
    view = _navigation()
    selection = state.current(slugs)
    state.sync_url(selection, slugs)
    drawn = tuple(selection.selected_names([r.name for r in runs]))
    page = st.fragment(_page, run_every=f"{selection.interval}s" if selection.live else None)
    page(server, view.slug, tuple(r.name for r in runs), drawn)


def _sidebar(
    data: LiveData, experiments: Sequence[str], runs: Sequence[Run], selection: state.Selection
) -> None:
    names = [r.name for r in runs]
    with st.sidebar:
        st.selectbox(
            "Experiment",
            experiments,
            **state.bound("experiment", reset={"runs": None, "focus": None}),
        )
        st.multiselect(
            "Runs",
            names,
            placeholder="No runs selected",
            help="Each run keeps its colour on every page.",
            **state.bound(
                "runs",
                shown=lambda runs: names if runs is None else [n for n in names if n in runs],
                stored=lambda picked: None if set(picked) == set(names) else tuple(picked),
            ),
        )
        _colour_tags(runs)
        _run_picker(names)
        st.text_input(
            "Tag filter",
            placeholder="regular expression, e.g. loss|acc",
            **state.bound("tags"),
        )
        _, error = compile_pattern(selection.tags)
        if error:
            st.error(error, icon=":material/warning:")
        view = _view(selection.page)
        if view.settings is not None:
            st.divider()
            view.settings(selection)
        st.divider()
        st.toggle("Live refresh", **state.bound("live"))
        st.selectbox(
            "Refresh every",
            state.INTERVALS,
            format_func=lambda seconds: f"{seconds} s",
            disabled=not selection.live,
            **state.bound("interval"),
        )
        st.button(
            "Reload data",
            icon=":material/refresh:",
            help="Read every series again from the server (after steps were re-logged).",
            on_click=data.clear,
        )


RUN_PATTERN_KEY = "w_run_pattern"


def _run_picker(names: Sequence[str]) -> None:
    """For many runs: select every run, none, or those a regular expression finds
    in their names (``re.search``); the runs multi-select shows the result."""
    every, none = st.columns(2)
    every.button(
        "All runs",
        icon=":material/select_all:",
        type="tertiary",
        on_click=state.change,
        kwargs={"runs": None},
    )
    none.button(
        "No runs",
        icon=":material/deselect:",
        type="tertiary",
        on_click=state.change,
        kwargs={"runs": ()},
    )

    def select_matching() -> None:
        pattern, _ = compile_pattern(st.session_state[RUN_PATTERN_KEY])
        if pattern is None:
            return
        picked = tuple(n for n in names if pattern.search(n))
        state.update(runs=None if len(picked) == len(names) else picked)

    st.text_input(
        "Select runs by name",
        placeholder="regular expression, e.g. lr=0\\.1",
        help="Selects the runs whose names it finds; the runs above show the result.",
        key=RUN_PATTERN_KEY,
        on_change=select_matching,
    )
    _, error = compile_pattern(st.session_state.get(RUN_PATTERN_KEY, ""))
    if error:
        st.error(error, icon=":material/warning:")


def _colour_tags(runs: Sequence[Run]) -> None:
    """Paints each run's tag in the runs multi-select in the run's colour, the
    colour every chart draws it in."""
    colours = run_colours(runs)
    rules = "".join(
        f".st-key-{RUNS_WIDGET} span[data-tag][aria-label={css_string(r.name)}]"
        f"{{background-color:{colours[r.id]};color:#FFFFFF}}"
        for r in runs
    )
    st.html(f"<style>{rules}</style>")


def css_string(text: str) -> str:
    """``text`` as a quoted CSS string that nothing in it can end early."""
    escaped = "".join(c if c.isalnum() or c in " _-.=,:+()/" else f"\\{ord(c):X} " for c in text)
    return f'"{escaped}"'


def _navigation() -> View:
    selection = state.current([v.slug for v in VIEWS])
    titles = {v.slug: v.title for v in VIEWS}
    st.segmented_control(
        "Page",
        [v.slug for v in VIEWS],
        format_func=titles.__getitem__,
        label_visibility="collapsed",
        # Clicking the page already shown deselects it; stay there.
        **state.bound("page", stored=lambda slug: slug or selection.page),
    )
    return _view(state.current([v.slug for v in VIEWS]).page)


def _view(slug: str) -> View:
    return next((v for v in VIEWS if v.slug == slug), VIEWS[0])


def _page(server: str, slug: str, sidebar_runs: tuple[str, ...], drawn: tuple[str, ...]) -> None:
    """The page; rerun alone on every live refresh and on its own widgets."""
    slugs = [view.slug for view in VIEWS]
    state.count_page_run()
    selection = state.current(slugs)
    state.sync_url(selection, slugs)  # a fragment's own widgets change it too
    data = live_data(server)
    experiment = selection.experiment
    if experiment is None:
        return
    try:
        runs = data.runs(experiment)
        names = [r.name for r in runs]
        if tuple(names) != sidebar_runs:
            st.rerun()  # a run started or ended: the sidebar lists runs too
        chosen = set(selection.selected_names(names))
        tag_filter, _ = compile_pattern(selection.tags)
        context = ViewContext(
            server=server,
            selection=selection,
            data=data,
            runs=tuple(runs),
            selected=tuple(r for r in runs if r.name in chosen),
            colours=run_colours(runs),
            tag_filter=tag_filter,
            timezone=st.context.timezone,
        )
        _view(slug).draw(context)
    except TrainboardError as error:
        show_error(server, error)
        return
    names_now = tuple(state.current(slugs).selected_names(names))
    if names_now != drawn:
        st.rerun()  # the page changed the selection (the runs table): redraw the sidebar
