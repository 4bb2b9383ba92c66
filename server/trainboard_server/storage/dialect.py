"""The few statements whose spelling differs between SQLite and PostgreSQL."""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from typing import TypeVar

from sqlalchemy import Insert, Table
from sqlalchemy.dialects import postgresql, sqlite

T = TypeVar("T")

# Bound parameters per IN list: far below SQLite's and PostgreSQL's limits.
IN_LIST_SIZE = 500


# Cached: statements are immutable, and building one costs more than running the
# small ones on the write path. ``dialect`` is ``connection.dialect.name``.
@functools.cache
def insert_ignoring_conflicts(dialect: str, table: Table, keys: tuple[str, ...]) -> Insert:
    """``INSERT ... ON CONFLICT (keys) DO NOTHING``."""
    return _insert(dialect, table).on_conflict_do_nothing(index_elements=list(keys))


@functools.cache
def upsert(
    dialect: str, table: Table, keys: tuple[str, ...], where_greater: str | None = None
) -> Insert:
    """``INSERT ... ON CONFLICT (keys) DO UPDATE`` setting every non-key column to the
    inserted value; with ``where_greater``, only where the inserted value of that
    column is greater than the stored one."""
    statement = _insert(dialect, table)
    updates = {c.name: statement.excluded[c.name] for c in table.columns if c.name not in keys}
    where = None
    if where_greater is not None:
        where = statement.excluded[where_greater] > table.c[where_greater]
    result: Insert = statement.on_conflict_do_update(
        index_elements=list(keys), set_=updates, where=where
    )
    return result


def _insert(dialect: str, table: Table) -> postgresql.Insert | sqlite.Insert:
    if dialect == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def in_groups(items: Sequence[T], size: int = IN_LIST_SIZE) -> Iterator[Sequence[T]]:
    """``items`` in slices of at most ``size``, for IN lists."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
