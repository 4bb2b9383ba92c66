"""Building an engine from a database URL: SQLite or PostgreSQL (psycopg 3)."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import weakref
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, Connection, ExecutionContext, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import ConnectionPoolEntry

from trainboard.errors import InvalidArgument

# Execution option that makes SQLite open the transaction with BEGIN IMMEDIATE.
WRITE_OPTION = "trainboard_write"
# Execution option asking psycopg for binary results: packed chunks then arrive as
# they are stored instead of as hex text twice their size (about 3x faster to read).
BINARY_RESULTS_OPTION = "trainboard_binary_results"

# Seconds a SQLite writer waits for another one's lock before giving up.
SQLITE_BUSY_TIMEOUT_S = 60.0
# Let SQLite map the file: a cold read of a long series then costs no read() per page.
SQLITE_MMAP_BYTES = 1 << 30

# The gRPC server runs up to 32 handler threads; beyond the pool they wait their turn.
POOL_SIZE = 8
MAX_OVERFLOW = 24

# Seconds a PostgreSQL connection attempt may take (unless the URL says otherwise):
# a host that does not answer then fails a request instead of hanging it.
POSTGRES_CONNECT_TIMEOUT_S = 10

# Where a pooled SQLite connection keeps the (st_dev, st_ino) of the file it opened.
_FILE_IDENTITY_KEY = "trainboard_file_identity"

FileIdentity = tuple[int, int]


def normalize_url(url: str) -> URL:
    """The SQLAlchemy URL for ``url``: ``sqlite:///path``, ``postgresql://...`` (made
    ``postgresql+psycopg://``) or ``postgresql+psycopg://...``; ``InvalidArgument``
    naming ``db`` for anything else."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise InvalidArgument(f"db {url!r} is not a database URL: {exc}") from exc
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg"):
        return parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername in ("sqlite", "sqlite+pysqlite"):
        database = parsed.database or ""
        if database in ("", ":memory:") or database.startswith("file:"):
            # Every pooled connection would see its own empty database.
            raise InvalidArgument("db must name a SQLite file (sqlite:///path/to/file.db)")
        return parsed.set(drivername="sqlite+pysqlite")
    raise InvalidArgument(
        f"db must be a sqlite:/// or postgresql:// URL, got {parsed.drivername}://"
    )


def make_engine(url: str) -> Engine:
    """An engine for ``url`` (see :func:`normalize_url`), ready for the store."""
    parsed = normalize_url(url)
    if parsed.drivername.startswith("sqlite"):
        return _sqlite_engine(parsed)
    connect_args: dict[str, Any] = {"application_name": "trainboard"}
    if "connect_timeout" not in parsed.query:
        connect_args["connect_timeout"] = POSTGRES_CONNECT_TIMEOUT_S
    engine = create_engine(
        parsed,
        pool_size=POOL_SIZE,
        max_overflow=MAX_OVERFLOW,
        pool_pre_ping=True,  # a team server outlives PostgreSQL restarts
        connect_args=connect_args,
    )
    event.listen(engine, "before_cursor_execute", _on_postgres_cursor_execute)
    return engine


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def sqlite_file(engine: Engine) -> SqliteFile | None:
    """The watch over the file of a SQLite engine built here; None for PostgreSQL."""
    return _SQLITE_FILES.get(engine)


