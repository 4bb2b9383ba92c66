"""Experiments and runs: starting, resuming, finishing and listing them; and the
housekeeping a team needs: renaming, tagging and deleting them."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Double, bindparam, case, delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import ColumnElement

from trainboard.errors import InvalidArgument, NotFound
from trainboard.types import Run, StartedRun
from trainboard.validation import MAX_NAME_LENGTH, params_to_json
from trainboard_server.storage.dialect import in_groups, insert_ignoring_conflicts
from trainboard_server.storage.models import experiments, run_tags, runs
from trainboard_server.storage.series import run_tags as series_last_steps
from trainboard_server.storage.session import WriteConflict

_RUN_COLUMNS = (
    runs.c.id,
    runs.c.name,
    experiments.c.name.label("experiment"),
    runs.c.params,
    runs.c.status,
    runs.c.started_at,
    runs.c.finished_at,
    runs.c.updated_at,
)


def start_run(
    connection: Connection,
    experiment: str,
    name: str,
    params: Mapping[str, Any] | None,
    wall_time: float,
    *,
    resume: bool = False,
    client_id: str | None = None,
) -> StartedRun:
    """Starts a run of ``experiment`` named ``name``.

    A used name makes a new run whose name gets the first free suffix (``name (2)``,
    ``name (3)``, ...): a rerun never touches the old run. With ``resume`` the newest
    run of that name (suffixed or not) continues instead: status back to running,
    ``params`` merged in. A run this ``client_id`` created before is continued
    whatever ``resume`` says: a client's retried StartRun, or a later sync of its
    spool, finds the run it started."""
    experiment_id = _experiment_id(connection, experiment, wall_time)
    if client_id:
        own = _locked_run(
            connection, runs.c.experiment_id == experiment_id, runs.c.client_id == client_id
        )
        if own is not None:  # this client started it: not a resume, the same start
            return _continue_run(connection, experiment, own, params, wall_time, resumed=False)
    if resume:
        newest = _newest_of_name(connection, experiment_id, name)
        if newest is not None:
            existing = _locked_run(connection, runs.c.id == newest)
            assert existing is not None
            return _continue_run(connection, experiment, existing, params, wall_time)
    return _create_run(
        connection, experiment, experiment_id, name, params, wall_time, client_id, exact=resume
    )


def _create_run(
    connection: Connection,
    experiment: str,
    experiment_id: int,
    name: str,
    params: Mapping[str, Any] | None,
    wall_time: float,
    client_id: str | None,
    *,
    exact: bool,
) -> StartedRun:
    """A new run named ``name``, or with a suffix when that is taken; with
    ``exact`` (resuming, and no run of the name was there) only ``name``: when
    another writer created it meanwhile, the transaction is run again and then
    continues that run (writers that resume together share one run)."""
    text = params_to_json(params or {})
    insert = insert_ignoring_conflicts(connection.dialect.name, runs, ("experiment_id", "name"))
    free = name if exact else _free_name(connection, experiment_id, name)
    statement = insert.values(
        experiment_id=experiment_id,
        name=free,
        params=text,
        status="running",
        started_at=wall_time,
        finished_at=None,
        updated_at=wall_time,
        client_id=client_id or None,
    ).returning(runs.c.id)
    run_id = connection.execute(statement).scalar_one_or_none()
    if run_id is None:
        # Another writer took that name between our look and our insert: start again.
        raise WriteConflict(f"run name {free!r} was taken meanwhile")
    run = _running(run_id, free, experiment, json.loads(text), wall_time, wall_time)
    return StartedRun(run=run, resumed=False)


def _running(
    run_id: int,
    name: str,
    experiment: str,
    params: dict[str, Any],
    started_at: float,
    updated_at: float,
    tags: tuple[str, ...] = (),
) -> Run:
    """A run as it is once started (or continued): running, not finished."""
    return Run(
        id=run_id,
        name=name,
        experiment=experiment,
        params=params,
        status="running",
        started_at=started_at,
        finished_at=None,
        updated_at=updated_at,
        tags=tags,
    )


def _continue_run(
    connection: Connection,
    experiment: str,
    existing: _StoredRun,
    params: Mapping[str, Any] | None,
    wall_time: float,
    *,
    resumed: bool = True,
) -> StartedRun:
    run_id, name, stored_params, started_at, updated_at = existing
    merged = json.loads(stored_params)
    if params is not None:
        merged.update(json.loads(params_to_json(params)))
    text = params_to_json(merged)
    updated_at = max(updated_at, wall_time)
    connection.execute(
        update(runs)
        .where(runs.c.id == run_id)
        .values(params=text, status="running", finished_at=None, updated_at=updated_at)
    )
    tags = _tags_of(connection, [run_id]).get(run_id, ())
    run = _running(run_id, name, experiment, merged, started_at, updated_at, tags)
    last_steps = tuple(series_last_steps(connection, run_id))
    return StartedRun(run=run, resumed=resumed, last_steps=last_steps)


def rerun_name(name: str, number: int) -> str:
    """``name (number)``, the base shortened so that the whole stays a valid name."""
    suffix = f" ({number})"
    return name[: MAX_NAME_LENGTH - len(suffix)] + suffix


def _names_like(connection: Connection, experiment_id: int, name: str) -> dict[str, int]:
    """The experiment's runs named ``name`` or ``name (k)``: name -> id."""
    # The base as the longest suffix shortens it; candidates are checked exactly below.
    stem = name[: MAX_NAME_LENGTH - len(f" ({_MAX_SUFFIX})")]
    rows = connection.execute(
        select(runs.c.name, runs.c.id).where(
            runs.c.experiment_id == experiment_id,
            or_(runs.c.name == name, runs.c.name.startswith(stem, autoescape=True)),
        )
    )
    return {row.name: row.id for row in rows}


