"""``SqlStore``: the ``trainboard.store.Store`` contract on SQLite or PostgreSQL.

This module is the facade: it validates arguments, runs each call in one
transaction through ``storage.session.Database`` and leaves the SQL to the
``storage`` modules, one concern each. Storage layout: ``storage.models``.

Liveness: ``list_runs`` reports a run stored as running "crashed" when its
``updated_at`` is more than ``crashed_after`` seconds behind the store's clock
(a client keeps its run fresh with writes and, while idle, heartbeats).

Durability: ``write_batch`` returns after its transaction committed. On SQLite
(WAL, ``synchronous=NORMAL``) a committed batch survives the process being killed;
the last commits before a power loss may be lost. PostgreSQL follows its own
``synchronous_commit`` (on by default: commits survive a power loss).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np
from sqlalchemy import Connection, Engine

from trainboard.errors import InvalidArgument
from trainboard.types import (
    GraphNode,
    HistogramSeries,
    Run,
    ScalarSeries,
    StartedRun,
    Tag,
    WriteBatch,
    WriteResult,
)
from trainboard.validation import (
    MAX_GRAPH_NODES,
    check_client_id,
    check_final_status,
    check_name,
    check_read_keys,
    check_run_id,
    check_run_tags,
    check_step,
    check_wall_time,
)
from trainboard_server.downsample import downsample_indices
from trainboard_server.storage import graphs, histograms, runs, scalars, series
from trainboard_server.storage.batches import (
    abandon_if_unwanted,
    check_batch,
    store_batch,
)
from trainboard_server.storage.engine import make_engine
from trainboard_server.storage.migrate import upgrade_to_head
from trainboard_server.storage.session import Database

T = TypeVar("T")

#: Seconds without a write or heartbeat after which a running run is reported crashed.
DEFAULT_CRASHED_AFTER = 300.0


class SqlStore:
    """The Store contract (``trainboard.store``) on a SQLAlchemy engine.

    Thread-safe: every method checks a connection out of the engine's pool for one
    transaction. Several processes may share one database.

    ``crashed_after`` (seconds; ``None`` never reports a crash) and ``clock`` (the
    current time, seconds since the epoch) drive the liveness rule of
    ``list_runs`` and the time a heartbeat stores.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        crashed_after: float | None = DEFAULT_CRASHED_AFTER,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if crashed_after is not None and not (math.isfinite(crashed_after) and crashed_after > 0):
            raise InvalidArgument(f"crashed_after must be seconds > 0, got {crashed_after}")
        self._db = Database(engine)
        self._crashed_after = crashed_after
        self._clock = clock

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        migrate: bool = True,
        crashed_after: float | None = DEFAULT_CRASHED_AFTER,
        clock: Callable[[], float] = time.time,
    ) -> SqlStore:
        """A store on ``sqlite:///path``, ``postgresql://...`` or
        ``postgresql+psycopg://...``, migrated to the newest schema unless
        ``migrate=False``; ``InvalidArgument`` for another kind of URL."""
        engine = make_engine(url)
        if migrate:
            try:
                upgrade_to_head(engine)
            except BaseException:
                engine.dispose()
                raise
        return cls(engine, crashed_after=crashed_after, clock=clock)

    @property
    def engine(self) -> Engine:
        return self._db.engine

    @property
    def healthy(self) -> bool:
        """False while the database is unusable (down, full, read-only, file gone)."""
        return self._db.health.healthy

    def add_health_listener(self, listener: Callable[[bool], None]) -> None:
        """Calls ``listener(healthy)`` now and whenever the database becomes unusable
        or usable again (``storage.session`` says how that is found)."""
        self._db.health.add_listener(listener)

    # ------------------------------------------------------------ write side

    def start_run(
        self,
        experiment: str,
        run: str,
        params: Mapping[str, Any] | None,
        wall_time: float,
        *,
        resume: bool = False,
        client_id: str | None = None,
        still_wanted: Callable[[], bool] | None = None,
    ) -> StartedRun:
        # still_wanted: as for write_batch (asked just before the commit).
        experiment = check_name("experiment", experiment)
        run = check_name("run", run)
        wall_time = check_wall_time(wall_time)
        if client_id:
            client_id = check_client_id(client_id)
        return self._db.write(
            _committing(
                lambda c: runs.start_run(
                    c, experiment, run, params, wall_time, resume=resume, client_id=client_id
                ),
                still_wanted,
            )
        )

    def write_batch(
        self, batch: WriteBatch, *, still_wanted: Callable[[], bool] | None = None
    ) -> WriteResult:
        """Stores the batch in one transaction and returns after it committed.

        ``NotFound`` for an unknown run (nothing is stored, the sequence is not
        recorded). A replayed batch (sequence not above the client's highest) stores
        nothing and answers ``duplicate=True`` with zero points; otherwise the points
        counts are those the batch carried. ``still_wanted`` (the server passes "the
        request's deadline has not passed") is asked just before the commit: when it
        answers False the transaction rolls back and ``DeadlineExceeded`` is raised."""
        checked = check_batch(batch)
        return self._db.write(lambda c: store_batch(c, checked, still_wanted=still_wanted))

    def finish_run(self, run_id: int, status: str, wall_time: float) -> None:
        run_id = check_run_id(run_id)
        status = check_final_status(status)
        wall_time = check_wall_time(wall_time)
        self._db.write(lambda c: runs.finish_run(c, run_id, status, wall_time))

    def set_graph(self, run_id: int, nodes: Sequence[GraphNode]) -> None:
        run_id = check_run_id(run_id)
        nodes = list(nodes)
        if len(nodes) > MAX_GRAPH_NODES:
            raise InvalidArgument(
                f"graph has {len(nodes)} nodes; at most {MAX_GRAPH_NODES} are allowed"
            )
        for i, node in enumerate(nodes):
            if not isinstance(node, GraphNode):
                raise TypeError(f"nodes[{i}] must be a GraphNode, got {type(node).__name__}")
        now = self._clock()

        def work(connection: Connection) -> None:
            runs.touch_run(connection, run_id, None)
            graphs.store_graph(connection, run_id, nodes, now)

        self._db.write(work)

    def heartbeat(self, run_id: int) -> None:
        run_id = check_run_id(run_id)
        now = self._clock()
        self._db.write(lambda c: runs.touch_run(c, run_id, now))

    # ---------------------------------------------------------- housekeeping

    def delete_run(self, run_id: int) -> None:
        run_id = check_run_id(run_id)
        self._db.write(lambda c: runs.delete_run(c, run_id))

    def delete_experiment(self, experiment: str) -> int:
        experiment = check_name("experiment", experiment)
        return self._db.write(lambda c: runs.delete_experiment(c, experiment))

    def rename_run(self, run_id: int, new_name: str) -> None:
        run_id = check_run_id(run_id)
        new_name = check_name("new_name", new_name)
        self._db.write(lambda c: runs.rename_run(c, run_id, new_name))

    def set_run_tags(self, run_id: int, tags: Sequence[str]) -> tuple[str, ...]:
        run_id = check_run_id(run_id)
        checked = check_run_tags(tags)
        self._db.write(lambda c: runs.set_run_tags(c, run_id, checked))
        return checked

    # ------------------------------------------------------------- read side

    def list_experiments(self) -> list[str]:
        return self._db.read(runs.list_experiments)

    def list_runs(self, experiment: str) -> list[Run]:
        experiment = check_name("experiment", experiment)
        listed = self._db.read(lambda c: runs.list_runs(c, experiment))
        if self._crashed_after is None:
            return listed
        silent_since = self._clock() - self._crashed_after
        return [reported(run, silent_since) for run in listed]

    def list_tags(self, run_id: int) -> list[Tag]:
        run_id = check_run_id(run_id)

        def work(connection: Connection) -> list[Tag]:
            runs.require_run(connection, run_id)
            return series.run_tags(connection, run_id)

        return self._db.read(work)

    def list_tags_page(
        self, run_id: int, page_token: str, page_size: int, max_bytes: int
    ) -> tuple[list[Tag], str]:
        """A page of ``list_tags``: at most ``page_size`` tags and about ``max_bytes``
        of names, from ``page_token`` ("" for the first page) on, sorted by (kind,
        name) within the page; and the token of the next page ("" after the last)."""
        run_id = check_run_id(run_id)
        after = series.decode_page_token(page_token) if page_token else None

        def work(connection: Connection) -> tuple[list[Tag], series.PageKey | None]:
            runs.require_run(connection, run_id)
            return series.run_tags_page(connection, run_id, after, page_size, max_bytes)

        tags, last = self._db.read(work)
        return tags, "" if last is None else series.encode_page_token(last)

    def scalar_sizes(
        self,
        run_ids: Sequence[int],
        tags: Sequence[str],
        min_step: int | None = None,
        max_step: int | None = None,
    ) -> dict[tuple[int, str], int]:
        """For each existing scalar series among ``run_ids`` x ``tags``, by (run id,
        tag): the points stored in ``[min_step, max_step]``, an upper bound of what
        ``read_scalars_page`` returns. Read from the chunks' counts, nothing decoded, so
        that a read can be sized before it is built. ``NotFound`` for an unknown run."""
        return self._series_sizes(
            run_ids,
            tags,
            "scalar",
            lambda c, ids: scalars.stored_counts(c, ids, min_step, max_step),
        )

    def histogram_sizes(
        self, run_ids: Sequence[int], tags: Sequence[str], min_step: int | None = None
    ) -> dict[tuple[int, str], tuple[int, int]]:
        """For each existing histogram series among ``run_ids`` x ``tags``, by (run
        id, tag): how many histograms it holds from ``min_step`` on and the wire bytes
        of the largest. ``NotFound`` for an unknown run."""
        return self._series_sizes(
            run_ids, tags, "histogram", lambda c, ids: histograms.stored_sizes(c, ids, min_step)
        )

    def _series_sizes(
        self,
        run_ids: Sequence[int],
        tags: Sequence[str],
        kind: str,
        measure: Callable[[Connection, list[int]], Mapping[int, T]],
    ) -> dict[tuple[int, str], T]:
        """``measure``'s answer for each existing series of ``kind`` among
        ``run_ids`` x ``tags``, by (run id, tag)."""
        ids = [check_run_id(r) for r in run_ids]
        names = [check_name("tag", t) for t in tags]

        def work(connection: Connection) -> dict[tuple[int, str], T]:
            found = series.find_many(connection, ids, names, kind)
            _require_runs(connection, ids, found)
            sizes = measure(connection, list(found.values()))
            return {key: sizes[series_id] for key, series_id in found.items()}

        return self._db.read(work)

    def read_scalars(
        self,
        *,
        run_ids: Sequence[int],
        tags: Sequence[str],
        max_points: int | None = None,
        min_step: int | None = None,
        max_step: int | None = None,
    ) -> dict[tuple[int, str], ScalarSeries]:
        """The Store contract's read: every existing series whole, one transaction
        each (``read_scalars_page`` without a limit), after one that finds them."""
        ids, names = check_read_keys(run_ids, tags)
        _check_limit("max_points", max_points)
        low = None if min_step is None else check_step(min_step, "min_step")
        high = None if max_step is None else check_step(max_step, "max_step")
        found: dict[tuple[int, str], ScalarSeries] = {}
        for run_id, tag in self._find_series_many(ids, names, "scalar"):
            series = self.read_scalars_page(
                run_id, tag, max_points=max_points, min_step=low, max_step=high
            )
            if series is not None:  # None: deleted since it was found
                found[(run_id, tag)] = series
        return found

    def read_scalars_page(
        self,
        run_id: int,
        tag: str,
        *,
        max_points: int | None = None,
        min_step: int | None = None,
        max_step: int | None = None,
        limit: int | None = None,
    ) -> ScalarSeries | None:
        """One series, as ``read_scalars`` reads it, or a page of it: not part of
        the Store contract, but what the server builds bounded answers from.
        Without ``max_points``, ``limit`` pages the read: at most that many points,
        the first ones of the range, with ``next_step`` set to where the rest
        starts (``total`` then counts the page); a downsampled read ignores it.
        ``None`` if the run has no such scalar tag; ``NotFound`` for an unknown run."""
        run_id = check_run_id(run_id)
        tag = check_name("tag", tag)
        _check_limit("max_points", max_points)
        _check_limit("limit", limit)
        low = None if min_step is None else check_step(min_step, "min_step")
        high = None if max_step is None else check_step(max_step, "max_step")
        page = limit if max_points is None else None  # a page of a full-resolution read

        def work(connection: Connection) -> tuple[scalars.Points, int | None] | None:
            series_id = _find_series(connection, run_id, tag, "scalar")
            if series_id is None:
                return None
            end = None if page is None else scalars.page_end(connection, series_id, low, page)
            if end is not None and high is not None and end > high:
                end = None
            stop = high if end is None else end - 1
            return scalars.read_points(connection, series_id, low, stop), end

        found = self._db.read(work)
        if found is None:
            return None
        points, next_step = found
        # Downsampled outside the transaction: the connection is free again sooner.
        total = len(points)
        steps, wall_times, values = points.steps, points.wall_times, points.values
        if max_points is not None and total > max_points:
            keep = downsample_indices(steps, values, max_points)
            steps, wall_times, values = steps[keep], wall_times[keep], values[keep]
        elif page is not None and total > page:
            next_step = int(steps[page])
            steps, wall_times, values = steps[:page], wall_times[:page], values[:page]
            total = page
        return ScalarSeries(
            run_id=run_id,
            tag=tag,
            steps=_owned(steps),
            wall_times=_owned(wall_times),
            values=_owned(values),
            total=total,
            next_step=next_step,
        )

    def read_histograms(
        self,
        *,
        run_ids: Sequence[int],
        tags: Sequence[str],
        max_steps: int | None = None,
        min_step: int | None = None,
    ) -> dict[tuple[int, str], HistogramSeries]:
        """The Store contract's read, in one transaction."""
        ids, names = check_read_keys(run_ids, tags)
        _check_limit("max_steps", max_steps)
        low = None if min_step is None else check_step(min_step, "min_step")

        def work(connection: Connection) -> dict[tuple[int, str], HistogramSeries]:
            found = series.find_many(connection, ids, names, "histogram")
            _require_runs(connection, ids, found)
            answer: dict[tuple[int, str], HistogramSeries] = {}
            for key in _in_order(ids, names, found):
                items, total = histograms.read_histogram_rows(
                    connection, found[key], max_steps, low
                )
                answer[key] = HistogramSeries(
                    run_id=key[0], tag=key[1], items=tuple(items), total=total
                )
            return answer

        return self._db.read(work)

    def _find_series_many(
        self, run_ids: list[int], tags: list[str], kind: str
    ) -> list[tuple[int, str]]:
        """The existing series of ``kind`` among ``run_ids`` x ``tags``, run-major in
        the order given; ``NotFound`` for an unknown run."""

        def work(connection: Connection) -> list[tuple[int, str]]:
            found = series.find_many(connection, run_ids, tags, kind)
            _require_runs(connection, run_ids, found)
            return _in_order(run_ids, tags, found)

        return self._db.read(work)

    def get_graph(self, run_id: int) -> list[GraphNode] | None:
        run_id = check_run_id(run_id)

        def work(connection: Connection) -> list[GraphNode] | None:
            runs.require_run(connection, run_id)
            return graphs.load_graph(connection, run_id)

        return self._db.read(work)

    def close(self) -> None:
        self._db.close()


