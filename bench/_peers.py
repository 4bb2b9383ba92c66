"""The peers of the browser benchmark, TensorBoard and Trackio, on the same stored data.

For each peer: a writer of the values :mod:`bench._fill` gives Trainboard, in the
peer's own storage (not timed); the command that starts its dashboard with default
settings, and its page's URL; and a readiness check for ``page.wait_for_function``
that turns true once the page's first chart shows every run drawn. Then
:func:`time_launch` (launch to first chart), and two optional measures on an open
page: the smoothing redraw (:func:`smoothing_redraw_ms`) and the charts drawn after
scrolling a long page to its bottom (:func:`scroll_census`).

The peers' packages are imported only inside the functions that need them, so this
module imports without them: the TensorBoard writer needs tensorboard or
tensorboardX here; the Trackio writer runs a child interpreter that has trackio;
the dashboards run under the ``python`` their commands are given.

Both peers draw their lines on a ``<canvas>`` (TensorBoard: WebGL through three.js,
SwiftShader in a headless Chromium without a GPU; Trackio: Vega's 2D-canvas
renderer), so their checks read the canvas's pixels: a run counts as drawn when
its colour, as the page itself shows it in a legend or table, covers at least
:data:`MIN_RUN_PIXELS` opaque pixels of the chart. Each check also handles the
peer's SVG renderer (TensorBoard's ``?forceSVG=true``, or no WebGL; Vega's
``renderer: "svg"``).
"""

from __future__ import annotations

import importlib
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from bench._common import stop_group
from bench._fill import Shape, curve, run_name, tag_name

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, ViewportSize

#: Where the child interpreter that writes Trackio's storage imports ``bench`` from.
REPO_ROOT = Path(__file__).resolve().parent.parent
#: Opaque pixels of a run's colour that make the run count as drawn in a chart.
MIN_RUN_PIXELS = 20
#: How long :func:`time_launch` waits for the server, then for the chart.
READY_TIMEOUT_S = 120.0


# ---------------------------------------------------------------- TensorBoard data


def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC32C_TABLE = _crc32c_table()


def _masked_crc32c(data: bytes) -> int:
    """TFRecord's checksum: CRC-32C (Castagnoli), rotated and offset ("masked")."""
    crc = 0xFFFFFFFF
    table = _CRC32C_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    crc ^= 0xFFFFFFFF
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _tfrecord(data: bytes) -> bytes:
    """One TFRecord: length, its checksum, the data, its checksum (little-endian)."""
    header = struct.pack("<Q", len(data))
    return (
        header
        + struct.pack("<I", _masked_crc32c(header))
        + data
        + struct.pack("<I", _masked_crc32c(data))
    )


def _event_protos() -> tuple[ModuleType, ModuleType]:
    """``event_pb2`` and ``summary_pb2`` from tensorboard, else from tensorboardX."""
    for package in ("tensorboard.compat.proto", "tensorboardX.proto"):
        try:
            return (
                importlib.import_module(f"{package}.event_pb2"),
                importlib.import_module(f"{package}.summary_pb2"),
            )
        except ImportError:
            continue
    raise ImportError("writing TensorBoard logs needs tensorboard or tensorboardX")


