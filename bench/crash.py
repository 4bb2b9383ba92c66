"""A writer logs continuously while its server is killed (SIGKILL) three times.

One client logs ten tags a step at full speed for a fixed time. At a quarter, half
and three quarters of the time the server process is killed with SIGKILL and,
after an outage, started again on the same port and database. Afterwards every
point the trainer logged must be stored exactly once (counts, and a checksum of the
values, against what was logged) and no spool file may be left behind.

Figures: points/s with the kills, and as a baseline in the same run the same writer
without kills (the ratio is what the outages cost). SQLite and PostgreSQL (a scratch
database at 127.0.0.1:5432, dropped afterwards).

    python -m bench.crash                 # 30 s per database, 1 s outages
    python -m bench.crash --quick         # 6 s per database
"""

from __future__ import annotations

import argparse
import math
import tempfile
import threading
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from bench._common import ServerProcess, Verdicts, fmt_rate, machine_facts, print_table
from bench.ingest import DEFAULT_POSTGRES, postgres_problem, scratch_database

TAGS = 10


def value_of(step: int, tag: int) -> float:
    return math.sin(step * 1e-3 + tag) * 100.0 + step


class Writer(threading.Thread):
    """Logs TAGS tags a step until told to stop; remembers how many steps."""

    def __init__(self, address: str, run: str, spool_dir: Path) -> None:
        super().__init__(daemon=True)
        import trainboard

        self.client = trainboard.Client(
            "crash", run, server=address, spill_after=0.5, spool_dir=spool_dir
        )
        self.stop = threading.Event()
        self.steps = 0

    def run(self) -> None:
        step = 0
        while not self.stop.is_set():
            for _ in range(500):
                self.client.log_scalars(
                    {f"m{t}": value_of(step, t) for t in range(TAGS)}, step=step
                )
                step += 1
            self.steps = step


def one_run(
    server: ServerProcess, run: str, seconds: float, kills: int, outage: float, spool: Path
) -> tuple[float, int, bool]:
    """Returns (points/s until stored, steps logged, all stored by close())."""
    writer = Writer(server.address, run, spool)
    started = time.perf_counter()
    writer.start()
    for _kill in range(kills):
        time.sleep(seconds / (kills + 1))  # the writer runs meanwhile: this is the workload
        server.kill()
        time.sleep(outage)
        server.start(same_port=True)
    time.sleep(seconds / (kills + 1))
    writer.stop.set()
    writer.join()
    stored = writer.client.flush(timeout=600) and writer.client.close(timeout=600)
    elapsed = time.perf_counter() - started
    return writer.steps * TAGS / elapsed, writer.steps, stored


def verify(address: str, run: str, steps: int) -> tuple[bool, str]:
    import trainboard

    reader = trainboard.Reader(address)
    (info,) = [r for r in reader.runs("crash") if r.name == run]
    totals = 0
    exact = True
    for tag in range(TAGS):
        series = reader.scalars(info.id, f"m{tag}")
        expected = np.array([value_of(s, tag) for s in range(steps)])
        totals += series.total
        exact = exact and series.total == steps and np.array_equal(series.values, expected)
        exact = exact and math.isclose(float(series.values.sum()), float(expected.sum()))
    return exact, f"{totals:,} points stored of {steps * TAGS:,} logged"


def measure(db_url: str, label: str, args: argparse.Namespace, verdicts: Verdicts) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="tb-crash-") as tmp:
        workdir = Path(tmp)
        spool = workdir / "spool"
        server = ServerProcess(db_url, workdir / "server.log")
        server.start()
        try:
            calm_rate, calm_steps, calm_ok = one_run(server, "calm", args.seconds, 0, 0, spool)
            rate, steps, ok = one_run(server, "killed", args.seconds, 3, args.outage, spool)
            exact, detail = verify(server.address, "killed", steps)
            calm_exact, _ = verify(server.address, "calm", calm_steps)
        finally:
            server.stop()
        left = sorted(p.name for p in spool.glob("*")) if spool.exists() else []
    verdicts.check(f"{label}: killed 3 times, every point once", ok and exact, detail)
    verdicts.check(f"{label}: without kills, every point once", calm_ok and calm_exact, "")
    verdicts.check(f"{label}: no spool left behind", not left, f"{len(left)} files left")
    verdicts.info_ratio(
        f"{label}: points/s with 3 kills / without", rate / calm_rate, of_medians=rate / calm_rate
    )
    return [label, fmt_rate(calm_rate, "points"), fmt_rate(rate, "points")]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="6 s per database")
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--outage", type=float, default=1.0, help="seconds each kill lasts")
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES, help="admin URL")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--strict", action="store_true", help="exit 1 on a failed check")
    args = parser.parse_args(argv)
    args.seconds = args.seconds or (6.0 if args.quick else 30.0)
    print("== crash: SIGKILL the server three times while a writer logs")
    print(machine_facts())
    print(f"mode: {args.seconds:g} s of logging, {TAGS} tags a step, outages of {args.outage:g} s")
    verdicts = Verdicts()
    rows: list[list[str]] = []
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tb-crash-db-")))
        rows.append(measure(f"sqlite:///{tmp / 'crash.db'}", "SQLite", args, verdicts))
        problem = "--no-postgres" if args.no_postgres else postgres_problem(args.postgres)
        if problem is None:
            url = stack.enter_context(scratch_database(args.postgres, "crash"))
            pg_url = url.replace("postgresql://", "postgresql+psycopg://", 1)
            rows.append(measure(pg_url, "PostgreSQL", args, verdicts))
        else:
            verdicts.skip("PostgreSQL", problem)
    print_table(["database", "without kills (baseline)", "3 kills"], rows)
    return verdicts.exit_code(args.strict)


if __name__ == "__main__":
    raise SystemExit(main())
