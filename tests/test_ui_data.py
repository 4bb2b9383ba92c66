"""The dashboard's pure functions: data shaping, URL state and figure builders."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

from trainboard.histogram import summarize
from trainboard.sampling import sample_evenly
from trainboard.types import Histogram, Run
from trainboard_ui import charts, state
from trainboard_ui.colours import PALETTE, blend, run_colours, with_alpha
from trainboard_ui.dashboard import css_string
from trainboard_ui.distribution_data import (
    BAND_COLUMNS,
    MEDIAN_INDEX,
    band_range,
    distribution_frame,
)
from trainboard_ui.histogram_data import common_edges, histogram_slices, rebin
from trainboard_ui.runs_table import filter_runs_frame, runs_frame
from trainboard_ui.scalar_data import (
    ScalarLine,
    SeriesPoints,
    csv_file_name,
    lines_frame,
    outlier_range,
    scalar_lines,
)
from trainboard_ui.tag_filters import compile_pattern, filter_tags, group_tags
from trainboard_ui.time_axes import relative_unit, time_axis

PAGES = ("scalars", "distributions", "histograms", "runs")


def make_run(run_id: int, name: str = "", started: float = 1000.0, **params: object) -> Run:
    return Run(
        id=run_id,
        name=name or f"run{run_id}",
        experiment="exp",
        params=params,
        status="finished",
        started_at=started,
        finished_at=started + 90.0,
        updated_at=started + 90.0,
    )


def make_histogram(
    counts: tuple[int, ...], lo: float, hi: float, step: int = 0, wall: float = 0.0
) -> Histogram:
    return Histogram(
        count=sum(counts),
        min=lo,
        max=hi,
        sum=0.0,
        sum_squares=0.0,
        nan_count=0,
        posinf_count=0,
        neginf_count=0,
        bucket_counts=counts,
        step=step,
        wall_time=wall,
    )


def points(run: Run, values: list[float]) -> SeriesPoints:
    n = len(values)
    return SeriesPoints(
        run=run,
        steps=np.arange(n, dtype=np.int64) * 10,
        wall_times=run.started_at + np.arange(n, dtype=np.float64),
        values=np.array(values, dtype=np.float64),
    )


# --------------------------------------------------------------------- smoothing


def test_smoothed_lines_keep_nan_and_inf_unsmoothed() -> None:
    run = make_run(1)
    raw = [1.0, math.nan, 2.0, math.inf, -math.inf, 3.0]
    (line,), _ = scalar_lines([points(run, raw)], colours={1: "#112233"}, weight=0.6, axis="step")
    assert math.isnan(line.smoothed[1])
    assert line.smoothed[3] == math.inf
    assert line.smoothed[4] == -math.inf
    # The average skips the non-finite points: 1, 2, 3 smoothed debiased.
    w = 0.6
    expected = [1.0, (w * (1 - w) * 1 + (1 - w) * 2) / (1 - w**2)]
    np.testing.assert_allclose(line.smoothed[[0, 2]], expected)
    assert line.non_finite == 3
    np.testing.assert_array_equal(line.raw, np.array(raw))


def test_smoothing_a_constant_series_keeps_it_constant() -> None:
    (line,), _ = scalar_lines(
        [points(make_run(1), [0.25] * 40)], colours={}, weight=0.999, axis="step"
    )
    np.testing.assert_allclose(line.smoothed, 0.25, rtol=1e-9)


def test_weight_zero_draws_the_raw_values() -> None:
    raw = [3.0, 1.0, 4.0, 1.0, 5.0]
    (line,), _ = scalar_lines([points(make_run(1), raw)], colours={}, weight=0.0, axis="step")
    assert line.smoothed.tolist() == raw


def test_smoothing_is_trainboards_debiased_average() -> None:
    from trainboard import smooth

    raw = list(np.sin(np.arange(50) / 3.0))
    (line,), _ = scalar_lines([points(make_run(1), raw)], colours={}, weight=0.8, axis="step")
    np.testing.assert_array_equal(line.smoothed, smooth(raw, 0.8))


# --------------------------------------------------------------------- time axis


def test_step_axis_is_the_steps() -> None:
    x = time_axis(np.array([0, 5, 9]), np.array([1.0, 2.0, 3.0]), "step")
    assert x.tolist() == [0, 5, 9]


def test_relative_axis_counts_from_the_run_start_in_the_unit() -> None:
    x = time_axis(np.array([0, 1]), np.array([1060.0, 1180.0]), "relative", start=1000.0, unit=60.0)
    np.testing.assert_allclose(x, [1.0, 3.0])


def test_wall_axis_is_local_time_of_the_browser_zone() -> None:
    epoch = pd.Timestamp("2024-07-01 12:00:00", tz="UTC").timestamp()
    x = time_axis(np.array([0]), np.array([epoch]), "wall", timezone="Europe/Berlin")
    assert pd.Timestamp(x[0]) == pd.Timestamp("2024-07-01 14:00:00")


def test_an_unknown_time_zone_falls_back_to_utc() -> None:
    epoch = pd.Timestamp("2024-07-01 12:00:00", tz="UTC").timestamp()
    x = time_axis(np.array([0]), np.array([epoch]), "wall", timezone="Mars/Olympus")
    assert pd.Timestamp(x[0]) == pd.Timestamp("2024-07-01 12:00:00")


def test_unknown_axis_is_rejected() -> None:
    with pytest.raises(ValueError, match="axis"):
        time_axis(np.array([0]), np.array([0.0]), "epoch")


@pytest.mark.parametrize(
    ("seconds", "unit"),
    [(0.0, "s"), (119.0, "s"), (600.0, "min"), (3 * 3600.0, "h"), (5 * 86400.0, "days")],
)
def test_relative_time_unit_follows_the_span(seconds: float, unit: str) -> None:
    assert relative_unit(seconds)[1] == unit


def test_relative_lines_share_one_unit_per_chart() -> None:
    short, long = make_run(1, started=0.0), make_run(2, started=0.0)
    series = [
        SeriesPoints(short, np.array([0, 1]), np.array([0.0, 30.0]), np.array([1.0, 2.0])),
        SeriesPoints(long, np.array([0, 1]), np.array([0.0, 1800.0]), np.array([1.0, 2.0])),
    ]
    lines, title = scalar_lines(series, colours={}, weight=0.0, axis="relative")
    assert title == "Relative time (min)"
    np.testing.assert_allclose(lines[0].x, [0.0, 0.5])
    np.testing.assert_allclose(lines[1].x, [0.0, 30.0])


# --------------------------------------------------------------------- y range


def test_ignoring_outliers_leaves_a_single_spike_out_of_range() -> None:
    values = np.concatenate([np.linspace(1.0, 2.0, 99), [1000.0]])
    found = outlier_range([values])
    assert found is not None
    lo, hi = found
    assert lo < 1.1
    assert 1.9 < hi < 10.0


def test_outlier_range_skips_non_finite_values() -> None:
    found = outlier_range([np.array([math.nan, 1.0, math.inf, 2.0, -math.inf])])
    assert found is not None
    assert all(math.isfinite(v) for v in found)


def test_outlier_range_of_a_constant_widens_around_it() -> None:
    found = outlier_range([np.full(10, 5.0)])
    assert found is not None
    lo, hi = found
    assert lo < 5.0 < hi


def test_outlier_range_on_a_log_axis_is_in_decades_of_positive_values() -> None:
    found = outlier_range([np.array([-1.0, 0.0, 10.0, 100.0, 1000.0])], log=True)
    assert found is not None
    lo, hi = found
    assert 0.5 < lo < 1.2
    assert 2.8 < hi < 3.5


def test_outlier_range_of_nothing_is_none() -> None:
    assert outlier_range([]) is None
    assert outlier_range([np.array([math.nan])]) is None


# --------------------------------------------------------------------- colours and tags


def test_run_colours_follow_run_ids_not_order_or_selection() -> None:
    runs = [make_run(7), make_run(3), make_run(5)]
    colours = run_colours(runs)
    assert colours == run_colours(list(reversed(runs)))
    assert len(set(colours.values())) == 3
    # A run starting later leaves everyone's colour alone.
    assert run_colours([*runs, make_run(9)]).items() >= colours.items()


def test_run_colours_cycle_through_the_palette() -> None:
    runs = [make_run(i) for i in range(len(PALETTE) + 1)]
    colours = run_colours(runs)
    assert colours[0] == colours[len(PALETTE)] == PALETTE[0]


def test_an_invalid_tag_filter_gives_a_message() -> None:
    pattern, error = compile_pattern("loss(")
    assert pattern is None
    assert error is not None
    assert "regular expression" in error


def test_tag_filter_searches_anywhere_in_the_tag() -> None:
    pattern, error = compile_pattern("loss$")
    assert error is None
    assert filter_tags(["loss", "test/loss", "loss/extra", "accuracy"], pattern) == [
        "loss",
        "test/loss",
    ]
    assert compile_pattern("  ") == (None, None)
    assert filter_tags(["b", "a", "a"], None) == ["a", "b"]


def test_tags_group_by_their_first_scope_top_level_first() -> None:
    groups = group_tags(["test/loss", "loss", "accuracy", "test/accuracy", "z/q/r"])
    assert groups == [
        ("", ["accuracy", "loss"]),
        ("test", ["test/accuracy", "test/loss"]),
        ("z", ["z/q/r"]),
    ]


def test_colour_helpers() -> None:
    assert with_alpha("#FF8000", 0.25) == "rgba(255,128,0,0.25)"
    assert blend("#000000", "#FFFFFF", 0.5) == "#808080"
    assert blend("#123456", "#FFFFFF", 0.0) == "#123456"
    with pytest.raises(ValueError, match="RRGGBB"):
        with_alpha("red", 1.0)


def test_css_string_cannot_be_broken_out_of() -> None:
    quoted = css_string('a"]</style><b>\\')
    assert quoted.startswith('"')
    assert quoted.endswith('"')
    inner = quoted[1:-1]
    assert '"' not in inner
    assert "<" not in inner
    assert ">" not in inner
    assert css_string("lr=0.5") == '"lr=0.5"'


# --------------------------------------------------------------------- CSV


def test_a_charts_csv_holds_every_drawn_point() -> None:
    a, b = make_run(1, "a"), make_run(2, "b")
    lines, _ = scalar_lines(
        [points(a, [1.0, 2.0]), points(b, [3.0, math.nan, 4.0])],
        colours={},
        weight=0.5,
        axis="step",
    )
    frame = lines_frame(lines)
    assert list(frame.columns) == ["run", "step", "wall_time", "value", "smoothed"]
    assert frame["run"].tolist() == ["a", "a", "b", "b", "b"]
    assert frame["step"].tolist() == [0, 10, 0, 10, 20]
    text = frame.to_csv(index=False)
    assert text.splitlines()[0] == "run,step,wall_time,value,smoothed"
    assert lines_frame([]).empty


def test_csv_file_names_are_safe() -> None:
    assert csv_file_name("test/loss") == "test_loss.csv"
    assert csv_file_name("../..") == "series.csv"


# --------------------------------------------------------------------- distributions


def test_bands_of_uniform_buckets_interpolate_linearly() -> None:
    frame = distribution_frame([make_histogram((1, 1, 1, 1), 0.0, 4.0, step=3, wall=9.0)])
    bands = frame.loc[0, list(BAND_COLUMNS)].to_numpy(dtype=float)
    expected = 4.0 * np.array([0, 668, 1587, 3085, 5000, 6915, 8413, 9332, 10000]) / 10000
    np.testing.assert_allclose(bands, expected)
    assert frame.loc[0, "step"] == 3
    assert frame.loc[0, "wall_time"] == 9.0


def test_bands_follow_the_mass_inside_buckets_and_end_at_min_and_max() -> None:
    # Everything in the upper of two buckets over [0, 2]: the mass lies in [1, 2].
    frame = distribution_frame([make_histogram((0, 4), 0.0, 2.0)])
    bands = frame.loc[0, list(BAND_COLUMNS)].to_numpy(dtype=float)
    assert bands[0] == 0.0
    assert bands[-1] == 2.0
    np.testing.assert_allclose(bands[MEDIAN_INDEX], 1.5)
    inner = np.array([668, 1587, 3085, 5000, 6915, 8413, 9332]) / 10000
    np.testing.assert_allclose(bands[1:-1], 1.0 + inner)
    assert np.all(np.diff(bands) >= 0)


def test_bands_of_a_constant_and_of_no_finite_values() -> None:
    frame = distribution_frame(
        [make_histogram((5,), 0.5, 0.5, step=0), make_histogram((), 0.0, 0.0, step=1)]
    )
    np.testing.assert_allclose(frame.loc[0, list(BAND_COLUMNS)].to_numpy(dtype=float), 0.5)
    assert frame.loc[1, list(BAND_COLUMNS)].isna().all()


def test_distribution_of_no_histograms_is_empty() -> None:
    frame = distribution_frame([])
    assert frame.empty
    assert list(frame.columns) == ["step", "wall_time", *BAND_COLUMNS]


# --------------------------------------------------------------------- histograms


@pytest.mark.parametrize(("n", "k"), [(100, 7), (31, 30), (2, 5), (10, 1), (1000, 50)])
def test_sampling_is_even_and_always_keeps_the_last(n: int, k: int) -> None:
    chosen = sample_evenly(n, k)
    assert chosen[-1] == n - 1
    assert len(chosen) == min(n, k)
    assert np.all(np.diff(chosen) > 0)
    if k >= 2:
        assert chosen[0] == 0
        gaps = np.diff(chosen)
        assert gaps.max() - gaps.min() <= 1


def test_sampling_nothing() -> None:
    assert sample_evenly(0, 5).size == 0


def test_rebinning_keeps_the_mass_inside_the_edges() -> None:
    h = make_histogram((2, 6, 2), 0.0, 3.0)
    counts = rebin(h, np.linspace(-1.0, 4.0, 11))
    assert counts.sum() == pytest.approx(10.0)
    # Bins of width 0.5: [1.0, 1.5) and [1.5, 2.0) split the middle bucket's 6.
    np.testing.assert_allclose(counts[4:6], [3.0, 3.0])
    assert counts[:2].sum() == 0
    assert counts[-2:].sum() == 0


def test_rebinning_a_constant_puts_it_in_one_bin() -> None:
    counts = rebin(make_histogram((7,), 0.3, 0.3), np.linspace(0.0, 1.0, 5))
    assert counts.tolist() == [0.0, 7.0, 0.0, 0.0]


def test_common_edges_cover_every_slice() -> None:
    edges = common_edges(
        [make_histogram((1,), -2.0, 1.0), make_histogram((1, 1), 0.0, 5.0)], bins=10
    )
    assert edges[0] == -2.0
    assert edges[-1] == 5.0
    assert len(edges) == 11
    single = common_edges([make_histogram((3,), 2.0, 2.0)], bins=4)
    assert single[0] < 2.0 < single[-1]


def test_histogram_slices_sample_steps_and_place_them_in_time() -> None:
    histograms = [
        make_histogram((1, 2, 1), float(-i - 1), float(i + 1), step=i * 10, wall=100.0 + i)
        for i in range(20)
    ]
    slices = histogram_slices(histograms, max_slices=6, bins=8, axis="relative", start=100.0)
    assert slices.steps[-1] == 190
    assert slices.steps[0] == 0
    assert len(slices.steps) == 6
    assert slices.counts.shape == (6, 8)
    np.testing.assert_allclose(slices.counts.sum(axis=1), 4.0)
    np.testing.assert_allclose(slices.time, (slices.wall_times - 100.0))
    assert len(slices.centres) == 8
    by_step = histogram_slices(histograms, max_slices=6, bins=8, axis="step")
    np.testing.assert_array_equal(by_step.time, by_step.steps)


def test_a_lone_outlier_does_not_squeeze_the_bulk_of_a_histogram_chart() -> None:
    values = np.append(np.random.default_rng(5).standard_normal(1_000_000), 1000.0)
    histogram = Histogram.at(summarize(values), step=7, wall_time=0.0)
    slices = histogram_slices([histogram], max_slices=5, bins=40, axis="step")
    # The chart spans the bulk (about ±3.1 for 1M normal values), not [-4.9, 1000]...
    assert -3.5 < slices.edges[0] < -2.5
    assert 2.5 < slices.edges[-1] < 3.5
    # ...so the bell takes many bins, highest in the middle...
    counts = slices.counts[-1]
    assert np.argmax(counts) in (19, 20)
    assert counts[20] > 10 * counts[1]
    # ...and what is left out is counted, the outlier named.
    assert slices.below[-1] + slices.above[-1] + counts.sum() == pytest.approx(1_000_001)
    assert 500 < slices.above[-1] < 1500
    assert "up to 1000" in slices.left_out
    assert slices.left_out.startswith("Step 7, outside the range shown:")


def test_a_histogram_chart_without_outliers_shows_the_whole_range() -> None:
    values = np.random.default_rng(6).standard_normal(100_000)
    histogram = Histogram.at(summarize(values), step=0, wall_time=0.0)
    slices = histogram_slices([histogram], max_slices=5, bins=40, axis="step")
    assert (slices.edges[0], slices.edges[-1]) == (values.min(), values.max())
    assert slices.left_out == ""


# --------------------------------------------------------------------- runs table


def test_runs_frame_has_params_and_last_values() -> None:
    runs = [make_run(1, "a", lr=0.1, opt="sgd"), make_run(2, "b", lr=1, opt={"m": 0.9})]
    frame = runs_frame(runs, {(1, "loss"): 0.5, (2, "acc"): 0.9}, ["acc", "loss"])
    assert frame["name"].tolist() == ["a", "b"]
    assert frame["param: lr"].tolist() == [0.1, 1.0]
    assert frame["param: opt"].tolist() == ["sgd", '{"m": 0.9}']
    assert frame["last: loss"].tolist()[0] == 0.5
    assert math.isnan(frame["last: loss"][1])
    assert frame["duration"].tolist() == [90.0, 90.0]


def test_runs_frame_filters_by_text_and_status() -> None:
    runs = [make_run(1, "alpha", lr=0.1), make_run(2, "beta", lr=0.5)]
    frame = runs_frame(runs, {}, [])
    assert filter_runs_frame(frame, "BET", [])["name"].tolist() == ["beta"]
    assert filter_runs_frame(frame, "0.1", [])["name"].tolist() == ["alpha"]
    assert filter_runs_frame(frame, "", ["running"]).empty
    assert len(filter_runs_frame(frame, "", [])) == 2


def test_runs_frame_lists_tags_and_the_filter_finds_them() -> None:
    tagged = dataclasses.replace(make_run(1, "alpha"), tags=("baseline", "ünï"))
    crashed = dataclasses.replace(make_run(2, "beta"), status="crashed")
    frame = runs_frame([tagged, crashed], {}, [])
    assert frame["tags"].tolist() == ["baseline, ünï", ""]
    assert frame["status"].tolist() == ["finished", "crashed"]
    assert filter_runs_frame(frame, "BASE", [])["name"].tolist() == ["alpha"]
    assert filter_runs_frame(frame, "", ["crashed"])["name"].tolist() == ["beta"]


def test_tags_typed_into_the_runs_page_are_split_on_commas() -> None:
    from trainboard_ui.views.runs import parse_tags

    assert parse_tags(' baseline, ,say "hi" ,ünï,') == ["baseline", 'say "hi"', "ünï"]
    assert parse_tags("  ") == []


# --------------------------------------------------------------------- URL state


def test_default_selection_makes_an_empty_query() -> None:
    assert state.to_query(state.Selection(), PAGES) == {}
    assert state.from_query({}, PAGES) == state.Selection()


def test_a_selection_round_trips_through_the_query() -> None:
    selection = state.Selection(
        page="histograms",
        experiment="digits",
        runs=("lr=0.5", "lr=50"),
        tags="^test/",
        smoothing=0.96,
        x_axis="wall",
        log_y=True,
        ignore_outliers=False,
        hist_mode="overlay",
        live=False,
        interval=30,
        focus="loss",
    )
    query = state.to_query(selection, PAGES)
    assert query["run"] == ["lr=0.5", "lr=50"]
    assert query["smooth"] == ["0.96"]
    assert state.from_query(query, PAGES) == selection


def test_no_run_selected_is_a_blank_run_param() -> None:
    query = state.to_query(state.Selection(runs=()), PAGES)
    assert query == {"run": [""]}
    assert state.from_query(query, PAGES).runs == ()
    assert state.from_query({}, PAGES).runs is None


@pytest.mark.parametrize(
    ("query", "field", "expected"),
    [
        ({"smooth": ["abc"]}, "smoothing", 0.6),
        ({"smooth": ["7"]}, "smoothing", 0.999),
        ({"smooth": ["-1"]}, "smoothing", 0.0),
        ({"smooth": ["nan"]}, "smoothing", 0.6),
        ({"page": ["graph"]}, "page", "scalars"),
        ({"x": ["epoch"]}, "x_axis", "step"),
        ({"logy": ["maybe"]}, "log_y", False),
        ({"logy": ["true"]}, "log_y", True),
        ({"every": ["12"]}, "interval", 10),
        ({"every": ["soon"]}, "interval", 10),
        ({"mode": ["3d"]}, "hist_mode", "offset"),
    ],
)
def test_nonsense_in_the_url_falls_back_to_defaults(
    query: dict[str, list[str]], field: str, expected: object
) -> None:
    assert getattr(state.from_query(query, PAGES), field) == expected


def test_selected_names_keep_the_experiments_order() -> None:
    names = ["c", "a", "b"]
    assert state.Selection().selected_names(names) == names
    assert state.Selection(runs=("b", "c", "gone")).selected_names(names) == ["c", "b"]


# --------------------------------------------------------------------- figures


def smoothed_lines(weight: float, n: int = 3) -> list[ScalarLine]:
    runs = [make_run(i, f"r{i}") for i in range(n)]
    lines, _ = scalar_lines(
        [points(r, [1.0, math.inf, 2.0, 3.0]) for r in runs],
        colours=run_colours(runs),
        weight=weight,
        axis="step",
    )
    return lines


def test_scalar_chart_draws_raw_faintly_behind_smoothed_webgl_lines() -> None:
    figure = charts.scalar_figure(smoothed_lines(0.6), title="loss", x_title="Step", smoothed=True)
    traces = figure.data
    assert [t.type for t in traces] == ["scattergl"] * 6
    assert [t.name for t in traces[:2]] == ["r0 (raw)", "r0"]
    assert traces[0].hoverinfo == "skip"
    assert "rgba" in traces[0].line.color
    assert "raw" in traces[1].hovertemplate
    assert "step" in traces[1].hovertemplate
    assert figure.layout.hovermode == "x unified"
    # Plotly cannot place an infinity: it becomes a gap.
    assert math.isnan(traces[1].y[1])


def test_scalar_chart_without_smoothing_has_one_line_per_run() -> None:
    figure = charts.scalar_figure(smoothed_lines(0.0), title="loss", x_title="Step", smoothed=False)
    assert [t.name for t in figure.data] == ["r0", "r1", "r2"]


def test_scalar_chart_axes() -> None:
    figure = charts.scalar_figure(
        smoothed_lines(0.6, 1),
        title="t",
        x_title="Step",
        smoothed=True,
        log_y=True,
        y_range=(0.0, 1.0),
    )
    assert figure.layout.yaxis.type == "log"
    assert tuple(figure.layout.yaxis.range) == (0.0, 1.0)


def test_distribution_chart_has_four_bands_and_a_median() -> None:
    frame = distribution_frame(
        [make_histogram((1, 2, 1), 0.0, float(i + 1), step=i) for i in range(5)]
    )
    figure = charts.distribution_figure(
        frame, frame["step"].to_numpy(), colour="#4477AA", title="r", x_title="Step"
    )
    assert [t.fill for t in figure.data] == ["toself"] * 4 + [None]
    assert figure.data[-1].name == "median"
    assert len(figure.data[0].x) == 10  # there and back


def brightness(colour: str) -> int:
    return sum(int(colour[i : i + 2], 16) for i in (1, 3, 5))


def test_histogram_chart_modes() -> None:
    histograms = [make_histogram((1, 3, 1), -1.0, 1.0 + i, step=i) for i in range(4)]
    slices = histogram_slices(histograms, max_slices=10, bins=5, axis="step")
    offset = charts.histogram_figure(
        slices, mode="offset", colour="#4477AA", title="r", time_title="Step"
    )
    overlay = charts.histogram_figure(
        slices, mode="overlay", colour="#4477AA", title="r", time_title="Step"
    )
    assert [t.name for t in offset.data] == ["step 0", "step 1", "step 2", "step 3"]
    assert all(t.fill == "toself" for t in offset.data)
    assert offset.layout.yaxis.autorange == "reversed"
    assert all(t.fill is None for t in overlay.data)
    # Older slices are lighter than newer ones.
    assert brightness(offset.data[0].fillcolor) > brightness(offset.data[-1].fillcolor)
    with pytest.raises(ValueError, match="mode"):
        charts.histogram_figure(slices, mode="3d", colour="#4477AA", title="r", time_title="")


def test_histogram_chart_labels_wall_time_with_dates() -> None:
    histograms = [make_histogram((1, 1), 0.0, 1.0, step=i, wall=1.7e9 + 60 * i) for i in range(3)]
    slices = histogram_slices(histograms, max_slices=10, bins=4, axis="wall")
    figure = charts.histogram_figure(
        slices, mode="offset", colour="#4477AA", title="r", time_title="Wall time", wall_time=True
    )
    assert figure.layout.yaxis.ticktext[0].startswith("2023-11-14")


def test_a_distribution_chart_is_cut_to_its_inner_bands_when_min_max_would_flatten_them() -> None:
    rng = np.random.default_rng(8)
    with_outlier = [
        Histogram.at(
            summarize(np.append(rng.standard_normal(50_000), 1000.0)), step=s, wall_time=0.0
        )
        for s in range(3)
    ]
    frame = distribution_frame(with_outlier)
    y_range = band_range(frame)
    assert y_range is not None
    assert -5.0 < y_range[0] < -2.0
    assert 2.0 < y_range[1] < 5.0
    figure = charts.distribution_figure(
        frame,
        frame["step"].to_numpy(),
        colour="#4477AA",
        title="t",
        x_title="Step",
        y_range=y_range,
    )
    assert list(figure.layout.yaxis.range) == list(y_range)
    plain = [Histogram.at(summarize(rng.standard_normal(50_000)), step=0, wall_time=0.0)]
    assert band_range(distribution_frame(plain)) is None
