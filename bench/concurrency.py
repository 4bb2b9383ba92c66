"""Many writer processes into one server while a reader reads: nothing lost, nothing doubled.

Each of N writer processes (default 16) logs at full speed for a fixed time into one
server, all into the same run: every writer logs the shared tag ``loss`` at its own
steps (writer i takes steps i, i+N, i+2N, ...; so the writers extend the same series
concurrently) and a tag of its own, ``w<i>``, at the same steps. Meanwhile a reader
in this process reads the shared series downsampled, over and over. Afterwards every
point must be stored exactly once with its own value (the value encodes the step),
and no reader call may have failed.

Figures: aggregate points/s of the N writers, and as a baseline in the same run the
points/s of one writer alone (the ratio shows how the server scales with writers).
SQLite and PostgreSQL (a scratch database at 127.0.0.1:5432, dropped afterwards).

    python -m bench.concurrency                      # 16 writers x 20 s, both databases
    python -m bench.concurrency --quick              # 6 writers x 2 s (the test suite's run)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from bench._common import (
    ServerProcess,
    Verdicts,
    fmt_rate,
    machine_facts,
    print_table,
)
from bench.ingest import DEFAULT_POSTGRES, postgres_problem, scratch_database

EXPERIMENT = "concurrency"


def run_name(writers: int) -> str:
    return f"{writers}-writers"


def value_of(step: int, writer: int) -> float:
    """What a writer logs at a step: recoverable, so doubled or mixed points show."""
    return step * 2.0 + writer * 0.25


def worker(address: str, index: int, writers: int, seconds: float, result: Path) -> None:
    import trainboard

    # Every writer process logs into the one run (as the ranks of a distributed job).
    client = trainboard.Client(
        EXPERIMENT,
        run_name(writers),
        server=address,
        params={"writers": writers},
        spill_after=30.0,
        resume=True,
    )
    own = f"w{index}"
    steps = 0
    step = index
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for _ in range(1000):
            value = value_of(step, index)
            client.log_scalars({"loss": value, own: value}, step=step)
            step += writers
            steps += 1
    flushed = client.flush(timeout=300)
    closed = client.close(timeout=300)
    result.write_text(json.dumps({"steps": steps, "ok": flushed and closed}))


def run_writers(
    address: str, writers: int, seconds: float, workdir: Path
) -> tuple[float, list[int]]:
    """Starts the writer processes together; returns (seconds until all are
    stored, steps each wrote)."""
    results = [workdir / f"writer-{writers}-{i}.json" for i in range(writers)]
    started = time.perf_counter()
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.concurrency",
                "--worker",
                address,
                str(i),
                str(writers),
                str(seconds),
                str(results[i]),
            ]
        )
        for i in range(writers)
    ]
    codes = [p.wait(timeout=seconds + 600) for p in processes]
    elapsed = time.perf_counter() - started
    if any(codes):
        raise RuntimeError(f"writer processes exited with {codes}")
    counts = []
    for path in results:
        outcome = json.loads(path.read_text())
        if not outcome["ok"]:
            raise RuntimeError(f"{path.name}: the client did not store everything")
        counts.append(int(outcome["steps"]))
    return elapsed, counts


def check_stored(
    address: str, writers: int, counts: list[int], verdicts: Verdicts, label: str
) -> None:
    import trainboard

    reader = trainboard.Reader(address)
    (run,) = [r for r in reader.runs(EXPERIMENT) if r.name == run_name(writers)]
    shared = reader.scalars(run.id, "loss")
    expected_steps = np.sort(
        np.concatenate([i + writers * np.arange(n, dtype=np.int64) for i, n in enumerate(counts)])
    )
    same_steps = np.array_equal(shared.steps, expected_steps)
    writer_of = shared.steps % writers
    right_values = same_steps and np.array_equal(
        shared.values, shared.steps * 2.0 + writer_of * 0.25
    )
    verdicts.check(
        f"{label}: shared series",
        bool(same_steps and right_values and shared.total == sum(counts)),
        f"{shared.total:,} points stored of {sum(counts):,} logged, each once with its value",
    )
    own_ok = all(reader.scalars(run.id, f"w{i}").total == n for i, n in enumerate(counts))
    verdicts.check(f"{label}: per-writer series", own_ok, f"{writers} series, each complete")


class ReaderLoop(threading.Thread):
    """Reads the shared series downsampled, again and again, counting failures."""

    def __init__(self, address: str, run: str) -> None:
        super().__init__(daemon=True)
        self.address = address
        self.run_name = run
        self.stop = threading.Event()
        self.reads = 0
        self.errors: list[str] = []

    def run(self) -> None:
        import trainboard

        reader = trainboard.Reader(self.address)
        while not self.stop.is_set():
            try:
                runs = [r for r in reader.runs(EXPERIMENT) if r.name == self.run_name]
                if runs:
                    reader.scalars_many([runs[0].id], ["loss"], max_points=1000)
                self.reads += 1
            except Exception as exc:  # every failure is a finding
                self.errors.append(repr(exc))
            self.stop.wait(0.05)


def measure(db_url: str, label: str, args: argparse.Namespace, verdicts: Verdicts) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="tb-concurrency-") as tmp:
        workdir = Path(tmp)
        with ServerProcess(db_url, workdir / "server.log") as server:
            single_time, single_counts = run_writers(server.address, 1, args.seconds, workdir)
            reader = ReaderLoop(server.address, run_name(args.workers))
            reader.start()
            many_time, counts = run_writers(server.address, args.workers, args.seconds, workdir)
            reader.stop.set()
            reader.join()
            check_stored(server.address, args.workers, counts, verdicts, label)
            verdicts.check(
                f"{label}: reader",
                not reader.errors and reader.reads > 0,
                f"{reader.reads} reads while writing, {len(reader.errors)} failed"
                + (f" ({reader.errors[0]})" if reader.errors else ""),
            )
    single_rate = 2 * sum(single_counts) / single_time
    many_rate = 2 * sum(counts) / many_time
    verdicts.info_ratio(
        f"{label}: {args.workers} writers / 1 writer, points/s",
        many_rate / single_rate,
        of_medians=many_rate / single_rate,
    )
    return [
        f"{label}, 1 writer (baseline)",
        fmt_rate(single_rate, "points"),
        f"{label}, {args.workers} writers",
        fmt_rate(many_rate, "points"),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "--worker":
        address, index, writers, seconds, result = argv[1:6]
        worker(address, int(index), int(writers), float(seconds), Path(result))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="6 writers x 2 s")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES, help="admin URL")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--strict", action="store_true", help="exit 1 on a failed check")
    args = parser.parse_args(argv)
    args.workers = args.workers or (6 if args.quick else 16)
    args.seconds = args.seconds or (2.0 if args.quick else 20.0)
    print("== concurrency: writers into one run while a reader reads")
    print(machine_facts())
    print(f"mode: {args.workers} writer processes x {args.seconds:g} s each, one shared run")
    verdicts = Verdicts()
    rows: list[list[str]] = []
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tb-conc-db-")))
        rows.append(measure(f"sqlite:///{tmp / 'one.db'}", "SQLite", args, verdicts))
        problem = "--no-postgres" if args.no_postgres else postgres_problem(args.postgres)
        if problem is None:
            url = stack.enter_context(scratch_database(args.postgres, "concurrency"))
            rows.append(
                measure(
                    url.replace("postgresql://", "postgresql+psycopg://", 1),
                    "PostgreSQL",
                    args,
                    verdicts,
                )
            )
        else:
            verdicts.skip("PostgreSQL", problem)
    table = [[r[0], r[1]] for r in rows] + [[r[2], r[3]] for r in rows]
    print_table(["case", "throughput"], table)
    return verdicts.exit_code(args.strict)


if __name__ == "__main__":
    raise SystemExit(main())
