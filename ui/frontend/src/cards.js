// The dashboard's scalar cards: one Streamlit component (components v2, mounted in
// the page itself, no iframe) draws every chart of a page on 2D canvases with uPlot.
//
// Why this shape:
// - One canvas per chart and no WebGL: browsers keep about 16 WebGL contexts and
//   drop the oldest beyond that, which left charts blank. 2D canvases have no limit.
// - Lazy: a card only gets a chart while it is on or near the screen (an
//   IntersectionObserver on the page's scroll container), and only asks the server
//   for its data when it first comes near. Charts far off screen are destroyed.
// - Smoothing, the hover table, the y-range and CSV are computed here from the
//   points already held, so moving the smoothing slider redraws at once.
// - The payload from Python (trainboard_ui/cards.py) is binary: a JSON header and
//   float64 columns. It carries whole series once and then only appended points;
//   `seq`/`base` let this side notice a payload it missed and ask for a resend.
//
// uPlot (MIT licence) is prepended to this file by build.mjs as the global `uPlot`.

import { smooth } from "./smooth.js";

const SIZES = {
  S: { min: 300, height: 170 },
  M: { min: 420, height: 230 },
  L: { min: 620, height: 330 },
};
const FOCUS_HEIGHT = 520;
const NEAR = "100% 0px"; // "near the screen": within one screen height above or below
const RAW_ALPHA = 0.25;
const OUTLIER_QUANTILES = [0.05, 0.95];
const OUTLIER_MARGIN = 0.1;
const REQUEST_DELAY_MS = 60;

// ------------------------------------------------------------------ payload

export function decode(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const length = view.getUint32(0, true);
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(4, 4 + length)));
  const rest = bytes.slice(4 + length); // a copy: starts at offset 0, so aligned
  const blob = new Float64Array(rest.buffer, 0, rest.byteLength >> 3);
  return { header, blob };
}

function seriesKey(run, tag) {
  return `${run}\u0000${tag}`;
}

// ------------------------------------------------------------------ numbers

export function formatValue(v) {
  if (v === null || v === undefined) return "";
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e6 || a < 1e-4) return v.toExponential(4).replace(/\.?0+e/, "e");
  return String(Number(v.toPrecision(5)));
}

export function formatDuration(seconds) {
  if (!Number.isFinite(seconds)) return "";
  const s = Math.max(0, seconds);
  if (s < 60) return `${s.toFixed(s < 10 ? 2 : 1)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.round((s % 86400) / 3600)} h`;
}

function relativeUnit(maxSeconds) {
  if (!Number.isFinite(maxSeconds) || maxSeconds < 120) return [1, "s"];
  if (maxSeconds < 2 * 3600) return [60, "min"];
  if (maxSeconds < 2 * 86400) return [3600, "h"];
  return [86400, "days"];
}

