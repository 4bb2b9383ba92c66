"""Turning queued records into write batches, columnar.

``Batcher`` takes the records the trainer queued (``trainboard.records``) and
gathers them into ``Batch``es near a size in points and under the tag limits;
``Batch.parts`` gives what ``trainboard.wire`` encodes into a request.
"""

from __future__ import annotations

import itertools
import logging
import operator
from collections.abc import Iterable
from typing import Any, Final

import numpy as np

from trainboard.records import ByteBudget
from trainboard.types import HistogramRecord
from trainboard.validation import MAX_TAGS_PER_BATCH

log = logging.getLogger("trainboard")

# A histogram weighs this many points when a batch is sized.
HISTOGRAM_WEIGHT: Final = 80

FIRST = operator.itemgetter(0)
_SECOND = operator.itemgetter(1)
_THIRD = operator.itemgetter(2)
_FOURTH = operator.itemgetter(3)
_FIFTH = operator.itemgetter(4)


class Batch:
    """Records being gathered into one WriteBatch, columnar.

    A run of ``log_scalars`` records with the same tags (the common case: one
    dict per training step) becomes a *group*: its values one (rows, tags)
    matrix, its steps and wall times one array each, built by C loops (no
    Python work per point, and none per record beyond a few C calls). Single
    ``log_scalar`` points go to per-tag lists.

    ``segments`` keeps, per tag, every column segment in the order it was
    logged, so a batch can always be sent as per-tag ScalarColumns; when the
    server accepts ScalarRows and no tag was logged both ways in the batch,
    the groups travel as rows instead (steps and wall times once per group).
    """

    __slots__ = (
        "_group_tags",
        "_single_tags",
        "_singles",
        "groups",
        "histogram_tags",
        "histograms",
        "next_steps",
        "points",
        "scalar_tags",
        "segments",
    )

    def __init__(self, next_steps: dict[str, int]) -> None:
        # The sender's per-tag next step, shared and updated as points arrive.
        self.next_steps = next_steps
        self.segments: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
        self.groups: list[tuple[tuple[str, ...], np.ndarray, np.ndarray, np.ndarray]] = []
        self._group_tags: set[str] = set()
        self._singles: dict[str, tuple[list[int], list[float], list[float]]] = {}
        self._single_tags: set[str] = set()
        self.scalar_tags: set[str] = set()  # every scalar tag in the batch
        self.histograms: list[HistogramRecord] = []
        self.histogram_tags: set[str] = set()
        self.points = 0

    def add_rows(self, records: list[tuple[Any, ...]]) -> None:
        """``log_scalars`` records ``(SCALARS, tags, values, step, wall_time)``, in
        order; the client hands the same tags tuple for the same tags."""
        self._close_singles()
        tag_rows = list(map(_SECOND, records))
        if tag_rows.count(tag_rows[0]) == len(tag_rows):  # one group: the common case
            self._add_group(tag_rows[0], records)
            return
        start = 0
        for tags, run in itertools.groupby(tag_rows):
            end = start + sum(1 for _ in run)
            self._add_group(tags, records[start:end])
            start = end

    def _add_group(self, tags: tuple[str, ...], records: list[tuple[Any, ...]]) -> None:
        n, width = len(records), len(tags)
        values = itertools.chain.from_iterable(map(_THIRD, records))
        matrix = np.fromiter(values, dtype=np.float64, count=n * width).reshape(n, width)
        times = np.fromiter(map(_FIFTH, records), dtype=np.float64, count=n)
        step_list = list(map(_FOURTH, records))
        next_steps = self.next_steps
        if None in step_list:
            # Without a step, a row continues after every one of its tags (and after
            # the rows before it).
            following = max([next_steps.get(tag, 0) for tag in tags])
            for i, step in enumerate(step_list):
                if step is None:
                    step_list[i] = step = following
                if step >= following:
                    following = step + 1
        else:
            following = max(step_list) + 1
        steps = np.array(step_list, dtype=np.int64)
        self.groups.append((tags, steps, times, matrix))
        segments = self.segments
        for column, tag in enumerate(tags):
            segments.setdefault(tag, []).append((steps, times, matrix[:, column]))
            if next_steps.get(tag, 0) < following:
                next_steps[tag] = following
        self._group_tags.update(tags)
        self.scalar_tags.update(tags)
        self.points += n * width

    def add_scalar(self, tag: str, value: float, step: int | None, wall_time: float) -> None:
        """One ``log_scalar`` call."""
        next_steps = self.next_steps
        if step is None:
            step = next_steps.get(tag, 0)
        cols = self._singles.get(tag)
        if cols is None:
            cols = self._singles[tag] = ([], [], [])
            self.scalar_tags.add(tag)
        cols[0].append(step)
        cols[1].append(wall_time)
        cols[2].append(value)
        if next_steps.get(tag, 0) <= step:
            next_steps[tag] = step + 1
        self.points += 1

    def full_of_histogram_tags(self, tag: str) -> bool:
        """True when ``tag`` would be one histogram tag too many for the batch."""
        tags = self.histogram_tags
        return len(tags) >= MAX_TAGS_PER_BATCH and tag not in tags

    def full_of_tags(self, tag: str) -> bool:
        """True when ``tag`` would be one scalar tag too many for the batch."""
        return len(self.scalar_tags) >= MAX_TAGS_PER_BATCH and tag not in self.scalar_tags

    def _close_singles(self) -> None:
        if not self._singles:
            return
        for tag, (steps, times, values) in self._singles.items():
            self.segments.setdefault(tag, []).append(
                (np.array(steps, dtype=np.int64), np.array(times), np.array(values))
            )
        self._single_tags.update(self._singles)
        self._singles.clear()

    def parts(
        self, rows: bool
    ) -> tuple[
        list[tuple[str, np.ndarray, np.ndarray, np.ndarray]],
        list[tuple[tuple[str, ...], np.ndarray, np.ndarray, np.ndarray]],
    ]:
        """The batch's scalars as per-tag columns, and (with ``rows``, when no tag
        was logged both ways in the batch) its groups as rows: steps and wall
        times once per group. ``wire.gathered_batch_to_pb`` encodes them."""
        self._close_singles()
        columns = self.segments
        grouped: list[tuple[tuple[str, ...], np.ndarray, np.ndarray, np.ndarray]] = []
        if rows and self.groups and self._single_tags.isdisjoint(self._group_tags):
            grouped = list(_merged_groups(self.groups))
            columns = {tag: columns[tag] for tag in self._single_tags}
        joined = []
        for tag, segments in columns.items():
            if len(segments) == 1:
                steps, times, values = segments[0]
            else:
                columns_of = zip(*segments, strict=True)
                steps, times, values = (np.concatenate(column) for column in columns_of)
            joined.append((tag, steps, times, values))
        return joined, grouped


