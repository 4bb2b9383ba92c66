"""The dashboard against a real server on loopback: Streamlit's AppTest for every
page, and the session cache's incremental reads through a real Reader."""

from __future__ import annotations

import base64
import json
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from server_process import free_port
from streamlit.testing.v1 import AppTest

import trainboard
from trainboard.types import GraphNode, HistogramSeries, Run, ScalarSeries, Tag
from trainboard_ui.cards import unpack
from trainboard_ui.live import COMPACT_FACTOR, LiveData
from trainboard_ui.views.scalars import FIRST_CARDS

APP = str(Path(__file__).resolve().parents[1] / "ui" / "trainboard_ui" / "app.py")
STEPS = 50
HISTOGRAM_STEPS = (0, 10, 20, 30, 40)
FLUSH_TIMEOUT = 30.0


def loss(step: int, rate: float) -> float:
    return 2.0 / (1.0 + rate * step)


def fill(server: str) -> None:
    """Experiment "vision": runs alpha (with histograms) and beta (none, one NaN);
    experiment "quiet": a run that logged nothing."""
    for name, rate in (("alpha", 0.1), ("beta", 1.0)):
        with trainboard.Client("vision", name, server, params={"lr": rate}) as client:
            for step in range(STEPS):
                value = float("nan") if (name == "beta" and step == 7) else loss(step, rate)
                client.log_scalars({"loss": value, "accuracy": 1.0 - loss(step, rate) / 2}, step)
                if step % 10 == 0:
                    client.log_scalar("eval/loss", loss(step, rate) * 1.1, step=step)
                if name == "alpha" and step in HISTOGRAM_STEPS:
                    spread = np.linspace(-1.0, 1.0, 200) * (1.0 + step / 10)
                    client.log_histogram("layer/W", spread, step=step)
            assert client.flush(timeout=FLUSH_TIMEOUT)
    with trainboard.Client("quiet", "idle", server) as client:
        assert client.flush(timeout=FLUSH_TIMEOUT)


@pytest.fixture(scope="module")
def filled_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One server for the module's read-only tests, filled once."""
    from trainboard_server.server import make_server
    from trainboard_server.sql_store import SqlStore

    path = tmp_path_factory.mktemp("ui") / "trainboard.db"
    store = SqlStore.from_url(f"sqlite:///{path}")
    handle = make_server(store, host="127.0.0.1", port=0)
    handle.start()
    try:
        fill(handle.address)
        yield handle.address
    finally:
        handle.stop(grace=None)
        store.close()


def open_app(monkeypatch: pytest.MonkeyPatch, server: str, **query: str | list[str]) -> AppTest:
    """The dashboard against ``server`` (via TRAINBOARD_SERVER), opened at a URL
    with these query parameters, after its first run."""
    monkeypatch.setenv("TRAINBOARD_SERVER", server)
    monkeypatch.setattr(sys, "argv", ["app.py"])
    at = AppTest.from_file(APP, default_timeout=30)
    for key, value in query.items():
        at.query_params[key] = value
    return at.run()


def figures(at: AppTest) -> list[dict[str, Any]]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def titles(at: AppTest) -> list[str]:
    return [f["layout"]["title"]["text"] for f in figures(at)]


def trace_names(figure: dict[str, Any]) -> list[str]:
    return [trace["name"] for trace in figure["data"]]


def values(encoded: Any) -> np.ndarray:
    """A trace's array, whether Plotly wrote it as a list or as typed binary."""
    if isinstance(encoded, dict) and "bdata" in encoded:
        array = np.frombuffer(base64.b64decode(encoded["bdata"]), dtype=encoded["dtype"])
        if "shape" in encoded:
            array = array.reshape([int(n) for n in str(encoded["shape"]).split(",")])
        return array
    return np.asarray(encoded)


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


# --------------------------------------------------------------------- scalars


@dataclass
class Board:
    """What the Scalars page handed the chart cards in the browser, decoded."""

    key: str
    header: dict[str, Any]
    series: dict[tuple[str, str], dict[str, np.ndarray]]

    @property
    def tags(self) -> list[str]:
        return [tag for _, tags in self.header["groups"] for tag in tags]

    @property
    def run_names(self) -> list[str]:
        return [run["name"] for run in self.header["runs"]]