def reported(run: Run, silent_since: float) -> Run:
    """The run as listed: "crashed" when it is stored as running but nothing
    touched it after ``silent_since``."""
    if run.status == "running" and run.updated_at < silent_since:
        return dataclasses.replace(run, status="crashed")
    return run


def _committing(
    work: Callable[[Connection], T], still_wanted: Callable[[], bool] | None
) -> Callable[[Connection], T]:
    """``work`` followed, inside its transaction, by the ``still_wanted`` check:
    ``DeadlineExceeded`` (and a rollback) when the caller stopped waiting."""
    if still_wanted is None:
        return work

    def checked(connection: Connection) -> T:
        abandon_if_unwanted(still_wanted)
        result = work(connection)
        abandon_if_unwanted(still_wanted)
        return result

    return checked


def _find_series(connection: Connection, run_id: int, tag: str, kind: str) -> int | None:
    """The id of the run's series of ``tag`` and ``kind``; ``None`` when the run has
    no such series, ``NotFound`` when there is no such run."""
    series_id = series.find_series_id(connection, run_id, tag, kind)
    if series_id is None:
        runs.require_run(connection, run_id)
    return series_id


def _require_runs(
    connection: Connection, run_ids: Sequence[int], found: Mapping[tuple[int, str], int]
) -> None:
    """``NotFound`` for the first of ``run_ids`` that does not exist (a run with a
    series found exists)."""
    having = {run_id for run_id, _ in found}
    for run_id in dict.fromkeys(run_ids):
        if run_id not in having:
            runs.require_run(connection, run_id)


def _in_order(
    run_ids: Sequence[int], tags: Sequence[str], found: Mapping[tuple[int, str], int]
) -> list[tuple[int, str]]:
    """The keys of ``found``, run-major in the order of ``run_ids`` and ``tags``."""
    return [(r, t) for r in run_ids for t in tags if (r, t) in found]


def _check_limit(field: str, value: int | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{field} must be an int or None, got {type(value).__name__}")
    if value < 1:
        raise InvalidArgument(f"{field} must be >= 1 (or None for all), got {value}")


def _owned(array: np.ndarray) -> np.ndarray:
    # Arrays decoded straight from a row's bytes are read-only views; callers get
    # ordinary arrays they may modify.
    return array if array.flags.writeable else array.copy()
