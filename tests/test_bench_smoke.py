"""The benchmarks under bench/ run end to end (small sizes) and print their ratio.

No timing is asserted here: the figures depend on the machine; only that each
benchmark completes, exits 0 and reports a ratio against its baseline (and, for
``bench.team``, that the read API's queries use indexes: a plan, not a timing).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
RATIO_LINE = re.compile(r"^ratio .+: \d+(\.\d+)?x\b", re.MULTILINE)
VERDICT_LINE = re.compile(r"\b(PASS|FAIL)$", re.MULTILINE)

BENCHMARKS = {
    "log_scalar": ("tensorboardX",),
    # peers that are not installed (mlflow, tensorboard) make their sections SKIP
    "compare": ("tensorboardX",),
    "ingest": (),
    "histogram": ("tensorboardX",),
    "read": (),
    "dashboard": ("streamlit", "plotly"),
    "graph": ("streamlit", "torch"),
}


def run_quick(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *arguments, "--quick"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )


@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_benchmark_runs_quick_and_prints_its_ratio(name: str) -> None:
    for module in BENCHMARKS[name]:
        pytest.importorskip(module)
    done = run_quick(f"bench.{name}")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert RATIO_LINE.search(done.stdout), output
    assert VERDICT_LINE.search(done.stdout), output
    assert "machine:" in done.stdout, output


def test_the_browser_benchmark_runs_quick_with_or_without_its_peers() -> None:
    pytest.importorskip("playwright")
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("/usr/bin/chromium is not installed")
    done = run_quick("bench.browser")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "(a) launch to the first chart" in done.stdout, output
    for case in ("(b) navigate", "(c) smoothing redraw", "scale: every chart"):
        assert re.search(rf"^check {re.escape(case)}.*(PASS|FAIL)$", done.stdout, re.M), output
    # Without TensorBoard or Trackio in this environment their comparisons say SKIP.
    assert RATIO_LINE.search(done.stdout) or "SKIP" in done.stdout, output


def test_stolen_time_is_a_share_of_the_cpu_time_between_two_reads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.syspath_prepend(str(REPO_ROOT))
    from bench._common import StolenTime

    meter = StolenTime().start()
    sum(range(2_000_000))  # some CPU time between the reads
    share = meter.share()
    if Path("/proc/stat").exists():
        assert share is not None
        assert 0.0 <= share <= 1.0
        assert meter.describe().startswith("CPU time stolen by the hypervisor during the run: ")
    else:
        assert share is None


def test_ingest_benchmark_runs_quick_with_several_client_processes() -> None:
    done = run_quick("bench.ingest", "--clients", "4")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "4 clients at once through one server" in done.stdout, output
    assert RATIO_LINE.search(done.stdout), output
    assert re.search(r"^check SQLite points stored: .+ PASS$", done.stdout, re.MULTILINE), output


def test_team_read_benchmark_runs_quick_and_its_queries_use_indexes(
    postgres_database: str,  # skips (or fails, if required) without a PostgreSQL
) -> None:
    # bench.team makes its own scratch databases next to the fixture's, through the
    # same admin URL ($TRAINBOARD_TEST_POSTGRES).
    done = run_quick("bench.team")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert RATIO_LINE.search(done.stdout), output
    assert re.search(r"^check answers: .+ PASS$", done.stdout, re.MULTILINE), output
    assert re.search(r"^check index use: .+ PASS$", done.stdout, re.MULTILINE), output
    assert "using uq_series_run_id_tag_kind" in done.stdout, output