def boards(at: AppTest) -> list[Board]:
    """The chart-card boards on the page (the empty preload left out)."""
    found = []
    for element in at.get("bidi_component"):
        if element.proto.component_name != "trainboard.cards" or not element.proto.bytes:
            continue
        header, blob = unpack(element.proto.bytes)
        names = {run["id"]: run["name"] for run in header["runs"]}
        series, at_ = {}, 0
        for update in header["updates"]:
            n = update["n"]
            steps, walls, vals = (blob[at_ + i * n : at_ + (i + 1) * n] for i in range(3))
            at_ += 3 * n
            series[(names[update["run"]], update["tag"])] = {
                "steps": steps,
                "wall_times": walls,
                "values": vals,
            }
        found.append(Board(element.proto.id.rsplit("-", 1)[-1], header, series))
    return found


def board(at: AppTest) -> Board:
    (only,) = boards(at)
    return only


def test_scalars_page_hands_the_cards_every_tag_and_every_run(
    monkeypatch: pytest.MonkeyPatch, filled_server: str
) -> None:
    at = open_app(monkeypatch, filled_server, exp="vision")
    assert_clean(at)
    assert not at.get("plotly_chart")  # drawn in the browser, on 2D canvases
    shown = board(at)
    assert shown.header["groups"] == [["", ["accuracy", "loss"]], ["eval", ["eval/loss"]]]
    assert shown.run_names == ["alpha", "beta"]
    assert shown.header["base"] is None  # a first payload: whole series
    # The first cards' data comes with the page; the browser asks for the others
    # as they come near the screen (tests/test_browser.py scrolls for them).
    first = shown.tags[:FIRST_CARDS]
    assert shown.header["loaded"] == first
    assert set(shown.series) == {(r, t) for r in ("alpha", "beta") for t in first}
    assert shown.series[("alpha", "loss")]["steps"].tolist() == list(range(STEPS))
    assert shown.header["settings"] == {
        "smoothing": 0.6,
        "x_axis": "step",
        "log_y": False,
        "ignore_outliers": True,
        "card_size": "M",
    }
    # The default view needs only the experiment in its URL.
    assert at.query_params == {"exp": "vision"}


def test_a_link_opens_the_view_it_describes_and_keeps_it(
    monkeypatch: pytest.MonkeyPatch, filled_server: str
) -> None:
    query = {
        "exp": "vision",
        "run": "beta",
        "tags": "^eval",
        "smooth": "0.9",
        "x": "relative",
        "logy": "1",
        "outliers": "0",
        "size": "L",
    }
    at = open_app(monkeypatch, filled_server, **query)
    assert_clean(at)
    assert at.radio(key="w_x_axis").value == "relative"
    assert at.toggle(key="w_log_y").value is True
    assert at.toggle(key="w_ignore_outliers").value is False
    assert at.text_input(key="w_tags").value == "^eval"
    assert at.multiselect(key="w_runs").value == ["beta"]
    shown = board(at)
    assert shown.tags == ["eval/loss"]
    assert shown.run_names == ["beta"]
    assert shown.header["settings"] == {
        "smoothing": 0.9,
        "x_axis": "relative",
        "log_y": True,
        "ignore_outliers": False,
        "card_size": "L",
    }
    assert at.query_params == query


def test_widgets_change_the_charts_and_the_url(
    monkeypatch: pytest.MonkeyPatch, filled_server: str
) -> None:
    at = open_app(monkeypatch, filled_server, exp="vision")

    at.multiselect(key="w_runs").unselect("alpha").run()
    assert_clean(at)
    assert board(at).run_names == ["beta"]
    assert at.query_params["run"] == "beta"

    at.toggle(key="w_log_y").set_value(True).run()
    assert board(at).header["settings"]["log_y"] is True
    assert at.query_params["logy"] == "1"

    at.radio(key="w_x_axis").set_value("wall").run()
    assert at.query_params["x"] == "wall"
    assert board(at).header["settings"]["x_axis"] == "wall"

    at.segmented_control(key="w_page").set_value("runs").run()
    assert_clean(at)
    assert at.query_params["page"] == "runs"
    assert len(at.dataframe) == 1
    # The scalar settings were not drawn on the runs page; they are kept.
    at.segmented_control(key="w_page").set_value("scalars").run()
    assert at.radio(key="w_x_axis").value == "wall"
    assert board(at).header["settings"]["x_axis"] == "wall"


def test_a_refresh_without_new_points_sends_the_cards_nothing_again(
    monkeypatch: pytest.MonkeyPatch, filled_server: str
) -> None:
    at = open_app(monkeypatch, filled_server, exp="vision")
    first = board(at)
    at.toggle(key="w_log_y").set_value(True).run()
    second = board(at)
    assert second.header["base"] == first.header["seq"]
    assert second.series == {}  # the browser holds every point already


