"""The read path of a team server on PostgreSQL: what the dashboard asks most.

What it measures, through a real server subprocess and a ``trainboard.Reader``, as the
median over rounds (the server is restarted before each round, so the first read of
the series is not served from anything the server process cached; PostgreSQL's own
buffer cache stays warm, as it does on a team server):

* reading a series of 1,000,000 points downsampled to 2,000 (``Reader.scalars``),
  the first call after the restart;
* listing the 10,000 tags of one run (``Reader.tags``);
* listing the 1,000 runs of one experiment (``Reader.runs``);
* the same three again on the warm server, for information.

Target (the team-server issue): each first call under 0.3 s. The database is a scratch
database at 127.0.0.1:5432 (``--postgres`` to change), filled through ``SqlStore``
directly (not timed): a run with 10,000 tags of 10 points each, a 1,000,000-point
series, an experiment of 1,000 runs with params, and, so that an index has something
to skip, other teams' data next to them (10 more experiments of 1,000 runs and 100
series for each of those 1,000 runs). ``ANALYZE`` runs after the fill, as autovacuum
would soon after.

Baselines, in the same rounds, on a fresh psycopg connection (connect not timed): a bare
``SELECT`` of the same 1,000,000 points from a one-row-per-point table keyed (run, tag,
step) into numpy arrays, and bare SELECTs of the same tag and run rows. The ratios
are baseline time / Trainboard time.

Last, it runs ``EXPLAIN (ANALYZE, FORMAT JSON)`` on the statements the store issues for
each of the three calls (captured from a ``SqlStore`` on the same database) and prints
the scans and index names: the check fails when a table the planner estimates at
1,000 rows or more is read by a sequential scan.

Run from the repository root::

    python -m bench.team            # the sizes above, 5 rounds
    python -m bench.team --quick    # 1,000 tags, 100 runs, 100,000 points: a smoke test
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench._common import (
    ServerProcess,
    Verdicts,
    fmt_seconds,
    interleave,
    make_parser,
    median,
    paired_ratio,
    peak_rss_mib,
    print_header,
    print_rounds,
    print_table,
    rounds_for,
    timing_rows,
)
from bench.ingest import (
    DEFAULT_POSTGRES,
    POINTS_TABLE,
    copy_rows,
    postgres_problem,
    scratch_database,
)

TARGET_SECONDS = 0.3
MAX_POINTS = 2_000
TAG_POINTS = 10
TAGS_EXPERIMENT, TAGS_RUN = "team-tags", "many-tags"
SERIES_EXPERIMENT, SERIES_RUN, SERIES_TAG = "team-series", "long-run", "train/loss"
RUNS_EXPERIMENT = "team-runs"
FILL_CLIENT = "bench-team-fill"
# A Seq Scan is fine on a table the planner thinks holds fewer rows than this.
SMALL_TABLE_ROWS = 1_000

SERIES_BASELINE = (
    "SELECT step, wall_time, value FROM points WHERE run = %s AND tag = %s ORDER BY step"
)
TAGS_BASELINE = "SELECT tag, kind, last_step FROM series WHERE run_id = %s"
RUNS_BASELINE = (
    "SELECT r.id, r.name, e.name, r.params, r.status, r.started_at, r.finished_at, "
    "r.updated_at FROM runs r JOIN experiments e ON e.id = r.experiment_id "
    "WHERE e.name = %s ORDER BY r.id"
)


@dataclass(frozen=True, slots=True)
class Sizes:
    tags: int
    runs: int
    points: int
    other_experiments: int
    other_series_per_run: int

    def describe(self) -> str:
        return (
            f"a run with {self.tags:,} tags, an experiment with {self.runs:,} runs, "
            f"a {self.points:,}-point series; beside them {self.other_experiments} more "
            f"experiments of {self.runs:,} runs and {self.other_series_per_run} series "
            f"per listed run"
        )


FULL = Sizes(
    tags=10_000, runs=1_000, points=1_000_000, other_experiments=10, other_series_per_run=100
)
QUICK = Sizes(tags=1_000, runs=100, points=100_000, other_experiments=10, other_series_per_run=100)


@dataclass(frozen=True, slots=True)
class Filled:
    tags_run_id: int
    series_run_id: int


# ---------------------------------------------------------------------- fill


def fill(store: Any, sizes: Sizes) -> Filled:
    """Fills the database through ``store`` (a ``SqlStore``); other teams' rows go in
    with bulk inserts on its engine, which is much faster than a call each."""
    from trainboard.types import ScalarColumns, WriteBatch

    sequence = 0

    def write(run_id: int, columns: Sequence[ScalarColumns]) -> None:
        nonlocal sequence
        sequence += 1
        store.write_batch(WriteBatch(FILL_CLIENT, sequence, run_id, scalars=tuple(columns)))

    now = time.time()
    tags_run = store.start_run(TAGS_EXPERIMENT, TAGS_RUN, {"tags": sizes.tags}, now).run.id
    steps = np.arange(TAG_POINTS, dtype=np.int64)
    wall_times = now + steps * 0.01
    names = [f"layer{i // 100:03d}/metric{i % 100:02d}" for i in range(sizes.tags)]
    for start in range(0, sizes.tags, 1_000):
        write(
            tags_run,
            [
                ScalarColumns(name, steps, wall_times, np.full(TAG_POINTS, i * 0.001))
                for i, name in enumerate(names[start : start + 1_000], start)
            ],
        )

    series_run = store.start_run(SERIES_EXPERIMENT, SERIES_RUN, {}, now).run.id
    steps, values = series_points(sizes.points)
    for start in range(0, sizes.points, 100_000):
        part = slice(start, start + 100_000)
        write(
            series_run,
            [ScalarColumns(SERIES_TAG, steps[part], now + steps[part] * 0.01, values[part])],
        )

    def start_listed_run(index: int) -> int:
        params = {
            "lr": 10.0 ** -(1 + index % 4),
            "batch_size": 2 ** (5 + index % 4),
            "seed": index,
            "optimizer": ("adam", "sgd")[index % 2],
        }
        return int(store.start_run(RUNS_EXPERIMENT, f"run-{index:05d}", params, now).run.id)

    with ThreadPoolExecutor(max_workers=8) as pool:
        listed_runs = list(pool.map(start_listed_run, range(sizes.runs)))
    add_other_teams(store.engine, sizes, listed_runs, now)
    return Filled(tags_run_id=tags_run, series_run_id=series_run)


def series_points(points: int) -> tuple[np.ndarray, np.ndarray]:
    """A loss curve: decay, noise and a few spikes (as ``bench.read``)."""
    rng = np.random.default_rng(42)
    steps = np.arange(points, dtype=np.int64)
    values = 2.0 * np.exp(-steps / max(1, points / 8)) + 0.05 * rng.standard_normal(points)
    values[rng.integers(0, points, size=max(1, points // 100_000))] += 5.0
    return steps, values


def add_other_teams(engine: Any, sizes: Sizes, listed_runs: Sequence[int], now: float) -> None:
    """Rows the listings must skip: other experiments' runs, and more series of
    the listed runs (without chunks: only the series rows matter for listing)."""
    from sqlalchemy import insert, select

    from trainboard_server.storage.models import experiments, runs, series

    with engine.begin() as connection:
        connection.execute(
            insert(experiments),
            [
                {"name": f"other-team-{i:02d}", "created_at": now}
                for i in range(sizes.other_experiments)
            ],
        )
        other_ids = connection.execute(
            select(experiments.c.id).where(experiments.c.name.like("other-team-%"))
        ).scalars()
        connection.execute(
            insert(runs),
            [
                {
                    "experiment_id": experiment_id,
                    "name": f"run-{i:05d}",
                    "params": json.dumps({"seed": i}),
                    "status": "finished",
                    "started_at": now,
                    "finished_at": now,
                    "updated_at": now,
                }
                for experiment_id in other_ids
                for i in range(sizes.runs)
            ],
        )
        connection.execute(
            insert(series),
            [
                {
                    "run_id": run_id,
                    "tag": f"other/metric{i:03d}",
                    "kind": "scalar",
                    "last_step": -1,
                    "tail_seq": 0,
                    "tail_count": 0,
                }
                for run_id in listed_runs
                for i in range(sizes.other_series_per_run)
            ],
        )
    with engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")


def fill_baseline(url: str, sizes: Sizes) -> None:
    """The one-row-per-point table the series baseline reads."""
    import psycopg

    steps, values = series_points(sizes.points)
    now = time.time()
    rows = [
        (1, SERIES_TAG, step, now + step * 0.01, value)
        for step, value in zip(steps.tolist(), values.tolist(), strict=True)
    ]
    with psycopg.connect(url) as conn:
        conn.execute(POINTS_TABLE.format(bigint="BIGINT", real="DOUBLE PRECISION"))
        copy_rows(conn, "points", rows)
        conn.execute("ANALYZE points")
        conn.commit()


# ---------------------------------------------------------------------- cases


@dataclass
class Timings:
    """Per round: the series read (returned to ``interleave``) and the listings."""

    tags: list[float] = field(default_factory=list)
    runs: list[float] = field(default_factory=list)
    warm: dict[str, list[float]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def timed(call: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    result = call()
    return result, time.perf_counter() - start


class TrainboardCase:
    """A round: restart the server, connect a Reader (untimed), then time the first
    series read, tag listing and run listing, then the same again, warm."""

    def __init__(self, server: ServerProcess, filled: Filled, sizes: Sizes) -> None:
        self.server = server
        self.filled = filled
        self.sizes = sizes
        self.timings = Timings()

    def measure(self) -> float:
        import trainboard

        self.server.restart()
        timings = self.timings
        with trainboard.Reader(self.server.address) as reader:
            if not reader.healthy(timeout=10.0):
                raise RuntimeError("the restarted server does not answer")
            calls: dict[str, Callable[[], Any]] = {
                "series": lambda: reader.scalars(
                    self.filled.series_run_id, SERIES_TAG, max_points=MAX_POINTS
                ),
                "tags": lambda: reader.tags(self.filled.tags_run_id),
                "runs": lambda: reader.runs(RUNS_EXPERIMENT),
            }
            first = {name: timed(call) for name, call in calls.items()}
            for name, call in calls.items():
                timings.warm.setdefault(name, []).append(timed(call)[1])
        series, series_time = first["series"]
        tags, tags_time = first["tags"]
        runs, runs_time = first["runs"]
        timings.tags.append(tags_time)
        timings.runs.append(runs_time)
        if series.total != self.sizes.points or not 0 < len(series) <= MAX_POINTS:
            timings.problems.append(f"series: {len(series)} points of {series.total}")
        if len(tags) != self.sizes.tags:
            timings.problems.append(f"tags: {len(tags)} listed, not {self.sizes.tags}")
        if len(runs) != self.sizes.runs:
            timings.problems.append(f"runs: {len(runs)} listed, not {self.sizes.runs}")
        return float(series_time)


class BaselineCase:
    """A round: bare psycopg SELECTs of the same rows on a fresh connection."""

    def __init__(self, points_url: str, store_url: str, filled: Filled, sizes: Sizes) -> None:
        self.points_url = points_url
        self.store_url = store_url
        self.filled = filled
        self.sizes = sizes
        self.timings = Timings()

    def measure(self) -> float:
        import psycopg

        with psycopg.connect(self.points_url) as conn:
            rows, series_time = timed(
                lambda: conn.execute(SERIES_BASELINE, (1, SERIES_TAG)).fetchall()
            )
            table = np.array(rows, dtype=np.float64)
        with psycopg.connect(self.store_url) as conn:
            tags, tags_time = timed(
                lambda: conn.execute(TAGS_BASELINE, (self.filled.tags_run_id,)).fetchall()
            )
            runs, runs_time = timed(
                lambda: conn.execute(RUNS_BASELINE, (RUNS_EXPERIMENT,)).fetchall()
            )
        if len(table) != self.sizes.points or len(tags) != self.sizes.tags:
            self.timings.problems.append(f"baseline read {len(table)} points, {len(tags)} tags")
        if len(runs) != self.sizes.runs:
            self.timings.problems.append(f"baseline listed {len(runs)} runs")
        self.timings.tags.append(tags_time)
        self.timings.runs.append(runs_time)
        return float(series_time)


# ---------------------------------------------------------------------- plans


@dataclass(frozen=True, slots=True)
class Scan:
    node: str  # "Index Scan", "Seq Scan", ...
    table: str | None
    index: str | None


@dataclass(frozen=True, slots=True)
class Plan:
    call: str
    statement: str
    scans: tuple[Scan, ...]
    milliseconds: float


def capture_statements(engine: Any) -> Generator[list[tuple[str, Any]], None, None]:
    """Yields a list that collects (statement, parameters) of every SELECT the
    engine runs while the generator is suspended."""
    from sqlalchemy import event

    captured: list[tuple[str, Any]] = []

    def listener(
        connection: Any,
        cursor: Any,
        statement: str,
        parameters: Any,
        context: Any,
        executemany: bool,
    ) -> None:
        if re.match(r"\s*SELECT\b.*\bFROM\b", statement, re.IGNORECASE | re.DOTALL):
            captured.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", listener)
    try:
        yield captured
    finally:
        event.remove(engine, "before_cursor_execute", listener)


def explain_calls(store: Any, filled: Filled) -> list[Plan]:
    """EXPLAIN ANALYZE of the statements ``store`` runs for the three timed calls."""
    calls: dict[str, Callable[[], Any]] = {
        "read series": lambda: store.read_scalars(
            run_ids=[filled.series_run_id], tags=[SERIES_TAG], max_points=MAX_POINTS
        ),
        "list tags": lambda: store.list_tags(filled.tags_run_id),
        "list runs": lambda: store.list_runs(RUNS_EXPERIMENT),
    }
    plans: list[Plan] = []
    for call, run in calls.items():
        capture = capture_statements(store.engine)
        captured = next(capture)
        run()
        capture.close()
        with store.engine.connect() as connection:
            cursor = connection.connection.driver_connection.cursor()
            for statement, parameters in captured:
                cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {statement}", parameters)
                (document,) = cursor.fetchone()
                top = (json.loads(document) if isinstance(document, str) else document)[0]
                plans.append(
                    Plan(
                        call=call,
                        statement=" ".join(statement.split()),
                        scans=tuple(scans_of(top["Plan"])),
                        milliseconds=float(top["Execution Time"]),
                    )
                )
            connection.rollback()
    return plans


def scans_of(node: dict[str, Any]) -> Iterator[Scan]:
    if "Scan" in node["Node Type"]:
        yield Scan(node["Node Type"], node.get("Relation Name"), node.get("Index Name"))
    for child in node.get("Plans", ()):
        yield from scans_of(child)


def describe_scan(scan: Scan) -> str:
    text = scan.node
    if scan.index:
        text += f" using {scan.index}"
    if scan.table:
        text += f" on {scan.table}"
    return text


def short_statement(statement: str, width: int = 96) -> str:
    statement = re.sub(r"::[A-Z]+\b", "", statement)  # casts SQLAlchemy adds to params
    return statement if len(statement) <= width else statement[: width - 3] + "..."


def table_rows(engine: Any) -> dict[str, float]:
    from sqlalchemy import text

    with engine.connect() as connection:
        found = connection.execute(
            text(
                "SELECT relname, reltuples FROM pg_class "
                "WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace"
            )
        )
        return {str(name): float(rows) for name, rows in found}


def print_plans(plans: Sequence[Plan], rows: dict[str, float]) -> list[str]:
    """Prints each statement's scans; returns the sequential scans of large tables."""
    print("query plans (EXPLAIN ANALYZE of the statements the store runs for each call):")
    bad: list[str] = []
    for plan in plans:
        scans = ", ".join(describe_scan(s) for s in plan.scans) or "no table scan"
        print(f"  {plan.call}: {short_statement(plan.statement)}")
        print(f"      {scans}  ({plan.milliseconds:.2f} ms in PostgreSQL)")
        for scan in plan.scans:
            if scan.node == "Seq Scan" and rows.get(scan.table or "", 0.0) >= SMALL_TABLE_ROWS:
                bad.append(f"{plan.call}: Seq Scan on {scan.table}")
    sizes = ", ".join(f"{name} {int(count):,}" for name, count in sorted(rows.items()))
    print(f"  table rows (pg_class.reltuples): {sizes}", flush=True)
    return bad


