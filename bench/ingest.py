"""End-to-end ingestion, client to committed, vs bare row inserts into the database.

What it measures, in points per second, as the median over interleaved rounds:

* Trainboard: one ``Client`` logs ten metrics a step with
  ``log_scalars(dict_of_10, step=i)`` (the dicts built before the clock starts) as
  fast as it can for N steps, then calls ``flush()``, which returns once the server
  has committed every point. Rate = 10 * N / (time from the first logging call to
  ``flush()`` returning). The server is a subprocess (``python -m trainboard server``)
  on a SQLite file, and another one on a fresh PostgreSQL database. Each round logs
  into a new run (run creation is not timed).
* Baseline, SQLite: a bare ``sqlite3`` ``executemany`` of the same points, one row
  each, into ``points (run, tag, step, wall_time, value, PRIMARY KEY (run, tag, step))``
  in a WAL file with ``synchronous=NORMAL``, then commit. The rows are built before the
  clock starts.
* Baseline, PostgreSQL: a bare binary ``COPY ... FROM STDIN (FORMAT BINARY)`` (psycopg
  3, ``set_types``) of the same rows into the same table shape (``step BIGINT``, as
  SQLite's INTEGER is 64-bit), then commit.

Targets (SPEC §11): Trainboard at least 3x each baseline. PostgreSQL is at
127.0.0.1:5432 (``--postgres`` to change); the benchmark creates two uniquely named
databases there and drops them at the end. Without a PostgreSQL the PostgreSQL half is
skipped (SKIP; a failure with ``--strict``).

Run from the repository root::

    python -m bench.ingest              # 100,000 steps x 10 tags a round, 5 rounds
    python -m bench.ingest --quick      # a smoke test, a few seconds
"""

from __future__ import annotations

import os
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from bench._common import (
    ServerProcess,
    Verdicts,
    fmt_rate,
    interleave,
    make_parser,
    median,
    paired_ratio,
    print_header,
    print_rounds,
    print_table,
    rounds_for,
    timing_rows,
)
from bench._common import peak_rss_mib as bench_peak_rss_mib

TARGET_RATIO = 3.0
TAGS = tuple(
    f"{split}/{name}"
    for split in ("train", "eval")
    for name in ("loss", "accuracy", "lr", "grad_norm", "throughput")
)
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"

POINTS_TABLE = (
    "CREATE TABLE points (run INTEGER, tag TEXT, step {bigint}, wall_time {real}, "
    "value {real}, PRIMARY KEY (run, tag, step))"
)

Row = tuple[int, str, int, float, float]


class Workload:
    """The points every case writes in a round: ``steps`` steps of the ten ``TAGS``.

    The values are kept in a numpy array and in dicts of floats, neither of which the
    garbage collector tracks, so that the harness does not make the collector's passes
    during the timed loops longer than a trainer's own objects would.
    """

    def __init__(self, steps: int) -> None:
        rng = np.random.default_rng(20240611)
        curve = np.exp(-np.arange(steps) / max(1, steps / 5))[:, None]
        noise = rng.standard_normal((steps, len(TAGS))) * 0.01
        self.matrix = curve * np.linspace(0.5, 5.0, len(TAGS)) + noise
        # The dict a trainer hands to log_scalars each step, built before the clock
        # starts, as the baselines' rows are (log_scalars copies it, so it is reused).
        self.dicts = [dict(zip(TAGS, row, strict=True)) for row in self.matrix.tolist()]
        self.steps = steps

    @property
    def points(self) -> int:
        return self.steps * len(TAGS)

    def rows(self, run: int) -> list[Row]:
        """One row per point, as the baselines insert them."""
        t0 = time.time()
        return [
            (run, tag, step, t0 + step * 1e-3, value)
            for step, values in enumerate(self.matrix.tolist())
            for tag, value in zip(TAGS, values, strict=True)
        ]


# ---------------------------------------------------------------------- baselines


def sqlite_baseline(path: Path, workload: Workload) -> Callable[[], float]:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(POINTS_TABLE.format(bigint="INTEGER", real="REAL"))
    conn.commit()
    run = 0

    def measure() -> float:
        nonlocal run
        run += 1
        rows = workload.rows(run)
        start = time.perf_counter()
        conn.executemany("INSERT INTO points VALUES (?, ?, ?, ?, ?)", rows)
        conn.commit()
        return len(rows) / (time.perf_counter() - start)

    return measure


def postgres_baseline(conn: Any, workload: Workload) -> Callable[[], float]:
    conn.execute(POINTS_TABLE.format(bigint="BIGINT", real="DOUBLE PRECISION"))
    conn.commit()
    run = 0

    def measure() -> float:
        nonlocal run
        run += 1
        rows = workload.rows(run)
        start = time.perf_counter()
        with (
            conn.cursor() as cursor,
            cursor.copy(
                "COPY points (run, tag, step, wall_time, value) FROM STDIN (FORMAT BINARY)"
            ) as copy,
        ):
            copy.set_types(["int4", "text", "int8", "float8", "float8"])
            for row in rows:
                copy.write_row(row)
        conn.commit()
        return len(rows) / (time.perf_counter() - start)

    return measure


# ---------------------------------------------------------------------- product


