"""Series rows: finding, creating and locking a run's (tag, kind) series."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, bindparam, select, update

from trainboard.types import Tag
from trainboard_server.storage.dialect import in_groups, insert_ignoring_conflicts
from trainboard_server.storage.models import series


@dataclass(frozen=True, slots=True)
class SeriesState:
    """A locked series row as a write sees it."""

    id: int
    tag: str
    last_step: int
    tail_seq: int
    tail_count: int


@dataclass(frozen=True, slots=True)
class SeriesUpdate:
    id: int
    last_step: int
    tail_seq: int
    tail_count: int


def lock_series(
    connection: Connection, run_id: int, kind: str, tags: Sequence[str]
) -> dict[str, SeriesState]:
    """The run's series of ``kind`` for ``tags``, created where missing and locked
    (FOR UPDATE on PostgreSQL; SQLite writers already hold the database lock) until
    the transaction ends. ``tags`` must be distinct."""
    found = _select_locked(connection, run_id, kind, tags)
    missing = [tag for tag in tags if tag not in found]
    if missing:
        statement = insert_ignoring_conflicts(
            connection.dialect.name, series, ("run_id", "tag", "kind")
        )
        connection.execute(
            statement,
            [
                {
                    "run_id": run_id,
                    "tag": tag,
                    "kind": kind,
                    "last_step": -1,
                    "tail_seq": 0,
                    "tail_count": 0,
                }
                for tag in missing
            ],
        )
        found.update(_select_locked(connection, run_id, kind, missing))
    return found


# Built once: the write path runs these for every batch.
_UPDATE_SERIES = (
    update(series)
    .where(series.c.id == bindparam("b_id"))
    .values(
        last_step=bindparam("b_last_step"),
        tail_seq=bindparam("b_tail_seq"),
        tail_count=bindparam("b_tail_count"),
    )
)
_SELECT_LOCKED = (
    select(series.c.id, series.c.tag, series.c.last_step, series.c.tail_seq, series.c.tail_count)
    .where(
        series.c.run_id == bindparam("b_run_id"),
        series.c.kind == bindparam("b_kind"),
        series.c.tag.in_(bindparam("b_tags", expanding=True)),
    )
    .order_by(series.c.id)  # one lock order for every writer
    .with_for_update()
)


def update_series(connection: Connection, updates: Sequence[SeriesUpdate]) -> None:
    if not updates:
        return
    connection.execute(
        _UPDATE_SERIES,
        [
            {
                "b_id": u.id,
                "b_last_step": u.last_step,
                "b_tail_seq": u.tail_seq,
                "b_tail_count": u.tail_count,
            }
            for u in updates
        ],
    )


def find_series_id(connection: Connection, run_id: int, tag: str, kind: str) -> int | None:
    return connection.execute(
        select(series.c.id).where(
            series.c.run_id == run_id, series.c.tag == tag, series.c.kind == kind
        )
    ).scalar_one_or_none()


def run_tags(connection: Connection, run_id: int) -> list[Tag]:
    """The run's series, sorted by (kind, name)."""
    rows = connection.execute(
        select(series.c.tag, series.c.kind, series.c.last_step).where(series.c.run_id == run_id)
    )
    tags = [Tag(name=row.tag, kind=row.kind, last_step=row.last_step) for row in rows]
    # Sorted here, not by the database, so that collations cannot reorder names.
    tags.sort(key=lambda t: (t.kind, t.name))
    return tags


def _select_locked(
    connection: Connection, run_id: int, kind: str, tags: Sequence[str]
) -> dict[str, SeriesState]:
    found: dict[str, SeriesState] = {}
    for group in in_groups(tags):
        parameters = {"b_run_id": run_id, "b_kind": kind, "b_tags": list(group)}
        for id_, tag, last_step, tail_seq, tail_count in connection.execute(
            _SELECT_LOCKED, parameters
        ):
            found[tag] = SeriesState(id_, tag, last_step, tail_seq, tail_count)
    return found