# ---------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser(__doc__, default_rounds=5)
    parser.add_argument(
        "--postgres",
        default=os.environ.get("TRAINBOARD_TEST_POSTGRES", DEFAULT_POSTGRES),
        help="libpq URL of a PostgreSQL database allowed to CREATE DATABASE "
        "(default $TRAINBOARD_TEST_POSTGRES or %(default)s)",
    )
    args = parser.parse_args(argv)
    rounds = rounds_for(args, 5)
    sizes = QUICK if args.quick else FULL
    print_header(
        "team: read path on PostgreSQL, first calls after a server restart",
        rounds=rounds,
        quick=args.quick,
        sizes=sizes.describe(),
    )
    verdicts = Verdicts()
    problem = postgres_problem(args.postgres)
    if problem is not None:
        verdicts.skip("team read path", problem)
        return verdicts.exit_code(args.strict)

    from trainboard_server.sql_store import SqlStore

    with ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="trainboard-bench-")))
        store_url = stack.enter_context(scratch_database(args.postgres, "team"))
        points_url = stack.enter_context(scratch_database(args.postgres, "points"))
        sqlalchemy_url = store_url.replace("postgresql://", "postgresql+psycopg://", 1)
        store = SqlStore.from_url(sqlalchemy_url)
        stack.callback(store.close)
        started = time.perf_counter()
        filled = fill(store, sizes)
        fill_baseline(points_url, sizes)
        print(f"filled in {fmt_seconds(time.perf_counter() - started)} (not timed)", flush=True)

        server = stack.enter_context(ServerProcess(sqlalchemy_url, root / "server.log"))
        product = TrainboardCase(server, filled, sizes)
        baseline = BaselineCase(points_url, store_url, filled, sizes)
        series_base = f"PostgreSQL SELECT of {sizes.points:,} rows + numpy (baseline)"
        tags_base = f"PostgreSQL SELECT of the {sizes.tags:,} series rows (baseline)"
        runs_base = f"PostgreSQL SELECT of the {sizes.runs:,} run rows (baseline)"
        series_name = f"trainboard first read, {sizes.points:,} points to {MAX_POINTS:,}"
        tags_name = f"trainboard list {sizes.tags:,} tags"
        runs_name = f"trainboard list {sizes.runs:,} runs"
        results = interleave(
            rounds, [(series_base, baseline.measure), (series_name, product.measure)]
        )
        results[tags_base] = baseline.timings.tags
        results[tags_name] = product.timings.tags
        results[runs_base] = baseline.timings.runs
        results[runs_name] = product.timings.runs
        for name, label in (
            ("series", "read series"),
            ("tags", "list tags"),
            ("runs", "list runs"),
        ):
            results[f"trainboard {label} again (warm server)"] = product.timings.warm[name]
        server_memory = server.peak_rss_mib

        print_table(["case", "median", "min", "max"], timing_rows(results, fmt_seconds))
        if args.verbose:
            print_rounds(results, fmt_seconds)
        for base, name in (
            (series_base, series_name),
            (tags_base, tags_name),
            (runs_base, runs_name),
        ):
            verdicts.info_ratio(
                f"{base.removesuffix(' (baseline)')} / {name}",
                paired_ratio(results[base], results[name]),
                of_medians=median(results[base]) / median(results[name]),
            )
        for name in (series_name, tags_name, runs_name):
            verdicts.check(
                name,
                median(results[name]) < TARGET_SECONDS,
                f"median {fmt_seconds(median(results[name]))} "
                f"(target < {fmt_seconds(TARGET_SECONDS)})",
            )
        problems = product.timings.problems + baseline.timings.problems
        verdicts.check(
            "answers",
            not problems,
            "every call returned what was stored" if not problems else "; ".join(problems),
        )
        print()
        bad = print_plans(explain_calls(store, filled), table_rows(store.engine))
        verdicts.check(
            "index use",
            not bad,
            "no sequential scan of a large table" if not bad else "; ".join(bad),
        )
        print(
            f"peak RSS: benchmark process {peak_rss_mib():.0f} MiB"
            + (f", server process {server_memory:.0f} MiB" if server_memory else ""),
            flush=True,
        )
    return verdicts.exit_code(args.strict)


if __name__ == "__main__":
    sys.exit(main())
