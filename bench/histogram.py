"""Caller's cost of ``Client.log_histogram`` vs tensorboardX's ``add_histogram``, and
the wire size of one histogram summary.

What it measures: the time the trainer's thread is blocked in
``client.log_histogram("w", a, step)`` (Trainboard client against a real server
subprocess on a SQLite file) and in ``SummaryWriter(logdir).add_histogram("w", a, step)``
(tensorboardX), for ``a`` a 1,000,000-element float32 numpy array (normally
distributed). Each call is timed on its own; after each call the client is flushed
(untimed) so that its background summary of one call does not compete with the next
timed call, as when a trainer logs a histogram every few hundred steps. Figures are the
median over the calls of a round, then over interleaved rounds. Target (README):
Trainboard's caller blocked at least 20x shorter.

It also times the reduction that runs in the SDK's background thread (a snapshot's
``summarize()``: exact values at the nine basis points, bucket edges that follow the
data, the counts) for 1,000,000 and 100,000,000 float32 values (1M and 10M with
``--quick``), median of three; the trainer's thread never waits for it.

It also prints the size on the wire of one summary of ``a``
(``trainboard.wire.summary_to_pb(trainboard.histogram.summarize(a)).ByteSize()``, 64
buckets), which the target caps at 1 KiB.

Run from the repository root::

    python -m bench.histogram           # 1M-element array, 10 calls a round, 7 rounds
    python -m bench.histogram --quick   # a smoke test, a few seconds
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable, Sequence
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
    print_header,
    print_memory,
    print_rounds,
    print_table,
    rounds_for,
    timing_rows,
)

TARGET_RATIO = 20.0
MAX_SUMMARY_BYTES = 1024
TAG = "w"


def _calls_timer(
    log: Callable[[str, Any, int], object],
    values: np.ndarray,
    calls: int,
    after: Callable[[], object],
) -> Callable[[], float]:
    """A round: ``calls`` calls of ``log``, each timed alone with ``after`` (a flush)
    run untimed after it; returns the median seconds per call."""
    next_step = 0

    def measure() -> float:
        nonlocal next_step
        durations = []
        for _ in range(calls):
            start = time.perf_counter()
            log(TAG, values, next_step)
            durations.append(time.perf_counter() - start)
            next_step += 1
            after()
        return median(durations)

    return measure


def reduction_rows(quick: bool) -> None:
    """The background reduction's time for a large and a very large tensor."""
    from trainboard.histogram import snapshot

    rows = []
    for size in (1_000_000, 10_000_000) if quick else (1_000_000, 100_000_000):
        values = np.random.default_rng(3).standard_normal(size, dtype=np.float32)
        values[0] = 1000.0  # an outlier, as real gradients have
        times = []
        for _ in range(3):
            taken = snapshot(values)  # the caller's copy, not timed here
            start = time.perf_counter()
            taken.summarize()
            times.append(time.perf_counter() - start)
        del values, taken
        rows.append([f"summarize() of {size:,} float32 values", fmt_seconds(median(times))])
    print_table(["background reduction (SDK's sender thread)", "median of 3"], rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser(__doc__, default_rounds=7)
    parser.add_argument(
        "--size", type=int, default=None, help="elements in the array (default 1,000,000)"
    )
    parser.add_argument("--calls", type=int, default=None, help="calls a round (default 10)")
    args = parser.parse_args(argv)
    rounds = rounds_for(args, 7)
    size = args.size or (100_000 if args.quick else 1_000_000)
    calls = args.calls or (3 if args.quick else 10)
    print_header(
        "log_histogram: caller's cost per call",
        rounds=rounds,
        quick=args.quick,
        sizes=f"float32 array of {size:,} elements; {calls} calls per case a round",
    )

    from tensorboardX import SummaryWriter

    import trainboard
    from trainboard.histogram import summarize
    from trainboard.wire import summary_to_pb

    values = np.random.default_rng(7).standard_normal(size, dtype=np.float32)
    verdicts = Verdicts()
    with tempfile.TemporaryDirectory(prefix="trainboard-bench-") as tmp:
        root = Path(tmp)
        server = ServerProcess(f"sqlite:///{root / 'bench.db'}", root / "server.log")
        with server:
            client = trainboard.Client("bench-histogram", "log_histogram", server=server.address)
            client.run_id  # noqa: B018 - waits until the run exists, outside the timing
            writer = SummaryWriter(logdir=str(root / "tensorboardx"))
            try:
                cases = [
                    (
                        "tensorboardX add_histogram",
                        _calls_timer(writer.add_histogram, values, calls, writer.flush),
                    ),
                    (
                        "trainboard log_histogram",
                        _calls_timer(client.log_histogram, values, calls, client.flush),
                    ),
                ]
                interleave(1, cases)  # warm-up: imports, first allocations, buffer pool
                results = interleave(rounds, cases)
                stored = client.flush(timeout=60)
            finally:
                writer.close()
                client.close()
        print_table(["case", "median per call", "min", "max"], timing_rows(results, fmt_seconds))
        if args.verbose:
            print_rounds(results, fmt_seconds)
        base, product = results["tensorboardX add_histogram"], results["trainboard log_histogram"]
        verdicts.ratio(
            "tensorboardX add_histogram / trainboard log_histogram",
            paired_ratio(base, product),
            TARGET_RATIO,
            of_medians=median(base) / median(product),
        )
        wire_bytes = summary_to_pb(summarize(values)).ByteSize()
        verdicts.check(
            "summary size on the wire",
            wire_bytes <= MAX_SUMMARY_BYTES,
            f"{wire_bytes} bytes for {size:,} values, 64 buckets "
            f"(target <= {MAX_SUMMARY_BYTES} bytes)",
        )
        verdicts.check("all histograms stored", stored, "client.flush() after the rounds")
        reduction_rows(args.quick)
        print_memory(server)
    return verdicts.exit_code(args.strict)


if __name__ == "__main__":
    sys.exit(main())
