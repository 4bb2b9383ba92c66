"""The dashboard's Scalars page over 20 runs x 10 tags x 100,000 steps, on SQLite.

What it measures, per interleaved round:

* Time: one render of the Scalars page with the 20 runs and the 10 tags selected, that
  is ``AppTest.run()`` of ``ui/trainboard_ui/app.py`` (``streamlit.testing.v1``): the
  script Streamlit runs for a page view, with its reads through ``Reader``, its data
  shaping, and the chart cards' payload built (the first cards' series; the browser
  asks for the others as they come near the screen and draws them), ready to go to
  the browser (the browser's drawing is not included). The server is a subprocess
  (``python -m trainboard server``) on a SQLite file, restarted before every round,
  and the dashboard's ``st.cache_data`` and ``st.cache_resource`` are cleared, so the
  render is a first view: nothing comes from a cache but the operating system's. One
  untimed render before the rounds pays the one-time imports (pandas, the component).
* Bytes read: the sum of the serialised sizes (protobuf ``ByteSize()``) of every gRPC
  response the dashboard received during that render, over all its calls (listing
  experiments, runs and tags, reading the scalars). An interceptor on the client's
  channel counts them; HTTP/2 framing and gRPC headers (tens of bytes a call) are not
  included.

Baseline, for a ratio measured in the same run: what a naive dashboard would do, read
every one of the 200 series at full resolution through ``Reader.scalars(run_id, tag)``
(``max_points=None``, one call per series, run ids looked up before the clock starts),
on a freshly restarted server too. Its bytes are counted the same way.

Targets: a median render under 3 s and under 5 MB (5,000,000 bytes) read.

The data is written straight into the SQLite file through ``SqlStore.write_batch``
before the server starts (not timed): loss-, accuracy- and learning-rate-like curves
with noise, one step apart, wall times 10 ms apart.

Run from the repository root::

    python -m bench.dashboard            # 20 runs x 10 tags x 100,000 steps, 5 rounds
    python -m bench.dashboard --quick    # a smoke test, a few seconds
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from bench._common import (
    ServerProcess,
    Verdicts,
    fmt_seconds,
    interleave,
    make_parser,
    median,
    paired_ratio,
    print_header,
    print_memory,
    print_rounds,
    print_table,
    rounds_for,
    timing_rows,
)

TARGET_SECONDS = 3.0
TARGET_BYTES = 5_000_000
EXPERIMENT = "bench-dashboard"
TAGS = (
    "train/loss",
    "train/accuracy",
    "val/loss",
    "val/accuracy",
    "lr",
    "grad_norm",
    "weight_norm",
    "throughput",
    "gpu_memory",
    "epoch",
)


@dataclass(frozen=True)
class Sizes:
    runs: int
    tags: int
    steps: int

    @property
    def points(self) -> int:
        return self.runs * self.tags * self.steps


FULL = Sizes(runs=20, tags=10, steps=100_000)
QUICK = Sizes(runs=3, tags=3, steps=5_000)


# ---------------------------------------------------------------------- data


def run_name(index: int) -> str:
    return f"run-{index:02d}"


def make_values(run: int, tag: int, steps: int) -> np.ndarray:
    """A curve per (run, tag): decay or rise towards a level, with noise."""
    rng = np.random.default_rng(1000 * run + tag)
    t = np.arange(steps, dtype=np.float64) / steps
    rate = 3.0 + run % 5
    curve = np.exp(-rate * t) if tag % 2 == 0 else 1.0 - np.exp(-rate * t)
    return curve * (1.0 + tag) + 0.05 * rng.standard_normal(steps)


def fill(db_url: str, sizes: Sizes) -> None:
    """Writes the runs straight into the database (the server is not running)."""
    from trainboard.types import ScalarColumns, WriteBatch
    from trainboard_server.sql_store import SqlStore

    store = SqlStore.from_url(db_url)
    steps = np.arange(sizes.steps, dtype=np.int64)
    t0 = time.time() - sizes.steps * 0.01
    wall_times = t0 + steps * 0.01
    sequence = 0
    try:
        for run in range(sizes.runs):
            params = {"lr": 10.0 ** -(1 + run % 4), "seed": run}
            run_id = store.start_run(EXPERIMENT, run_name(run), params, t0).run.id
            for tag in range(sizes.tags):
                sequence += 1
                columns = ScalarColumns(
                    TAGS[tag], steps, wall_times, make_values(run, tag, len(steps))
                )
                store.write_batch(WriteBatch("bench-fill", sequence, run_id, (columns,)))
            store.finish_run(run_id, "finished", float(wall_times[-1]))
    finally:
        store.close()


# ---------------------------------------------------------------------- bytes read


class ResponseBytes(grpc.UnaryUnaryClientInterceptor):  # type: ignore[misc]  # grpc is untyped
    """Adds up the serialised size of every unary response received."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.total = 0

    def reset(self) -> None:
        with self._lock:
            self.total = 0

    def intercept_unary_unary(
        self, continuation: Callable[[Any, Any], Any], details: Any, request: Any
    ) -> Any:
        outcome = continuation(details, request)
        with contextlib.suppress(grpc.RpcError):  # a failed call carries no message
            size = int(outcome.result().ByteSize())
            with self._lock:
                self.total += size
        return outcome


