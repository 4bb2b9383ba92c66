"""Caller's cost of one ``Client.log_scalar`` call vs tensorboardX's ``add_scalar``.

What it measures: the time the trainer's thread spends in
``client.log_scalar(tag, value, step)`` (Trainboard client against a real server
subprocess on a SQLite file in a temporary directory) and in
``SummaryWriter(logdir).add_scalar(tag, value, step)`` (tensorboardX), per call, as the
median over interleaved rounds. Only the caller's time is timed: after each round
the client is flushed (untimed) so that its queue never fills and its background
sender is idle when the next round starts. Target (README): Trainboard at least
100x cheaper.

Run from the repository root::

    python -m bench.log_scalar            # 20,000 calls a round, 7 rounds
    python -m bench.log_scalar --quick    # a smoke test, a few seconds
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

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
    print_table,
    rounds_for,
    timing_rows,
)

TARGET_RATIO = 100.0
TAG = "train/loss"


def _calls_timer(
    log: Callable[[str, float, int], object], calls: int, after: Callable[[], object]
) -> Callable[[], float]:
    """A round: ``calls`` calls of ``log`` with growing steps; returns seconds per call.

    ``after`` runs untimed at the end of the round (a flush)."""
    values = [1.0 / (1 + i) for i in range(calls)]
    next_step = 0

    def measure() -> float:
        nonlocal next_step
        first = next_step
        next_step += calls
        start = time.perf_counter()
        for i in range(calls):
            log(TAG, values[i], first + i)
        elapsed = time.perf_counter() - start
        after()
        return elapsed / calls

    return measure


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser(__doc__, default_rounds=7)
    parser.add_argument(
        "--calls", type=int, default=None, help="Trainboard calls a round (default 20,000)"
    )
    parser.add_argument(
        "--baseline-calls",
        type=int,
        default=None,
        help="tensorboardX calls a round (default 2,000; ~90 µs each)",
    )
    args = parser.parse_args(argv)
    rounds = rounds_for(args, 7)
    calls = args.calls or (2_000 if args.quick else 20_000)
    baseline_calls = args.baseline_calls or (200 if args.quick else 2_000)
    print_header(
        "log_scalar: caller's cost per call",
        rounds=rounds,
        quick=args.quick,
        sizes=f"{calls:,} Trainboard calls and {baseline_calls:,} tensorboardX calls a round",
    )

    from tensorboardX import SummaryWriter

    import trainboard

    verdicts = Verdicts()
    with tempfile.TemporaryDirectory(prefix="trainboard-bench-") as tmp:
        root = Path(tmp)
        server = ServerProcess(f"sqlite:///{root / 'bench.db'}", root / "server.log")
        with server:
            client = trainboard.Client("bench-log-scalar", "log_scalar", server=server.address)
            client.run_id  # noqa: B018 - waits until the run exists, outside the timing
            writer = SummaryWriter(logdir=str(root / "tensorboardx"))
            try:
                cases = [
                    (
                        "tensorboardX add_scalar",
                        _calls_timer(writer.add_scalar, baseline_calls, writer.flush),
                    ),
                    (
                        "trainboard log_scalar",
                        _calls_timer(client.log_scalar, calls, client.flush),
                    ),
                ]
                interleave(1, cases)  # warm-up: first calls, imports, allocations
                results = interleave(rounds, cases)
                stored = client.flush(timeout=60)
            finally:
                writer.close()
                client.close()
        print_table(["case", "median per call", "min", "max"], timing_rows(results, fmt_seconds))
        base, product = results["tensorboardX add_scalar"], results["trainboard log_scalar"]
        verdicts.ratio(
            "tensorboardX add_scalar / trainboard log_scalar",
            paired_ratio(base, product),
            TARGET_RATIO,
            of_medians=median(base) / median(product),
        )
        verdicts.check("all points stored", stored, "client.flush() after the rounds")
        print_memory(server)
    return verdicts.exit_code(args.strict)


if __name__ == "__main__":
    sys.exit(main())
