"""The benchmarks under bench/ run end to end (small sizes) and print their ratio.

No timing is asserted here: the figures depend on the machine; only that each
benchmark completes, exits 0 and reports a ratio against its baseline.
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
    "ingest": (),
    "histogram": ("tensorboardX",),
    "read": (),
    "dashboard": ("streamlit", "plotly"),
    "graph": ("streamlit", "torch"),
}


@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_benchmark_runs_quick_and_prints_its_ratio(name: str) -> None:
    for module in BENCHMARKS[name]:
        pytest.importorskip(module)
    done = subprocess.run(
        [sys.executable, "-m", f"bench.{name}", "--quick"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert RATIO_LINE.search(done.stdout), output
    assert VERDICT_LINE.search(done.stdout), output
    assert "machine:" in done.stdout, output