def narrow(rows: list[tuple[Any, ...]]) -> Iterable[list[tuple[Any, ...]]]:
    """``log_scalars`` rows in lists of rows with at most ``MAX_TAGS_PER_BATCH``
    tags each: as they are, unless a row is wider (then one list per slice)."""
    if all(len(row[1]) <= MAX_TAGS_PER_BATCH for row in rows):
        yield rows
        return
    for kind, tags, values, step, wall_time in rows:
        for start in range(0, len(tags), MAX_TAGS_PER_BATCH):
            end = start + MAX_TAGS_PER_BATCH
            yield [(kind, tags[start:end], values[start:end], step, wall_time)]


def _merged_groups(
    groups: list[tuple[tuple[str, ...], np.ndarray, np.ndarray, np.ndarray]],
) -> Iterable[tuple[tuple[str, ...], np.ndarray, np.ndarray, np.ndarray]]:
    """Consecutive groups with the same tags, concatenated."""
    for tags, run in itertools.groupby(groups, key=FIRST):
        parts = list(run)
        if len(parts) == 1:
            yield parts[0]
        else:
            _, steps, times, matrices = zip(*parts, strict=True)
            yield tags, np.concatenate(steps), np.concatenate(times), np.concatenate(matrices)


class Batcher:
    """Gathers queued records into batches near ``max_points`` points and under
    ``MAX_TAGS_PER_BATCH`` tags of each kind. Each ``add_*`` returns the batches
    that are ready to send (usually none), in order; ``take()`` hands over the
    batch being gathered. Steps left out (``None``) are numbered here: a tag
    continues after its last step (``next_scalar_step``/``next_histogram_step``,
    which a resumed run seeds with the stored last steps)."""

    def __init__(self, max_points: int, budget: ByteBudget) -> None:
        self.max_points = max_points
        self.next_scalar_step: dict[str, int] = {}
        self.next_histogram_step: dict[str, int] = {}
        self._budget = budget
        self.batch = Batch(self.next_scalar_step)

    def take(self) -> Batch:
        batch, self.batch = self.batch, Batch(self.next_scalar_step)
        return batch

    def add_rows(self, records: list[tuple[Any, ...]]) -> list[Batch]:
        """``log_scalars`` records, in order."""
        ready: list[Batch] = []
        for rows in narrow(records):
            width = max(len(rows[0][1]), len(rows[-1][1]))  # of their tags
            tags = self.batch.scalar_tags
            if (
                self.batch.points
                and len(tags) + width > MAX_TAGS_PER_BATCH
                and not tags.issuperset(rows[0][1])
            ):
                ready.append(self.take())
            start = 0
            while start < len(rows):
                # Rows the batch has room for, so that a batch stays near the limit.
                room = max(1, (self.max_points - self.batch.points) // width)
                self.batch.add_rows(rows[start : start + room])
                start += room
                if self.batch.points >= self.max_points:
                    ready.append(self.take())
        return ready

    def add_scalar(self, record: tuple[Any, ...]) -> list[Batch] | tuple[()]:
        """A ``log_scalar`` record (the hot path: no list unless a batch is ready)."""
        ready: list[Batch] | tuple[()] = ()
        if self.batch.full_of_tags(record[1]):
            ready = [self.take()]
        batch = self.batch
        batch.add_scalar(record[1], record[2], record[3], record[4])
        if batch.points >= self.max_points:
            ready = [*ready, self.take()]
        return ready

    def add_histogram(self, record: tuple[Any, ...]) -> list[Batch]:
        """A ``log_histogram`` record: its snapshot is summarised here (and its
        bytes given back to the budget)."""
        _, tag, snap, step, t, buckets = record
        ready: list[Batch] = []
        if self.batch.full_of_histogram_tags(tag):
            ready.append(self.take())
        steps = self.next_histogram_step
        if step is None:
            step = steps.get(tag, 0)
        if steps.get(tag, 0) <= step:
            steps[tag] = step + 1
        nbytes = snap.nbytes
        try:
            summary = snap.summarize(buckets)
        except Exception as exc:  # a broken tensor must not stop the sender
            log.warning("trainboard: histogram %r at step %d was not logged: %s", tag, step, exc)
            return ready
        finally:
            self._budget.give(nbytes)
        batch = self.batch
        batch.histograms.append(HistogramRecord(tag, step, t, summary))
        batch.histogram_tags.add(tag)
        batch.points += HISTOGRAM_WEIGHT
        if batch.points >= self.max_points:
            ready.append(self.take())
        return ready