def write_tensorboard_logs(logdir: Path, shape: Shape) -> None:
    """Writes ``shape`` as TensorBoard event files, ``logdir/<run_name(i)>/events.out
    .tfevents...``: one Event per step (wall time ``t0 + step * 0.01``) whose Summary
    holds every tag's value as a ``simple_value``, as ``add_scalar`` writes them.

    Event protos from tensorboard or tensorboardX; records framed here (10 runs x
    5 tags x 10,000 steps: about 4 s)."""
    event_pb2, summary_pb2 = _event_protos()
    steps = np.arange(shape.steps, dtype=np.int64)
    t0 = time.time() - shape.steps * 0.01
    wall_times = (t0 + steps * 0.01).tolist()
    tags = [tag_name(tag) for tag in range(shape.tags)]
    for run in range(shape.runs):
        run_dir = logdir / run_name(run)
        run_dir.mkdir(parents=True, exist_ok=True)
        values = np.stack([curve(run, tag, steps) for tag in range(shape.tags)], axis=1)
        first = event_pb2.Event(wall_time=t0, file_version="brain.Event:2")
        records = [_tfrecord(first.SerializeToString())]
        for step, (wall_time, row) in enumerate(zip(wall_times, values.tolist(), strict=True)):
            summary = summary_pb2.Summary(
                value=[
                    summary_pb2.Summary.Value(tag=tag, simple_value=value)
                    for tag, value in zip(tags, row, strict=True)
                ]
            )
            event = event_pb2.Event(wall_time=wall_time, step=step, summary=summary)
            records.append(_tfrecord(event.SerializeToString()))
        name = f"events.out.tfevents.{int(t0):010d}.bench.{os.getpid()}.{run}"
        (run_dir / name).write_bytes(b"".join(records))


# ---------------------------------------------------------------- Trackio data

#: Trackio reads ``TRACKIO_DIR`` once, when it is imported, so its writer runs in a
#: child interpreter started with the right environment.
_TRACKIO_WRITER = """
import sys
sys.path.insert(0, sys.argv[1])
from bench._peers import _write_trackio_here
_write_trackio_here(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
"""


def write_trackio_logs(
    trackio_dir: Path, shape: Shape, project: str, *, python: str | None = None
) -> None:
    """Writes ``shape`` into Trackio's storage under ``trackio_dir`` (the SQLite file
    ``<project>.db``) through ``SQLiteStorage.bulk_log``, the call ``trackio.log``
    ends in: one row per step with every tag, run id = run name, the run's params as
    its config. Runs in a child ``python`` (default: this interpreter), which must
    have trackio (10 runs x 5 tags x 10,000 steps: about 4 s)."""
    trackio_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "TRACKIO_DIR": str(trackio_dir), "TRACKIO_STORAGE_MODE": "sqlite"}
    argv = [python or sys.executable, "-c", _TRACKIO_WRITER, str(REPO_ROOT), project]
    argv += [str(shape.runs), str(shape.tags), str(shape.steps)]
    subprocess.run(argv, env=env, check=True)


def _write_trackio_here(project: str, runs: int, tags: int, steps: int) -> None:
    """The child's half of :func:`write_trackio_logs` (``TRACKIO_DIR`` is set)."""
    from datetime import UTC, datetime

    sqlite_storage: Any = importlib.import_module("trackio.sqlite_storage")
    step_array = np.arange(steps, dtype=np.int64)
    t0 = time.time() - steps * 0.01
    timestamps = [
        datetime.fromtimestamp(t, UTC).isoformat() for t in (t0 + step_array * 0.01).tolist()
    ]
    names = [tag_name(tag) for tag in range(tags)]
    for run in range(runs):
        values = np.stack([curve(run, tag, step_array) for tag in range(tags)], axis=1)
        sqlite_storage.SQLiteStorage.bulk_log(
            project=project,
            run=run_name(run),
            run_id=run_name(run),
            metrics_list=[dict(zip(names, row, strict=True)) for row in values.tolist()],
            steps=step_array.tolist(),
            timestamps=timestamps,
            config={"lr": 10.0 ** -(1 + run % 4), "seed": run},
        )


# ---------------------------------------------------------------- launchers


def tensorboard_command(python: str, logdir: Path, port: int) -> tuple[list[str], dict[str, str]]:
    """``python -m tensorboard.main --logdir`` with default settings (so the Rust data
    server, ``--load_fast=auto``) on 127.0.0.1:``port``: argv, and extra env (none)."""
    argv = [python, "-m", "tensorboard.main", "--logdir", str(logdir)]
    return [*argv, "--port", str(port), "--host", "127.0.0.1"], {}


def tensorboard_url(port: int) -> str:
    """TensorBoard's page; its default dashboard is Time Series, scalars first. It
    answers 200 as soon as the server is up, so it is the health URL too."""
    return f"http://127.0.0.1:{port}/"