@contextlib.contextmanager
def counted_channels(counter: ResponseBytes) -> Iterator[None]:
    """Every channel the SDK opens meanwhile (``Reader``'s included) is counted."""
    from trainboard import transport

    original = transport.open_channel

    @functools.wraps(original)
    def open_counted(*args: Any, **kwargs: Any) -> grpc.Channel:
        return grpc.intercept_channel(original(*args, **kwargs), counter)

    transport.open_channel = open_counted
    try:
        yield
    finally:
        transport.open_channel = original


def fmt_bytes(count: float) -> str:
    if count >= 1e6:
        return f"{count / 1e6:.2f} MB"
    if count >= 1e3:
        return f"{count / 1e3:.1f} kB"
    return f"{count:.0f} B"


# ---------------------------------------------------------------------- cases


@dataclass
class Case:
    """A measured case: the bytes it read each round, and what looked wrong."""

    server: ServerProcess
    counter: ResponseBytes
    bytes_read: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


class NaiveReaderCase(Case):
    """Every series at full resolution through ``Reader``, one call each."""

    def __init__(self, server: ServerProcess, counter: ResponseBytes, sizes: Sizes) -> None:
        super().__init__(server, counter)
        self.sizes = sizes

    def measure(self) -> float:
        import trainboard

        self.server.restart()
        with trainboard.Reader(self.server.address) as reader:
            if not reader.healthy(timeout=10.0):
                raise RuntimeError("the restarted server does not answer")
            run_ids = [run.id for run in reader.runs(EXPERIMENT)]
            self.counter.reset()
            start = time.perf_counter()
            points = sum(
                len(reader.scalars(run_id, tag))
                for run_id in run_ids
                for tag in TAGS[: self.sizes.tags]
            )
            elapsed = time.perf_counter() - start
        self.bytes_read.append(self.counter.total)
        if points != self.sizes.points:
            self.problems.append(f"the naive read got {points:,} points, not {self.sizes.points:,}")
        return elapsed


class ScalarsPageCase(Case):
    """One first render of the dashboard's Scalars page, every run and tag selected."""

    def __init__(
        self, server: ServerProcess, counter: ResponseBytes, sizes: Sizes, app: Path
    ) -> None:
        super().__init__(server, counter)
        self.sizes = sizes
        self.app = app
        self.charts: list[int] = []

    def render(self) -> float:
        import streamlit as st

        quiet_streamlit()
        st.cache_data.clear()
        st.cache_resource.clear()
        page = scalars_page(self.app, self.server.address, self.sizes)
        self.counter.reset()
        start = time.perf_counter()
        with app_arguments(self.app, self.server.address):
            page.run()
        elapsed = time.perf_counter() - start
        self.bytes_read.append(self.counter.total)
        self.check(page)
        return elapsed

    def measure(self) -> float:
        self.server.restart()
        return self.render()

    def check(self, page: Any) -> None:
        """The cards component got a card for every tag, every run, and the series
        of the first cards (the browser asks for the others as they come near)."""
        from trainboard_ui.cards import unpack
        from trainboard_ui.views.scalars import FIRST_CARDS

        if page.exception:
            self.problems.append(f"the page raised: {page.exception[0].message}")
        boards = [
            unpack(element.proto.bytes)[0]
            for element in page.get("bidi_component")
            if element.proto.component_name == "trainboard.cards" and element.proto.bytes
        ]
        if len(boards) != 1:
            self.problems.append(f"the page drew {len(boards)} boards of cards, not 1")
            return
        header = boards[0]
        cards = sum(len(tags) for _, tags in header["groups"])
        self.charts.append(cards)
        if cards != self.sizes.tags:
            self.problems.append(f"the page drew {cards} cards for {self.sizes.tags} tags")
        runs = {run_name(i) for i in range(self.sizes.runs)}
        if {run["name"] for run in header["runs"]} != runs:
            self.problems.append("the cards lack runs")
        sent = {(u["run"], u["tag"]) for u in header["updates"]}
        if len(sent) != self.sizes.runs * min(FIRST_CARDS, self.sizes.tags):
            self.problems.append(f"the first payload held {len(sent)} series")


