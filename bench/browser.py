"""The dashboard in a real browser (Chromium through Playwright), side by side with
TensorBoard and Trackio on the same stored data.

What a user waits for, measured in the browser:

(a) Launch: from starting the viewer on data already stored (``trainboard up``;
    ``tensorboard --logdir`` with default settings; Trackio's dashboard) to the first
    chart that shows every run, 10 runs x 5 tags x 10,000 steps. Each viewer writes
    the same values in its own storage first (not timed). Rounds interleave the three
    viewers; a fresh browser context each time (nothing cached). Target: Trainboard
    at least 3x sooner than TensorBoard, and sooner than Trackio.
(b) Navigate: on a running dashboard over 20 runs x 10 tags x 100,000 steps, from a
    click on "Scalars" (coming from the Runs page) to the first chart drawn with all
    20 runs. Target: under 1 s. Opening the page's URL in a new tab is shown too.
(c) Smoothing: on that page, moving the smoothing slider until every chart on screen
    has drawn again (the page's own clock). Target: under 200 ms.
Scale: pages of 500 tags x 2 runs and 50 runs x 40 tags scrolled screen by screen
    to the bottom: every chart must be drawn (coloured pixels on its canvas) on every
    screen, and the browser must drop no context.

The peers need their own packages: ``make bench-browser`` installs them in
``.venv-bench`` (``pip install tensorboard trackio``), never in ``.venv``. Without
them the peers' rows say so and only Trainboard's own targets are checked
(``--strict`` then fails, as a skipped comparison is not a met one).

Run from the repository root::

    python -m bench.browser             # full sizes, 3 rounds
    python -m bench.browser --quick     # small sizes, a smoke test
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bench import _peers
from bench._common import (
    Verdicts,
    free_port,
    interleave,
    make_parser,
    median,
    paired_ratio,
    print_header,
    print_table,
    rounds_for,
    stop_group,
    timing_rows,
)
from bench._fill import Shape, fill
from bench._pages import (
    CARDS,
    CHROMIUM,
    CHROMIUM_ARGS,
    FIRST_CARD_DRAWN,
    SCREEN,
    SMOOTHING_REDRAW_MS,
    VISIBLE_CARDS_DRAWN,
    scroll_through,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Page

EXPERIMENT = "bench"
LAUNCH = Shape(runs=10, tags=5, steps=10_000)
NAVIGATE = Shape(runs=20, tags=10, steps=100_000)
SCALE = (Shape(runs=2, tags=500, steps=1_000), Shape(runs=50, tags=40, steps=1_000))
QUICK_LAUNCH = Shape(runs=3, tags=2, steps=1_000)
QUICK_NAVIGATE = Shape(runs=4, tags=4, steps=5_000)
QUICK_SCALE = (Shape(runs=2, tags=40, steps=100),)

LAUNCH_TARGET_VS_TENSORBOARD = 3.0
NAVIGATE_TARGET_S = 1.0
SMOOTHING_TARGET_MS = 200.0
READY_TIMEOUT_MS = 120_000


# ---------------------------------------------------------------------- processes


@contextlib.contextmanager
def started(command: Sequence[str], log: Path, env: dict[str, str] | None = None) -> Iterator[None]:
    """A child in its own process group, stopped whole on leaving (SIGTERM, then
    SIGKILL after 10 s)."""
    with open(log, "wb") as out:
        process = subprocess.Popen(
            list(command),
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            process_group=0,
        )
    try:
        yield
    finally:
        stop_group(process)


def wait_http(url: str, timeout: float = 120.0) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout
    while True:
        try:
            with opener.open(url, timeout=1.0):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def trainboard_up(python: str, db_url: str, port: int, ui_port: int) -> list[str]:
    return [
        *(python, "-m", "trainboard", "up", "--db", db_url),
        *("--port", str(port), "--ui-port", str(ui_port)),
    ]


@dataclass(frozen=True)
class Viewer:
    """One viewer to launch on stored data: its command and extra environment for a
    port, its health and page addresses, how to tell that its first chart shows every
    run, and (for the peers) where its charts and smoothing slider are."""

    name: str
    command: Callable[[int], tuple[list[str], dict[str, str]]]
    health: Callable[[int], str]
    page: Callable[[int], str]
    ready: str
    peer: _peers.PeerPage | None = None


def launch_seconds(browser: Browser, viewer: Viewer, runs: int) -> float:
    """Seconds from starting the viewer to its first chart showing every run, in a
    fresh browser context (nothing cached)."""
    port = free_port()
    argv, env = viewer.command(port)
    return _peers.time_launch(
        browser,
        argv,
        env,
        viewer.page(port),
        viewer.ready,
        runs,
        viewer.health(port),
        viewport=SCREEN,
    )


@contextlib.contextmanager
def opened(browser: Browser, viewer: Viewer, runs: int, logs: Path) -> Iterator[Page]:
    """The viewer running, its page open with the first chart showing every run."""
    port = free_port()
    argv, env = viewer.command(port)
    with started(argv, logs / f"{viewer.name}-{port}.log", env):
        wait_http(viewer.health(port))
        context = browser.new_context(viewport=SCREEN)
        try:
            page = context.new_page()
            page.goto(viewer.page(port))
            page.wait_for_function(viewer.ready, arg=runs, timeout=READY_TIMEOUT_MS, polling=20)
            yield page
        finally:
            context.close()


def smoothing_seconds(page: Page, viewer: Viewer, value: float, runs: int) -> float:
    """Seconds from moving the viewer's smoothing slider to ``value`` (0 to 1) until
    every chart on screen has drawn again, by the page's own clock."""
    if viewer.peer is None:
        page.wait_for_function(VISIBLE_CARDS_DRAWN, arg=runs, timeout=READY_TIMEOUT_MS)
        return float(page.evaluate(SMOOTHING_REDRAW_MS, value)) / 1e3
    scale = 100.0 if viewer.peer is _peers.TRACKIO_PAGE else 1.0  # Trackio: 0 to 100
    ms, _ = _peers.smoothing_redraw_ms(page, viewer.peer, value * scale)
    return ms / 1e3


