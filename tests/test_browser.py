"""The dashboard in a real browser: `trainboard up` with the demo's data, every page
visited in Debian's Chromium through Playwright, a screenshot of each saved under
test-output/screenshots/, and no error on any page; then pages of many charts
(500 tags x 2 runs, 50 runs x 40 tags, 100 histogram tags) scrolled through screen
by screen, failing on any chart left blank and on any browser context dropped.

Skips when /usr/bin/chromium or Playwright is missing, unless
TRAINBOARD_REQUIRE_BROWSER=1 (set by .ci/run) turns the skip into a failure.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from up_process import UpProcess, alive, descendants

from bench._fill import Shape, fill
from bench._pages import (
    CARDS,
    CARDS_DRAWN,
    CHROMIUM,
    CHROMIUM_ARGS,
    SCREEN,
    VISIBLE_CARDS_DRAWN,
    VISIBLE_PLOTS_DRAWN,
    scroll_through,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

REQUIRE_BROWSER = os.environ.get("TRAINBOARD_REQUIRE_BROWSER") == "1"
SCREENSHOTS = Path(__file__).resolve().parent.parent / "test-output" / "screenshots"
TIMEOUT_MS = 60_000

# Counts the runs of the app's script that finished: Streamlit marks its root
# element with data-test-script-state (running, notRunning, ...).
COUNT_FINISHED_RUNS = """
window.__finishedRuns = 0;
new MutationObserver((records) => {
  for (const record of records) {
    const state = record.target.getAttribute("data-test-script-state");
    if (state === "notRunning" && record.oldValue !== "notRunning") window.__finishedRuns++;
  }
}).observe(document, {
  subtree: true, attributes: true, attributeOldValue: true,
  attributeFilter: ["data-test-script-state"],
});
"""
VISITED = {"Scalars", "Distributions", "Histograms", "Runs"}
IDLE_APP = '[data-testid="stApp"][data-test-script-state="notRunning"]'


def _browser_unavailable_reason() -> str | None:
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is not installed (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[dev]')"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    reason = _browser_unavailable_reason()
    if reason is not None:
        if REQUIRE_BROWSER:
            pytest.fail(f"TRAINBOARD_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=TIMEOUT_MS
        )
        try:
            yield chromium
        finally:
            chromium.close()


# ---------------------------------------------------------------------- helpers


class Dashboard:
    """One browser tab on the dashboard, with the checks every page gets."""

    def __init__(self, page: Page, url: str) -> None:
        self.page = page
        self.url = url
        self.script_errors: list[str] = []
        page.on("pageerror", lambda error: self.script_errors.append(str(error)))
        page.add_init_script(COUNT_FINISHED_RUNS)
        page.set_default_timeout(TIMEOUT_MS)

    def open(self, query: str) -> None:
        self.page.goto(f"{self.url}/?{query}")
        self.page.wait_for_selector(IDLE_APP)

    def act(self, action: Callable[[], object]) -> None:
        """Does ``action`` and waits until the app's script has run again after it
        and is idle."""
        self.page.evaluate("window.__finishedRuns = 0")
        action()
        self.page.wait_for_function("window.__finishedRuns > 0")
        self.page.wait_for_selector(IDLE_APP)

    def go_to(self, title: str) -> None:
        self.act(
            self.page.get_by_role("radiogroup", name="Page").get_by_role("radio", name=title).click
        )

    def wait_for_charts(self, at_least: int) -> list[list[str]]:
        """Waits until ``at_least`` Plotly charts are drawn; returns each chart's
        trace names."""
        self.page.wait_for_function(
            "n => document.querySelectorAll('.js-plotly-plot .main-svg').length >= n",
            arg=at_least,
        )
        names: list[list[str]] = self.page.evaluate(
            "() => [...document.querySelectorAll('.js-plotly-plot')]"
            ".map(chart => (chart.data || []).map(trace => String(trace.name)))"
        )
        return names

    def check(self, name: str, *, full_page: bool = True) -> None:
        """No exception box, no traceback, no error in the page's scripts; then a
        screenshot (of the whole page, or of the screen)."""
        exceptions = self.page.locator('[data-testid="stException"], .stException')
        assert exceptions.count() == 0, f"{name}: {exceptions.first.inner_text()}"
        text = self.page.inner_text("body")
        assert "Traceback" not in text, f"{name}: a traceback on the page:\n{text}"
        assert not self.script_errors, f"{name}: errors in the page's scripts: {self.script_errors}"
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page)


def expect_cards_drawn(board: Dashboard, runs: int, cards: int) -> None:
    """Waits until the first ``cards`` scalar cards are drawn, each with ``runs`` runs."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        board.page.wait_for_function(CARDS_DRAWN, arg=[cards, runs])
    except PlaywrightTimeout:
        pytest.fail(f"expected {cards} cards of {runs} runs: {board.page.evaluate(CARDS)}")


