"""The runs table: one row per run with its status, tags, start, duration, params
and last scalar values, and its filter by text and status."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from trainboard.types import Run
from trainboard_ui.time_axes import wall_datetimes

PARAM_PREFIX = "param: "
LAST_PREFIX = "last: "


def runs_frame(
    runs: Sequence[Run],
    last_values: Mapping[tuple[int, str], float],
    scalar_tags: Sequence[str],
    *,
    timezone: str | None = None,
) -> pd.DataFrame:
    """One row per run: name, status (crashed for a silent running run), its
    tags (comma-separated), start (local time), duration, one ``param: <name>``
    column per param and one ``last: <tag>`` column per scalar tag (the value at
    the tag's last step; empty where the run lacks the tag)."""
    frame = pd.DataFrame(
        {
            "name": [r.name for r in runs],
            "status": [r.status for r in runs],
            "tags": [", ".join(r.tags) for r in runs],
            "started": wall_datetimes(
                np.array([r.started_at for r in runs], dtype=np.float64), timezone
            ),
            "duration": [float(r.duration) for r in runs],  # seconds: sortable
        }
    )
    names = sorted({k for r in runs for k in r.params})
    for name in names:
        frame[PARAM_PREFIX + name] = _param_column([r.params.get(name) for r in runs])
    for tag in scalar_tags:
        frame[LAST_PREFIX + tag] = np.array(
            [last_values.get((r.id, tag), np.nan) for r in runs], dtype=np.float64
        )
    return frame


def _param_column(values: list[object]) -> list[object]:
    """Numbers stay numbers (so the column sorts as such) when every present value
    is one; otherwise every value becomes text."""
    present = [v for v in values if v is not None]
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        return [float(v) if isinstance(v, int | float) else np.nan for v in values]
    return [None if v is None else v if isinstance(v, str) else json.dumps(v) for v in values]


def filter_runs_frame(frame: pd.DataFrame, text: str, statuses: Sequence[str]) -> pd.DataFrame:
    """Rows whose status is among ``statuses`` (all when empty) and whose name, a
    tag or a param holds ``text`` (case-insensitive; all when empty)."""
    keep = np.ones(len(frame), dtype=bool)
    if statuses:
        keep &= frame["status"].isin(list(statuses)).to_numpy()
    needle = text.strip().lower()
    if needle:
        searchable = [
            "name",
            "tags",
            *[c for c in frame.columns if c.startswith(PARAM_PREFIX)],
        ]
        hit = np.zeros(len(frame), dtype=bool)
        for column in searchable:
            hit |= (
                frame[column].astype(str).str.lower().str.contains(needle, regex=False).to_numpy()
            )
        keep &= hit
    return frame[keep].reset_index(drop=True)