_TRACKIO_SHOW = (
    "import sys, trackio; trackio.show(project=sys.argv[1], server_port=int(sys.argv[2]),"
    " host='127.0.0.1', open_browser=False, block_thread=True)"
)


def trackio_command(
    python: str, trackio_dir: Path, project: str, port: int
) -> tuple[list[str], dict[str, str]]:
    """Trackio's dashboard for ``project`` on 127.0.0.1:``port``: ``trackio.show``, which
    is what ``trackio show --project`` runs, but without opening a web browser (the
    CLI has no port flag nor a way to skip the browser). Argv, and extra env:
    ``TRACKIO_DIR``, and no share tunnel."""
    env = {"TRACKIO_DIR": str(trackio_dir), "GRADIO_SHARE": "false"}
    return [python, "-c", _TRACKIO_SHOW, project, str(port)], env


def trackio_url(port: int, project: str) -> str:
    """Trackio's page for ``project`` (its Metrics tab)."""
    return f"http://127.0.0.1:{port}/?project={project}"


def trackio_url_health(port: int) -> str:
    """A Trackio URL that answers 200 once its server is up (``trackio.show`` itself
    polls it before it reports the dashboard launched)."""
    return f"http://127.0.0.1:{port}/version"


# ---------------------------------------------------------------- readiness checks

# `colours drawn` in a canvas: draws the chart's canvas (2D, or WebGL: its drawing
# buffer is readable) on a scratch 2D canvas and counts, for each distinct wanted CSS
# colour, the opaque pixels within 12 per channel of it. Lines drawn faded (the raw lines
# under the smoothed ones; alpha < 200) do not count.
_COLOUR_COUNTS = """
const colourCounts = (canvas, allColours) => {
  const colours = [...new Set(allColours)];
  const w = canvas.width, h = canvas.height;
  if (!w || !h) return colours.map(() => 0);
  const scratch = document.createElement("canvas");
  scratch.width = w;
  scratch.height = h;
  const ctx = scratch.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(canvas, 0, 0);
  const px = ctx.getImageData(0, 0, w, h).data;
  const want = colours.map((c) => (c.match(/[\\d.]+/g) || []).slice(0, 3).map(Number));
  const counts = want.map(() => 0);
  for (let i = 0; i < px.length; i += 4) {
    if (px[i + 3] < 200) continue;
    for (let k = 0; k < want.length; k++) {
      const c = want[k];
      if (Math.abs(px[i] - c[0]) <= 12 && Math.abs(px[i + 1] - c[1]) <= 12
          && Math.abs(px[i + 2] - c[2]) <= 12) { counts[k]++; break; }
    }
  }
  return counts;
};
"""

# TensorBoard 2.x, Time Series dashboard. The first chart is the first
# <scalar-card> of the page (the Pinned section above it holds no card). Its
# <line-chart .series-view> holds a <canvas> (WebGL renderer, the default where
# WebGL works) or an <svg> of <path>s (SVG renderer). The runs a card has data for
# are the rows of its data table (<scalar-card-data-table>, on by default: "Enable
# step selection and data table"), each with its colour swatch (.row-circle span).
# True when that table lists at least n runs and every listed colour covers
# MIN_RUN_PIXELS opaque canvas pixels (SVG: n opaque paths with a long `d`).
# TensorBoard's palette repeats after 7 colours, so runs 0 and 7 (1 and 8, 2 and 9)
# are checked together; a card's runs all arrive in one response (one timeSeries
# request per tag, all runs), so they are drawn in the same frame.
TENSORBOARD_ALL_RUNS_DRAWN = f"""
(n) => {{
  {_COLOUR_COUNTS}
  const card = document.querySelector("scalar-card");
  const view = card && card.querySelector("line-chart .series-view");
  if (!view) return false;
  const canvas = view.querySelector(":scope > canvas");
  if (!canvas) {{
    let drawn = 0;
    for (const path of view.querySelectorAll(":scope > svg path"))
      if (path.style.opacity === "1" && (path.getAttribute("d") || "").length > 20) drawn++;
    return drawn >= n;
  }}
  const swatches = card.querySelectorAll(
    "scalar-card-data-table tb-data-table-content-row .row-circle span");
  if (swatches.length < n) return false;
  const colours = [...swatches].map((s) => getComputedStyle(s).backgroundColor);
  return colourCounts(canvas, colours).every((count) => count >= {MIN_RUN_PIXELS});
}}
"""

