"""The committed generated wire code matches proto/ (regenerate with `make proto`)."""

from __future__ import annotations

import filecmp
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GENERATED = ROOT / "client" / "trainboard" / "v1"


def test_committed_generated_code_is_fresh(tmp_path: Path) -> None:
    protos = sorted((ROOT / "proto").rglob("*.proto"))
    assert protos, "no .proto files found"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{ROOT / 'proto'}",
            f"--python_out={tmp_path}",
            f"--pyi_out={tmp_path}",
            f"--grpc_python_out={tmp_path}",
            *map(str, protos),
        ],
        check=True,
    )
    fresh = sorted(p.name for p in (tmp_path / "trainboard" / "v1").iterdir())
    committed = sorted(
        p.name for p in GENERATED.iterdir() if p.name != "__init__.py" and p.is_file()
    )
    assert fresh == committed, "generated files differ in name: run `make proto`"
    for name in fresh:
        assert filecmp.cmp(
            tmp_path / "trainboard" / "v1" / name, GENERATED / name, shallow=False
        ), f"client/trainboard/v1/{name} is stale: run `make proto` and commit the result"


def test_generated_code_was_made_by_the_pinned_grpcio_tools() -> None:
    from importlib.metadata import version

    pyproject = (ROOT / "pyproject.toml").read_text()
    assert f'"grpcio-tools=={version("grpcio-tools")}"' in pyproject
