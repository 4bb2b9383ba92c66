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

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
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
# Every scalar card on the page (they live in the cards component's shadow root):
# its tag, state (waiting, drawn, released, empty), runs drawn, place on screen and
# how many pixels of its canvas are coloured (a blank chart has none).
CARDS = """
() => {
  const out = [];
  for (const host of document.querySelectorAll("*")) {
    if (!host.shadowRoot) continue;
    for (const card of host.shadowRoot.querySelectorAll(".card")) {
      const box = card.getBoundingClientRect();
      const canvas = card.querySelector("canvas");
      let painted = 0;
      if (canvas && card.dataset.state === "drawn" && box.bottom > 0 && box.top < innerHeight) {
        const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
        for (let i = 0; i < pixels.length; i += 4 * 5) {
          const [r, g, b] = [pixels[i], pixels[i + 1], pixels[i + 2]];
          if (pixels[i + 3] > 0 && Math.max(r, g, b) - Math.min(r, g, b) > 60) painted++;
        }
      }
      out.push({ tag: card.dataset.tag, state: card.dataset.state,
                 runs: Number(card.dataset.runs || 0), painted, top: box.top, bottom: box.bottom });
    }
  }
  return out;
}
"""
# True once at least n cards are drawn, each with `runs` runs.
CARDS_DRAWN = """
([n, runs]) => {
  const cards = [];
  for (const host of document.querySelectorAll("*"))
    if (host.shadowRoot) cards.push(...host.shadowRoot.querySelectorAll(".card"));
  return cards.length >= n && cards.slice(0, n).every(
    (c) => c.dataset.state === "drawn" && Number(c.dataset.runs) === runs);
}
"""
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


# ---------------------------------------------------------------------- the test


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the Linux /proc table")
def test_every_page_shows_the_demo_without_errors(browser: Browser, tmp_path: Path) -> None:
    from trainboard.demo import DEFAULT_LEARNING_RATES, run_demo, run_name

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
    assert "run=" in url(board), "the run selection is not in the URL"
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
    assert "smooth=0.999" in url(board)
    assert page.get_by_text("0.999", exact=True).count() == 1
    expect_cards_drawn(board, len(runs), cards=4)
    board.check("03-scalars-smoothing-0.999")

    board.act(page.get_by_role("button", name="Maximise").first.click)
    expect_cards_drawn(board, len(runs), cards=1)
    assert len(board.page.evaluate(CARDS)) == 1
    assert "focus=" in url(board)
    board.check("04-scalars-maximised")
    board.act(page.get_by_role("button", name="Back to all charts").click)
    expect_cards_drawn(board, len(runs), cards=4)
    assert "focus=" not in url(board)

    board.act(page.get_by_role("button", name="Pin").nth(1).click)
    assert "pin=" in url(board)
    pinned = board.page.evaluate(CARDS)
    assert len(pinned) == 5  # the pinned card again, first
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

# The viewport's cards, each drawn with every run and coloured pixels on its canvas.
VISIBLE_CARDS_DRAWN = f"""
(runs) => {{
  const visible = ({CARDS})().filter((c) => c.bottom > 0 && c.top < innerHeight);
  return visible.length > 0 && visible.every(
    (c) => c.state === "drawn" && c.runs === runs && c.painted > 0);
}}
"""
# The viewport's Plotly charts, each with its traces drawn in its SVG.
VISIBLE_PLOTS_DRAWN = """
() => {
  const visible = [...document.querySelectorAll(".js-plotly-plot")].filter((p) => {
    const box = p.getBoundingClientRect();
    return box.bottom > 0 && box.top < innerHeight;
  });
  return visible.length > 0 && visible.every(
    (p) => (p.data || []).length > 0 && p.querySelectorAll(".main-svg .trace").length > 0);
}
"""
SCREEN = {"width": 1400, "height": 1000}


def scroll_through(board: Dashboard, ready: str, arg: object, name: str) -> int:
    """Scrolls the page screen by screen to the bottom; on each screen waits until
    ``ready`` holds (fails the test if it does not). Returns the screens seen."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page = board.page
    page.mouse.move(SCREEN["width"] * 0.6, SCREEN["height"] / 2)
    screens = 0
    last = None
    while True:
        screens += 1
        try:
            page.wait_for_function(ready, arg=arg, timeout=30_000)
        except PlaywrightTimeout:
            page.screenshot(path=str(SCREENSHOTS / f"{name}-blank.png"))
            pytest.fail(f"{name}: screen {screens} not fully drawn: {page.evaluate(CARDS)}")
        position = page.evaluate(
            "() => [...document.querySelectorAll('*')].map((e) => e.scrollTop).join()"
        )
        if position == last:
            return screens
        last = position
        page.mouse.wheel(0, SCREEN["height"] * 0.85)
        page.wait_for_timeout(50)


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
    warnings: list[str] = []
    try:
        with up:
            page = context.new_page()
            page.on("console", lambda message: warnings.append(message.text))
            board = Dashboard(page, up.dashboard_url)
            board.open("exp=scale&live=0&size=S")
            screens = scroll_through(
                board, VISIBLE_CARDS_DRAWN, shape.runs, f"scalars-{shape.runs}x{shape.tags}"
            )
            cards = page.evaluate(CARDS)
            assert len(cards) == shape.tags
            assert {c["state"] for c in cards} <= {"drawn", "released"}, "a card never drawn"
            assert screens > 3
            board.check(f"10-scalars-{shape.runs}-runs-{shape.tags}-tags", full_page=False)
    finally:
        context.close()
    dropped = [w for w in warnings if "WebGL" in w or "context" in w.lower()]
    assert not dropped, dropped[:5]


def test_scrolling_pages_of_100_histogram_tags_draws_every_chart(
    browser: Browser, tmp_path: Path
) -> None:
    shape = Shape(runs=1, tags=1, steps=10, histogram_tags=100, histogram_steps=5)
    up = UpProcess(tmp_path)
    fill(up.db_url, shape, experiment="layers")
    context = browser.new_context(viewport=SCREEN)
    warnings: list[str] = []
    try:
        with up:
            page = context.new_page()
            page.on("console", lambda message: warnings.append(message.text))
            board = Dashboard(page, up.dashboard_url)
            for slug in ("distributions", "histograms"):
                board.open(f"exp=layers&live=0&page={slug}")
                scroll_through(board, VISIBLE_PLOTS_DRAWN, None, slug)
                assert page.locator(".js-plotly-plot").count() == shape.histogram_tags
                board.check(f"11-{slug}-100-tags", full_page=False)
    finally:
        context.close()
    dropped = [w for w in warnings if "WebGL" in w]
    assert not dropped, dropped[:5]
