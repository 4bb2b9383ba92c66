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

Errors
------
``NotFound`` for an unknown run id (or experiment, for ``delete_experiment``);
``InvalidArgument`` for a bad field (the message names it) and for a rename to a
taken name. Reading a tag a run does not have returns ``None``.

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
        run_id: int,
        tag: str,
        max_points: int | None = None,
        min_step: int | None = None,
        max_step: int | None = None,
        limit: int | None = None,
    ) -> ScalarSeries | None:
        """The series sorted by step, last writes resolved, downsampled to at
        most ``max_points`` points as docs/design.md says; ``None`` if the run has no
        such scalar tag. Without ``max_points``, ``limit`` pages the read: at
        most that many points, the first ones of the range, with ``next_step``
        set to where the rest starts (``total`` then counts the page)."""
        ...

    def read_histograms(
        self,
        run_id: int,
        tag: str,
        max_steps: int | None = None,
        min_step: int | None = None,
    ) -> HistogramSeries | None:
        """Histograms sorted by step, at most ``max_steps`` sampled evenly with
        the last always kept; ``None`` if the run has no such histogram tag."""
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