def test_a_run_keeps_its_colour_on_every_page_whatever_is_selected(
    monkeypatch: pytest.MonkeyPatch, filled_server: str
) -> None:
    both = {
        r["name"]: r["colour"]
        for r in board(open_app(monkeypatch, filled_server, exp="vision")).header["runs"]
    }
    assert both["alpha"] != both["beta"]
    only_beta = board(open_app(monkeypatch, filled_server, exp="vision", run="beta"))
    assert only_beta.header["runs"][0]["colour"] == both["beta"]
    distributions = open_app(monkeypatch, filled_server, exp="vision", page="distributions")
    assert line_colours(figures(distributions)[0])["median"] == both["alpha"]


def line_colours(figure: dict[str, Any]) -> dict[str, str]:
    return {t["name"]: t["line"]["color"] for t in figure["data"]}


def test_an_invalid_tag_filter_gets_a_message_and_filters_nothing(
    monkeypatch: pytest.MonkeyPatch, filled_server: str
) -> None:
    at = open_app(monkeypatch, filled_server, exp="vision")
    at.text_input(key="w_tags").input("loss(").run()
    assert_clean(at)
    assert any("regular expression" in e.value for e in at.sidebar.error)
    assert len(board(at).tags) == 3
    at.text_input(key="w_tags").input("nothing-matches").run()
    assert not boards(at)
    assert any("No scalar tag matches" in i.value for i in at.info)


def test_a_maximised_chart_in_a_link_is_shown_alone_and_read_finer(
    monkeypatch: pytest.MonkeyPatch, filled_server: str
) -> None:
    at = open_app(monkeypatch, filled_server, exp="vision", focus="loss")
    assert_clean(at)
    shown = board(at)
    assert shown.key == "cards:focus"
    assert shown.header["focus"] == "loss"
    assert shown.tags == ["loss"]
    assert at.query_params["focus"] == "loss"


def test_a_link_without_an_experiment_keeps_its_maximised_chart(
    monkeypatch: pytest.MonkeyPatch, server_address: str
) -> None:
    with trainboard.Client("only", "run", server_address) as client:
        for step in range(5):
            client.log_scalars({"loss": 1.0 / (step + 1), "acc": step / 5}, step=step)
        assert client.flush(timeout=FLUSH_TIMEOUT)
    at = open_app(monkeypatch, server_address, page="scalars", focus="loss")
    assert_clean(at)
    assert board(at).header["focus"] == "loss"
    assert at.query_params["focus"] == "loss"
    assert at.query_params["exp"] == "only"


def test_pinned_charts_in_a_link_come_first(
    monkeypatch: pytest.MonkeyPatch, filled_server: str
) -> None:
    at = open_app(monkeypatch, filled_server, exp="vision", pin=["eval/loss", "gone"])
    assert_clean(at)
    assert board(at).header["pinned"] == ["eval/loss"]  # a tag no run has is left out


def test_non_finite_values_reach_the_browser_as_they_are(
    monkeypatch: pytest.MonkeyPatch, filled_server: str
) -> None:
    at = open_app(monkeypatch, filled_server, exp="vision", tags="^loss$")
    assert_clean(at)
    values = board(at).series[("beta", "loss")]["values"]
    assert np.isnan(values[7])
    assert np.isfinite(np.delete(values, 7)).all()


# --------------------------------------------------------------------- distributions, histograms


def test_distributions_draw_bands_for_runs_with_histograms_and_name_the_others(
    monkeypatch: pytest.MonkeyPatch, filled_server: str
) -> None:
    at = open_app(monkeypatch, filled_server, exp="vision", page="distributions")
    assert_clean(at)
    (figure,) = figures(at)
    assert figure["layout"]["title"]["text"] == "alpha"
    fills = [t.get("fill") for t in figure["data"]]
    assert fills == ["toself"] * 4 + [None]
    median = figure["data"][-1]
    assert values(median["x"]).tolist() == list(HISTOGRAM_STEPS)
    np.testing.assert_allclose(values(median["y"]), 0.0, atol=0.05)
    assert any("beta" in c.value for c in at.caption)