# Trackio (0.4x, its own Svelte front-end, charts by Vega). The first chart is the
# first .plot-container of the Metrics page (data-metric = the first tag); Vega
# draws it on <canvas class="marks"> (or <svg class="marks"> with its SVG renderer).
# The runs are the checked rows of the sidebar's run list (.checkbox-item: checkbox,
# .color-dot, name); the chart's own legend shows only six of them ("+4 more").
# True when at least n runs are checked and every one's colour covers
# MIN_RUN_PIXELS opaque canvas pixels (SVG: is the stroke of a path). Trackio's
# palette gives each of the first 10 runs its own colour.
TRACKIO_ALL_RUNS_DRAWN = f"""
(n) => {{
  {_COLOUR_COUNTS}
  const plot = document.querySelector(".plot-container");
  if (!plot) return false;
  const colours = [...document.querySelectorAll(".checkbox-item")]
    .filter((item) => item.querySelector("input") && item.querySelector("input").checked)
    .map((item) => item.querySelector(".color-dot"))
    .filter(Boolean)
    .map((dot) => getComputedStyle(dot).backgroundColor);
  if (colours.length < n) return false;
  const canvas = plot.querySelector("canvas.marks");
  if (canvas) return colourCounts(canvas, colours).every((count) => count >= {MIN_RUN_PIXELS});
  const svg = plot.querySelector("svg.marks");
  if (!svg) return false;
  const strokes = new Set([...svg.querySelectorAll("path")]
    .filter((p) => (p.getAttribute("d") || "").length > 20)
    .map((p) => getComputedStyle(p).stroke));
  return colours.every((c) => strokes.has(c));
}}
"""


# ---------------------------------------------------------------- launch