def trainboard_viewer(db_url: str) -> Viewer:
    python = sys.executable
    return Viewer(
        "trainboard",
        lambda port: (trainboard_up(python, db_url, free_port(), port), {}),
        lambda port: f"http://127.0.0.1:{port}/_stcore/health",
        lambda port: f"http://127.0.0.1:{port}/?exp={EXPERIMENT}&live=0",
        FIRST_CARD_DRAWN,
    )


# ---------------------------------------------------------------------- peers


def peers(workdir: Path, shape: Shape) -> tuple[list[Viewer], list[str]]:
    """TensorBoard and Trackio on the same data, where their packages are
    installed; and a reason for each one that is not."""
    viewers: list[Viewer] = []
    missing: list[str] = []
    python = sys.executable
    if importlib.util.find_spec("tensorboard") is None:
        missing.append("TensorBoard (pip install tensorboard)")
    else:
        logdir = workdir / "tensorboard"
        _peers.write_tensorboard_logs(logdir, shape)
        viewers.append(
            Viewer(
                "tensorboard",
                lambda port: _peers.tensorboard_command(python, logdir, port),
                _peers.tensorboard_url,
                _peers.tensorboard_url,
                _peers.TENSORBOARD_ALL_RUNS_DRAWN,
                _peers.TENSORBOARD_PAGE,
            )
        )
    if importlib.util.find_spec("trackio") is None:
        missing.append("Trackio (pip install trackio)")
    else:
        trackio_dir = workdir / "trackio"
        _peers.write_trackio_logs(trackio_dir, shape, EXPERIMENT, python=python)
        viewers.append(
            Viewer(
                "trackio",
                lambda port: _peers.trackio_command(python, trackio_dir, EXPERIMENT, port),
                _peers.trackio_url_health,
                lambda port: _peers.trackio_url(port, EXPERIMENT),
                _peers.TRACKIO_ALL_RUNS_DRAWN,
                _peers.TRACKIO_PAGE,
            )
        )
    return viewers, missing


# ---------------------------------------------------------------------- cases


