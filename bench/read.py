"""First read of a 1,000,000-point series, downsampled to 2,000 points, on SQLite.

What it measures: the time of ``Reader.scalars(run_id, tag, max_points=2000)`` against
a Trainboard server subprocess on a SQLite file holding one 1,000,000-point series,
for the FIRST read of that series: the server process is restarted before every timed
read, so nothing cached in the server helps (the operating system's page cache may).
The Reader is connected (one health check) before the clock starts. Target (README):
a median under 50 ms. A second read on the same server is shown for information.

Baseline, for a ratio measured in the same run: a bare ``sqlite3``
``SELECT step, wall_time, value FROM points WHERE run=? AND tag=? ORDER BY step`` of
the same points from a one-row-per-point table keyed (run, tag, step), fetched with
``fetchall()`` into numpy arrays, on a fresh connection each round.

Run from the repository root::

    python -m bench.read            # 1,000,000 points, 7 rounds
    python -m bench.read --quick    # a smoke test, a few seconds
"""

from __future__ import annotations

import sqlite3
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

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

TARGET_SECONDS = 0.050
MAX_POINTS = 2_000
EXPERIMENT, RUN, TAG = "bench-read", "long-run", "train/loss"
BASELINE_QUERY = "SELECT step, wall_time, value FROM points WHERE run = ? AND tag = ? ORDER BY step"


def make_series(points: int) -> tuple[np.ndarray, np.ndarray]:
    """A loss curve: decay, noise, and a few spikes; wall times 10 ms apart."""
    rng = np.random.default_rng(42)
    steps = np.arange(points, dtype=np.int64)
    values = 2.0 * np.exp(-steps / max(1, points / 8)) + 0.05 * rng.standard_normal(points)
    values[rng.integers(0, points, size=max(1, points // 100_000))] += 5.0
    return steps, values


def load_trainboard(address: str, steps: np.ndarray, values: np.ndarray) -> int:
    """Logs the series through a Client; returns the run id."""
    import trainboard

    t0 = time.time()
    with trainboard.Client(EXPERIMENT, RUN, server=address) as client:
        log_scalar = client.log_scalar
        for step, value in zip(steps.tolist(), values.tolist(), strict=True):
            log_scalar(TAG, value, step, wall_time=t0 + step * 0.01)
        if not client.flush(timeout=600):
            raise RuntimeError("the server did not store the series")
        return client.run_id


def load_baseline(path: Path, steps: np.ndarray, values: np.ndarray) -> None:
    t0 = time.time()
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(
            "CREATE TABLE points (run INTEGER, tag TEXT, step INTEGER, wall_time REAL, "
            "value REAL, PRIMARY KEY (run, tag, step))"
        )
        conn.executemany(
            "INSERT INTO points VALUES (1, ?, ?, ?, ?)",
            (
                (TAG, s, t0 + s * 0.01, v)
                for s, v in zip(steps.tolist(), values.tolist(), strict=True)
            ),
        )
        conn.commit()
    finally:
        conn.close()


class BaselineCase:
    def __init__(self, path: Path, points: int) -> None:
        self.path = path
        self.points = points

    def measure(self) -> float:
        conn = sqlite3.connect(self.path)
        try:
            start = time.perf_counter()
            rows = conn.execute(BASELINE_QUERY, (1, TAG)).fetchall()
            table = np.array(rows, dtype=np.float64)
            steps = table[:, 0].astype(np.int64)
            wall_times = np.ascontiguousarray(table[:, 1])
            values = np.ascontiguousarray(table[:, 2])
            elapsed = time.perf_counter() - start
        finally:
            conn.close()
        if not len(steps) == len(wall_times) == len(values) == self.points:
            raise RuntimeError(f"the baseline read {len(steps)} rows, not {self.points}")
        return elapsed


class TrainboardCase:
    """A timed first read on a freshly started server, then an untimed-for-the-target
    second read on the same server."""

    def __init__(self, server: ServerProcess, run_id: int, points: int) -> None:
        self.server = server
        self.run_id = run_id
        self.points = points
        self.repeat_reads: list[float] = []
        self.problems: list[str] = []

    def measure(self) -> float:
        import trainboard

        self.server.restart()
        with trainboard.Reader(self.server.address) as reader:
            if not reader.healthy(timeout=10.0):  # connects the channel, untimed
                raise RuntimeError("the restarted server does not answer")
            start = time.perf_counter()
            series = reader.scalars(self.run_id, TAG, max_points=MAX_POINTS)
            first = time.perf_counter() - start
            start = time.perf_counter()
            reader.scalars(self.run_id, TAG, max_points=MAX_POINTS)
            self.repeat_reads.append(time.perf_counter() - start)
        if series.total != self.points or not 0 < len(series) <= MAX_POINTS:
            self.problems.append(
                f"read {len(series)} points of a total of {series.total} "
                f"(expected at most {MAX_POINTS} of {self.points})"
            )
        return first


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser(__doc__, default_rounds=7)
    parser.add_argument(
        "--points", type=int, default=None, help="points in the series (default 1,000,000)"
    )
    args = parser.parse_args(argv)
    rounds = rounds_for(args, 7)
    points = args.points or (20_000 if args.quick else 1_000_000)
    print_header(
        f"read: first read of a {points:,}-point series, downsampled to {MAX_POINTS:,}",
        rounds=rounds,
        quick=args.quick,
        sizes=f"{points:,} points, max_points={MAX_POINTS:,}, server restarted before each read",
    )
    verdicts = Verdicts()
    steps, values = make_series(points)
    with tempfile.TemporaryDirectory(prefix="trainboard-bench-") as tmp:
        root = Path(tmp)
        server = ServerProcess(f"sqlite:///{root / 'trainboard.db'}", root / "server.log")
        with server:
            started = time.perf_counter()
            run_id = load_trainboard(server.address, steps, values)
            loaded = time.perf_counter() - started
            load_baseline(root / "baseline.db", steps, values)
            print(f"loaded {points:,} points through a Client in {fmt_seconds(loaded)}")
            baseline = BaselineCase(root / "baseline.db", points)
            product = TrainboardCase(server, run_id, points)
            results = interleave(
                rounds,
                [
                    ("sqlite3 SELECT all rows + numpy (baseline)", baseline.measure),
                    ("trainboard first read, 2,000 points", product.measure),
                ],
            )
            results["trainboard second read (same server)"] = product.repeat_reads
        print_table(["case", "median", "min", "max"], timing_rows(results, fmt_seconds))
        if args.verbose:
            print_rounds(results, fmt_seconds)
        base = results["sqlite3 SELECT all rows + numpy (baseline)"]
        first = results["trainboard first read, 2,000 points"]
        verdicts.info_ratio(
            "sqlite3 SELECT of every row / trainboard first read",
            paired_ratio(base, first),
            of_medians=median(base) / median(first),
        )
        verdicts.check(
            "first read",
            median(first) < TARGET_SECONDS,
            f"median {fmt_seconds(median(first))} (target < {fmt_seconds(TARGET_SECONDS)})",
        )
        verdicts.check(
            "downsampled series",
            not product.problems,
            "; ".join(product.problems) or f"at most {MAX_POINTS:,} points, total {points:,}",
        )
        print_memory(server)
    return verdicts.exit_code(args.strict)


if __name__ == "__main__":
    sys.exit(main())