@contextlib.contextmanager
def app_arguments(app: Path, server: str) -> Iterator[None]:
    """What ``streamlit run app.py -- --server ADDR`` gives the script: its argv and
    ``TRAINBOARD_SERVER`` (benchmarks, like the CLI, are an edge)."""
    saved_argv, saved_env = sys.argv, os.environ.get("TRAINBOARD_SERVER")
    sys.argv = [str(app), "--server", server]
    os.environ["TRAINBOARD_SERVER"] = server
    try:
        yield
    finally:
        sys.argv = saved_argv
        if saved_env is None:
            os.environ.pop("TRAINBOARD_SERVER", None)
        else:
            os.environ["TRAINBOARD_SERVER"] = saved_env


def scalars_page(app: Path, server: str, sizes: Sizes) -> Any:
    """An ``AppTest`` of the Scalars page with every run and tag selected (not yet run)."""
    from streamlit.testing.v1 import AppTest

    page = AppTest.from_file(str(app), default_timeout=600)
    # The view's URL (ui/trainboard_ui/state.py): the page, experiment and runs.
    page.query_params["page"] = "scalars"
    page.query_params["exp"] = EXPERIMENT
    page.query_params["run"] = [run_name(i) for i in range(sizes.runs)]
    return page


def dashboard_app() -> Path:
    from trainboard.cli import MissingExtra
    from trainboard.cli import dashboard_app as find_app

    try:
        return find_app()
    except MissingExtra as exc:
        raise SystemExit(f"bench.dashboard: {exc}") from exc


# ---------------------------------------------------------------------- main


def quiet_streamlit() -> None:
    """Silences Streamlit's warnings about clearing caches outside a script run:
    expected here, noise in the table (AppTest resets the level on each run)."""
    import streamlit.logger

    streamlit.logger.set_log_level("error")


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser(__doc__, default_rounds=5)
    args = parser.parse_args(argv)
    rounds = rounds_for(args, 5)
    sizes = QUICK if args.quick else FULL
    app = dashboard_app()
    print_header(
        f"dashboard: Scalars page, {sizes.runs} runs x {sizes.tags} tags x {sizes.steps:,} steps",
        rounds=rounds,
        quick=args.quick,
        sizes=f"{sizes.points:,} points on SQLite, server restarted and caches cleared each round",
    )
    verdicts = Verdicts()
    counter = ResponseBytes()
    with tempfile.TemporaryDirectory(prefix="trainboard-bench-") as tmp, counted_channels(counter):
        root = Path(tmp)
        db_url = f"sqlite:///{root / 'trainboard.db'}"
        started = time.perf_counter()
        fill(db_url, sizes)
        filled = time.perf_counter() - started
        print(f"filled {sizes.points:,} points through SqlStore in {fmt_seconds(filled)}")
        with ServerProcess(db_url, root / "server.log") as server:
            naive = NaiveReaderCase(server, counter, sizes)
            page = ScalarsPageCase(server, counter, sizes, app)
            page.render()  # untimed: the one-time imports of the app
            page.bytes_read.clear()
            results = interleave(
                rounds,
                [
                    ("Reader, every series at full resolution (baseline)", naive.measure),
                    ("dashboard Scalars page, first render", page.measure),
                ],
            )
    rows = timing_rows(results, fmt_seconds)
    for row, case in zip(rows, (naive, page), strict=True):
        row.append(fmt_bytes(median(case.bytes_read)))
    print_table(["case", "median", "min", "max", "bytes read (median)"], rows)
    if args.verbose:
        print_rounds(results, fmt_seconds)
    print_memory(server)
    base = results["Reader, every series at full resolution (baseline)"]
    render = results["dashboard Scalars page, first render"]
    verdicts.info_ratio(
        "naive full-resolution read / Scalars page render",
        paired_ratio(base, render),
        of_medians=median(base) / median(render),
    )
    verdicts.info_ratio(
        "naive bytes read / Scalars page bytes read",
        paired_ratio(naive.bytes_read, page.bytes_read),
        of_medians=median(naive.bytes_read) / median(page.bytes_read),
    )
    verdicts.check(
        "Scalars page render",
        median(render) < TARGET_SECONDS,
        f"median {fmt_seconds(median(render))} (target < {fmt_seconds(TARGET_SECONDS)})",
    )
    verdicts.check(
        "bytes read by the Scalars page",
        median(page.bytes_read) < TARGET_BYTES,
        f"median {fmt_bytes(median(page.bytes_read))} (target < {fmt_bytes(TARGET_BYTES)})",
    )
    problems = naive.problems + page.problems
    verdicts.check(
        "pages and reads complete",
        not problems,
        "; ".join(dict.fromkeys(problems)) or f"{median(page.charts):.0f} cards, no errors",
    )
    return verdicts.exit_code(args.strict)


if __name__ == "__main__":
    sys.exit(main())
