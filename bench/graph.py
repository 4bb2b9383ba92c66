"""The Graph page on a deep PyTorch model of more than 2,000 nodes.

What it measures, per interleaved round: one render of the Graph page
(``AppTest.run()`` of ``ui/trainboard_ui/app.py`` with ``page=graph``): reading the
graph through ``Reader``, indexing its scopes, building the collapsed view and its
Graphviz DOT, ready to go to the browser (the browser's drawing with d3-graphviz is
not included). Every round uses a fresh ``AppTest`` session, so nothing comes from
the page's per-session cache.

Baseline, in the same run: the same page with every scope expanded (``open=`` every
scope in the URL), which is what a viewer without collapsing would have to draw.
The table also shows how many items and edges each view draws: the collapsed top
level must stay readable (a few dozen items, no edge spaghetti).

Target: the collapsed page renders in under 2 s (median).

    python -m bench.graph            # 200 residual blocks (about 2,200 nodes), 5 rounds
    python -m bench.graph --quick    # 20 blocks, 2 rounds
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench._common import (
    ServerProcess,
    Verdicts,
    fmt_seconds,
    interleave,
    make_parser,
    median,
    paired_ratio,
    print_header,
    print_table,
    rounds_for,
    timing_rows,
)

TARGET_SECONDS = 2.0
APP = Path(__file__).resolve().parents[1] / "ui" / "trainboard_ui" / "app.py"


def deep_model(blocks: int) -> tuple[Any, Any]:
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.norm = nn.LayerNorm(32)
            self.up = nn.Linear(32, 64)
            self.down = nn.Linear(64, 32)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = x + self.down(torch.relu(self.up(self.norm(x))))
            return out

    class Deep(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Linear(16, 32)
            self.blocks = nn.Sequential(*[Block() for _ in range(blocks)])
            self.head = nn.Linear(32, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = self.head(self.blocks(self.embed(x)))
            return out

    return Deep(), torch.zeros(4, 16)


def render(server: str, query: dict[str, str | list[str]]) -> tuple[float, str]:
    from streamlit.testing.v1 import AppTest

    page = AppTest.from_file(str(APP), default_timeout=600)
    for key, value in query.items():
        page.query_params[key] = value
    saved = sys.argv
    sys.argv = ["app.py", "--server", server]
    try:
        started = time.perf_counter()
        page.run()
        elapsed = time.perf_counter() - started
    finally:
        sys.argv = saved
    logging.getLogger("streamlit").setLevel(logging.ERROR)
    if page.exception:
        raise RuntimeError(f"the Graph page failed: {page.exception[0].value}")
    (chart,) = page.get("graphviz_chart")
    return elapsed, str(chart.proto.spec)


def drawn(dot: str) -> tuple[int, int]:
    """(items, edges) in a DOT text."""
    items = len(re.findall(r'^\s*"[^"]+" \[', dot, flags=re.MULTILINE))
    return items, dot.count("->")


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser(__doc__, default_rounds=5)
    args = parser.parse_args(argv)
    rounds = rounds_for(args, 5)
    blocks = 20 if args.quick else 200
    import trainboard
    from trainboard_ui.graph_index import index_graph

    os.environ.setdefault("STREAMLIT_LOGGER_LEVEL", "error")
    print_header(
        "graph: the Graph page on a deep model",
        rounds=rounds,
        quick=args.quick,
        sizes=f"{blocks} residual blocks",
    )
    verdicts = Verdicts()
    with tempfile.TemporaryDirectory(prefix="tb-graph-") as tmp:
        server = ServerProcess(f"sqlite:///{Path(tmp) / 'graph.db'}", Path(tmp) / "server.log")
        server.start()
        try:
            model, example = deep_model(blocks)
            with trainboard.Client("graph", "deep", server=server.address) as client:
                if not client.log_graph(model, example):
                    raise RuntimeError("the model could not be captured")
                run_id = client.run_id
            nodes = trainboard.Reader(server.address).graph(run_id)
            assert nodes is not None
            index = index_graph(nodes)
            scopes = [scope for scope in index.order if scope]
            base: dict[str, str | list[str]] = {"page": "graph", "exp": "graph", "live": "0"}
            dots: dict[str, str] = {}

            def case(name: str, query: dict[str, str | list[str]]) -> Any:
                def measure() -> float:
                    elapsed, dot = render(server.address, query)
                    dots[name] = dot
                    return elapsed

                return measure

            collapsed = "Graph page, collapsed (product)"
            expanded = "Graph page, every scope open (baseline)"
            render(server.address, base)  # pays the one-time imports
            results = interleave(
                rounds,
                [
                    (expanded, case(expanded, {**base, "open": scopes})),
                    (collapsed, case(collapsed, base)),
                ],
            )
        finally:
            server.stop()
    print(f"graph: {len(nodes):,} nodes in {len(scopes):,} scopes")
    print_table(["case", "median", "min", "max"], timing_rows(results, fmt_seconds))
    rows = [[name, *map(str, drawn(dot))] for name, dot in dots.items()]
    print_table(["view", "items drawn", "edges drawn"], rows)
    verdicts.info_ratio(
        "every scope open / collapsed, render time",
        paired_ratio(results[expanded], results[collapsed]),
        of_medians=median(results[expanded]) / median(results[collapsed]),
    )
    verdicts.check(
        "collapsed Graph page",
        median(results[collapsed]) < TARGET_SECONDS,
        f"median {fmt_seconds(median(results[collapsed]))} (target < {TARGET_SECONDS:g} s)",
    )
    items, edges = drawn(dots[collapsed])
    readable = items <= 40 and edges <= 60
    verdicts.check("readable top level", readable, f"{items} items, {edges} edges")
    return verdicts.exit_code(args.strict)


if __name__ == "__main__":
    raise SystemExit(main())