def test_histograms_page_switches_between_offset_and_overlay(
    monkeypatch: pytest.MonkeyPatch, filled_server: str
) -> None:
    at = open_app(monkeypatch, filled_server, exp="vision", page="histograms")
    assert_clean(at)
    (figure,) = figures(at)
    assert trace_names(figure) == [f"step {s}" for s in HISTOGRAM_STEPS]
    assert {t.get("fill") for t in figure["data"]} == {"toself"}
    assert figure["layout"]["yaxis"]["autorange"] == "reversed"

    at.radio(key="w_hist_mode").set_value("overlay").run()
    (figure,) = figures(at)
    assert len(figure["data"]) == len(HISTOGRAM_STEPS)
    assert {t.get("fill") for t in figure["data"]} == {None}
    assert at.query_params["mode"] == "overlay"


def test_a_run_without_histograms_gets_a_message(
    monkeypatch: pytest.MonkeyPatch, filled_server: str
) -> None:
    for page in ("distributions", "histograms"):
        at = open_app(monkeypatch, filled_server, exp="vision", page=page, run="beta")
        assert_clean(at)
        assert not figures(at)
        assert any("no histograms" in i.value for i in at.info)


# --------------------------------------------------------------------- runs


def test_runs_table_lists_status_params_and_last_values(
    monkeypatch: pytest.MonkeyPatch, filled_server: str
) -> None:
    at = open_app(monkeypatch, filled_server, exp="vision", page="runs")
    assert_clean(at)
    table = at.dataframe[0].value
    assert table["name"].tolist() == ["alpha", "beta"]
    assert table["status"].tolist() == ["finished", "finished"]
    assert table["param: lr"].tolist() == [0.1, 1.0]
    last = STEPS - 1
    assert table["last: loss"].tolist() == pytest.approx([loss(last, 0.1), loss(last, 1.0)])
    assert table["last: eval/loss"].tolist() == pytest.approx(
        [loss(40, 0.1) * 1.1, loss(40, 1.0) * 1.1]
    )


def test_ticking_rows_in_the_runs_table_selects_runs_on_every_page(
    monkeypatch: pytest.MonkeyPatch, filled_server: str
) -> None:
    at = open_app(monkeypatch, filled_server, exp="vision", page="runs")
    at.session_state["runs.table"] = {"selection": {"rows": [1], "columns": [], "cells": []}}
    at.run()
    assert_clean(at)
    assert at.multiselect(key="w_runs").value == ["beta"]
    assert at.query_params["run"] == "beta"
    at.segmented_control(key="w_page").set_value("scalars").run()
    assert all(trace_names(f) == ["beta (raw)", "beta"] for f in figures(at))


def test_the_runs_table_filters_rows(monkeypatch: pytest.MonkeyPatch, filled_server: str) -> None:
    at = open_app(monkeypatch, filled_server, exp="vision", page="runs")
    at.text_input(key="runs.filter").input("alp").run()
    assert_clean(at)
    assert at.dataframe[0].value["name"].tolist() == ["alpha"]


# --------------------------------------------------------------------- experiments and errors


def test_an_experiment_without_data_says_what_to_do(
    monkeypatch: pytest.MonkeyPatch, filled_server: str
) -> None:
    for page in ("scalars", "distributions", "histograms"):
        at = open_app(monkeypatch, filled_server, exp="quiet", page=page)
        assert_clean(at)
        assert not figures(at)
        assert any("log" in i.value.lower() for i in at.info), page


def test_switching_experiment_resets_the_run_selection(
    monkeypatch: pytest.MonkeyPatch, filled_server: str
) -> None:
    at = open_app(monkeypatch, filled_server, exp="vision", run="alpha")
    at.selectbox(key="w_experiment").select("quiet").run()
    assert_clean(at)
    assert at.query_params == {"exp": "quiet"}
    assert at.multiselect(key="w_runs").value == ["idle"]


def test_an_unknown_experiment_in_a_link_falls_back_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, filled_server: str
) -> None:
    at = open_app(monkeypatch, filled_server, exp="gone")
    assert_clean(at)
    assert any("gone" in w.value for w in at.warning)
    assert at.query_params["exp"] == "quiet"  # the first experiment, by name


def test_an_unreachable_server_gets_a_message_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    address = f"127.0.0.1:{free_port()}"
    at = open_app(monkeypatch, address)
    assert_clean(at)
    assert any("Cannot reach" in e.value and address in e.value for e in at.error)
    assert any(b.label == "Retry" for b in at.button)
    assert any("Trying again every 10 s" in c.value for c in at.caption)


def test_the_server_argument_wins_over_the_environment(
    monkeypatch: pytest.MonkeyPatch, filled_server: str
) -> None:
    address = f"127.0.0.1:{free_port()}"
    monkeypatch.setenv("TRAINBOARD_SERVER", filled_server)
    monkeypatch.setattr(sys, "argv", ["app.py", "--server", address])
    at = AppTest.from_file(APP, default_timeout=30).run()
    assert any(address in e.value for e in at.error)


