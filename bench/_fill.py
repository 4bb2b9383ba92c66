"""Stored data for the browser benchmark and the browser tests: runs of scalar curves
(and optionally histograms) written straight into a database through ``SqlStore``
before any server starts, so that filling takes seconds, not a trainer's time."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Shape:
    """How much data: runs x scalar tags x steps, and histogram tags x steps."""

    runs: int
    tags: int
    steps: int
    histogram_tags: int = 0
    histogram_steps: int = 0

    @property
    def label(self) -> str:
        text = f"{self.runs} runs x {self.tags} tags x {self.steps:,} steps"
        if self.histogram_tags:
            text += f", {self.histogram_tags} histogram tags x {self.histogram_steps} steps"
        return text


def run_name(index: int) -> str:
    return f"run-{index:02d}"


def tag_name(index: int, groups: int = 8) -> str:
    """Tags spread over a few ``/`` groups, as a real model's logs are."""
    return f"group{index % groups}/metric{index:03d}"


def histogram_tag(index: int) -> str:
    return f"layer{index:03d}/weights"


def curve(run: int, tag: int, steps: np.ndarray) -> np.ndarray:
    """A loss- or accuracy-like curve per (run, tag), with noise."""
    rng = np.random.default_rng(1000 * run + tag)
    t = steps / max(float(steps[-1]), 1.0)
    rate = 3.0 + run % 5
    shape = np.exp(-rate * t) if tag % 2 == 0 else 1.0 - np.exp(-rate * t)
    return shape * (1.0 + tag % 7) + 0.05 * rng.standard_normal(len(steps))


def fill(db_url: str, shape: Shape, *, experiment: str = "bench") -> list[int]:
    """Writes ``shape`` into the database at ``db_url``; returns the run ids."""
    from trainboard.histogram import summarize
    from trainboard.types import HistogramRecord, ScalarColumns, WriteBatch
    from trainboard_server.sql_store import SqlStore

    store = SqlStore.from_url(db_url)
    steps = np.arange(shape.steps, dtype=np.int64)
    t0 = time.time() - shape.steps * 0.01
    wall_times = t0 + steps * 0.01
    run_ids = []
    sequence = 0
    try:
        for run in range(shape.runs):
            params = {"lr": 10.0 ** -(1 + run % 4), "seed": run}
            run_id = store.start_run(experiment, run_name(run), params, t0).run.id
            run_ids.append(run_id)
            columns = tuple(
                ScalarColumns(tag_name(tag), steps, wall_times, curve(run, tag, steps))
                for tag in range(shape.tags)
            )
            for start in range(0, len(columns), 50):
                sequence += 1
                batch = WriteBatch("fill", sequence, run_id, columns[start : start + 50])
                store.write_batch(batch)
            rng = np.random.default_rng(run)
            for h in range(shape.histogram_tags):
                records = tuple(
                    HistogramRecord(
                        histogram_tag(h),
                        step,
                        float(t0 + step),
                        summarize(rng.normal(0.0, 1.0 + step / 10, 1000)),
                    )
                    for step in range(shape.histogram_steps)
                )
                sequence += 1
                store.write_batch(WriteBatch("fill", sequence, run_id, histograms=records))
            store.finish_run(run_id, "finished", float(wall_times[-1]))
    finally:
        store.close()
    return run_ids
