"""The one helper that owns transactions: begin, commit, rollback, retry, the
translation of database errors into domain errors, and the database's health.

A database that fails for a reason that is nobody's request's fault (PostgreSQL
down or refusing connections, a full disk, a read-only or deleted SQLite file, an
I/O error) is an *outage*: the call fails with ``DatabaseUnavailable`` (gRPC
UNAVAILABLE, which clients retry and spool), the pooled connections that saw it
are discarded, and the database is reported unhealthy until a background probe
(or the next successful write) finds it usable again. Errors that are bugs (bad
SQL, a constraint we should have checked first) are left as they are.
"""

from __future__ import annotations

import gc
import logging
import random
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Connection, Engine, event
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from trainboard.errors import Unavailable
from trainboard_server.storage.engine import WRITE_OPTION, SqliteFile, sqlite_file
from trainboard_server.storage.migrate import head_revision

T = TypeVar("T")

log = logging.getLogger("trainboard.server")

# PostgreSQL's serialization_failure and deadlock_detected: the transaction may simply
# be run again. Writers lock in one order, so these are not expected; retrying is cheap.
_RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})
MAX_ATTEMPTS = 5

# PostgreSQL outages: SQLSTATE classes (connection exception, insufficient resources,
# operator intervention, system error) and single states (a read-only standby, a lock
# that was not granted, corrupted data or index).
_POSTGRES_OUTAGE_CLASSES = frozenset({"08", "53", "57", "58"})
_POSTGRES_OUTAGE_STATES = frozenset({"25006", "55P03", "XX001", "XX002"})

# SQLite outages, by primary result code: the file cannot be written or read as a
# database right now. SQLITE_ERROR (bad SQL, no such table) and the constraint codes
# are bugs; SQLITE_BUSY and SQLITE_LOCKED are contention (see _is_contention).
_SQLITE_OUTAGE_CODES = frozenset(
    {
        sqlite3.SQLITE_PERM,
        sqlite3.SQLITE_NOMEM,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_CORRUPT,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_PROTOCOL,
        sqlite3.SQLITE_NOTADB,
    }
)
_SQLITE_CONTENTION_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})

#: Seconds between two probes of an unhealthy database.
PROBE_INTERVAL_S = 0.5
# Seconds a probe waits for SQLite's write lock.
_PROBE_BUSY_TIMEOUT_S = 1.0

HealthListener = Callable[[bool], None]


class WriteConflict(Exception):
    """Raised inside a write when an optimistic guard failed; the write is retried."""


class DatabaseUnavailable(Unavailable):
    """The database itself failed (an outage, see the module docstring): the request
    may be sent again once it recovers."""


class ProbeFailed(Exception):
    """The probe found the database still unusable."""


class Health:
    """Whether the database is usable, as the last outcome says; tells listeners
    of every change (``listener(True)`` when usable again)."""

    def __init__(self) -> None:
        self._healthy = True
        self._since = time.monotonic()
        self._listeners: list[HealthListener] = []
        self._lock = threading.Lock()

    @property
    def healthy(self) -> bool:
        return self._healthy

    def add_listener(self, listener: HealthListener) -> None:
        """Calls ``listener(healthy)`` now and at every change."""
        with self._lock:
            self._listeners.append(listener)
            listener(self._healthy)

    def change(self, healthy: bool) -> float | None:
        """Records the outcome; the seconds the previous state lasted when this
        changed it, None when it was already so."""
        with self._lock:
            if self._healthy == healthy:
                return None
            self._healthy = healthy
            now = time.monotonic()
            lasted, self._since = now - self._since, now
            for listener in self._listeners:
                listener(healthy)
            return lasted


