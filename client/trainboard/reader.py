"""The read side of the SDK: ``Reader``."""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType

from trainboard import errors
from trainboard.transport import RemoteStore, resolve_server, resolve_tls_root_cert, resolve_token
from trainboard.types import GraphNode, HistogramSeries, Run, ScalarSeries, Tag
from trainboard.validation import check_name, check_run_tags, check_step


class Reader:
    """Reads experiments, runs, tags, series and graphs back from a server.

    ``server`` is ``host:port`` (default ``TRAINBOARD_SERVER`` or
    ``127.0.0.1:6009``); ``token`` and ``tls_root_cert`` as for ``Client``.
    Unknown run ids raise ``trainboard.errors.NotFound``; so does reading a tag
    the run does not have.

    It also does a team's housekeeping (``delete_run``, ``delete_experiment``,
    ``rename_run``, ``set_run_tags``); on a server that requires tokens these
    need a write token.
    """

    def __init__(
        self,
        server: str | None = None,
        *,
        timeout: float = 60.0,
        token: str | None = None,
        tls_root_cert: str | None = None,
    ) -> None:
        self.server = resolve_server(server)
        self._store = RemoteStore(
            self.server,
            timeout=timeout,
            token=resolve_token(token),
            tls_root_cert=resolve_tls_root_cert(tls_root_cert),
        )

    def experiments(self) -> list[str]:
        """Experiment names, sorted."""
        return self._store.list_experiments()

    def runs(self, experiment: str) -> list[Run]:
        """The experiment's runs, oldest first, with params, status and times."""
        return self._store.list_runs(check_name("experiment", experiment))

    def run(self, experiment: str, name: str) -> Run:
        """The run of that name in the experiment."""
        for run in self.runs(experiment):
            if run.name == name:
                return run
        raise errors.NotFound(f"experiment {experiment!r} has no run {name!r}")

    def tags(self, run_id: int, kind: str | None = None) -> list[Tag]:
        """The run's tags (``.name``, ``.kind``, ``.last_step``), optionally of one kind."""
        tags = self._store.list_tags(run_id)
        return [t for t in tags if kind is None or t.kind == kind]

    def scalars(
        self,
        run_id: int,
        tag: str,
        max_points: int | None = None,
        *,
        min_step: int | None = None,
        max_step: int | None = None,
    ) -> ScalarSeries:
        """One scalar series, sorted by step; at most ``max_points`` points
        (downsampled on the server, spikes and non-finite values kept) and
        ``.total`` the number of distinct steps stored."""
        found = self.scalars_many([run_id], [tag], max_points, min_step=min_step, max_step=max_step)
        if not found:
            raise errors.NotFound(f"run {run_id} has no scalar tag {tag!r}")
        return found[0]

    def scalars_many(
        self,
        run_ids: Sequence[int],
        tags: Sequence[str],
        max_points: int | None = None,
        *,
        min_step: int | None = None,
        max_step: int | None = None,
    ) -> list[ScalarSeries]:
        """Every existing (run, tag) series of the given runs and tags, in one round trip."""
        if max_points is not None and max_points < 1:
            raise ValueError(f"max_points must be >= 1 or None, got {max_points}")
        low = None if min_step is None else check_step(min_step, "min_step")
        high = None if max_step is None else check_step(max_step, "max_step")
        found = self._store.read_scalars(
            run_ids=list(run_ids),
            tags=[check_name("tag", t) for t in tags],
            max_points=max_points,
            min_step=low,
            max_step=high,
        )
        return list(found.values())

    def histograms(
        self,
        run_id: int,
        tag: str,
        max_steps: int | None = None,
        *,
        min_step: int | None = None,
    ) -> HistogramSeries:
        """The histograms of one tag, sorted by step (indexable: ``hs[-1]``); at most
        ``max_steps`` of them, sampled evenly with the last one always kept."""
        if max_steps is not None and max_steps < 1:
            raise ValueError(f"max_steps must be >= 1 or None, got {max_steps}")
        found = self.histograms_many([run_id], [tag], max_steps, min_step=min_step)
        if not found:
            raise errors.NotFound(f"run {run_id} has no histogram tag {tag!r}")
        return found[0]

    def histograms_many(
        self,
        run_ids: Sequence[int],
        tags: Sequence[str],
        max_steps: int | None = None,
        *,
        min_step: int | None = None,
    ) -> list[HistogramSeries]:
        """Every existing (run, tag) histogram series of the given runs and tags,
        in one round trip."""
        if max_steps is not None and max_steps < 1:
            raise ValueError(f"max_steps must be >= 1 or None, got {max_steps}")
        found = self._store.read_histograms(
            run_ids=list(run_ids),
            tags=[check_name("tag", t) for t in tags],
            max_steps=max_steps,
            min_step=None if min_step is None else check_step(min_step, "min_step"),
        )
        return list(found.values())

    def graph(self, run_id: int) -> list[GraphNode] | None:
        """The run's graph (the node list of docs/design.md), or None."""
        return self._store.get_graph(run_id)

    # ------------------------------------------------------------ housekeeping

    def delete_run(self, run_id: int) -> None:
        """Deletes the run with all its series, histograms, graph and tags."""
        self._store.delete_run(run_id)

    def delete_experiment(self, experiment: str) -> int:
        """Deletes every run of the experiment; returns how many there were."""
        return self._store.delete_experiment(check_name("experiment", experiment))

    def rename_run(self, run_id: int, new_name: str) -> None:
        """Renames the run; ``InvalidArgument`` if its experiment has a run of that name."""
        self._store.rename_run(run_id, check_name("new_name", new_name))

    def set_run_tags(self, run_id: int, tags: Sequence[str]) -> tuple[str, ...]:
        """Replaces the run's tags (at most 64); returns them sorted, without repeats."""
        return self._store.set_run_tags(run_id, check_run_tags(tags))

    def healthy(self, timeout: float = 5.0) -> bool:
        """True when the server answers its health check."""
        return self._store.health(timeout)

    def close(self) -> None:
        self._store.close()

    def __enter__(self) -> Reader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
