"""Run colours: one per run, the same on every page, and the shades charts draw
of it (see-through with :func:`with_alpha`, lighter with :func:`blend`)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from trainboard.types import Run

# Twelve colours that stay apart on a white and a dark background (Paul Tol's
# "bright" and "muted" schemes, interleaved). A run's colour is its place among its
# experiment's runs (oldest first), so the first twelve runs never share one.
PALETTE: tuple[str, ...] = (
    "#4477AA",
    "#EE6677",
    "#228833",
    "#CCBB44",
    "#66CCEE",
    "#AA3377",
    "#EE7733",
    "#332288",
    "#117733",
    "#882255",
    "#44AA99",
    "#999933",
)


def run_colours(runs: Iterable[Run]) -> dict[int, str]:
    """A colour per run id: the palette in order of run id, cycling.

    Derived from the experiment's whole run list, never from what is selected, so
    a run keeps its colour on every page and whatever else is shown.
    """
    ordered = sorted(runs, key=lambda r: r.id)
    return {run.id: PALETTE[i % len(PALETTE)] for i, run in enumerate(ordered)}


def with_alpha(colour: str, alpha: float) -> str:
    """``#RRGGBB`` as an ``rgba(...)`` string with the given opacity."""
    r, g, b = _rgb(colour)
    return f"rgba({r},{g},{b},{alpha:g})"


def blend(colour: str, towards: str, fraction: float) -> str:
    """``colour`` moved ``fraction`` of the way to ``towards``, as ``#RRGGBB``."""
    a = np.array(_rgb(colour), dtype=np.float64)
    b = np.array(_rgb(towards), dtype=np.float64)
    mixed = np.rint(a + (b - a) * min(max(fraction, 0.0), 1.0)).astype(int)
    return "#{:02X}{:02X}{:02X}".format(*mixed.tolist())


def _rgb(colour: str) -> tuple[int, int, int]:
    text = colour.lstrip("#")
    if len(text) != 6:
        raise ValueError(f"colour must be #RRGGBB, got {colour!r}")
    return int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16)
