"""Concurrent writer processes into one run while a reader reads (a short run of
``python -m bench.concurrency``): no error, no lost or doubled point."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import REQUIRE_POSTGRES, _postgres_unavailable_reason

ROOT = Path(__file__).resolve().parents[1]


def test_concurrent_writers_lose_and_double_nothing_on_sqlite_and_postgres() -> None:
    command = [sys.executable, "-m", "bench.concurrency", "--quick", "--strict"]
    if _postgres_unavailable_reason() is not None and not REQUIRE_POSTGRES:
        command.append("--no-postgres")
    out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "shared series" in out.stdout
    assert "FAIL" not in out.stdout