def _suffix_number(candidate: str, name: str) -> int | None:
    """k when ``candidate`` is ``name (k)`` (its base possibly shortened), else None."""
    match = _SUFFIX.fullmatch(candidate)
    if match is None or rerun_name(name, int(match[2])) != candidate:
        return None
    return int(match[2])


_MAX_SUFFIX = 999_999_999
_SUFFIX = re.compile(r"(.*) \(([1-9][0-9]{0,8})\)", re.DOTALL)


def _free_name(connection: Connection, experiment_id: int, name: str) -> str:
    """``name`` when no run of the experiment has it, else ``name (k)`` with k one
    above the highest suffix in use (2 for the first rerun)."""
    taken = _names_like(connection, experiment_id, name)
    if name not in taken:
        return name
    numbers = [_suffix_number(candidate, name) for candidate in taken]
    highest = max((k for k in numbers if k is not None), default=1)
    return rerun_name(name, highest + 1)


def _newest_of_name(connection: Connection, experiment_id: int, name: str) -> int | None:
    """The id of the newest run named ``name`` or ``name (k)``."""
    ids = [
        run_id
        for candidate, run_id in _names_like(connection, experiment_id, name).items()
        if candidate == name or _suffix_number(candidate, name) is not None
    ]
    return max(ids, default=None)


# max(updated_at, :b_time) in SQL, so that a late or skewed clock never moves
# updated_at back.
_LATER_UPDATED_AT = case(
    (runs.c.updated_at < bindparam("b_time", type_=Double()), bindparam("b_time", type_=Double())),
    else_=runs.c.updated_at,
)
_FINISH_RUN = (
    update(runs)
    .where(runs.c.id == bindparam("b_id"))
    .values(
        status=bindparam("b_status"), finished_at=bindparam("b_time"), updated_at=_LATER_UPDATED_AT
    )
)
_TOUCH_RUN = update(runs).where(runs.c.id == bindparam("b_id")).values(updated_at=_LATER_UPDATED_AT)


def finish_run(connection: Connection, run_id: int, status: str, wall_time: float) -> None:
    parameters = {"b_id": run_id, "b_status": status, "b_time": wall_time}
    if connection.execute(_FINISH_RUN, parameters).rowcount != 1:
        raise NotFound(f"run {run_id} does not exist")


def touch_run(connection: Connection, run_id: int, wall_time: float | None) -> None:
    """Moves the run's ``updated_at`` up to ``wall_time`` and locks its row until the
    transaction ends, which serialises the writers of one run on PostgreSQL;
    ``NotFound`` for an unknown run."""
    moment = -math.inf if wall_time is None else wall_time
    if connection.execute(_TOUCH_RUN, {"b_id": run_id, "b_time": moment}).rowcount != 1:
        raise NotFound(f"run {run_id} does not exist")


def require_run(connection: Connection, run_id: int) -> None:
    if connection.execute(select(runs.c.id).where(runs.c.id == run_id)).first() is None:
        raise NotFound(f"run {run_id} does not exist")


def list_experiments(connection: Connection) -> list[str]:
    """The names of the experiments that have runs."""
    has_runs = select(runs.c.id).where(runs.c.experiment_id == experiments.c.id).exists()
    names = connection.execute(select(experiments.c.name).where(has_runs)).scalars().all()
    return sorted(names)  # sorted here: database collations disagree on order


def list_runs(connection: Connection, experiment: str) -> list[Run]:
    statement = (
        select(*_RUN_COLUMNS)
        .join_from(runs, experiments, runs.c.experiment_id == experiments.c.id)
        .where(experiments.c.name == experiment)
        .order_by(runs.c.id)
    )
    rows = connection.execute(statement).all()
    tags = _tags_of(connection, [row.id for row in rows])
    return [
        Run(
            id=row.id,
            name=row.name,
            experiment=row.experiment,
            params=json.loads(row.params),
            status=row.status,
            started_at=row.started_at,
            finished_at=row.finished_at,
            updated_at=row.updated_at,
            tags=tags.get(row.id, ()),
        )
        for row in rows
    ]


