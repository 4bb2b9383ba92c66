"""A per-session cache of what the dashboard has read, refreshed incrementally.

One :class:`LiveData` lives in each browser session. Every refresh lists the
experiment's runs and the selected runs' tags (small calls: each tag carries its
last stored step); a series is read again only when its tag's last step moved past
the cached one, and then only its new steps (``min_step`` = cached last step + 1),
which are appended to the cached arrays. The first read of a series is
downsampled on the server (``max_points``); appended points come as they
are, so once a series holds more than :data:`COMPACT_FACTOR` times ``max_points`` it
is read whole again, downsampled afresh.

Deleting runs through :class:`LiveData` forgets what is cached of them; renaming
and tagging change nothing cached (series are cached by run id, and runs are
listed afresh on every refresh).

A re-logged step below the cached last step (a run resumed from an earlier
checkpoint) is picked up by that re-read or by :meth:`LiveData.clear`, not by the
incremental reads, which only look past the cached last step.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from trainboard.errors import NotFound
from trainboard.types import GraphNode, Histogram, HistogramSeries, Run, ScalarSeries, Tag

#: A cached series is read whole again once it holds this many times the points
#: (or histogram steps) its first read was allowed.
COMPACT_FACTOR = 2


class ReadApi(Protocol):
    """The part of :class:`trainboard.Reader` the dashboard uses."""

    def experiments(self) -> list[str]: ...

    def runs(self, experiment: str) -> list[Run]: ...

    def tags(self, run_id: int, kind: str | None = None) -> list[Tag]: ...

    def scalars_many(
        self,
        run_ids: Sequence[int],
        tags: Sequence[str],
        max_points: int | None = None,
        *,
        min_step: int | None = None,
        max_step: int | None = None,
    ) -> list[ScalarSeries]: ...

    def histograms(
        self,
        run_id: int,
        tag: str,
        max_steps: int | None = None,
        *,
        min_step: int | None = None,
    ) -> HistogramSeries: ...

    def graph(self, run_id: int) -> list[GraphNode] | None: ...


class ServerApi(ReadApi, Protocol):
    """The read API and the housekeeping the Runs page does (``trainboard.Reader``)."""

    def delete_run(self, run_id: int) -> None: ...

    def delete_experiment(self, experiment: str) -> int: ...

    def rename_run(self, run_id: int, new_name: str) -> None: ...

    def set_run_tags(self, run_id: int, tags: Sequence[str]) -> tuple[str, ...]: ...


#: Numbers the whole reads of scalar series, so that whoever passes a cached series
#: on (the chart cards) can tell new points appended to what it passed on before
#: (same generation, longer) from a series read whole again (a new generation).
_GENERATIONS = itertools.count(1)


@dataclass(frozen=True, slots=True)
class CachedScalars:
    """A scalar series as the dashboard holds it, sorted by step. ``generation``
    changes when the series is read whole again; appended steps keep it."""

    steps: np.ndarray
    wall_times: np.ndarray
    values: np.ndarray
    generation: int = 0

    @property
    def last_step(self) -> int:
        return int(self.steps[-1]) if len(self.steps) else -1

    def __len__(self) -> int:
        return int(self.steps.shape[0])


@dataclass(frozen=True, slots=True)
class CachedHistograms:
    items: tuple[Histogram, ...]

    @property
    def last_step(self) -> int:
        return self.items[-1].step if self.items else -1


ScalarKey = tuple[int, str, int]  # run id, tag, max_points
HistogramKey = tuple[int, str, int]  # run id, tag, max_steps


class LiveData:
    """The session's cache in front of the read API (see the module docstring).

    Not thread-safe: Streamlit runs one script (or fragment) of a session at a time.
    """

    def __init__(self, reader: ServerApi) -> None:
        self.reader = reader
        self._tags: dict[int, list[Tag]] = {}
        self._scalars: dict[ScalarKey, CachedScalars] = {}
        self._histograms: dict[HistogramKey, CachedHistograms] = {}
        self._last_values: dict[tuple[int, str], tuple[int, float]] = {}
        self._graphs: dict[int, list[GraphNode]] = {}

    # ---------------------------------------------------------------- listings

    def experiments(self) -> list[str]:
        return self.reader.experiments()

    def runs(self, experiment: str) -> list[Run]:
        """The experiment's runs, oldest first; drops what is cached for runs of
        other experiments, so the cache holds one experiment at a time."""
        runs = self.reader.runs(experiment)
        self.retain(r.id for r in runs)
        return runs

    def tags(self, run_ids: Sequence[int]) -> dict[int, list[Tag]]:
        """Each run's tags as stored now (one call per run). Later reads of this
        refresh compare their last steps with the cache."""
        for run_id in run_ids:
            self._tags[run_id] = self.reader.tags(run_id)
        return {run_id: self._tags[run_id] for run_id in run_ids}

    def tag_names(self, run_ids: Sequence[int], kind: str) -> list[str]:
        """Sorted tags of that kind that any of the runs has (from :meth:`tags`)."""
        return sorted({t.name for r in run_ids for t in self._tags.get(r, []) if t.kind == kind})

    def _last_step(self, run_id: int, tag: str, kind: str) -> int | None:
        for t in self._tags.get(run_id, []):
            if t.name == tag and t.kind == kind:
                return t.last_step
        return None

    # ---------------------------------------------------------------- scalars

    def scalars(
        self, run_ids: Sequence[int], tags: Sequence[str], max_points: int
    ) -> dict[tuple[int, str], CachedScalars]:
        """The series of every (run, tag) pair that exists, by ``(run_id, tag)``,
        reading only what the cache lacks: whole series in one ``scalars_many`` per
        group of runs that lack the same tags, new steps in one per cursor."""
        whole: dict[frozenset[str], set[int]] = defaultdict(set)
        since: dict[int, tuple[set[int], set[str]]] = {}
        for run_id in run_ids:
            lacking: set[str] = set()
            for tag in tags:
                stored = self._last_step(run_id, tag, "scalar")
                if stored is None:
                    continue
                cached = self._scalars.get((run_id, tag, max_points))
                if cached is None or len(cached) > COMPACT_FACTOR * max_points:
                    lacking.add(tag)
                elif stored > cached.last_step:
                    cursor = cached.last_step + 1
                    runs_at, tags_at = since.setdefault(cursor, (set(), set()))
                    runs_at.add(run_id)
                    tags_at.add(tag)
            if lacking:
                whole[frozenset(lacking)].add(run_id)

        for group_tags, group_runs in whole.items():
            for series in self.reader.scalars_many(
                sorted(group_runs), sorted(group_tags), max_points
            ):
                self._scalars[(series.run_id, series.tag, max_points)] = CachedScalars(
                    steps=series.steps,
                    wall_times=series.wall_times,
                    values=series.values,
                    generation=next(_GENERATIONS),
                )
        for cursor, (cursor_runs, cursor_tags) in sorted(since.items()):
            for series in self.reader.scalars_many(
                sorted(cursor_runs), sorted(cursor_tags), max_points, min_step=cursor
            ):
                key = (series.run_id, series.tag, max_points)
                cached = self._scalars.get(key)
                if cached is not None:
                    self._scalars[key] = _append(cached, series)

        found: dict[tuple[int, str], CachedScalars] = {}
        for run_id in run_ids:
            for tag in tags:
                cached = self._scalars.get((run_id, tag, max_points))
                if cached is not None and self._last_step(run_id, tag, "scalar") is not None:
                    found[(run_id, tag)] = cached
        return found

    def last_values(
        self, run_ids: Sequence[int], tags: Sequence[str]
    ) -> dict[tuple[int, str], float]:
        """The value at each series' last step, read only where the last step moved:
        one ``scalars_many`` per distinct last step, asking for that step alone."""
        by_step: dict[int, tuple[set[int], set[str]]] = {}
        for run_id in run_ids:
            for tag in tags:
                stored = self._last_step(run_id, tag, "scalar")
                if stored is None:
                    continue
                known = self._last_values.get((run_id, tag))
                if known is None or known[0] != stored:
                    runs_at, tags_at = by_step.setdefault(stored, (set(), set()))
                    runs_at.add(run_id)
                    tags_at.add(tag)
        for step, (step_runs, step_tags) in sorted(by_step.items()):
            for series in self.reader.scalars_many(
                sorted(step_runs), sorted(step_tags), 1, min_step=step, max_step=step
            ):
                if len(series):
                    self._last_values[(series.run_id, series.tag)] = (
                        int(series.steps[-1]),
                        float(series.values[-1]),
                    )
        return {
            (run_id, tag): self._last_values[(run_id, tag)][1]
            for run_id in run_ids
            for tag in tags
            if (run_id, tag) in self._last_values
        }

    # ---------------------------------------------------------------- histograms

    def histograms(
        self, run_ids: Sequence[int], tags: Sequence[str], max_steps: int
    ) -> dict[tuple[int, str], tuple[Histogram, ...]]:
        """The histograms of every (run, tag) pair that exists, by ``(run_id, tag)``:
        at most ``max_steps`` sampled evenly on a whole read, then new steps only."""
        found: dict[tuple[int, str], tuple[Histogram, ...]] = {}
        for run_id in run_ids:
            for tag in tags:
                stored = self._last_step(run_id, tag, "histogram")
                if stored is None:
                    continue
                key = (run_id, tag, max_steps)
                cached = self._histograms.get(key)
                if cached is None or len(cached.items) > COMPACT_FACTOR * max_steps:
                    read = self.reader.histograms(run_id, tag, max_steps)
                    cached = CachedHistograms(tuple(read))
                elif stored > cached.last_step:
                    read = self.reader.histograms(
                        run_id, tag, max_steps, min_step=cached.last_step + 1
                    )
                    fresh = tuple(h for h in read if h.step > cached.last_step)
                    cached = CachedHistograms(cached.items + fresh)
                self._histograms[key] = cached
                found[(run_id, tag)] = cached.items
        return found

    # ---------------------------------------------------------------- graphs

    def graph(self, run_id: int) -> list[GraphNode] | None:
        """The run's graph (stored once per run, so read once); ``None`` while the
        run has none, asked again on the next call."""
        if run_id not in self._graphs:
            nodes = self.reader.graph(run_id)
            if nodes is None:
                return None
            self._graphs[run_id] = nodes
        return self._graphs[run_id]

    # ---------------------------------------------------------------- housekeeping

    def delete_runs(self, run_ids: Sequence[int]) -> int:
        """Deletes the runs on the server and forgets what is cached of them;
        returns how many were deleted (a run someone else deleted meanwhile is
        not counted)."""
        deleted = 0
        try:
            for run_id in run_ids:
                try:
                    self.reader.delete_run(run_id)
                except NotFound:
                    continue
                deleted += 1
        finally:
            self.forget(run_ids)
        return deleted

    def delete_experiment(self, experiment: str) -> int:
        """Deletes every run of the experiment; returns how many. Forgets them all."""
        try:
            return self.reader.delete_experiment(experiment)
        finally:
            self.clear()

    def rename_run(self, run_id: int, new_name: str) -> None:
        self.reader.rename_run(run_id, new_name)  # cached by id: nothing goes stale

    def set_run_tags(self, run_id: int, tags: Sequence[str]) -> tuple[str, ...]:
        return self.reader.set_run_tags(run_id, tags)  # listed afresh on every refresh

    def forget(self, run_ids: Iterable[int]) -> None:
        """Forgets everything cached for ``run_ids``."""
        drop = set(run_ids)
        self._keep_runs(lambda run_id: run_id not in drop)

    def retain(self, run_ids: Iterable[int]) -> None:
        """Forgets everything cached for runs not in ``run_ids``."""
        keep = set(run_ids)
        self._keep_runs(keep.__contains__)

    def _keep_runs(self, keep: Callable[[int], bool]) -> None:
        self._tags = {k: v for k, v in self._tags.items() if keep(k)}
        self._scalars = {k: v for k, v in self._scalars.items() if keep(k[0])}
        self._histograms = {k: v for k, v in self._histograms.items() if keep(k[0])}
        self._last_values = {k: v for k, v in self._last_values.items() if keep(k[0])}
        self._graphs = {k: v for k, v in self._graphs.items() if keep(k)}

    def clear(self) -> None:
        """Forgets everything: the next reads are whole ones."""
        self.retain(())


def _append(cached: CachedScalars, series: ScalarSeries) -> CachedScalars:
    newer = series.steps > cached.last_step
    if not newer.any():
        return cached
    return CachedScalars(
        steps=np.concatenate([cached.steps, series.steps[newer]]),
        wall_times=np.concatenate([cached.wall_times, series.wall_times[newer]]),
        values=np.concatenate([cached.values, series.values[newer]]),
        generation=cached.generation,
    )