def test_a_server_without_experiments_says_how_to_fill_it(
    monkeypatch: pytest.MonkeyPatch, server_address: str
) -> None:
    at = open_app(monkeypatch, server_address)
    assert_clean(at)
    assert any("no experiments" in i.value for i in at.info)


# --------------------------------------------------------------------- live


def test_a_refresh_sends_the_browser_only_the_points_logged_since(
    monkeypatch: pytest.MonkeyPatch, server_address: str
) -> None:
    with trainboard.Client("live", "run", server_address) as client:
        for step in range(10):
            client.log_scalar("loss", 1.0 / (step + 1), step=step)
        assert client.flush(timeout=FLUSH_TIMEOUT)
        at = open_app(monkeypatch, server_address)
        first = board(at)
        assert first.series[("run", "loss")]["steps"].tolist() == list(range(10))

        for step in range(10, 25):
            client.log_scalar("loss", 1.0 / (step + 1), step=step)
        assert client.flush(timeout=FLUSH_TIMEOUT)
        at.run()  # what a live refresh does
        assert_clean(at)
        later = board(at)
        assert later.header["base"] == first.header["seq"]
        assert later.header["updates"] == [
            {"run": first.header["runs"][0]["id"], "tag": "loss", "mode": "append", "n": 15}
        ]
        assert later.series[("run", "loss")]["steps"].tolist() == list(range(10, 25))


class SpyReader:
    """A real Reader that records the scalar and histogram reads asked of it."""

    def __init__(self, reader: trainboard.Reader) -> None:
        self.reader = reader
        self.scalar_reads: list[dict[str, Any]] = []
        self.histogram_reads: list[dict[str, Any]] = []
        self.graph_reads = 0

    def experiments(self) -> list[str]:
        return self.reader.experiments()

    def runs(self, experiment: str) -> list[Run]:
        return self.reader.runs(experiment)

    def tags(self, run_id: int, kind: str | None = None) -> list[Tag]:
        return self.reader.tags(run_id, kind)

    def scalars_many(
        self,
        run_ids: Sequence[int],
        tags: Sequence[str],
        max_points: int | None = None,
        *,
        min_step: int | None = None,
        max_step: int | None = None,
    ) -> list[ScalarSeries]:
        found = self.reader.scalars_many(
            run_ids, tags, max_points, min_step=min_step, max_step=max_step
        )
        self.scalar_reads.append(
            {"min_step": min_step, "max_step": max_step, "points": sum(len(s) for s in found)}
        )
        return found

    def histograms(
        self,
        run_id: int,
        tag: str,
        max_steps: int | None = None,
        *,
        min_step: int | None = None,
    ) -> HistogramSeries:
        found = self.reader.histograms(run_id, tag, max_steps, min_step=min_step)
        self.histogram_reads.append({"min_step": min_step, "count": len(found)})
        return found

    def graph(self, run_id: int) -> list[GraphNode] | None:
        self.graph_reads += 1
        return self.reader.graph(run_id)


@pytest.fixture
def spy(server_address: str) -> Iterator[SpyReader]:
    with trainboard.Reader(server_address) as reader:
        yield SpyReader(reader)


def log_steps(client: trainboard.Client, steps: range) -> None:
    for step in steps:
        client.log_scalars({"a": float(step), "b": -float(step)}, step=step)
    assert client.flush(timeout=FLUSH_TIMEOUT)


def test_a_refresh_reads_only_the_steps_after_the_cached_ones(
    server_address: str, spy: SpyReader
) -> None:
    live = LiveData(spy)
    with trainboard.Client("e", "r", server_address) as client:
        log_steps(client, range(0, 100))
        run_id = client.run_id
        live.tags([run_id])
        first = live.scalars([run_id], ["a", "b"], max_points=1000)
        assert spy.scalar_reads == [{"min_step": None, "max_step": None, "points": 200}]

        live.tags([run_id])
        live.scalars([run_id], ["a", "b"], max_points=1000)
        assert len(spy.scalar_reads) == 1  # nothing new: nothing read

        log_steps(client, range(100, 130))
        live.tags([run_id])
        found = live.scalars([run_id], ["a", "b"], max_points=1000)
    assert spy.scalar_reads[1] == {"min_step": 100, "max_step": None, "points": 60}
    assert found[(run_id, "a")].steps.tolist() == list(range(130))
    assert found[(run_id, "b")].values.tolist() == [-float(s) for s in range(130)]
    assert len(first[(run_id, "a")]) == 100


