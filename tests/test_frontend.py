"""The chart cards' front-end (ui/frontend/) and what Python hands it.

- The build shipped in the package (ui/trainboard_ui/static/) matches its sources.
- The browser's smoothing gives trainboard.smooth's values bit for bit, and its
  y-range ignoring outliers is the Python one; run in Node on the same source files
  the build bundles.
- Payloads decode in JavaScript to what Python packed; a feed sends whole series
  once, then only appended points (live refresh), and nothing when nothing changed.
"""

from __future__ import annotations

import base64
import json
import math
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from trainboard import smooth
from trainboard_ui.cards import (
    FRONTEND_SOURCE,
    Feed,
    RunInfo,
    built_hash,
    pack,
    source_hash,
    unpack,
)
from trainboard_ui.live import CachedScalars
from trainboard_ui.scalar_data import outlier_range

SRC = FRONTEND_SOURCE / "src"
REQUIRE_BROWSER = os.environ.get("TRAINBOARD_REQUIRE_BROWSER") == "1"


def test_the_shipped_build_matches_its_sources() -> None:
    assert built_hash() == source_hash(), (
        "ui/trainboard_ui/static/ is stale: rebuild it with `make frontend` and commit it"
    )


def test_the_build_hash_changes_with_any_source(tmp_path: Path) -> None:
    copy = tmp_path / "frontend"
    shutil.copytree(FRONTEND_SOURCE, copy, ignore=shutil.ignore_patterns("node_modules"))
    before = source_hash(copy)
    (copy / "src" / "cards.css").write_text("/* changed */", encoding="utf-8")
    assert source_hash(copy) != before


# ---------------------------------------------------------------------- in Node