class TrainboardCase:
    """Rounds of one Client logging the workload into a new run of a server."""

    def __init__(self, server: ServerProcess, workload: Workload, label: str) -> None:
        self.server = server
        self.workload = workload
        self.label = label
        self.rounds = 0
        self.last_run_id: int | None = None
        self.failures: list[str] = []

    def measure(self) -> float:
        import trainboard

        self.rounds += 1
        dicts = self.workload.dicts
        with trainboard.Client(
            "bench-ingest", f"{self.label}-round-{self.rounds}", server=self.server.address
        ) as client:
            self.last_run_id = client.run_id  # the run exists before the clock starts
            log_scalars = client.log_scalars
            start = time.perf_counter()
            for step, values in enumerate(dicts):
                log_scalars(values, step=step)
            stored = client.flush(timeout=600)
            elapsed = time.perf_counter() - start
        if not stored:
            self.failures.append(f"round {self.rounds}: flush() did not confirm every point")
        return self.workload.points / elapsed

    def stored_points(self) -> int:
        """Points stored in the last round's run, read back (untimed)."""
        import trainboard

        if self.last_run_id is None:
            return 0
        with trainboard.Reader(self.server.address) as reader:
            return sum(reader.scalars(self.last_run_id, tag, max_points=2).total for tag in TAGS)


# ---------------------------------------------------------------------- PostgreSQL


def postgres_problem(admin_url: str) -> str | None:
    """Why PostgreSQL cannot be used (None when it can)."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install 'trainboard[postgres]')"
    try:
        with psycopg.connect(admin_url, connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return f"PostgreSQL at {admin_url} does not answer: {exc}".strip()


@contextmanager
def scratch_database(admin_url: str, suffix: str) -> Iterator[str]:
    """A new, uniquely named database, dropped on exit; yields its libpq URL."""
    import psycopg

    name = f"trainboard_bench_{uuid.uuid4().hex[:10]}_{suffix}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{admin_url.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ---------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser(__doc__, default_rounds=5)
    parser.add_argument("--steps", type=int, default=None, help="steps a round (default 100,000)")
    parser.add_argument(
        "--postgres",
        default=os.environ.get("TRAINBOARD_TEST_POSTGRES", DEFAULT_POSTGRES),
        help="libpq URL of a PostgreSQL database allowed to CREATE DATABASE "
        "(default $TRAINBOARD_TEST_POSTGRES or %(default)s)",
    )
    parser.add_argument("--no-postgres", action="store_true", help="skip PostgreSQL")
    args = parser.parse_args(argv)
    rounds = rounds_for(args, 5)
    steps = args.steps or (2_000 if args.quick else 100_000)
    workload = Workload(steps)
    print_header(
        "ingest: end-to-end points/s, client to committed",
        rounds=rounds,
        quick=args.quick,
        sizes=f"{steps:,} steps x {len(TAGS)} tags = {workload.points:,} points a round",
    )
    verdicts = Verdicts()
    pg_problem = "--no-postgres" if args.no_postgres else postgres_problem(args.postgres)

    with ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="trainboard-bench-")))
        sqlite_server = stack.enter_context(
            ServerProcess(f"sqlite:///{root / 'trainboard.db'}", root / "server-sqlite.log")
        )
        sqlite_product = TrainboardCase(sqlite_server, workload, "sqlite")
        cases: list[tuple[str, Callable[[], float]]] = [
            ("sqlite3 executemany (baseline)", sqlite_baseline(root / "baseline.db", workload)),
            ("trainboard on SQLite", sqlite_product.measure),
        ]
        servers = [("SQLite", sqlite_server)]
        pg_product: TrainboardCase | None = None
        if pg_problem is None:
            import psycopg

            product_db = stack.enter_context(scratch_database(args.postgres, "server"))
            baseline_db = stack.enter_context(scratch_database(args.postgres, "copy"))
            pg_conn = stack.enter_context(psycopg.connect(baseline_db))
            pg_server = stack.enter_context(
                ServerProcess(
                    product_db.replace("postgresql://", "postgresql+psycopg://", 1),
                    root / "server-postgres.log",
                )
            )
            servers.append(("PostgreSQL", pg_server))
            pg_product = TrainboardCase(pg_server, workload, "postgres")
            cases += [
                ("PostgreSQL binary COPY (baseline)", postgres_baseline(pg_conn, workload)),
                ("trainboard on PostgreSQL", pg_product.measure),
            ]

        results = interleave(rounds, cases)
        print_table(
            ["case", "median", "min", "max"],
            timing_rows(results, lambda rate: fmt_rate(rate, "points")),
        )
        if args.verbose:
            print_rounds(results, lambda rate: fmt_rate(rate, "points"))
        products = [("SQLite", "sqlite3 executemany (baseline)", sqlite_product)]
        if pg_product is not None:
            products.append(("PostgreSQL", "PostgreSQL binary COPY (baseline)", pg_product))
        for name, baseline_label, _product in products:
            product_rates = results[f"trainboard on {name}"]
            baseline_rates = results[baseline_label]
            verdicts.ratio(
                f"trainboard on {name} / {baseline_label.removesuffix(' (baseline)')}",
                paired_ratio(product_rates, baseline_rates),
                TARGET_RATIO,
                of_medians=median(product_rates) / median(baseline_rates),
            )
        for name, _, product in products:
            stored = product.stored_points()
            verdicts.check(
                f"{name} points stored",
                not product.failures and stored == workload.points,
                f"last round's run holds {stored:,} of {workload.points:,} points"
                + (f"; {'; '.join(product.failures)}" if product.failures else ""),
            )
        if pg_problem is not None:
            verdicts.skip("trainboard on PostgreSQL", pg_problem)
        memory = [f"benchmark process {bench_peak_rss_mib():.0f} MiB"]
        for name, server in servers:
            if server.peak_rss_mib is not None:
                memory.append(f"{name} server {server.peak_rss_mib:.0f} MiB")
        print(f"peak RSS: {', '.join(memory)}", flush=True)
    return verdicts.exit_code(args.strict)


if __name__ == "__main__":
    sys.exit(main())