def test_a_series_grown_past_its_budget_is_read_whole_again(
    server_address: str, spy: SpyReader
) -> None:
    live = LiveData(spy)
    budget = 20
    with trainboard.Client("e", "r", server_address) as client:
        log_steps(client, range(0, 100))
        run_id = client.run_id
        live.tags([run_id])
        lengths = [len(live.scalars([run_id], ["a"], budget)[(run_id, "a")])]
        assert lengths[0] <= budget
        next_step = 100
        while spy.scalar_reads[-1]["min_step"] is not None or len(spy.scalar_reads) == 1:
            assert len(spy.scalar_reads) < 20, "never read whole again"
            log_steps(client, range(next_step, next_step + 10))
            next_step += 10
            live.tags([run_id])
            lengths.append(len(live.scalars([run_id], ["a"], budget)[(run_id, "a")]))
    # New steps were appended as they came, 10 a refresh, until the series held
    # more than its budget allows; then one whole read, downsampled afresh.
    cursors = [r["min_step"] for r in spy.scalar_reads]
    assert cursors == [None, *range(100, next_step - 10, 10), None]
    assert lengths[-2] > COMPACT_FACTOR * budget
    assert lengths[-1] <= budget


def test_histograms_and_last_values_are_read_only_when_they_moved(
    server_address: str, spy: SpyReader
) -> None:
    live = LiveData(spy)
    with trainboard.Client("e", "r", server_address) as client:
        for step in range(5):
            client.log_histogram("w", np.arange(10.0) * step, step=step)
            client.log_scalar("loss", 10.0 - step, step=step)
        assert client.flush(timeout=FLUSH_TIMEOUT)
        run_id = client.run_id
        live.tags([run_id])
        assert len(live.histograms([run_id], ["w"], 100)[(run_id, "w")]) == 5
        assert live.last_values([run_id], ["loss"]) == {(run_id, "loss"): 6.0}
        live.tags([run_id])
        live.histograms([run_id], ["w"], 100)
        live.last_values([run_id], ["loss"])
        assert len(spy.histogram_reads) == 1
        assert len(spy.scalar_reads) == 1

        client.log_histogram("w", np.ones(3), step=5)
        client.log_scalar("loss", 1.5, step=5)
        assert client.flush(timeout=FLUSH_TIMEOUT)
        live.tags([run_id])
        histograms = live.histograms([run_id], ["w"], 100)[(run_id, "w")]
        assert live.last_values([run_id], ["loss"]) == {(run_id, "loss"): 1.5}
    assert [h.step for h in histograms] == [0, 1, 2, 3, 4, 5]
    assert spy.histogram_reads[1] == {"min_step": 5, "count": 1}
    assert spy.scalar_reads[1] == {"min_step": 5, "max_step": 5, "points": 1}


def test_the_cache_forgets_runs_of_other_experiments(server_address: str, spy: SpyReader) -> None:
    live = LiveData(spy)
    with trainboard.Client("one", "r", server_address) as client:
        log_steps(client, range(3))
        first = client.run_id
    with trainboard.Client("two", "r", server_address) as client:
        log_steps(client, range(3))
    live.runs("one")
    live.tags([first])
    live.scalars([first], ["a"], 100)
    live.runs("two")  # another experiment: its runs only
    live.tags([first])
    live.scalars([first], ["a"], 100)
    assert [r["min_step"] for r in spy.scalar_reads] == [None, None]


def test_a_graph_is_read_once_it_is_there(server_address: str, spy: SpyReader) -> None:
    live = LiveData(spy)
    with trainboard.Client("e", "r", server_address) as client:
        assert client.flush(timeout=FLUSH_TIMEOUT)
        run_id = client.run_id
        assert live.graph(run_id) is None
        client.log_graph([GraphNode(name="x", op="Placeholder")])
        assert client.flush(timeout=FLUSH_TIMEOUT)
        first = live.graph(run_id)
        again = live.graph(run_id)
    assert first is not None
    assert [n.name for n in first] == ["x"]
    assert again == first
    assert spy.graph_reads == 2  # asked while missing, then once


# --------------------------------------------------------------------- runs: housekeeping