def node(script: str, payload: Any) -> Any:
    """Runs an ES module ``script`` in Node with ``payload`` (JSON, its last
    argument) as ``input``; returns what it printed, as JSON."""
    executable = shutil.which("node")
    if executable is None:
        if REQUIRE_BROWSER:
            pytest.fail("node is not installed (it runs the front-end's sources)")
        pytest.skip("node is not installed")
    prelude = (
        f"import {{ smooth }} from {json.dumps((SRC / 'smooth.js').as_uri())};\n"
        "import { decode, outlierRange, segments, extents, formatValue } from "
        f"{json.dumps((SRC / 'cards.js').as_uri())};\n"
        "const input = JSON.parse(process.argv.at(-1));\n"
        "const f64 = (b64) =>\n"
        "  new Float64Array(new Uint8Array(Buffer.from(b64, 'base64')).buffer);\n"
        "const b64 = (a) => Buffer.from(Float64Array.from(a).buffer).toString('base64');\n"
    )
    done = subprocess.run(
        [executable, "--input-type=module", "-e", prelude + script, json.dumps(payload)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def encode(values: np.ndarray) -> str:
    return base64.b64encode(np.asarray(values, dtype="<f8").tobytes()).decode()


def decode(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype="<f8")


def series_cases() -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    noisy = np.exp(-np.arange(2000) / 300) + 0.05 * rng.standard_normal(2000)
    odd = rng.standard_normal(50)
    odd[[3, 10, 11, 40]] = [math.nan, math.inf, -math.inf, math.nan]
    return [
        noisy,
        odd,
        np.full(500, 2.5),
        np.array([math.nan, 1.0, 2.0]),
        np.array([1e300, -1e300, 1e-300]),
        np.empty(0),
    ]


@pytest.mark.parametrize("weight", [0.0, 0.1, 0.6, 0.96, 0.999])
def test_browser_smoothing_is_trainboard_smooth_bit_for_bit(weight: float) -> None:
    cases = series_cases()
    out = node(
        "console.log(JSON.stringify(input.series.map((s) => b64(smooth(f64(s), input.w)))));",
        {"series": [encode(c) for c in cases], "w": weight},
    )
    for case, smoothed in zip(cases, out, strict=True):
        expected = smooth(case, weight)
        got = decode(smoothed)
        assert got.tobytes() == expected.tobytes(), (case[:5], got[:5], expected[:5])


def test_browser_smoothing_keeps_a_constant_series_constant_and_passes_non_finite() -> None:
    (constant, odd) = node(
        "console.log(JSON.stringify(input.map((s) => Array.from(smooth(f64(s), 0.99), String))));",
        [encode(np.full(50, 2.5)), encode(np.array([1.0, math.nan, math.inf, -math.inf, 1.0]))],
    )
    np.testing.assert_allclose([float(v) for v in constant], 2.5, rtol=1e-12)
    assert odd[1:4] == ["NaN", "Infinity", "-Infinity"]
    np.testing.assert_allclose([float(odd[0]), float(odd[4])], [1.0, 1.0])


@pytest.mark.parametrize("log", [False, True])
def test_browser_outlier_range_is_the_python_one(log: bool) -> None:
    rng = np.random.default_rng(3)
    arrays = [rng.lognormal(size=300), np.append(rng.lognormal(size=100), [1e6, math.nan])]
    got = node(
        "console.log(JSON.stringify(outlierRange(input.a.map(f64), input.log)));",
        {"a": [encode(a) for a in arrays], "log": log},
    )
    expected = outlier_range(arrays, log=log)
    assert expected is not None
    if log:  # Python gives log10 bounds, as Plotly took them; uPlot takes values
        expected = (10 ** expected[0], 10 ** expected[1])
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_non_finite_values_break_a_line_into_segments() -> None:
    out = node(
        "const y = f64(input.y);\n"
        "console.log(JSON.stringify([segments(y, false), segments(y, true)]));",
        {"y": encode([1.0, math.nan, 3.0, -2.0, 5.0, math.inf])},
    )
    assert out == [[[0, 1], [2, 5]], [[0, 1], [2, 3], [4, 5]]]  # log axis: -2 is a gap too


def test_axes_span_every_run_and_both_raw_and_smoothed_values() -> None:
    out = node(
        "const lines = input.map(([x, y, s]) =>\n"
        "  ({ x: f64(x), values: f64(y), smoothed: f64(s) }));\n"
        "console.log(JSON.stringify(extents(lines, false)));",
        [
            [encode([0, 10, 20]), encode([1.0, math.nan, 3.0]), encode([1.0, 1.5, 2.0])],
            [encode([5, 30]), encode([math.nan, math.nan]), encode([math.nan, math.nan])],
        ],
    )
    assert out == [[0, 30], [1, 3], [1, 2], [None, None], [None, None]]


def test_a_payload_decodes_in_javascript_to_what_python_packed() -> None:
    header = {"feed": "f", "seq": 3, "base": 2, "updates": [{"n": 2}]}
    columns = [np.array([0.0, 1.0]), np.array([math.nan, math.inf])]
    payload = pack(header, columns)
    out = node(
        "const { header, blob } = decode(new Uint8Array(Buffer.from(input, 'base64')));\n"
        "console.log(JSON.stringify([header, Array.from(blob, String)]));",
        base64.b64encode(payload).decode(),
    )
    assert out == [header, ["0", "1", "NaN", "Infinity"]]


def test_values_are_shown_with_five_significant_digits() -> None:
    out = node(
        "console.log(JSON.stringify(input.map(formatValue)));",
        [0.123456789, 12345678.0, 0.0, 1e-7],
    )
    assert out == ["0.12346", "1.2346e+7", "0", "1e-7"]


# ---------------------------------------------------------------------- feeds


def cached(steps: range, generation: int) -> CachedScalars:
    s = np.arange(steps.start, steps.stop, dtype=np.float64)
    return CachedScalars(steps=s, wall_times=s + 1000.0, values=s * 2, generation=generation)


def payload_of(feed: Feed, series: dict[tuple[int, str], CachedScalars]) -> bytes:
    return feed.payload(
        settings={"smoothing": 0.6},
        runs=[RunInfo(1, "a", "#4477AA", 0.0)],
        groups=[("", ["loss"])],
        pinned=[],
        focus=None,
        loaded=["loss"],
        series=series,
    )


def test_a_feed_sends_a_series_whole_once_then_only_the_points_appended() -> None:
    feed = Feed()
    header, blob = unpack(payload_of(feed, {(1, "loss"): cached(range(100), 7)}))
    assert header["base"] is None
    assert header["seq"] == 1
    assert header["updates"] == [{"run": 1, "tag": "loss", "mode": "full", "n": 100}]
    assert blob.size == 300
    assert header["loaded"] == ["loss"]

    header, blob = unpack(payload_of(feed, {(1, "loss"): cached(range(103), 7)}))
    assert header["base"] == 1
    assert header["seq"] == 2
    assert header["updates"] == [{"run": 1, "tag": "loss", "mode": "append", "n": 3}]
    np.testing.assert_array_equal(blob, [100, 101, 102, 1100, 1101, 1102, 200, 202, 204])


def test_a_feed_sends_the_same_bytes_when_nothing_changed() -> None:
    feed = Feed()
    first = payload_of(feed, {(1, "loss"): cached(range(10), 1)})
    assert payload_of(feed, {(1, "loss"): cached(range(10), 1)}) is first


def test_a_series_read_whole_again_is_sent_whole() -> None:
    feed = Feed()
    payload_of(feed, {(1, "loss"): cached(range(10), 1)})
    header, _ = unpack(payload_of(feed, {(1, "loss"): cached(range(20), 2)}))
    assert header["updates"][0]["mode"] == "full"


def test_a_reset_feed_starts_afresh_under_a_new_id() -> None:
    feed = Feed()
    old, _ = unpack(payload_of(feed, {(1, "loss"): cached(range(10), 1)}))
    feed.reset()
    new, _ = unpack(payload_of(feed, {(1, "loss"): cached(range(10), 1)}))
    assert new["feed"] != old["feed"]
    assert new["base"] is None
    assert new["updates"][0]["mode"] == "full"


def test_a_feed_loads_the_first_cards_and_those_asked_for() -> None:
    feed = Feed()
    tags = [f"t{i}" for i in range(20)]
    assert feed.to_load(tags, 3) == ["t0", "t1", "t2"]
    feed.want(["t15", "t2", 5])  # type: ignore[list-item]  # what a browser may send
    assert feed.to_load(tags, 3) == ["t0", "t1", "t2", "t15"]


def test_the_wheel_ships_the_built_front_end(tmp_path: Path) -> None:
    """What `pip install trainboard` users run needs no Node: the build is inside."""
    root = FRONTEND_SOURCE.parents[1]
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(root)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("trainboard-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ("cards.js", "cards.css", "LICENSE-uplot"):
        assert f"trainboard_ui/static/{name}" in names
    assert not any("node_modules" in n or n.startswith("frontend/") for n in names)
