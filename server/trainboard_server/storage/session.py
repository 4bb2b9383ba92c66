"""The one helper that owns transactions: begin, commit, rollback, retry and the
translation of database errors into domain errors."""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from trainboard.errors import Unavailable
from trainboard_server.storage.engine import WRITE_OPTION

T = TypeVar("T")

# PostgreSQL's serialization_failure and deadlock_detected: the transaction may simply
# be run again. Writers lock in one order, so these are not expected; retrying is cheap.
_RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})
MAX_ATTEMPTS = 5


class WriteConflict(Exception):
    """Raised inside a write when an optimistic guard failed; the write is retried."""


class Database:
    """Runs units of work in transactions on one engine.

    ``read`` and ``write`` call ``work(connection)`` inside a transaction that commits
    when it returns and rolls back when it raises. A write on SQLite begins with BEGIN
    IMMEDIATE. A write that hits a transient conflict is run again from the start, so
    ``work`` must not have effects outside the transaction.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.closed = False

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def read(self, work: Callable[[Connection], T]) -> T:
        self._check_open()
        try:
            with self.engine.connect() as connection:
                if self.dialect == "postgresql":
                    # One snapshot for the whole read (a count and its rows agree);
                    # SQLite read transactions are snapshots already.
                    connection = connection.execution_options(isolation_level="REPEATABLE READ")
                with connection.begin():
                    return work(connection)
        except DBAPIError as exc:
            raise _translate(exc) from exc

    def write(self, work: Callable[[Connection], T]) -> T:
        self._check_open()
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                with self.engine.connect() as connection:
                    connection = connection.execution_options(**{WRITE_OPTION: True})
                    with connection.begin():
                        return work(connection)
            except WriteConflict:
                if attempt == MAX_ATTEMPTS:
                    raise Unavailable("too many concurrent writers; try again") from None
            except DBAPIError as exc:
                if attempt == MAX_ATTEMPTS or not _is_retryable(exc):
                    raise _translate(exc) from exc
            # Jittered backoff so that two colliding writers do not collide again.
            time.sleep(random.uniform(0, 0.005 * 2**attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        self.closed = True
        self.engine.dispose()

    def _check_open(self) -> None:
        if self.closed:
            raise RuntimeError("the store is closed")


def _is_retryable(exc: DBAPIError) -> bool:
    return getattr(exc.orig, "sqlstate", None) in _RETRYABLE_SQLSTATES


def _translate(exc: DBAPIError) -> Exception:
    """The domain error for a database error, or the error itself when it is a bug
    (a constraint we should have checked first, bad SQL) rather than a condition."""
    if exc.connection_invalidated:
        return Unavailable(f"lost the connection to the database: {exc.orig}")
    if isinstance(exc.orig, sqlite3.OperationalError) and (
        "locked" in str(exc.orig) or "busy" in str(exc.orig)
    ):
        return Unavailable(f"the database stayed busy: {exc.orig}")
    if _is_retryable(exc):
        return Unavailable(f"the database kept refusing the transaction: {exc.orig}")
    return exc