def launch_case(browser: Browser, workdir: Path, shape: Shape, rounds: int, v: Verdicts) -> None:
    """(a) launch to the first chart, and (c) smoothing on the same page, for every
    viewer on the same data."""
    db_url = f"sqlite:///{workdir / 'launch.db'}"
    fill(db_url, shape, experiment=EXPERIMENT)
    others, missing = peers(workdir, shape)
    viewers = [trainboard_viewer(db_url), *others]
    launches = interleave(
        rounds,
        [(w.name, functools.partial(launch_seconds, browser, w, shape.runs)) for w in viewers],
    )
    logs = workdir / "logs"
    logs.mkdir(exist_ok=True)
    smoothing: dict[str, list[float]] = {}
    for viewer in viewers:
        with opened(browser, viewer, shape.runs, logs) as page:
            smoothing[viewer.name] = [
                smoothing_seconds(page, viewer, value, shape.runs)
                for value in (0.3, 0.9, 0.5, 0.7, 0.6)[: max(rounds, 3)]
            ]
    print(f"(a) launch to the first chart showing all {shape.runs} runs ({shape.label})")
    print_table(["viewer", "median", "min", "max"], timing_rows(launches, lambda s: f"{s:.2f} s"))
    print("(c) smoothing slider moved to every chart on screen drawn again (same data)")
    print_table(
        ["viewer", "median", "min", "max"], timing_rows(smoothing, lambda s: f"{s * 1e3:.0f} ms")
    )
    ours = launches["trainboard"]
    for viewer in others:
        theirs = launches[viewer.name]
        target = LAUNCH_TARGET_VS_TENSORBOARD if viewer.name == "tensorboard" else 1.0
        v.ratio(
            f"(a) launch, {viewer.name} / trainboard",
            paired_ratio(theirs, ours),
            target,
            of_medians=median(theirs) / median(ours),
        )
        mine, theirs = smoothing["trainboard"], smoothing[viewer.name]
        v.ratio(
            f"(c) smoothing, {viewer.name} / trainboard",
            median(theirs) / median(mine),
            1.0,
            of_medians=median(theirs) / median(mine),
        )
    for reason in missing:
        v.skip(f"comparison with {reason.split(' ')[0]}", f"{reason} is not installed")


def navigate_case(browser: Browser, workdir: Path, shape: Shape, rounds: int, v: Verdicts) -> None:
    db_url = f"sqlite:///{workdir / 'navigate.db'}"
    fill(db_url, shape, experiment=EXPERIMENT)
    port, ui_port = free_port(), free_port()
    base = f"http://127.0.0.1:{ui_port}/?exp={EXPERIMENT}&live=0"
    ours = trainboard_viewer(db_url)
    clicks: list[float] = []
    opens: list[float] = []
    smoothing: list[float] = []
    with started(trainboard_up(sys.executable, db_url, port, ui_port), workdir / "nav.log"):
        wait_http(f"http://127.0.0.1:{ui_port}/_stcore/health")
        time.sleep(1.0)  # the server's and dashboard's imports finish
        for number in range(rounds):
            context = browser.new_context(viewport=SCREEN)
            try:
                page = context.new_page()
                clicks.append(_click_to_scalars(page, base, shape.runs))
                value = 0.9 if number % 2 else 0.3
                smoothing.append(smoothing_seconds(page, ours, value, shape.runs))
                fresh = context.new_page()
                start = time.perf_counter()
                fresh.goto(base)
                fresh.wait_for_function(FIRST_CARD_DRAWN, arg=shape.runs, timeout=READY_TIMEOUT_MS)
                opens.append(time.perf_counter() - start)
            finally:
                context.close()
    print(f"(b) navigate, (c) smoothing ({shape.label})")
    rows = timing_rows(
        {
            "(b) click on Scalars to the first chart": clicks,
            "(b) open the Scalars URL in a new tab to the first chart": opens,
            "(c) smoothing slider to every chart on screen redrawn": smoothing,
        },
        lambda s: f"{s * 1e3:.0f} ms",
    )
    print_table(["case", "median", "min", "max"], rows)
    v.check(
        "(b) navigate to the first chart",
        median(clicks) < NAVIGATE_TARGET_S,
        f"median {median(clicks) * 1e3:.0f} ms (target < {NAVIGATE_TARGET_S * 1e3:.0f} ms)",
    )
    v.check(
        "(c) smoothing redraw",
        median(smoothing) < SMOOTHING_TARGET_MS / 1e3,
        f"median {median(smoothing) * 1e3:.0f} ms (target < {SMOOTHING_TARGET_MS:.0f} ms)",
    )


def _click_to_scalars(page: Page, base: str, runs: int) -> float:
    """Seconds from the click on "Scalars" (coming from the Runs page) to the first
    chart drawn with every run, by the page's own clock."""
    page.goto(f"{base}&page=runs")
    page.locator('[data-testid="stDataFrame"]').wait_for(timeout=READY_TIMEOUT_MS)
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]')
    scalars = page.get_by_role("radiogroup", name="Page").get_by_role("radio", name="Scalars")
    scalars.evaluate("(radio) => { window.__clicked = performance.now(); radio.click(); }")
    page.wait_for_function(FIRST_CARD_DRAWN, arg=runs, timeout=READY_TIMEOUT_MS)
    drawn = page.evaluate(
        "performance.getEntriesByName('trainboard:first-chart')[0].startTime - window.__clicked"
    )
    return float(drawn) / 1e3


