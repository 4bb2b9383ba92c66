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

Targets (README): Trainboard at least 3x each baseline. PostgreSQL is at
127.0.0.1:5432 (``--postgres`` to change); the benchmark creates two uniquely named
databases there and drops them at the end. Without a PostgreSQL the PostgreSQL half is
skipped (SKIP; a failure with ``--strict``).

Team mode (``--clients N``, N = 16 when the flag has no number): N client processes
(started once, each given one job a round) log at once through ONE server, each into
its own new run, ten tags a step for a fixed number of steps each (default 100,000 / N).
Rate = N x steps x 10 / (time from the go signal until every client's ``flush()`` has
returned). Baselines, of the same total points, one row each: ``sqlite3``
``executemany`` and binary ``COPY`` on one connection (as above), and for information
a binary ``COPY`` on N connections at once (each client process copies its share).
Target: Trainboard on PostgreSQL at least 3x the one-connection ``COPY``; the SQLite
figures are for information (SQLite has one writer at a time by design). With
``--servers K`` the same clients also log spread round-robin over K server processes
on the same PostgreSQL database (``server="host:p1,host:p2"``), for information. A last
line says how busy the machine's cores were while each case was timed (from
/proc/stat): near 100% means the machine, not Trainboard, set the pace.

Run from the repository root::

    python -m bench.ingest              # 100,000 steps x 10 tags a round, 5 rounds
    python -m bench.ingest --quick      # a smoke test, a few seconds
    python -m bench.ingest --clients    # 16 clients x 6,250 steps x 10 tags a round
    python -m bench.ingest --clients 4 --quick
    python -m bench.ingest --clients --servers 2   # also over 2 servers on one database
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from bench._common import (
    REPO_ROOT,
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
EXPERIMENT = "bench-ingest"
TEAM_CLIENTS = 16

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

    def rows_of_runs(self, runs: Iterable[int]) -> list[Row]:
        """The rows of the workload logged into each of ``runs``."""
        return [row for run in runs for row in self.rows(run)]


def log_workload(client: Any, workload: Workload) -> tuple[bool, float]:
    """The timed part of a Trainboard round: every step's dict, then ``flush()``.
    Returns whether the server confirmed every point, and the seconds it took."""
    log_scalars = client.log_scalars
    start = time.perf_counter()
    for step, values in enumerate(workload.dicts):
        log_scalars(values, step=step)
    stored = bool(client.flush(timeout=600))
    return stored, time.perf_counter() - start


# ---------------------------------------------------------------------- baselines


def sqlite_baseline(path: Path, workload: Workload, runs: int = 1) -> Callable[[], float]:
    """A round inserts ``runs`` runs of the workload (the team mode's total points)."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(POINTS_TABLE.format(bigint="INTEGER", real="REAL"))
    conn.commit()
    rounds = 0

    def measure() -> float:
        nonlocal rounds
        rounds += 1
        rows = workload.rows_of_runs(range((rounds - 1) * runs + 1, rounds * runs + 1))
        start = time.perf_counter()
        conn.executemany("INSERT INTO points VALUES (?, ?, ?, ?, ?)", rows)
        conn.commit()
        return len(rows) / (time.perf_counter() - start)

    return measure


def postgres_baseline(conn: Any, workload: Workload, runs: int = 1) -> Callable[[], float]:
    """A round copies ``runs`` runs of the workload (the team mode's total points)."""
    conn.execute(POINTS_TABLE.format(bigint="BIGINT", real="DOUBLE PRECISION"))
    conn.commit()
    rounds = 0

    def measure() -> float:
        nonlocal rounds
        rounds += 1
        rows = workload.rows_of_runs(range((rounds - 1) * runs + 1, rounds * runs + 1))
        start = time.perf_counter()
        copy_rows(conn, "points", rows)
        return len(rows) / (time.perf_counter() - start)

    return measure


def copy_rows(conn: Any, table: str, rows: Sequence[Row]) -> None:
    """A bare binary COPY of ``rows`` into ``table``, then commit."""
    with (
        conn.cursor() as cursor,
        cursor.copy(
            f"COPY {table} (run, tag, step, wall_time, value) FROM STDIN (FORMAT BINARY)"
        ) as copy,
    ):
        copy.set_types(["int4", "text", "int8", "float8", "float8"])
        for row in rows:
            copy.write_row(row)
    conn.commit()


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
        with trainboard.Client(
            EXPERIMENT, f"{self.label}-round-{self.rounds}", server=self.server.address
        ) as client:
            self.last_run_id = client.run_id  # the run exists before the clock starts
            stored, elapsed = log_workload(client, self.workload)
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


# ---------------------------------------------------------------------- team mode


class ClientPool:
    """``count`` client processes (``python -m bench.ingest --worker STEPS``), started
    once and given one job a round over their stdin; each answers one line on stdout.

    A round: every worker prepares its job (creates its run, or builds its rows) and
    answers ``ready``; then all are told ``go`` together, and the round's time runs
    from then until the last one answers ``done``; then ``finish`` (closes the client,
    untimed). See :func:`worker_main` for the other side.
    """

    def __init__(self, count: int, steps: int) -> None:
        self.count = count
        self.steps = steps
        self._processes: list[subprocess.Popen[str]] = []
        # Per round: the share of the machine's CPU time (all cores) that was busy.
        self.cpu_busy: list[float] = []

    @property
    def points(self) -> int:
        return self.count * self.steps * len(TAGS)

    def __enter__(self) -> ClientPool:
        command = [sys.executable, "-m", "bench.ingest", "--worker", str(self.steps)]
        for _ in range(self.count):
            self._processes.append(
                subprocess.Popen(
                    command,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                    cwd=REPO_ROOT,
                )
            )
        return self

    def __exit__(self, *exc_info: object) -> None:
        for process in self._processes:
            if process.poll() is None and process.stdin is not None:
                try:
                    process.stdin.write("quit\n")
                    process.stdin.close()
                except OSError:
                    pass
        for process in self._processes:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def timed_round(self, jobs: Sequence[str]) -> tuple[float, list[str]]:
        """Runs one job per worker at once; returns the seconds from ``go`` until the
        last worker was done, and each worker's ``done`` line (without ``done``)."""
        self._ask(jobs, "ready")
        cpu_before = cpu_times()
        start = time.perf_counter()
        replies = self._ask(["go"] * self.count, "done")
        elapsed = time.perf_counter() - start
        cpu_after = cpu_times()
        if cpu_before is not None and cpu_after is not None:
            busy = cpu_after[0] - cpu_before[0]
            total = cpu_after[1] - cpu_before[1]
            self.cpu_busy.append(busy / total if total > 0 else float("nan"))
        self._ask(["finish"] * self.count, "finished")
        return elapsed, replies

    def _ask(self, lines: Sequence[str], answer: str) -> list[str]:
        for process, line in zip(self._processes, lines, strict=True):
            assert process.stdin is not None
            process.stdin.write(line + "\n")
            process.stdin.flush()
        replies = []
        for index, process in enumerate(self._processes):
            assert process.stdout is not None
            reply = process.stdout.readline().split()
            if not reply or reply[0] != answer:
                raise RuntimeError(
                    f"client process {index} answered {reply!r} instead of {answer!r} "
                    f"(exit status {process.poll()}; its traceback is above)"
                )
            replies.append(" ".join(reply[1:]))
        return replies


def cpu_times() -> tuple[int, int] | None:
    """The machine's (busy, total) CPU time so far, in clock ticks, from /proc/stat
    (None where there is none): what shows whether the cores were saturated."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = [int(value) for value in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user time
    return total - idle, total


def worker_main(argv: Sequence[str]) -> int:
    """One client process of the team mode (see :class:`ClientPool`). Jobs:
    ``log ADDRESS RUN`` (a Client logs the workload into RUN; answers ``done OK RUN_ID``)
    and ``copy URL TABLE RUN`` (a binary COPY of the workload's rows; ``done 1 0``).
    The client's run is created, and the rows built, before ``ready``: untimed."""
    import trainboard

    workload = Workload(int(argv[0]))
    client: trainboard.Client | None = None
    copy_job: tuple[str, list[Row]] | None = None  # (table, rows)
    connections: dict[str, Any] = {}  # by URL, kept across rounds
    connection: Any = None

    def answer(text: str) -> None:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    try:
        for line in sys.stdin:
            job, *words = line.split()
            if job == "log":
                address, run = words
                client = trainboard.Client(EXPERIMENT, run, server=address)
                client.run_id  # noqa: B018  # waits until the run exists
                answer("ready")
            elif job == "copy":
                import psycopg

                url, table, run = words
                if url not in connections:
                    connections[url] = psycopg.connect(url)
                connection = connections[url]
                copy_job = (table, workload.rows(int(run)))
                answer("ready")
            elif job == "go" and client is not None:
                stored, _ = log_workload(client, workload)
                answer(f"done {int(stored)} {client.run_id}")
            elif job == "go" and copy_job is not None:
                copy_rows(connection, *copy_job)
                answer("done 1 0")
            elif job == "finish":
                if client is not None:
                    client.close(timeout=600)
                client, copy_job = None, None
                answer("finished")
            elif job == "quit":
                break
            else:
                raise RuntimeError(f"unexpected job {line!r}")
    finally:
        if client is not None:
            client.close(timeout=10)
        for open_connection in connections.values():
            open_connection.close()
    return 0


class TeamTrainboardCase:
    """Rounds of every client of the pool logging the workload into a run of its own,
    all at once, through one server (or spread round-robin over several)."""

    def __init__(self, pool: ClientPool, servers: Sequence[ServerProcess], label: str) -> None:
        self.pool = pool
        self.servers = list(servers)
        self.label = label
        self.rounds = 0
        self.last_run_ids: list[int] = []
        self.failures: list[str] = []
        self.cpu_busy: list[float] = []

    def measure(self) -> float:
        self.rounds += 1
        address = ",".join(server.address for server in self.servers)
        jobs = [
            f"log {address} {self.label}-{self.pool.count}-clients-round-{self.rounds}-client-{i}"
            for i in range(self.pool.count)
        ]
        elapsed, replies = self.pool.timed_round(jobs)
        self.cpu_busy += self.pool.cpu_busy[-1:]
        self.last_run_ids = []
        for index, reply in enumerate(replies):
            stored, run_id = reply.split()
            self.last_run_ids.append(int(run_id))
            if stored != "1":
                self.failures.append(
                    f"round {self.rounds}: client {index}'s flush() did not confirm every point"
                )
        return self.pool.points / elapsed

    def stored_points(self) -> int:
        """Points stored in the last round's runs, read back (untimed)."""
        import trainboard

        with trainboard.Reader(self.servers[0].address) as reader:
            return sum(
                reader.scalars(run_id, tag, max_points=2).total
                for run_id in self.last_run_ids
                for tag in TAGS
            )


class ParallelCopyCase:
    """Rounds of every client process copying its share of the rows at once, each on
    its own connection, into a table of the points shape."""

    def __init__(self, pool: ClientPool, conn: Any, url: str, table: str) -> None:
        conn.execute(
            POINTS_TABLE.replace("points", table, 1).format(
                bigint="BIGINT", real="DOUBLE PRECISION"
            )
        )
        conn.commit()
        self.pool = pool
        self.url = url
        self.table = table
        self.rounds = 0
        self.cpu_busy: list[float] = []

    def measure(self) -> float:
        self.rounds += 1
        first = (self.rounds - 1) * self.pool.count + 1
        jobs = [f"copy {self.url} {self.table} {first + i}" for i in range(self.pool.count)]
        elapsed, _ = self.pool.timed_round(jobs)
        self.cpu_busy += self.pool.cpu_busy[-1:]
        return self.pool.points / elapsed


def team_main(args: argparse.Namespace) -> int:
    """The team mode: ``args.clients`` clients at once through one server."""
    clients = int(args.clients)
    if clients < 1:
        raise SystemExit("--clients must be at least 1")
    rounds = rounds_for(args, 5)
    steps = args.steps or max(1, (2_000 if args.quick else 100_000) // clients)
    workload = Workload(steps)
    total = clients * workload.points
    spread = int(args.servers)
    if spread < 1:
        raise SystemExit("--servers must be at least 1")
    also = f" (and over {spread} servers)" if spread > 1 else ""
    print_header(
        f"ingest: end-to-end points/s, {clients} clients at once through one server{also}",
        rounds=rounds,
        quick=args.quick,
        sizes=f"{clients} client processes x {steps:,} steps x {len(TAGS)} tags "
        f"= {total:,} points a round, each client into a run of its own",
    )
    verdicts = Verdicts()
    pg_problem = "--no-postgres" if args.no_postgres else postgres_problem(args.postgres)
    one_copy = "PostgreSQL binary COPY, 1 connection (baseline)"
    many_copy = f"PostgreSQL binary COPY, {clients} connections (baseline)"
    sqlite_base = "sqlite3 executemany, 1 connection (baseline)"
    sqlite_name = f"trainboard on SQLite, {clients} clients"
    pg_name = f"trainboard on PostgreSQL, {clients} clients"
    spread_name = f"trainboard on PostgreSQL, {clients} clients over {spread} servers"

    with ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="trainboard-bench-")))
        pool = stack.enter_context(ClientPool(clients, steps))
        sqlite_server = stack.enter_context(
            ServerProcess(f"sqlite:///{root / 'trainboard.db'}", root / "server-sqlite.log")
        )
        sqlite_product = TeamTrainboardCase(pool, [sqlite_server], "sqlite")
        cases: list[tuple[str, Callable[[], float]]] = [
            (sqlite_base, sqlite_baseline(root / "baseline.db", workload, runs=clients)),
            (sqlite_name, sqlite_product.measure),
        ]
        servers = [("SQLite", sqlite_server)]
        products = [("SQLite", sqlite_product)]
        cpu = {sqlite_name: sqlite_product.cpu_busy}
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
            pg_product = TeamTrainboardCase(pool, [pg_server], "postgres")
            products.append(("PostgreSQL", pg_product))
            parallel = ParallelCopyCase(pool, pg_conn, baseline_db, "points_parallel")
            cases += [
                (one_copy, postgres_baseline(pg_conn, workload, runs=clients)),
                (many_copy, parallel.measure),
                (pg_name, pg_product.measure),
            ]
            cpu[many_copy], cpu[pg_name] = parallel.cpu_busy, pg_product.cpu_busy
            if spread > 1:  # more server processes on the same database
                extra = [
                    stack.enter_context(
                        ServerProcess(pg_server.db_url, root / f"server-postgres-{i}.log")
                    )
                    for i in range(2, spread + 1)
                ]
                servers += [(f"PostgreSQL #{i}", s) for i, s in enumerate(extra, 2)]
                spread_product = TeamTrainboardCase(pool, [pg_server, *extra], "spread")
                products.append((f"PostgreSQL over {spread} servers", spread_product))
                cases.append((spread_name, spread_product.measure))
                cpu[spread_name] = spread_product.cpu_busy

        results = interleave(rounds, cases)
        print_table(
            ["case", "median", "min", "max"],
            timing_rows(results, lambda rate: fmt_rate(rate, "points")),
        )
        if args.verbose:
            print_rounds(results, lambda rate: fmt_rate(rate, "points"))

        def ratio_of(product: str, baseline: str) -> tuple[str, float, float]:
            label = f"{product} / {baseline.removesuffix(' (baseline)')}"
            by_round = paired_ratio(results[product], results[baseline])
            return label, by_round, median(results[product]) / median(results[baseline])

        if pg_problem is None:
            label, by_round, of_medians = ratio_of(pg_name, one_copy)
            verdicts.ratio(label, by_round, TARGET_RATIO, of_medians=of_medians)
            label, by_round, of_medians = ratio_of(pg_name, many_copy)
            verdicts.info_ratio(label, by_round, of_medians=of_medians)
            if spread > 1:
                label, by_round, of_medians = ratio_of(spread_name, pg_name)
                verdicts.info_ratio(label, by_round, of_medians=of_medians)
        label, by_round, of_medians = ratio_of(sqlite_name, sqlite_base)
        verdicts.info_ratio(label, by_round, of_medians=of_medians)
        busy = [f"{name} {median(shares):.0%}" for name, shares in cpu.items() if shares]
        if busy:
            print(f"machine CPU busy while timed (median, all cores): {'; '.join(busy)}")
        for name, product in products:
            stored = product.stored_points()
            verdicts.check(
                f"{name} points stored",
                not product.failures and stored == total,
                f"last round's {clients} runs hold {stored:,} of {total:,} points"
                + (f"; {'; '.join(product.failures)}" if product.failures else ""),
            )
        if pg_problem is not None:
            verdicts.skip(pg_name, pg_problem)
        memory = [f"benchmark process {bench_peak_rss_mib():.0f} MiB"]
        for name, server in servers:
            if server.peak_rss_mib is not None:
                memory.append(f"{name} server {server.peak_rss_mib:.0f} MiB")
        print(f"peak RSS: {', '.join(memory)}", flush=True)
    return verdicts.exit_code(args.strict)


# ---------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--worker"]:
        return worker_main(argv[1:])
    parser = make_parser(__doc__, default_rounds=5)
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="steps a round (default 100,000); with --clients, steps each client logs "
        "(default 100,000 / N)",
    )
    parser.add_argument(
        "--clients",
        type=int,
        nargs="?",
        const=TEAM_CLIENTS,
        default=None,
        metavar="N",
        help=f"team mode: N client processes at once through one server "
        f"(N = {TEAM_CLIENTS} when not given)",
    )
    parser.add_argument(
        "--servers",
        type=int,
        default=1,
        metavar="K",
        help="team mode: also measure the clients spread round-robin over K server "
        "processes on the same PostgreSQL database (default 1: not measured)",
    )
    parser.add_argument(
        "--postgres",
        default=os.environ.get("TRAINBOARD_TEST_POSTGRES", DEFAULT_POSTGRES),
        help="libpq URL of a PostgreSQL database allowed to CREATE DATABASE "
        "(default $TRAINBOARD_TEST_POSTGRES or %(default)s)",
    )
    parser.add_argument("--no-postgres", action="store_true", help="skip PostgreSQL")
    args = parser.parse_args(argv)
    if args.clients is not None:
        return team_main(args)
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