@pytest.fixture
def team_server(server_address: str) -> str:
    """A fresh server (the tests change it): experiment "vision" with runs alpha
    and beta, experiment "quiet" with run idle."""
    for experiment, name in (("vision", "alpha"), ("vision", "beta"), ("quiet", "idle")):
        with trainboard.Client(experiment, name, server_address) as client:
            log_steps(client, range(5))
    return server_address


def runs_table(at: AppTest) -> list[tuple[str, str, str]]:
    table = at.dataframe[0].value
    return list(zip(table["name"], table["status"], table["tags"], strict=True))


def tick(at: AppTest, *rows: int) -> None:
    at.session_state["runs.table"] = {"selection": {"rows": list(rows), "columns": [], "cells": []}}
    at.run()


def server_runs(server: str, experiment: str) -> list[tuple[str, tuple[str, ...]]]:
    with trainboard.Reader(server) as reader:
        return [(r.name, r.tags) for r in reader.runs(experiment)]


def test_the_runs_table_shows_tags_and_runs_whose_trainer_vanished_as_crashed(
    monkeypatch: pytest.MonkeyPatch, team_server: str
) -> None:
    from trainboard.transport import RemoteStore

    remote = RemoteStore(team_server)
    try:  # a run whose trainer last wrote an hour ago and never closed it
        remote.start_run("vision", "ghost", None, time.time() - 3_600)
        remote.set_run_tags(remote.list_runs("vision")[0].id, ["baseline", "ünï"])
    finally:
        remote.close()

    at = open_app(monkeypatch, team_server, exp="vision", page="runs")

    assert_clean(at)
    assert runs_table(at) == [
        ("alpha", "finished", "baseline, ünï"),
        ("beta", "finished", ""),
        ("ghost", "crashed", ""),
    ]
    at.multiselect(key="runs.status").select("crashed").run()
    assert [name for name, _, _ in runs_table(at)] == ["ghost"]


def test_renaming_the_ticked_run_keeps_it_selected(
    monkeypatch: pytest.MonkeyPatch, team_server: str
) -> None:
    at = open_app(monkeypatch, team_server, exp="vision", page="runs")
    assert "runs.rename" not in [b.key for b in at.button]  # two ticked: which one?
    tick(at, 1)

    at.text_input(key="runs.rename.name").input("beta (lr=1)").run()
    at.button(key="runs.rename").click().run()

    assert_clean(at)
    assert [name for name, _, _ in runs_table(at)] == ["alpha", "beta (lr=1)"]
    assert server_runs(team_server, "vision") == [("alpha", ()), ("beta (lr=1)", ())]
    assert at.multiselect(key="w_runs").value == ["beta (lr=1)"]
    assert at.query_params["run"] == "beta (lr=1)"
    assert any("Renamed" in s.value for s in at.success)
    assert at.text_input(key="runs.rename.name").value == ""


def test_renaming_to_a_taken_name_says_so(
    monkeypatch: pytest.MonkeyPatch, team_server: str
) -> None:
    at = open_app(monkeypatch, team_server, exp="vision", page="runs")
    tick(at, 1)

    at.text_input(key="runs.rename.name").input("alpha").run()
    at.button(key="runs.rename").click().run()

    assert_clean(at)
    assert any("'alpha' is taken in experiment 'vision'" in e.value for e in at.error)
    assert [name for name, _ in server_runs(team_server, "vision")] == ["alpha", "beta"]


def test_tags_are_added_to_and_removed_from_the_ticked_runs(
    monkeypatch: pytest.MonkeyPatch, team_server: str
) -> None:
    at = open_app(monkeypatch, team_server, exp="vision", page="runs")  # both ticked

    at.text_input(key="runs.tags.text").input('baseline, say "hi", ünï').run()
    at.button(key="runs.tags.add").click().run()

    assert_clean(at)
    tagged = ("baseline", 'say "hi"', "ünï")
    assert server_runs(team_server, "vision") == [("alpha", tagged), ("beta", tagged)]
    assert [tags for _, _, tags in runs_table(at)] == ['baseline, say "hi", ünï'] * 2

    tick(at, 0)
    at.text_input(key="runs.tags.text").input("baseline").run()
    at.button(key="runs.tags.remove").click().run()

    assert_clean(at)
    assert server_runs(team_server, "vision") == [("alpha", tagged[1:]), ("beta", tagged)]
    at.text_input(key="runs.filter").input("baseline").run()
    assert [name for name, _, _ in runs_table(at)] == ["beta"]