def url(board: Dashboard) -> str:
    """The address bar (Playwright's page.url misses history.replaceState)."""
    return str(board.page.evaluate("location.href"))


def expect_url(board: Dashboard, part: str, *, present: bool = True) -> None:
    """Waits until the address bar has ``part`` (or has it no more): a component's
    event reaches the URL in the script run it causes, which may end after another
    run the test saw finish."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        board.page.wait_for_function(
            "([part, present]) => location.href.includes(part) === present",
            arg=[part, present],
            timeout=15_000,
        )
    except PlaywrightTimeout:
        pytest.fail(f"expected {part!r} {'in' if present else 'not in'} {url(board)}")


# ---------------------------------------------------------------------- the test


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the Linux /proc table")
def test_every_page_shows_the_demo_without_errors(browser: Browser, tmp_path: Path) -> None:
    from trainboard.cli.demo import DEFAULT_LEARNING_RATES, run_demo, run_name

    runs = {run_name(lr) for lr in DEFAULT_LEARNING_RATES}
    with UpProcess(tmp_path) as up:
        children = descendants(up.pid)
        run_demo(up.server_address, steps=60)
        context = browser.new_context(viewport={"width": 1400, "height": 1600})
        try:
            board = Dashboard(context.new_page(), up.dashboard_url)
            _scalars(board, runs)
            _other_pages(board, runs)
            _pages_added_later(board)
        finally:
            context.close()
        assert up.interrupt() == 0, up.log()
    assert not [pid for pid in children if alive(pid)], "trainboard up left processes behind"


def _scalars(board: Dashboard, runs: set[str]) -> None:
    page = board.page
    board.open("live=0")  # no timed refreshes: each run of the script is one we caused
    # loss, accuracy, test/loss and test/accuracy, every run on each
    expect_cards_drawn(board, len(runs), cards=4)
    board.check("01-scalars")

    dropped = sorted(runs)[-1]
    board.act(page.get_by_role("button", name=f"Remove {dropped}").click)
    expect_cards_drawn(board, len(runs) - 1, cards=4)
    expect_url(board, "run=")
    board.check("02-scalars-two-runs")

    multiselect = page.locator('[data-testid="stMultiSelect"]')
    multiselect.locator("input").click()
    board.act(page.get_by_role("option", name=dropped).click)
    page.keyboard.press("Escape")
    expect_cards_drawn(board, len(runs), cards=4)

    # Smoothing is redrawn in the browser at once; the URL follows after a run.
    slider = page.get_by_role("slider", name="Smoothing")
    slider.focus()
    board.act(lambda: page.keyboard.press("End"))
    expect_url(board, "smooth=0.999")
    assert page.get_by_text("0.999", exact=True).count() == 1
    expect_cards_drawn(board, len(runs), cards=4)
    board.check("03-scalars-smoothing-0.999")

    board.act(page.get_by_role("button", name="Maximise").first.click)
    expect_url(board, "focus=")
    page.wait_for_function(f"() => ({CARDS})().length === 1")  # the maximised card alone
    expect_cards_drawn(board, len(runs), cards=1)
    board.check("04-scalars-maximised")
    board.act(page.get_by_role("button", name="Back to all charts").click)
    expect_cards_drawn(board, len(runs), cards=4)
    expect_url(board, "focus=", present=False)

    with page.expect_download() as download:
        page.get_by_role("button", name="CSV").first.click()
    lines = Path(download.value.path()).read_text(encoding="utf-8").splitlines()
    assert lines[0] == "run,step,wall_time,value,smoothed"
    assert {line.split(",")[0] for line in lines[1:]} == runs
    assert download.value.suggested_filename.endswith(".csv")

    board.act(page.get_by_role("button", name="Pin").nth(1).click)
    expect_url(board, "pin=")
    page.wait_for_function(f"() => ({CARDS})().length === 5")  # the pinned card again, first
    pinned = board.page.evaluate(CARDS)
    assert pinned[0]["tag"] == pinned[2]["tag"]


def _other_pages(board: Dashboard, runs: set[str]) -> None:
    page = board.page
    histogram_charts = 3 * len(runs)  # layer/W, layer/b and layer/y of each run
    board.go_to("Distributions")
    assert "page=distributions" in page.url
    board.wait_for_charts(histogram_charts)
    board.check("05-distributions")

    board.go_to("Histograms")
    board.wait_for_charts(histogram_charts)
    board.check("06-histograms-offset")
    modes = page.get_by_role("radiogroup", name="Histogram mode")
    board.act(modes.get_by_text("Overlay", exact=True).click)
    board.wait_for_charts(histogram_charts)
    board.check("07-histograms-overlay")

    board.go_to("Runs")
    page.locator('[data-testid="stDataFrame"]').wait_for()
    board.check("08-runs")


def _pages_added_later(board: Dashboard) -> None:
    """Any page of the navigation not visited above (the graph, once it is there)
    must at least open without errors."""
    titles = (
        board.page.get_by_role("radiogroup", name="Page").get_by_role("radio").all_inner_texts()
    )
    for number, title in enumerate(sorted(set(titles) - VISITED), start=9):
        board.go_to(title)
        board.check(f"{number:02d}-{title.lower()}")


# ---------------------------------------------------------------------- many charts


@pytest.mark.parametrize(
    "shape",
    [Shape(runs=2, tags=500, steps=200), Shape(runs=50, tags=40, steps=200)],
    ids=lambda s: f"{s.runs}-runs-{s.tags}-tags",
)
def test_scrolling_a_page_of_many_scalar_charts_draws_every_one(
    browser: Browser, tmp_path: Path, shape: Shape
) -> None:
    up = UpProcess(tmp_path)
    fill(up.db_url, shape, experiment="scale")
    context = browser.new_context(viewport=SCREEN)
    messages: list[str] = []
    name = f"10-scalars-{shape.runs}-runs-{shape.tags}-tags"
    try:
        with up:
            page = context.new_page()
            page.on("console", lambda message: messages.append(message.text))
            board = Dashboard(page, up.dashboard_url)
            board.open("exp=scale&live=0&size=S")
            scrolled = scroll_through(page, VISIBLE_CARDS_DRAWN, shape.runs)
            if scrolled.stuck:
                page.screenshot(path=str(SCREENSHOTS / f"{name}-blank.png"))
                pytest.fail(f"{scrolled.stuck}: {page.evaluate(CARDS)}")
            cards = page.evaluate(CARDS)
            assert len(cards) == shape.tags
            never = [c for c in cards if c["state"] not in ("drawn", "released")]
            assert not never, f"cards never drawn after {scrolled.screens} screens: {never[:3]}"
            assert scrolled.screens > 3
            board.check(name, full_page=False)
    finally:
        context.close()
    dropped = [m for m in messages if "WebGL" in m or "context" in m.lower()]
    assert not dropped, dropped[:5]


def test_scrolling_pages_of_100_histogram_tags_draws_every_chart(
    browser: Browser, tmp_path: Path
) -> None:
    shape = Shape(runs=1, tags=1, steps=10, histogram_tags=100, histogram_steps=5)
    up = UpProcess(tmp_path)
    fill(up.db_url, shape, experiment="layers")
    context = browser.new_context(viewport=SCREEN)
    messages: list[str] = []
    try:
        with up:
            page = context.new_page()
            page.on("console", lambda message: messages.append(message.text))
            board = Dashboard(page, up.dashboard_url)
            for slug in ("distributions", "histograms"):
                board.open(f"exp=layers&live=0&page={slug}")
                scrolled = scroll_through(page, VISIBLE_PLOTS_DRAWN, None)
                assert scrolled.stuck is None, f"{slug}: {scrolled.stuck}"
                assert page.locator(".js-plotly-plot").count() == shape.histogram_tags
                board.check(f"11-{slug}-100-tags", full_page=False)
    finally:
        context.close()
    dropped = [m for m in messages if "WebGL" in m]
    assert not dropped, dropped[:5]
