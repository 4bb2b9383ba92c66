"""What the browser benchmark and the browser tests both do in Chromium: find the
dashboard's chart cards (inside the cards component's shadow root), tell a drawn
chart from a blank one, and scroll a page of many charts screen by screen."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Page, ViewportSize

CHROMIUM = Path("/usr/bin/chromium")
# As root, without a GPU, on a machine whose network is closed: no sandbox, no GPU,
# and none of the background connections Chromium would make at start.
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
SCREEN: ViewportSize = {"width": 1400, "height": 1000}

# Every scalar card on the page: its tag, state (waiting, drawn, released, empty),
# runs drawn, redraw count, place on screen, and how many pixels of its canvas are
# coloured when it is on screen (a blank chart has none).
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
        const ctx = canvas.getContext("2d");
        const pixels = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
        for (let i = 0; i < pixels.length; i += 4 * 5) {
          const [r, g, b] = [pixels[i], pixels[i + 1], pixels[i + 2]];
          if (pixels[i + 3] > 0 && Math.max(r, g, b) - Math.min(r, g, b) > 60) painted++;
        }
      }
      out.push({ tag: card.dataset.tag, state: card.dataset.state,
                 runs: Number(card.dataset.runs || 0), draws: Number(card.dataset.draws || 0),
                 painted, top: box.top, bottom: box.bottom });
    }
  }
  return out;
}
"""
# True once at least one card is drawn with every one of `runs` runs.
FIRST_CARD_DRAWN = """
(runs) => {
  for (const host of document.querySelectorAll("*"))
    if (host.shadowRoot)
      for (const c of host.shadowRoot.querySelectorAll(".card"))
        if (c.dataset.state === "drawn" && Number(c.dataset.runs) === runs) return true;
  return false;
}
"""
# True once the first n cards are drawn, each with `runs` runs.
CARDS_DRAWN = """
([n, runs]) => {
  const cards = [];
  for (const host of document.querySelectorAll("*"))
    if (host.shadowRoot) cards.push(...host.shadowRoot.querySelectorAll(".card"));
  return cards.length >= n && cards.slice(0, n).every(
    (c) => c.dataset.state === "drawn" && Number(c.dataset.runs) === runs);
}
"""
# True once every card on screen is drawn with `runs` runs and coloured pixels.
VISIBLE_CARDS_DRAWN = f"""
(runs) => {{
  const visible = ({CARDS})().filter((c) => c.bottom > 0 && c.top < innerHeight);
  return visible.length > 0 && visible.every(
    (c) => c.state === "drawn" && c.runs === runs && c.painted > 0);
}}
"""
# True once every Plotly chart on screen has its traces drawn in its SVG.
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
# The cards on screen and how often each has drawn (cheap: no pixels read).
DRAWS_ON_SCREEN = """
() => {
  const out = new Map();
  for (const host of document.querySelectorAll("*")) {
    if (!host.shadowRoot) continue;
    for (const card of host.shadowRoot.querySelectorAll(".card")) {
      const box = card.getBoundingClientRect();
      if (box.bottom > 0 && box.top < innerHeight) out.set(card, Number(card.dataset.draws || 0));
    }
  }
  return out;
}
"""
# Moves the smoothing slider to `value` and resolves with the milliseconds until
# every card on screen has drawn again (the page's own clock).
SMOOTHING_REDRAW_MS = f"""
async (value) => {{
  const before = ({DRAWS_ON_SCREEN})();
  let slider = null;
  for (const host of document.querySelectorAll("*"))
    if (host.shadowRoot && !slider) slider = host.shadowRoot.querySelector('input[type="range"]');
  const start = performance.now();
  slider.value = String(value);
  slider.dispatchEvent(new Event("input"));
  for (;;) {{
    await new Promise((resolve) => requestAnimationFrame(resolve));
    if ([...before].every(([card, draws]) => Number(card.dataset.draws) > draws))
      return performance.now() - start;
  }}
}}
"""


# Scrolls the page's main scroll container (of the elements that scroll, the one
# with the most to scroll: the page's content, not the sidebar nor a card's table,
# which a mouse wheel over them would scroll instead) down by `share` of its
# height; resolves with whether it moved.
SCROLL_DOWN = """
(share) => {
  let main = document.scrollingElement;
  for (const el of document.querySelectorAll("*")) {
    if (!/(auto|scroll)/.test(getComputedStyle(el).overflowY)) continue;
    if (el.scrollHeight - el.clientHeight > main.scrollHeight - main.clientHeight) main = el;
  }
  const before = main.scrollTop;
  main.scrollTop = before + main.clientHeight * share;
  return main.scrollTop !== before;
}
"""


@dataclass(frozen=True)
class Scrolled:
    """A page scrolled to its bottom: screens seen, seconds taken, and whether every
    screen was drawn in time (if not, ``stuck`` says where)."""

    screens: int
    seconds: float
    stuck: str | None = None


def scroll_through(
    page: Page, ready: str, arg: object, *, timeout_ms: int = 30_000, max_screens: int = 1000
) -> Scrolled:
    """Scrolls the page screen by screen to the bottom; on each screen waits until
    ``ready`` holds (or gives up after ``timeout_ms``, saying where)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    start = time.perf_counter()
    for screen in range(1, max_screens + 1):
        try:
            page.wait_for_function(ready, arg=arg, timeout=timeout_ms)
        except PlaywrightTimeout:
            return Scrolled(screen, time.perf_counter() - start, f"screen {screen} not drawn")
        if not page.evaluate(SCROLL_DOWN, 0.85):
            return Scrolled(screen, time.perf_counter() - start)
    return Scrolled(max_screens, time.perf_counter() - start, "no bottom found")