# ---------------------------------------------------------------- housekeeping


def delete_run(connection: Connection, run_id: int) -> None:
    """Deletes the run; its series (with their chunks and histograms), graph and
    tags go with it through ON DELETE CASCADE (SQLite enforces foreign keys on
    every connection: see ``storage.engine``)."""
    if connection.execute(delete(runs).where(runs.c.id == run_id)).rowcount != 1:
        raise NotFound(f"run {run_id} does not exist")


def delete_experiment(connection: Connection, experiment: str) -> int:
    """Deletes every run of the experiment and returns how many. The experiment's
    row stays (a trainer may be starting a run in it right now); without runs it is
    no longer listed."""
    experiment_id = connection.execute(
        select(experiments.c.id).where(experiments.c.name == experiment)
    ).scalar_one_or_none()
    deleted = 0
    if experiment_id is not None:
        deleted = connection.execute(
            delete(runs).where(runs.c.experiment_id == experiment_id)
        ).rowcount
    if not deleted:
        raise NotFound(f"experiment {experiment!r} does not exist")
    return int(deleted)


def rename_run(connection: Connection, run_id: int, new_name: str) -> None:
    """Renames the run; ``InvalidArgument`` when its experiment has another run of
    that name."""
    row = connection.execute(
        select(runs.c.experiment_id, runs.c.name)
        .where(runs.c.id == run_id)
        .with_for_update(key_share=True)
    ).first()
    if row is None:
        raise NotFound(f"run {run_id} does not exist")
    if row.name == new_name:
        return
    experiment = connection.execute(
        select(experiments.c.name).where(experiments.c.id == row.experiment_id)
    ).scalar_one()
    taken = InvalidArgument(f"run name {new_name!r} is taken in experiment {experiment!r}")
    other = connection.execute(
        select(runs.c.id).where(runs.c.experiment_id == row.experiment_id, runs.c.name == new_name)
    ).first()
    if other is not None:
        raise taken
    try:
        connection.execute(update(runs).where(runs.c.id == run_id).values(name=new_name))
    except IntegrityError as exc:  # a run of that name was created meanwhile
        raise taken from exc


def set_run_tags(connection: Connection, run_id: int, tags: Sequence[str]) -> None:
    """Replaces the run's tags with ``tags`` (distinct). The run's row is locked
    first, so two replacements of one run's tags never mix."""
    locked = connection.execute(
        select(runs.c.id).where(runs.c.id == run_id).with_for_update(key_share=True)
    ).first()
    if locked is None:
        raise NotFound(f"run {run_id} does not exist")
    connection.execute(delete(run_tags).where(run_tags.c.run_id == run_id))
    if tags:
        connection.execute(run_tags.insert(), [{"run_id": run_id, "tag": tag} for tag in tags])


def _tags_of(connection: Connection, run_ids: Sequence[int]) -> dict[int, tuple[str, ...]]:
    """Each run's tags, sorted (in Python: database collations disagree on order)."""
    found: dict[int, list[str]] = {}
    for group in in_groups(run_ids):
        statement = select(run_tags.c.run_id, run_tags.c.tag).where(run_tags.c.run_id.in_(group))
        for run_id, tag in connection.execute(statement):
            found.setdefault(run_id, []).append(tag)
    return {run_id: tuple(sorted(tags)) for run_id, tags in found.items()}


def _experiment_id(connection: Connection, name: str, wall_time: float) -> int:
    lookup = select(experiments.c.id).where(experiments.c.name == name)
    found = connection.execute(lookup).scalar_one_or_none()
    if found is not None:
        return int(found)
    connection.execute(
        insert_ignoring_conflicts(connection.dialect.name, experiments, ("name",)).values(
            name=name, created_at=wall_time
        )
    )
    return int(connection.execute(lookup).scalar_one())


_StoredRun = tuple[int, str, str, float, float]  # id, name, params, started_at, updated_at


def _locked_run(connection: Connection, *where: ColumnElement[bool]) -> _StoredRun | None:
    row = connection.execute(
        select(runs.c.id, runs.c.name, runs.c.params, runs.c.started_at, runs.c.updated_at)
        .where(*where)
        .order_by(runs.c.id.desc())
        .limit(1)
        .with_for_update(key_share=True)  # FOR NO KEY UPDATE: inserts of series still go
    ).first()
    if row is None:
        return None
    return (row.id, row.name, row.params, row.started_at, row.updated_at)