class Database:
    """Runs units of work in transactions on one engine, and watches its health.

    ``read`` and ``write`` call ``work(connection)`` inside a transaction that commits
    when it returns and rolls back when it raises. A write on SQLite begins with BEGIN
    IMMEDIATE. A write that hits a transient conflict is run again from the start, so
    ``work`` must not have effects outside the transaction.

    On SQLite, every call first checks that the database file is still the one the
    engine opened (and a write checks again after its commit): a deleted or replaced
    file fails the call with ``DatabaseUnavailable``, and every call after it, until
    the probe finds a Trainboard database of this version at the path (the old file
    moved back, or a copy restored there) and takes it. A new empty database is never
    created under a running server.
    """

    def __init__(self, engine: Engine, *, probe_interval: float = PROBE_INTERVAL_S) -> None:
        self.engine = engine
        self.closed = False
        self.health = Health()
        self._file = sqlite_file(engine)
        self._probe_interval = probe_interval
        self._stop = threading.Event()
        self._probe_lock = threading.Lock()
        self._probe_thread: threading.Thread | None = None
        self._file_lock = threading.Lock()
        if not event.contains(engine, "handle_error", _discard_connections_on_outage):
            event.listen(engine, "handle_error", _discard_connections_on_outage)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def read(self, work: Callable[[Connection], T]) -> T:
        self._check_open()
        self._check_file()
        try:
            with self.engine.connect() as connection:
                if self.dialect == "postgresql":
                    # One snapshot for the whole read (a count and its rows agree);
                    # SQLite read transactions are snapshots already.
                    connection = connection.execution_options(isolation_level="REPEATABLE READ")
                with connection.begin():
                    return work(connection)
        except DBAPIError as exc:
            raise self._failed(_translate(exc)) from exc
        except PoolTimeout as exc:
            raise Unavailable(f"every database connection stayed busy: {exc}") from exc

    def write(self, work: Callable[[Connection], T]) -> T:
        self._check_open()
        self._check_file()
        result = self._write_with_retries(work)
        self._check_file(after_write=True)
        if not self.health.healthy:
            self._recovered()
        return result

    def close(self) -> None:
        self.closed = True
        self._stop.set()
        self.engine.dispose()

    def _write_with_retries(self, work: Callable[[Connection], T]) -> T:
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
                    raise self._failed(_translate(exc)) from exc
            except PoolTimeout as exc:
                raise Unavailable(f"every database connection stayed busy: {exc}") from exc
            # Jittered backoff so that two colliding writers do not collide again.
            time.sleep(random.uniform(0, 0.005 * 2**attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    def _check_open(self) -> None:
        if self.closed:
            raise RuntimeError("the store is closed")

    # ------------------------------------------------------------ the file

    def _check_file(self, after_write: bool = False) -> None:
        """``DatabaseUnavailable`` unless the SQLite file is the one the engine opened."""
        file = self._file
        if file is None:
            return
        problem = file.problem()
        if problem is None:
            return
        if after_write:
            problem += "; the write just committed may be lost with it"
        self._file_lost(file, problem)
        raise DatabaseUnavailable(problem)

    def _file_lost(self, file: SqliteFile, problem: str) -> None:
        with self._file_lock:
            first = file.lost is None
            file.lost = problem
        if first:
            log.error(
                "%s: refusing every call (UNAVAILABLE, health NOT_SERVING) until the file "
                "is back; no new database is created in its place (restore the file, or "
                "restart the server to start an empty database)",
                problem,
            )
            self.engine.dispose()  # the connections still open hold the old file
        self._unhealthy(problem)

    # ------------------------------------------------------------ health

    def _failed(self, error: Exception) -> Exception:
        """Records an outage (``DatabaseUnavailable``); returns ``error`` to raise."""
        if isinstance(error, DatabaseUnavailable):
            self._unhealthy(str(error))
        return error

    def _unhealthy(self, reason: str) -> None:
        lasted = self.health.change(False)
        if lasted is None:
            return
        if self._file is None or self._file.lost is None:
            log.error("%s; answering UNAVAILABLE and NOT_SERVING until it recovers", reason)
        self._start_probe()

    def _recovered(self) -> None:
        lasted = self.health.change(True)
        if lasted is None:
            return
        # Connections opened during the outage may be unusable (SQLite opens a file
        # it cannot write read-only, for good): start from a fresh pool.
        self.engine.dispose()
        log.warning("the database is usable again after %.1f s", lasted)

    def _start_probe(self) -> None:
        with self._probe_lock:
            if self._probe_thread is None and not self.closed:
                self._probe_thread = threading.Thread(
                    target=self._probe_until_healthy, name="trainboard-db-probe", daemon=True
                )
                self._probe_thread.start()

    def _probe_until_healthy(self) -> None:
        while not self._stop.wait(self._probe_interval):
            with self._probe_lock:
                if self.health.healthy:
                    self._probe_thread = None
                    return
            try:
                self._probe()
            except Exception as exc:  # still down, whatever the reason
                log.debug("the database is still unavailable: %s", exc)
                continue
            self._recovered()

    def _probe(self) -> None:
        """Returns when the database takes writes again; raises otherwise."""
        if self._file is None:
            with self.engine.connect() as connection:
                connection.exec_driver_sql("SELECT 1")
            return
        problem = self._file.problem()
        if problem is not None:
            _adopt_file(self._file, problem)
        _probe_sqlite_write(self._file)


def _adopt_file(file: SqliteFile, problem: str) -> None:
    """Takes the file now at the path (the old one moved back, or another) as the
    database when it is a Trainboard database at the current schema and nothing
    holds the old file open any more; ``ProbeFailed`` if not."""
    identity = file.current_identity()
    if identity is None:
        raise ProbeFailed(problem)
    if file.open_connections:
        gc.collect()  # connections of a discarded pool close when it is collected
        if file.open_connections:
            raise ProbeFailed(f"{problem}; connections to the old file are still open")
    if not _is_trainboard_database(file):
        raise ProbeFailed(f"{problem}; the file at the path is not a Trainboard database")
    file.adopt(identity)
    log.warning("took the database file now at %s as the database", file.path)


def _is_trainboard_database(file: SqliteFile) -> bool:
    try:
        connection = sqlite3.connect(file.uri("ro"), uri=True, timeout=_PROBE_BUSY_TIMEOUT_S)
        try:
            rows = connection.execute("SELECT version_num FROM alembic_version").fetchall()
        finally:
            connection.close()
    except sqlite3.Error:
        return False
    return [row[0] for row in rows] == [head_revision()]


def _probe_sqlite_write(file: SqliteFile) -> None:
    """Commits a write that changes nothing (the user_version, rewritten as it is)
    on a fresh connection: fails while the file is read-only, the disk is full or
    the file cannot be opened. Pooled connections would not tell: one opened before
    the fault may still write, one opened during it stays read-only."""
    connection = sqlite3.connect(
        file.uri("rw"), uri=True, timeout=_PROBE_BUSY_TIMEOUT_S, isolation_level=None
    )
    try:
        connection.execute("BEGIN IMMEDIATE")
        version = int(connection.execute("PRAGMA user_version").fetchone()[0])
        connection.execute(f"PRAGMA user_version = {version}")
        connection.execute("COMMIT")
    finally:
        connection.close()


# ---------------------------------------------------------------- classifying errors


def _discard_connections_on_outage(context: ExceptionContext) -> None:
    """Engine ``handle_error`` hook: a SQLite outage counts as a disconnect, so that
    SQLAlchemy closes the connection and recycles the rest of the pool (a connection
    SQLite opened read-only stays read-only). PostgreSQL's own disconnect detection
    and the pool's pre-ping already cover its connections."""
    original = context.original_exception
    if isinstance(original, sqlite3.Error) and _is_sqlite_outage(original):
        context.is_disconnect = True


def _is_retryable(exc: DBAPIError) -> bool:
    return getattr(exc.orig, "sqlstate", None) in _RETRYABLE_SQLSTATES


def _sqlite_code(error: sqlite3.Error) -> int | None:
    code = getattr(error, "sqlite_errorcode", None)
    return None if code is None else int(code) & 0xFF  # the primary code


def _is_sqlite_outage(error: sqlite3.Error) -> bool:
    return _sqlite_code(error) in _SQLITE_OUTAGE_CODES


def _is_outage(exc: DBAPIError) -> bool:
    original = exc.orig
    if isinstance(original, sqlite3.Error):
        return _is_sqlite_outage(original)
    sqlstate = getattr(original, "sqlstate", None)
    if sqlstate is None:
        # No SQLSTATE: the driver itself failed to connect or lost the connection.
        return isinstance(exc, OperationalError)
    sqlstate = str(sqlstate)
    return sqlstate[:2] in _POSTGRES_OUTAGE_CLASSES or sqlstate in _POSTGRES_OUTAGE_STATES


def _is_contention(exc: DBAPIError) -> bool:
    original = exc.orig
    if not isinstance(original, sqlite3.Error):
        return False
    if _sqlite_code(original) in _SQLITE_CONTENTION_CODES:
        return True
    return isinstance(original, sqlite3.OperationalError) and (
        "locked" in str(original) or "busy" in str(original)
    )


def _translate(exc: DBAPIError) -> Exception:
    """The domain error for a database error, or the error itself when it is a bug
    (a constraint we should have checked first, bad SQL) rather than a condition."""
    if _is_contention(exc):
        return Unavailable(f"the database stayed busy: {exc.orig}")
    if _is_outage(exc):
        return DatabaseUnavailable(f"the database is unavailable: {exc.orig}")
    if exc.connection_invalidated:
        return DatabaseUnavailable(f"lost the connection to the database: {exc.orig}")
    if _is_retryable(exc):
        return Unavailable(f"the database kept refusing the transaction: {exc.orig}")
    return exc
