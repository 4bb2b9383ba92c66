"""Trainboard's benchmarks (docs/design.md). Not tests: each prints a table of figures.

Run them from the repository root::

    python -m bench.log_scalar   # caller's cost of log_scalar vs tensorboardX add_scalar
    python -m bench.ingest       # client-to-committed points/s vs bare sqlite3 / COPY
    python -m bench.histogram    # caller's cost of log_histogram vs tensorboardX
    python -m bench.read         # first read of a 1M-point series, downsampled to 2,000

Each takes ``--quick`` (small sizes, a few seconds), ``--rounds N`` and ``--strict``
(exit status 1 when a target is missed; otherwise the run exits 0 and prints FAIL).
Baseline and product are measured in the same run, interleaved round by round, because
the speed of these machines drifts by a factor of two within minutes; the figures that
matter are the ratios.
"""