def test_deleting_ticked_runs_asks_first(monkeypatch: pytest.MonkeyPatch, team_server: str) -> None:
    at = open_app(monkeypatch, team_server, exp="vision", page="runs")
    tick(at, 1)

    at.button(key="runs.delete").click().run()
    assert any("Really delete 1 run (**beta**)" in w.value for w in at.warning)
    at.button(key="runs.delete.cancel").click().run()

    assert not at.warning
    assert len(server_runs(team_server, "vision")) == 2

    at.button(key="runs.delete").click().run()
    at.button(key="runs.delete.confirm").click().run()

    assert_clean(at)
    assert server_runs(team_server, "vision") == [("alpha", ())]
    assert [name for name, _, _ in runs_table(at)] == ["alpha"]
    assert at.multiselect(key="w_runs").options == ["alpha"]
    assert any("Deleted 1 run." in s.value for s in at.success)
    at.segmented_control(key="w_page").set_value("scalars").run()
    assert_clean(at)
    assert all(trace_names(f) == ["alpha (raw)", "alpha"] for f in figures(at))


def test_deleting_every_run_of_an_experiment_moves_to_another(
    monkeypatch: pytest.MonkeyPatch, team_server: str
) -> None:
    at = open_app(monkeypatch, team_server, exp="vision", page="runs")  # both ticked

    at.button(key="runs.delete").click().run()
    assert any("Really delete 2 runs" in w.value for w in at.warning)
    at.button(key="runs.delete.confirm").click().run()

    assert_clean(at)
    with trainboard.Reader(team_server) as reader:
        assert reader.experiments() == ["quiet"]
    assert at.query_params["exp"] == "quiet"
    assert not at.warning  # no "the server has no experiment vision"


def test_deleting_the_experiment_asks_first(
    monkeypatch: pytest.MonkeyPatch, team_server: str
) -> None:
    at = open_app(monkeypatch, team_server, exp="vision", page="runs")

    at.button(key="runs.experiment.delete").click().run()
    assert any("Really delete experiment **vision** and its 2 runs" in w.value for w in at.warning)
    at.button(key="runs.experiment.cancel").click().run()
    assert not at.warning
    at.button(key="runs.experiment.delete").click().run()
    at.button(key="runs.experiment.confirm").click().run()

    assert_clean(at)
    with trainboard.Reader(team_server) as reader:
        assert reader.experiments() == ["quiet"]
    assert at.selectbox(key="w_experiment").value == "quiet"
    assert [name for name, _, _ in runs_table(at)] == ["idle"]


def test_a_read_only_token_gets_a_message_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from trainboard_server.auth import parse_tokens
    from trainboard_server.server import make_server
    from trainboard_server.sql_store import SqlStore

    write, read = "write-token-0123456789", "read-token-0123456789"
    store = SqlStore.from_url(f"sqlite:///{tmp_path / 'tokens.db'}")
    handle = make_server(store, port=0, tokens=parse_tokens(f"write {write}\nread {read}\n"))
    handle.start()
    try:
        with trainboard.Client("vision", "alpha", handle.address, token=write) as client:
            log_steps(client, range(3))
        monkeypatch.setenv("TRAINBOARD_TOKEN", read)
        at = open_app(monkeypatch, handle.address, exp="vision", page="runs")

        at.button(key="runs.delete").click().run()
        at.button(key="runs.delete.confirm").click().run()

        assert_clean(at)
        assert any("may read but not write" in e.value for e in at.error)
        assert [name for name, _, _ in runs_table(at)] == ["alpha"]
    finally:
        handle.stop(grace=None)
        store.close()


def test_the_run_picker_selects_all_none_or_runs_a_pattern_finds(
    monkeypatch: pytest.MonkeyPatch, filled_server: str
) -> None:
    at = open_app(monkeypatch, filled_server, exp="vision")
    at.text_input(key="w_run_pattern").input("^b").run()
    assert_clean(at)
    assert at.multiselect(key="w_runs").value == ["beta"]
    assert board(at).run_names == ["beta"]
    assert at.query_params["run"] == "beta"

    next(b for b in at.button if b.label == "No runs").click().run()
    assert at.multiselect(key="w_runs").value == []
    assert not boards(at)
    assert any("No runs selected" in i.value for i in at.info)

    next(b for b in at.button if b.label == "All runs").click().run()
    assert at.multiselect(key="w_runs").value == ["alpha", "beta"]
    assert "run" not in at.query_params

    at.text_input(key="w_run_pattern").input("(").run()
    assert any("regular expression" in e.value for e in at.sidebar.error)
    assert at.multiselect(key="w_runs").value == ["alpha", "beta"]  # unchanged
