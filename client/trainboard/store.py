"""The storage contract: one protocol, several implementations.

Implementations: ``trainboard_server.sql_store.SqlStore`` (SQLite and PostgreSQL,
chosen by URL) and ``trainboard.transport.RemoteStore`` (the same contract over
gRPC, to a server that holds a ``SqlStore``). The contract test suite
(``tests/test_store_contract.py``) runs against every one of them.

Data model
----------
- An *experiment* is a name; it exists once a run names it, and is listed while
  it has runs: deleting its last run (or the experiment) removes it.
- A *run* belongs to one experiment and has a name unique within it, an integer
  id, JSON params, a status (running, finished, failed, killed), times and a set
  of tags (labels; at most 64). Starting a run whose (experiment, name) exists
  makes a new run named ``name (2)``, ``name (3)``, ... (the first free suffix
  above those in use); the old run is untouched. Starting with ``resume=True``
  continues the newest run of that name instead: its status goes back to
  running, and the params given are merged into the stored ones (a new value
  replaces the old one; ``None`` keeps them all). A run started with a
  ``client_id`` is continued by every later start with that id (a retry).
  A run can be renamed (to a name no other run of its experiment has) and deleted
  with everything it holds (series, histograms, graph, tags).
- *Liveness*: every batch, heartbeat, start and finish moves a run's
  ``updated_at`` forward (never back; renaming and tagging leave it). A run stored as running whose
  ``updated_at`` is older than the store's crashed-after timeout is *listed* with
  status "crashed"; the stored status stays running, so a late client still
  writes and finishes it, and its next write makes it running again.
- A *series* is (run, tag, kind), kind being "scalar" or "histogram". A tag can
  hold a scalar series and a histogram series side by side.
- A scalar *point* is keyed by (run, tag, step) and carries a wall time and a
  float64 value. Writing a key again replaces the point: the last write wins,
  within a batch as across batches. NaN, +Inf and -Inf are stored exactly.
- A histogram point is keyed the same way and carries a summary (docs/design.md);
  writing it again replaces it.
- A graph is a node list stored once per run; setting it again replaces it.
- A *batch* carries (client_id, sequence); a client's sequence numbers rise
  strictly. A batch whose sequence is not above the highest applied one of its
  client is a replay: it is acknowledged as a duplicate and stores nothing. The
  batch and its sequence number are committed in one transaction, and
  ``write_batch`` returns only after that commit.

Reads
-----
``read_scalars`` and ``read_histograms`` are batched over runs and tags and take
keyword arguments only (as TensorBoard's ``DataProvider``). Each answers a dict
keyed by ``(run_id, tag)`` holding a series for every pair of ``run_ids`` x
``tags`` that exists, and no key for a pair that does not (a run without that
tag, or with it only as the other kind); its order is run-major, in the order
the ids and tags were given (a repeated id or tag counts once). A series comes
*whole*, sorted by step with last writes resolved: however an implementation
pages its reads (the gRPC server answers in pages of a bounded size), they are
joined before the answer is returned, so ``ScalarSeries.next_step`` is ``None``.

- ``read_scalars``: the points in ``[min_step, max_step]``, downsampled to at
  most ``max_points`` as docs/design.md says (spikes and non-finite values kept);
  ``total`` is the number of points stored in that range, whatever
  ``max_points`` was.
- ``read_histograms``: the histograms from ``min_step`` on, at most
  ``max_steps`` sampled evenly with the last always kept; ``total`` counts them
  all.

``run_ids`` and ``tags`` must not be empty, and name at most
``MAX_READ_SERIES`` pairs (``InvalidArgument``). ``RemoteStore`` asks for a read
too large for one answer in parts (fewer series at a time); a single series that
alone exceeds an answer (downsampled to more than ``MAX_READ_POINTS`` points, or
histograms beyond ``MAX_READ_HISTOGRAM_BYTES``) is ``ResourceExhausted`` there.

Errors
------
``NotFound`` for an unknown run id (for a read: any of ``run_ids``; or an
experiment, for ``delete_experiment``); ``InvalidArgument`` for a bad field (the
message names it) and for a rename to a taken name. Reading a tag a run does not
have is no error: the pair is absent from the answer.

Limits
------
``trainboard.validation`` holds them. A batch touches at most
``MAX_TAGS_PER_BATCH`` tags (``InvalidArgument``); a run holds at most
``MAX_TAGS_PER_RUN`` tags, and a batch that would add more is refused whole with
``ResourceExhausted``. Params are at most ``MAX_PARAMS_JSON`` bytes of JSON nested
at most ``MAX_PARAMS_DEPTH`` deep, with finite numbers only (``InvalidArgument``).
Each message names its limit.

Thread safety
-------------
Every method may be called from many threads at once, and several processes
may share one database: concurrent writers to one series never lose a point.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

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


class Store(Protocol):
    def start_run(
        self,
        experiment: str,
        run: str,
        params: Mapping[str, Any] | None,
        wall_time: float,
        *,
        resume: bool = False,
        client_id: str | None = None,
    ) -> StartedRun:
        """Creates a new run (a used name gets a suffix: ``run (2)``), or with
        ``resume`` continues the newest run of that name; a run ``client_id``
        created before is always continued (see the module docstring)."""
        ...

    def write_batch(self, batch: WriteBatch) -> WriteResult:
        """Stores a batch atomically and idempotently; ``NotFound`` for an unknown run."""
        ...

    def finish_run(self, run_id: int, status: str, wall_time: float) -> None:
        """Sets a run's final status and finish time."""
        ...

    def set_graph(self, run_id: int, nodes: Sequence[GraphNode]) -> None:
        """Stores the run's graph, replacing any earlier one."""
        ...

    def list_experiments(self) -> list[str]:
        """Experiment names, sorted."""
        ...

    def list_runs(self, experiment: str) -> list[Run]:
        """The experiment's runs in the order they were created (empty if none),
        with their tags; a silent running run is reported "crashed"."""
        ...

    def list_tags(self, run_id: int) -> list[Tag]:
        """The run's series, sorted by (kind, name)."""
        ...

    def read_scalars(
        self,
        *,
        run_ids: Sequence[int],
        tags: Sequence[str],
        max_points: int | None = None,
        min_step: int | None = None,
        max_step: int | None = None,
    ) -> dict[tuple[int, str], ScalarSeries]:
        """The scalar series of ``run_ids`` x ``tags`` (see Reads above)."""
        ...

    def read_histograms(
        self,
        *,
        run_ids: Sequence[int],
        tags: Sequence[str],
        max_steps: int | None = None,
        min_step: int | None = None,
    ) -> dict[tuple[int, str], HistogramSeries]:
        """The histogram series of ``run_ids`` x ``tags`` (see Reads above)."""
        ...

    def get_graph(self, run_id: int) -> list[GraphNode] | None:
        """The run's graph, or ``None`` if none was set."""
        ...

    def heartbeat(self, run_id: int) -> None:
        """Moves the run's ``updated_at`` to the store's current time (a client
        that has nothing to send says it is alive)."""
        ...

    def delete_run(self, run_id: int) -> None:
        """Deletes the run and everything it holds, in one transaction."""
        ...

    def delete_experiment(self, experiment: str) -> int:
        """Deletes every run of the experiment; returns how many.
        ``NotFound`` when it has none."""
        ...

    def rename_run(self, run_id: int, new_name: str) -> None:
        """Renames the run; ``InvalidArgument`` when the experiment has another
        run of that name."""
        ...

    def set_run_tags(self, run_id: int, tags: Sequence[str]) -> tuple[str, ...]:
        """Replaces the run's tags; returns them as stored (sorted, no repeats)."""
        ...

    def close(self) -> None:
        """Releases connections; the store is unusable afterwards."""
        ...