def _answers(url: str) -> bool:
    """Whether ``url`` answers over HTTP (any status) right now."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=1.0):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def time_launch(
    browser: Browser,
    command: list[str],
    env: dict[str, str],
    url: str,
    ready_js: str,
    runs: int,
    health_url: str | None = None,
    *,
    viewport: ViewportSize | None = None,
) -> float:
    """Seconds from starting ``command`` (with ``env`` added to this environment; in its
    own process group; output to a log file in a temporary directory) to ``ready_js``
    turning true for ``runs`` in a fresh browser context: the clock starts just
    before the start; ``health_url`` (default ``url``) is polled until it answers
    (any HTTP status); then a new context (``viewport``, default 1400 x 1000, the
    benchmark's) and page go to ``url`` and wait, polling every 20 ms, 120 s at most.
    The process group is always stopped (SIGTERM, SIGKILL after 10 s); the log is
    kept, and named in the error, only when something failed. Raises
    ``RuntimeError`` when the command exits or never answers."""
    logs = Path(tempfile.mkdtemp(prefix="peer-launch-"))
    log = logs / "server.log"
    deadline = time.monotonic() + READY_TIMEOUT_S
    ok = False
    with log.open("wb") as out:
        start = time.perf_counter()
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
            start_new_session=True,
        )
    try:
        while not _answers(health_url or url):
            if process.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{command[:3]} did not come up; {log}:\n{tail}")
            time.sleep(0.02)
        context = browser.new_context(viewport=viewport or {"width": 1400, "height": 1000})
        try:
            page = context.new_page()
            page.goto(url, wait_until="domcontentloaded")
            page.wait_for_function(ready_js, arg=runs, timeout=READY_TIMEOUT_S * 1e3, polling=20)
            elapsed = time.perf_counter() - start
        finally:
            context.close()
        ok = True
        return elapsed
    finally:
        stop_group(process)
        if ok:
            shutil.rmtree(logs, ignore_errors=True)


# ---------------------------------------------------------------- on an open page


@dataclass(frozen=True)
class PeerPage:
    """Where a peer's page keeps its charts and its smoothing control (CSS selectors,
    and a JavaScript function that names the tag a chart card shows)."""

    cards: str  #: one element per chart card
    chart: str  #: the drawing area inside a card (holds its canvas or svg)
    key: str  #: JS ``(card) => tag``
    smoothing: str  #: the smoothing slider, an ``<input type="range">``


#: TensorBoard's Time Series cards, and the Settings pane's smoothing slider
#: (0..0.99, default 0.6; the pane is open by default).
TENSORBOARD_PAGE = PeerPage(
    cards="scalar-card",
    chart="line-chart .series-view",
    key="(card) => (card.querySelector('tb-truncated-path.tag') || {}).title",
    smoothing="metrics-dashboard-settings .scalars-smoothing input[type=range]",
)
#: Trackio's Metrics page plots, and the sidebar's "Smoothing Factor" slider
#: (0..100, default 10).
TRACKIO_PAGE = PeerPage(
    cards=".plot-container",
    chart=".plot-chart-wrap",
    key="(card) => card.dataset.metric",
    smoothing=".slider-wrap input[type=range]",
)

# `picture(chart)`: a fingerprint of what a chart shows (canvas: a hash of its pixels;
# SVG: its paths' `d`) and how many of its pixels (paths) are opaque and coloured,
# which a blank or grey-only chart has none of.
_PICTURE = """
const picture = (chart) => {
  const canvas = chart.querySelector("canvas");
  if (!canvas) {
    const ds = [...chart.querySelectorAll("svg path")].map((p) => p.getAttribute("d") || "");
    return { print: ds.join("|"), coloured: ds.filter((d) => d.length > 20).length * 1000 };
  }
  if (!canvas.width || !canvas.height) return { print: "empty", coloured: 0 };
  const s = document.createElement("canvas");
  s.width = canvas.width;
  s.height = canvas.height;
  const ctx = s.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(canvas, 0, 0);
  const px = ctx.getImageData(0, 0, s.width, s.height).data;
  let h = 0, coloured = 0;
  for (let i = 0; i < px.length; i += 4) {
    h = (Math.imul(h, 31) + px[i] + 7 * px[i + 1] + 13 * px[i + 2] + 17 * px[i + 3]) | 0;
    const hi = Math.max(px[i], px[i + 1], px[i + 2]), lo = Math.min(px[i], px[i + 1], px[i + 2]);
    if (px[i + 3] >= 200 && hi - lo > 40) coloured++;
  }
  return { print: h, coloured };
};
const onScreen = (el) => {
  const box = el.getBoundingClientRect();
  return box.width > 0 && box.bottom > 0 && box.top < innerHeight
    && box.right > 0 && box.left < innerWidth;
};
"""

# Moves the smoothing slider to `value` as a user's drag ends (value, then `input`
# and `change` events) and returns the ms (page clock) until every chart on screen
# has drawn again: its picture differs from before and is coloured (a chart
# cleared on the way to its new picture does not count).
_SMOOTHING_REDRAW = f"""
async ([cards, chart, slider, value]) => {{
  {_PICTURE}
  const charts = [...document.querySelectorAll(cards)]
    .map((card) => card.querySelector(chart)).filter((c) => c && onScreen(c));
  const before = charts.map((c) => picture(c).print);
  const input = document.querySelector(slider);
  const start = performance.now();
  input.value = String(value);
  input.dispatchEvent(new Event("input", {{ bubbles: true }}));
  input.dispatchEvent(new Event("change", {{ bubbles: true }}));
  const waiting = new Set(charts.keys());
  while (waiting.size) {{
    await new Promise((done) => requestAnimationFrame(done));
    for (const k of [...waiting]) {{
      const now = picture(charts[k]);
      if (now.print !== before[k] && now.coloured >= {MIN_RUN_PIXELS}) waiting.delete(k);
    }}
    if (performance.now() - start > 60000) throw new Error("charts did not redraw");
  }}
  return {{ ms: performance.now() - start, charts: charts.length }};
}}
"""


def smoothing_redraw_ms(page: Page, peer: PeerPage, value: float) -> tuple[float, int]:
    """On ``page``, its charts drawn, moves the smoothing slider to ``value`` (in the
    slider's own scale: TensorBoard 0..0.99, Trackio 0..100) and returns the ms, by
    the page's clock, until every chart on screen has drawn again, and how many
    charts that was. The check (one pixel read per waiting chart per frame, about
    1 ms each) is inside the figure."""
    result = page.evaluate(_SMOOTHING_REDRAW, [peer.cards, peer.chart, peer.smoothing, value])
    return float(result["ms"]), int(result["charts"])


# ---------------------------------------------------------------- scrolling a long page

# The cards on screen, each as [tag, drawn]: drawn when its chart's picture has
# MIN_RUN_PIXELS coloured pixels; and how many cards the page has built.
_ON_SCREEN = f"""
([cards, chart]) => {{
  {_PICTURE}
  const name = KEY_FUNCTION;
  const all = [...document.querySelectorAll(cards)];
  const seen = all.filter(onScreen).map((card) => {{
    const c = card.querySelector(chart);
    return [String(name(card)), Boolean(c) && picture(c).coloured >= {MIN_RUN_PIXELS}];
  }});
  return {{ seen, built: all.length }};
}}
"""

# Scrolls the element under (x, y) that scrolls (else the document) by `dy`;
# returns [scrollTop, scrollTop + clientHeight, scrollHeight] after.
_SCROLL = """
([x, y, dy]) => {
  let el = document.elementFromPoint(x, y);
  while (el && !(el.scrollHeight > el.clientHeight + 1
                 && /(auto|scroll)/.test(getComputedStyle(el).overflowY))) el = el.parentElement;
  el = el || document.scrollingElement;
  el.scrollBy(0, dy);
  return [el.scrollTop, el.scrollTop + el.clientHeight, el.scrollHeight];
}
"""


@dataclass(frozen=True)
class Census:
    """What :func:`scroll_census` saw on a long page of charts."""

    drawn: int  #: tags whose chart was drawn while on screen
    seen: int  #: tags whose card came on screen
    built: int  #: most cards the page held at once
    screens: int  #: screens scrolled to reach the bottom


def scroll_census(
    page: Page, peer: PeerPage, *, pause_s: float = 1.0, max_screens: int = 1000
) -> Census:
    """Scrolls ``page`` (loaded) to its bottom screen by screen (90 % of the viewport
    at a time, scrolling the scroller under the middle of the page as a wheel would),
    giving each screen ``pause_s`` to draw, and notes on every screen the cards on
    screen and whether their chart is drawn (coloured pixels). A page that builds
    cards lazily, or in pages behind a "next" button, reaches the bottom having
    seen fewer cards than there are tags: compare ``seen`` with the tag count."""
    size = page.viewport_size or {"width": 1280, "height": 720}
    x, y = size["width"] * 0.6, size["height"] * 0.6
    on_screen = _ON_SCREEN.replace("KEY_FUNCTION", peer.key)
    drawn: dict[str, bool] = {}
    built = 0
    screens = 0
    while True:
        page.wait_for_timeout(pause_s * 1e3)
        found = page.evaluate(on_screen, [peer.cards, peer.chart])
        built = max(built, int(found["built"]))
        for tag, ok in found["seen"]:
            drawn[tag] = drawn.get(tag, False) or bool(ok)
        _, bottom, height = page.evaluate(_SCROLL, [x, y, 0])
        if bottom >= height - 2 or screens >= max_screens:
            break
        page.evaluate(_SCROLL, [x, y, size["height"] * 0.9])
        screens += 1
    return Census(sum(drawn.values()), len(drawn), built, screens)