function quantile(sorted, q) {
  // numpy's default ("linear") rule
  if (!sorted.length) return NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

export function outlierRange(arrays, log) {
  let values = [];
  for (const a of arrays)
    for (let i = 0; i < a.length; i++) {
      const v = a[i];
      if (Number.isFinite(v) && (!log || v > 0)) values.push(log ? Math.log10(v) : v);
    }
  if (!values.length) return null;
  values = Float64Array.from(values).sort();
  const lo = quantile(values, OUTLIER_QUANTILES[0]);
  const hi = quantile(values, OUTLIER_QUANTILES[1]);
  let spread = hi - lo;
  if (spread <= 0) spread = lo !== 0 ? Math.abs(lo) : 1;
  let range = [lo - OUTLIER_MARGIN * spread, hi + OUTLIER_MARGIN * spread];
  if (log) range = range.map((e) => 10 ** e);
  return range;
}

function withAlpha(colour, alpha) {
  const n = parseInt(colour.slice(1), 16);
  return `rgba(${(n >> 16) & 255},${(n >> 8) & 255},${n & 255},${alpha})`;
}

function lowerBound(xs, x) {
  let lo = 0;
  let hi = xs.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (xs[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

// ------------------------------------------------------------------ one chart's lines

// A chart's lines are drawn from each run's own points (runs rarely share the
// steps a downsampled read keeps, and merging them onto one x axis multiplied the
// work of every redraw by the number of runs). uPlot gets only each series'
// extent, for its axes, and a path builder per series that draws the run's points.

// Index ranges [start, end) of consecutive drawable points: NaN, ±Inf (and values
// <= 0 on a log axis) break a line, as gaps.
export function segments(ys, logY) {
  const out = [];
  let start = -1;
  for (let i = 0; i <= ys.length; i++) {
    const ok = i < ys.length && drawable(ys[i], logY) !== null;
    if (ok && start < 0) start = i;
    else if (!ok && start >= 0) {
      out.push([start, i]);
      start = -1;
    }
  }
  return out;
}

// uPlot's data for a chart: x = [lowest, highest] of every line's x, and per line
// [lowest, highest] of its raw and of its smoothed values (null when it has none).
export function extents(lines, logY) {
  let lo = Infinity;
  let hi = -Infinity;
  for (const line of lines) {
    if (!line.x.length) continue;
    lo = Math.min(lo, line.x[0]);
    hi = Math.max(hi, line.x[line.x.length - 1]);
  }
  const data = [Number.isFinite(lo) ? [lo, hi] : [0, 1]];
  for (const line of lines) data.push(range(line.values, logY), range(line.smoothed, logY));
  return data;
}

function range(ys, logY) {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < ys.length; i++) {
    const v = drawable(ys[i], logY);
    if (v === null) continue;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return Number.isFinite(lo) ? [lo, hi] : [null, null];
}

// A uPlot path builder that draws `line[which]` against `line.x`, only the points
// within the x range shown (plus one either side, so lines reach the edges).
function linePath(line, which, logY) {
  return (u) => {
    const stroke = new Path2D();
    const xs = line.x;
    const ys = line[which];
    const from = Math.max(lowerBound(xs, u.scales.x.min) - 1, 0);
    const to = Math.min(lowerBound(xs, u.scales.x.max) + 1, xs.length);
    for (const [start, end] of segments(ys.subarray(from, to), logY)) {
      stroke.moveTo(u.valToPos(xs[from + start], "x", true), u.valToPos(ys[from + start], "y", true));
      for (let i = from + start + 1; i < from + end; i++)
        stroke.lineTo(u.valToPos(xs[i], "x", true), u.valToPos(ys[i], "y", true));
    }
    return { stroke, fill: null, clip: null, band: null, gaps: null, flags: 0 };
  };
}

function smoothedValues(line, weight) {
  return weight > 0 ? smooth(line.values, weight) : line.values;
}

function drawable(v, logY) {
  if (!Number.isFinite(v)) return null;
  if (logY && v <= 0) return null;
  return v;
}

// ------------------------------------------------------------------ the board

class Board {
  constructor(root) {
    this.root = root; // a ShadowRoot
    this.series = new Map(); // run\0tag -> {steps, wall, values}
    this.seq = null;
    this.feed = null;
    this.header = null;
    this.cards = new Map(); // tag -> Card (the grid's)
    this.requested = new Set(); // tags whose series Python has sent (in this feed)
    this.asked = new Set(); // tags asked for and not sent yet
    this.pending = new Set(); // tags to ask for at the end of this short delay
    this.requestTimer = null;
    this.smoothing = 0.6;
    this.size = "M";
    this.setters = null;
    this.el = document.createElement("div");
    this.el.className = "board";
    this.toolbar = this.buildToolbar();
    this.body = document.createElement("div");
    this.el.append(this.toolbar, this.body);
    root.appendChild(this.el);
    this.observer = null;
  }

  // ------------------------------------------------ toolbar

  buildToolbar() {
    const bar = document.createElement("div");
    bar.className = "toolbar";
    const label = document.createElement("label");
    label.className = "smoothing";
    label.textContent = "Smoothing";
    const slider = document.createElement("input");
    slider.type = "range";
    slider.min = "0";
    slider.max = "0.999";
    slider.step = "0.001";
    slider.setAttribute("aria-label", "Smoothing");
    const shown = document.createElement("output");
    slider.addEventListener("input", () => {
      const before = this.smoothing;
      this.smoothing = Number(slider.value);
      shown.textContent = this.smoothing.toFixed(3);
      // Only the smoothed values change: new data into the same charts, unless
      // smoothing was switched on or off (then the raw lines change style too).
      const same = before > 0 === this.smoothing > 0;
      const redraw = (card) => (same ? card.resmooth() : card.refresh());
      // Cards on screen now; those drawn just off screen right after, so that
      // moving the slider stays fluid with many charts near the screen.
      // (Where each card is, read for all first: reading a place after a redraw
      // changed the page would lay the whole page out again, card after card.)
      const cards = [...this.allCards()].map((card) => [card, card.plot && card.onScreen()]);
      const later = [];
      for (const [card, onScreen] of cards) {
        if (onScreen || (!card.plot && !same)) redraw(card);
        else if (card.plot) later.push(card);
      }
      clearTimeout(this.smoothTimer);
      this.smoothTimer = setTimeout(() => later.forEach(redraw), 0);
    });
    slider.addEventListener("change", () => {
      this.setters.setStateValue("smoothing", Number(slider.value));
    });
    label.append(slider, shown);
    this.slider = slider;
    this.sliderValue = shown;

    const size = document.createElement("label");
    size.className = "size";
    size.textContent = "Card size";
    const select = document.createElement("select");
    select.setAttribute("aria-label", "Card size");
    for (const [value, text] of [
      ["S", "small"],
      ["M", "medium"],
      ["L", "large"],
    ]) {
      const option = document.createElement("option");
      option.value = value;
      option.textContent = text;
      select.appendChild(option);
    }
    select.addEventListener("change", () => {
      this.size = select.value;
      this.applySize();
      this.setters.setStateValue("card_size", select.value);
    });
    size.appendChild(select);
    this.sizeSelect = select;

    this.summary = document.createElement("span");
    this.summary.className = "summary";
    bar.append(label, size, this.summary);
    return bar;
  }

  applySize() {
    const size = SIZES[this.size] || SIZES.M;
    this.el.style.setProperty("--card-min", `${size.min}px`);
    for (const card of this.allCards()) card.resize();
  }

  // ------------------------------------------------ updates from Python

  update(header, blob) {
    const fresh = header.base === null;
    if (!fresh && (header.feed !== this.feed || header.base !== this.seq)) {
      // A payload was missed (or this board was rebuilt): the appended points of
      // this one cannot be trusted; ask Python to send every series again.
      this.setters.setTriggerValue("resync", header.seq);
      this.seq = null;
      return;
    }
    if (fresh) {
      this.series.clear();
      this.requested.clear();
      this.asked.clear();
    }
    this.feed = header.feed;
    this.seq = header.seq;
    const changed = this.applyUpdates(header.updates, blob);
    const arrived = new Set();
    for (const tag of header.loaded) {
      if (!this.requested.has(tag)) arrived.add(tag);
      this.requested.add(tag);
      this.asked.delete(tag);
    }

    const before = this.header;
    this.header = header;
    const s = header.settings;
    if (!before || before.settings.smoothing !== s.smoothing) {
      this.smoothing = s.smoothing;
      this.slider.value = String(s.smoothing);
      this.sliderValue.textContent = s.smoothing.toFixed(3);
    }
    if (!before || before.settings.card_size !== s.card_size) {
      this.size = s.card_size in SIZES ? s.card_size : "M";
      this.sizeSelect.value = this.size;
    }
    const layout = JSON.stringify([header.groups, header.pinned, header.focus, header.runs]);
    if (!before || layout !== this.layout) {
      this.layout = layout;
      this.buildCards();
    } else if (
      before.settings.x_axis !== s.x_axis ||
      before.settings.log_y !== s.log_y ||
      before.settings.ignore_outliers !== s.ignore_outliers ||
      before.settings.smoothing !== s.smoothing
    ) {
      this.redrawAll();
    } else {
      for (const card of this.allCards())
        if (changed.has(card.tag) || arrived.has(card.tag)) card.refresh();
    }
    this.applySize();
    const tags = header.groups.reduce((n, g) => n + g[1].length, 0);
    this.summary.textContent = `${tags} ${tags === 1 ? "chart" : "charts"}, ${header.runs.length} ${header.runs.length === 1 ? "run" : "runs"}`;
  }

  applyUpdates(updates, blob) {
    const changed = new Set();
    let p = 0;
    for (const u of updates) {
      const steps = blob.slice(p, p + u.n);
      const wall = blob.slice(p + u.n, p + 2 * u.n);
      const values = blob.slice(p + 2 * u.n, p + 3 * u.n);
      p += 3 * u.n;
      const key = seriesKey(u.run, u.tag);
      const old = this.series.get(key);
      if (u.mode === "append" && old) {
        this.series.set(key, {
          steps: concat(old.steps, steps),
          wall: concat(old.wall, wall),
          values: concat(old.values, values),
        });
      } else {
        this.series.set(key, { steps, wall, values });
      }
      changed.add(u.tag);
    }
    return changed;
  }

  // ------------------------------------------------ cards

  *allCards() {
    yield* this.cards.values();
    if (this.pinnedCards) yield* this.pinnedCards.values();
  }

  buildCards() {
    for (const card of this.allCards()) card.destroy();
    if (this.observer) this.observer.disconnect();
    this.cards = new Map();
    this.pinnedCards = new Map();
    this.body.replaceChildren();
    this.observer = new IntersectionObserver((entries) => this.onIntersect(entries), {
      root: scrollParent(this.root.host || this.el),
      rootMargin: NEAR,
    });
    const header = this.header;
    if (header.focus) {
      const back = button("Back to all charts", "close_fullscreen", () =>
        this.setters.setTriggerValue("focus", ""),
      );
      back.classList.add("back");
      this.body.appendChild(back);
      const card = new Card(this, header.focus, { focus: true });
      this.body.appendChild(card.el);
      this.cards.set(header.focus, card);
      this.observer.observe(card.el);
      return;
    }
    const sections = [];
    if (header.pinned.length) sections.push(["Pinned", header.pinned, this.pinnedCards]);
    for (const [group, tags] of header.groups) sections.push([group, tags, this.cards]);
    for (const [group, tags, into] of sections) {
      if (group) {
        const h = document.createElement("h3");
        h.className = "group";
        h.textContent = group;
        this.body.appendChild(h);
      }
      const grid = document.createElement("div");
      grid.className = "grid";
      for (const tag of tags) {
        const card = new Card(this, tag);
        into.set(tag, card);
        grid.appendChild(card.el);
        this.observer.observe(card.el);
      }
      this.body.appendChild(grid);
    }
  }

  onIntersect(entries) {
    for (const entry of entries) {
      const card = entry.target.__card;
      if (!card) continue;
      card.near = entry.isIntersecting;
      if (card.near) {
        if (this.requested.has(card.tag)) card.draw();
        else this.request(card.tag);
      } else {
        card.release();
      }
    }
  }

  request(tag) {
    if (this.requested.has(tag) || this.asked.has(tag)) return;
    this.pending.add(tag);
    if (this.requestTimer !== null) return;
    this.requestTimer = setTimeout(() => {
      this.requestTimer = null;
      const tags = [...this.pending].filter((t) => !this.requested.has(t) && !this.asked.has(t));
      this.pending.clear();
      for (const t of tags) this.asked.add(t);
      if (tags.length) this.setters.setTriggerValue("want", tags);
    }, REQUEST_DELAY_MS);
  }

  redrawAll() {
    for (const card of this.allCards()) card.refresh();
  }

  // The lines of one tag: one per selected run that has points, with x values on
  // the chosen axis of time.
  lines(tag) {
    const { runs, settings } = this.header;
    const lines = [];
    for (const run of runs) {
      const s = this.series.get(seriesKey(run.id, tag));
      if (!s || !s.steps.length) continue;
      lines.push({ run, steps: s.steps, wall: s.wall, values: s.values, x: s.steps });
    }
    let title = "Step";
    if (settings.x_axis === "relative") {
      let span = 0;
      for (const l of lines) span = Math.max(span, l.wall[l.wall.length - 1] - l.run.started_at);
      const [unit, name] = relativeUnit(span);
      for (const l of lines) l.x = l.wall.map((w) => (w - l.run.started_at) / unit);
      title = `Relative time (${name})`;
    } else if (settings.x_axis === "wall") {
      for (const l of lines) l.x = l.wall;
      title = "Wall time";
    }
    return { lines, title };
  }

  destroy() {
    for (const card of this.allCards()) card.destroy();
    if (this.observer) this.observer.disconnect();
    if (this.requestTimer !== null) clearTimeout(this.requestTimer);
    this.el.remove();
  }
}

function concat(a, b) {
  const out = new Float64Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

function scrollParent(node) {
  for (let el = node.parentElement; el; el = el.parentElement) {
    const style = getComputedStyle(el);
    if (/(auto|scroll)/.test(style.overflowY) && el.scrollHeight > el.clientHeight) return el;
  }
  return null; // the viewport
}

function button(text, icon, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = text;
  b.title = text;
  b.dataset.icon = icon;
  b.addEventListener("click", onClick);
  return b;
}

// ------------------------------------------------------------------ one card

class Card {
  constructor(board, tag, { focus = false } = {}) {
    this.board = board;
    this.tag = tag;
    this.focus = focus;
    this.plot = null;
    this.near = false;
    this.lines = [];
    const el = document.createElement("div");
    el.className = focus ? "card focus" : "card";
    el.dataset.tag = tag;
    el.dataset.state = "waiting";
    el.__card = this;
    const head = document.createElement("div");
    head.className = "head";
    const title = document.createElement("span");
    title.className = "title";
    title.textContent = tag;
    title.title = tag;
    head.appendChild(title);
    const isPinned = board.header.pinned.includes(tag);
    head.appendChild(
      button(isPinned ? "Unpin" : "Pin", "push_pin", () => {
        const pinned = board.header.pinned.filter((t) => t !== tag);
        if (!isPinned) pinned.push(tag);
        board.setters.setStateValue("pinned", pinned);
      }),
    );
    if (!focus) {
      head.appendChild(
        button("Maximise", "open_in_full", () => board.setters.setTriggerValue("focus", tag)),
      );
    }
    head.appendChild(button("CSV", "download", () => this.downloadCsv()));
    this.area = document.createElement("div");
    this.area.className = "plot";
    this.table = document.createElement("table");
    this.table.className = "values";
    const values = document.createElement("div");
    values.className = "values-wrap"; // scrolls past a few runs: cards keep their size
    values.appendChild(this.table);
    this.note = document.createElement("div");
    this.note.className = "note";
    el.append(head, this.area, values, this.note);
    this.el = el;
    this.resize();
  }

  onScreen() {
    const box = this.el.getBoundingClientRect();
    return box.bottom > 0 && box.top < innerHeight;
  }

  height() {
    return this.focus ? FOCUS_HEIGHT : (SIZES[this.board.size] || SIZES.M).height;
  }

  resize() {
    this.area.style.height = `${this.height()}px`;
    if (this.plot) {
      const width = this.area.clientWidth;
      if (width > 0) this.plot.setSize({ width, height: this.height() });
    }
  }

  release() {
    if (this.plot) {
      this.plot.destroy();
      this.plot = null;
    }
    if (this.el.dataset.state === "drawn") this.el.dataset.state = "released";
  }

  destroy() {
    this.release();
    if (this.board.observer) this.board.observer.unobserve(this.el);
  }

  refresh() {
    if (this.near && this.board.requested.has(this.tag)) this.draw();
  }

  // New smoothed values into the chart as it is (no new canvas, axes or table).
  resmooth() {
    if (!this.plot) return this.refresh();
    const { settings } = this.board.header;
    for (const line of this.lines) line.smoothed = smoothedValues(line, this.board.smoothing);
    const data = extents(this.lines, settings.log_y);
    this.yRange = settings.ignore_outliers
      ? outlierRange(this.lines.flatMap((l) => [l.values, l.smoothed]), settings.log_y)
      : null;
    this.plot.setData(data, true);
    this.showValues(null, this.plot);
  }

  draw() {
    const board = this.board;
    const { settings } = board.header;
    const { lines, title } = board.lines(this.tag);
    this.lines = lines;
    if (this.plot) {
      this.plot.destroy();
      this.plot = null;
    }
    if (!lines.length) {
      this.el.dataset.state = "empty";
      this.area.textContent = "No points for the selected runs.";
      this.table.replaceChildren();
      return;
    }
    this.area.textContent = "";
    const logY = settings.log_y;
    for (const line of lines) line.smoothed = smoothedValues(line, board.smoothing);
    const data = extents(lines, logY);
    const smoothed = board.smoothing > 0;
    const series = [{}];
    for (const line of lines) {
      series.push({
        label: `${line.run.name} (raw)`,
        stroke: smoothed ? withAlpha(line.run.colour, RAW_ALPHA) : line.run.colour,
        width: smoothed ? 1 : 1.75,
        show: true,
        points: { show: false },
        paths: linePath(line, "values", logY),
      });
      series.push({
        label: line.run.name,
        stroke: line.run.colour,
        width: 1.75,
        show: smoothed,
        points: { show: false },
        paths: linePath(line, "smoothed", logY),
      });
    }
    this.yRange = settings.ignore_outliers
      ? outlierRange(lines.flatMap((l) => [l.values, l.smoothed]), logY)
      : null;
    const wall = settings.x_axis === "wall";
    const opts = {
      width: Math.max(this.area.clientWidth, 100),
      height: this.height(),
      legend: { show: false },
      cursor: { drag: { x: true, y: false, setScale: true }, points: { show: false } },
      scales: {
        x: { time: wall },
        y: {
          distr: logY ? 3 : 1,
          ...(settings.ignore_outliers
            ? { range: (u, lo, hi) => this.yRange || [lo, hi] }
            : {}),
        },
      },
      axes: [
        { label: title, labelSize: 18, size: 36, font: "11px sans-serif", labelFont: "11px sans-serif" },
        { size: 56, font: "11px sans-serif" },
      ],
      series,
      hooks: {
        setCursor: [(u) => this.showValues(u.cursor.idx, u)],
        draw: [() => this.drawn()],
      },
    };
    this.plot = new uPlot(opts, data, this.area);
    this.showValues(null, this.plot);
    const odd = lines
      .map((l) => [l.run.name, l.values.reduce((n, v) => n + (Number.isFinite(v) ? 0 : 1), 0)])
      .filter(([, n]) => n > 0);
    this.note.textContent = odd.length
      ? `NaN or ±Inf values, drawn as gaps: ${odd.map(([r, n]) => `${r} (${n})`).join(", ")}`
      : "";
  }

  drawn() {
    if (!firstDrawn) {
      firstDrawn = true;
      performance.mark("trainboard:first-chart");
    }
    this.el.dataset.state = "drawn";
    this.el.dataset.runs = String(this.lines.length);
    this.el.dataset.draws = String(Number(this.el.dataset.draws || 0) + 1); // for benchmarks
  }

  // The table under the chart: per run, the point nearest the cursor (or the last
  // point when the cursor is elsewhere): smoothed value, value, step, relative time.
  showValues(idx, u) {
    const left = u.cursor.left;
    const at = idx === null || idx === undefined || !(left >= 0) ? null : u.posToVal(left, "x");
    const rows = [];
    for (const line of this.lines) {
      let i = line.x.length - 1;
      if (at !== null) {
        i = Math.min(lowerBound(line.x, at), line.x.length - 1);
        if (i > 0 && Math.abs(line.x[i - 1] - at) <= Math.abs(line.x[i] - at)) i -= 1;
      }
      rows.push([line, i]);
    }
    const head = "<tr><th></th><th>Run</th><th>Smoothed</th><th>Value</th><th>Step</th><th>Relative</th></tr>";
    const body = rows
      .map(([line, i]) => {
        const name = escapeHtml(line.run.name);
        return (
          `<tr><td><span class="swatch" style="background:${line.run.colour}"></span></td>` +
          `<td class="run" style="color:${line.run.colour}">${name}</td>` +
          `<td>${formatValue(line.smoothed[i])}</td><td>${formatValue(line.values[i])}</td>` +
          `<td>${line.steps[i]}</td><td>${formatDuration(line.wall[i] - line.run.started_at)}</td></tr>`
        );
      })
      .join("");
    this.table.innerHTML = head + body;
  }

  downloadCsv() {
    const { lines } = this.board.lines(this.tag);
    const parts = ["run,step,wall_time,value,smoothed\n"];
    for (const line of lines) {
      const smoothed = smoothedValues(line, this.board.smoothing);
      const run = csvField(line.run.name);
      for (let i = 0; i < line.steps.length; i++)
        parts.push(`${run},${line.steps[i]},${line.wall[i]},${csvNumber(line.values[i])},${csvNumber(smoothed[i])}\n`);
    }
    const url = URL.createObjectURL(new Blob(parts, { type: "text/csv" }));
    const a = document.createElement("a");
    a.href = url;
    a.download = `${this.tag.replace(/[^A-Za-z0-9._-]+/g, "_").replace(/^[._]+|[._]+$/g, "") || "series"}.csv`;
    this.el.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }
}

function csvNumber(v) {
  if (Number.isNaN(v)) return "nan";
  if (v === Infinity) return "inf";
  if (v === -Infinity) return "-inf";
  return String(v);
}

function csvField(text) {
  return /[",\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

function escapeHtml(text) {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

// ------------------------------------------------------------------ entry point

// Marks for benchmarks and tests (performance.getEntriesByName): the first payload
// this page received, and the first chart drawn.
let firstDrawn = false;

export default function render({ parentElement, data, setStateValue, setTriggerValue }) {
  if (!(data instanceof Uint8Array)) return undefined; // the preload (see cards.py)
  if (!performance.getEntriesByName("trainboard:first-payload").length)
    performance.mark("trainboard:first-payload");
  let board = parentElement.__trainboard;
  if (!board) {
    board = new Board(parentElement);
    parentElement.__trainboard = board;
  }
  board.setters = { setStateValue, setTriggerValue };
  const { header, blob } = decode(data);
  board.update(header, blob);
  return () => {
    board.destroy();
    delete parentElement.__trainboard;
  };
}