def scale_case(browser: Browser, workdir: Path, shapes: Sequence[Shape], v: Verdicts) -> None:
    """Pages of many charts scrolled to the bottom, every chart drawn on every screen;
    the peers on the first shape, counted the same way (charts on screen with coloured
    pixels)."""
    rows = []
    for number, shape in enumerate(shapes):
        db_url = f"sqlite:///{workdir / f'scale-{number}.db'}"
        fill(db_url, shape, experiment=EXPERIMENT)
        port, ui_port = free_port(), free_port()
        messages: list[str] = []
        with started(trainboard_up(sys.executable, db_url, port, ui_port), workdir / "scale.log"):
            wait_http(f"http://127.0.0.1:{ui_port}/_stcore/health")
            context = browser.new_context(viewport=SCREEN)
            try:
                page = context.new_page()
                page.on("console", functools.partial(_keep_text, messages))
                page.goto(f"http://127.0.0.1:{ui_port}/?exp={EXPERIMENT}&live=0&size=S")
                scrolled = scroll_through(page, VISIBLE_CARDS_DRAWN, shape.runs)
                cards = page.evaluate(CARDS)
            finally:
                context.close()
        drawn = sum(1 for c in cards if c["state"] in ("drawn", "released"))
        dropped = sum(1 for m in messages if "WebGL" in m)
        rows.append(
            [
                f"trainboard, {shape.label}",
                f"{drawn}/{shape.tags}",
                str(scrolled.screens),
                f"{scrolled.seconds:.1f} s",
                str(dropped),
            ]
        )
        v.check(
            f"scale: every chart drawn, {shape.runs} runs x {shape.tags} tags",
            scrolled.stuck is None and drawn == shape.tags and dropped == 0,
            f"{drawn}/{shape.tags} drawn over {scrolled.screens} screens"
            + (f"; {scrolled.stuck}" if scrolled.stuck else ""),
        )
    shape = shapes[0]
    others, _ = peers(workdir / "scale-peers", shape)
    for viewer in others:
        assert viewer.peer is not None
        messages = []
        start = time.perf_counter()
        with opened(browser, viewer, shape.runs, workdir) as page:
            page.on("console", functools.partial(_keep_text, messages))
            census = _peers.scroll_census(page, viewer.peer, pause_s=1.0)
        dropped = sum(1 for m in messages if "WebGL" in m)
        rows.append(
            [
                f"{viewer.name}, {shape.label}",
                f"{census.drawn}/{shape.tags} ({census.built} built)",
                str(census.screens),
                f"{time.perf_counter() - start:.1f} s",
                str(dropped),
            ]
        )
    print("Scale: pages of many charts scrolled screen by screen to the bottom")
    print_table(["viewer, data", "charts drawn", "screens", "time", "contexts lost"], rows)


def _keep_text(into: list[str], message: ConsoleMessage) -> None:
    into.append(message.text)


# ---------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser(__doc__, default_rounds=3)
    args = parser.parse_args(argv)
    rounds = rounds_for(args, 3)
    launch = QUICK_LAUNCH if args.quick else LAUNCH
    navigate = QUICK_NAVIGATE if args.quick else NAVIGATE
    scale = QUICK_SCALE if args.quick else SCALE
    print_header(
        "the dashboard in Chromium, beside TensorBoard and Trackio",
        rounds=rounds,
        quick=args.quick,
        sizes=f"launch {launch.label}; navigate {navigate.label}",
    )
    if not CHROMIUM.exists():
        print(f"{CHROMIUM} is missing: apt-get install chromium", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    verdicts = Verdicts()
    with tempfile.TemporaryDirectory(prefix="bench-browser-") as tmp, sync_playwright() as pw:
        workdir = Path(tmp)
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            launch_case(browser, workdir, launch, rounds, verdicts)
            navigate_case(browser, workdir, navigate, rounds, verdicts)
            scale_case(browser, workdir, scale, verdicts)
        finally:
            browser.close()
    return verdicts.exit_code(args.strict)


if __name__ == "__main__":
    sys.exit(main())