class SqliteFile:
    """The SQLite file an engine works on, known by its (st_dev, st_ino).

    The identity is taken when the engine is built (or when its first connection
    creates the file). From then on every connection opens it with ``mode=rw``, so
    SQLite never creates a new, empty database where the file was deleted.
    :meth:`problem` says whether the path still names that file (only the main file
    counts: the ``-wal`` and ``-shm`` files come and go as SQLite needs them).

    While ``lost`` is set (the owner found the file gone or replaced), connections
    are closed at their checkin instead of being pooled again, as are those opened
    on another file than the current one. ``open_connections`` counts those still
    open, so that the file at the path is adopted only once nothing holds the old
    file's ``-wal`` and ``-shm`` any more (they have the same names, and SQLite
    deletes them by name).
    """

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        self.identity: FileIdentity | None = self.current_identity()
        self.lost: str | None = None
        self._entries: weakref.WeakSet[ConnectionPoolEntry] = weakref.WeakSet()
        self._lock = threading.Lock()

    @property
    def open_connections(self) -> int:
        """Connections of this engine's pools (discarded ones too) still open."""
        with self._lock:
            entries = list(self._entries)
        return sum(1 for entry in entries if entry.dbapi_connection is not None)

    def current_identity(self) -> FileIdentity | None:
        """The identity of the file now at the path; None when there is none."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_dev, st.st_ino)

    def problem(self) -> str | None:
        """None while the path names the file the engine opened; else what happened.
        Once ``lost``, the file stays lost until :meth:`adopt` (after a deletion, a file
        at the path with the old inode number may be another file)."""
        if self.lost is not None:
            return self.lost
        if self.identity is None:
            return None  # not opened yet: the first connection creates or opens it
        try:
            current = self.current_identity()
        except OSError as exc:
            return f"the database file {self.path} cannot be checked: {exc}"
        if current is None:
            return f"the database file {self.path} was deleted (or its directory was)"
        if current != self.identity:
            return f"the database file {self.path} was replaced by another file"
        return None

    def adopt(self, identity: FileIdentity) -> None:
        """Takes the file with ``identity`` (now at the path) as the database."""
        with self._lock:
            self.identity = identity
            self.lost = None

    def uri(self, mode: str) -> str:
        """A SQLite URI for the file opened with ``mode`` ("ro", "rw")."""
        return f"file:{quote(self.path)}?mode={mode}"

    def listen(self, engine: Engine) -> None:
        event.listen(engine, "do_connect", self._on_do_connect)
        event.listen(engine, "connect", self._on_connect)  # after the pragmas' listener
        event.listen(engine, "checkin", self._on_checkin)

    def _on_do_connect(
        self, dialect: Any, record: ConnectionPoolEntry, cargs: list[Any], cparams: dict[str, Any]
    ) -> None:
        if self.identity is not None:  # it existed: never create it again
            cargs[:] = [self.uri("rw")]
            cparams["uri"] = True

    def _on_connect(self, dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        try:
            identity = self.current_identity()
        except OSError:
            identity = None  # then it counts as stale, and is closed at its checkin
        with self._lock:
            self._entries.add(record)
            if self.identity is None:
                self.identity = identity
        record.info[_FILE_IDENTITY_KEY] = identity

    def _on_checkin(self, dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        stale = record.info.get(_FILE_IDENTITY_KEY) != self.identity
        if dbapi_connection is not None and (self.lost is not None or stale):
            record.invalidate()


_SQLITE_FILES: weakref.WeakKeyDictionary[Engine, SqliteFile] = weakref.WeakKeyDictionary()


def _sqlite_engine(url: URL) -> Engine:
    assert url.database is not None
    Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        pool_size=POOL_SIZE,
        max_overflow=MAX_OVERFLOW,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False},
    )
    event.listen(engine, "connect", _on_sqlite_connect)
    event.listen(engine, "begin", _on_sqlite_begin)
    watch = SqliteFile(url.database)
    watch.listen(engine)
    _SQLITE_FILES[engine] = watch
    return engine


def _on_postgres_cursor_execute(
    connection: Connection,
    cursor: Any,
    statement: str,
    parameters: Any,
    context: ExecutionContext | None,
    executemany: bool,
) -> None:
    if context is not None and context.execution_options.get(BINARY_RESULTS_OPTION):
        from psycopg.pq import Format

        cursor.format = Format.BINARY  # each execution gets a fresh cursor


def _on_sqlite_connect(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
    assert isinstance(dbapi_connection, sqlite3.Connection)
    # SQLAlchemy emits BEGIN itself (see _on_sqlite_begin) instead of the sqlite3
    # module's legacy implicit transactions, which do not cover SELECT or DDL.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        # WAL lets the dashboard read while trainers write. synchronous=NORMAL in WAL
        # mode does not fsync at each commit: a committed batch survives the process
        # being killed, but the last commits before a power loss or OS crash may be lost.
        _enable_wal(cursor)
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute(f"PRAGMA mmap_size = {SQLITE_MMAP_BYTES}")
    finally:
        cursor.close()


def _enable_wal(cursor: sqlite3.Cursor) -> None:
    """Switches the database to WAL (a setting stored in the file). The switch needs
    an exclusive lock, and SQLite answers "locked" at once instead of waiting when
    another process holds one, as when several open a new file together: retry."""
    delay = 0.001
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_S
    while True:
        try:
            mode = cursor.execute("PRAGMA journal_mode").fetchone()[0]
            if str(mode).lower() != "wal":
                mode = cursor.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
            continue
        if str(mode).lower() != "wal":
            raise RuntimeError(f"SQLite refused WAL mode (journal_mode stayed {mode!r})")
        return


def _on_sqlite_begin(connection: Connection) -> None:
    # A writer takes the write lock up front: a deferred transaction that reads and
    # then writes could fail with SQLITE_BUSY without waiting, where BEGIN IMMEDIATE
    # waits (busy_timeout) and so serialises writers without deadlock.
    if connection.get_execution_options().get(WRITE_OPTION):
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        connection.exec_driver_sql("BEGIN")
