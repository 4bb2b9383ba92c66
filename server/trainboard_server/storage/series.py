"""Series rows: finding, creating and locking a run's (tag, kind) series."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, and_, bindparam, func, or_, select, update

from trainboard.errors import InvalidArgument, ResourceExhausted
from trainboard.types import Tag
from trainboard.validation import check_tags_per_run
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
        # Only a batch that adds tags pays for the count (an index range scan).
        held = count_series(connection, run_id)
        check_tags_per_run(held + len(missing), f"run {run_id}", ResourceExhausted)
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


def count_series(connection: Connection, run_id: int) -> int:
    """How many series (tags of either kind) the run holds."""
    return int(
        connection.execute(
            select(func.count()).select_from(series).where(series.c.run_id == run_id)
        ).scalar_one()
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


def find_many(
    connection: Connection, run_ids: Sequence[int], tags: Sequence[str], kind: str
) -> dict[tuple[int, str], int]:
    """The ids of the existing series of ``kind`` among ``run_ids`` x ``tags``, by
    (run id, tag)."""
    found: dict[tuple[int, str], int] = {}
    for run_group in in_groups(run_ids):
        for tag_group in in_groups(tags):
            rows = connection.execute(
                select(series.c.run_id, series.c.tag, series.c.id).where(
                    series.c.run_id.in_(list(run_group)),
                    series.c.tag.in_(list(tag_group)),
                    series.c.kind == kind,
                )
            )
            found.update(((run_id, tag), id_) for run_id, tag, id_ in rows)
    return found


#: Where a ListTags page stops: the (tag, kind) of its last series.
PageKey = tuple[str, str]
# A token holds a tag (at most 256 characters, 4 bytes each in UTF-8) and a kind.
_MAX_TOKEN_LENGTH = 8192


def run_tags_page(
    connection: Connection, run_id: int, after: PageKey | None, limit: int, max_bytes: int
) -> tuple[list[Tag], PageKey | None]:
    """A page of the run's series: at most ``limit`` of them and about ``max_bytes``
    of names, those after ``after`` in the database's (tag, kind) order (the unique
    index's order, so each page is one index range scan). Returns the page sorted by
    (kind, name) and the key to continue from, or None after the last page."""
    c = series.c
    statement = select(c.tag, c.kind, c.last_step).where(c.run_id == run_id)
    if after is not None:
        tag, kind = after
        statement = statement.where(or_(c.tag > tag, and_(c.tag == tag, c.kind > kind)))
    statement = statement.order_by(c.tag, c.kind).limit(limit + 1)
    tags: list[Tag] = []
    size = 0
    more = False
    for row in connection.execute(statement):
        if len(tags) == limit or (tags and size >= max_bytes):
            more = True
            break
        tags.append(Tag(name=row.tag, kind=row.kind, last_step=row.last_step))
        size += len(row.tag.encode()) + 32
    last = (tags[-1].name, tags[-1].kind) if more else None
    tags.sort(key=lambda t: (t.kind, t.name))
    return tags, last


def encode_page_token(key: PageKey) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key), ensure_ascii=False).encode()).decode(
        "ascii"
    )


def decode_page_token(token: str) -> PageKey:
    """The key a ``page_token`` carries; ``InvalidArgument`` for one this server
    did not give."""
    if len(token) > _MAX_TOKEN_LENGTH:
        raise InvalidArgument("page_token is not one this server gave (pass the last answer's)")
    try:
        key = json.loads(base64.urlsafe_b64decode(token.encode("ascii")))
    except (ValueError, UnicodeError, binascii.Error, RecursionError):
        key = None
    if not (isinstance(key, list) and len(key) == 2 and all(isinstance(part, str) for part in key)):
        raise InvalidArgument("page_token is not one this server gave (pass the last answer's)")
    return key[0], key[1]


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
