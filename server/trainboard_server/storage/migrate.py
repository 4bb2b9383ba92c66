"""Applying the Alembic migrations, safe when several processes start at once."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

from trainboard_server.storage.engine import WRITE_OPTION

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"

# The pg_advisory_xact_lock key that serialises migrations: any fixed 64-bit number
# that other applications sharing the database are unlikely to pick.
ADVISORY_LOCK_KEY = zlib.crc32(b"trainboard-migrations") | (0x7462 << 32)


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config pointing at the migrations package (no alembic.ini)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade_to_head(engine: Engine) -> None:
    """Migrates the database to the newest revision; a no-op when it is there.

    The upgrade runs in one transaction that first takes a lock every other migrating
    process also takes: ``pg_advisory_xact_lock`` on PostgreSQL, the database write
    lock (BEGIN IMMEDIATE) on SQLite. A process that waited then finds the schema at
    head and does nothing. Both databases roll DDL back with the transaction, so a
    failed upgrade leaves the schema as it was.
    """
    if current_revision(engine) == head_revision():
        return  # the common case: no lock taken, nothing written
    upgrade_to(engine, "head")


def upgrade_to(engine: Engine, revision: str) -> None:
    """Migrates the database up to ``revision`` ("head" for the newest), under the
    lock and in the one transaction that :func:`upgrade_to_head` describes."""
    _migrate(engine, lambda config: command.upgrade(config, revision))


def downgrade_to(engine: Engine, revision: str) -> None:
    """Migrates the database down to ``revision`` ("base" for no tables at all)."""
    _migrate(engine, lambda config: command.downgrade(config, revision))


def _migrate(engine: Engine, step: Callable[[Config], None]) -> None:
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # SQLite alters a table by recreating it, and dropping the old one with
            # foreign keys on would first delete the rows that reference it (ON DELETE
            # CASCADE). The pragma is a no-op inside a transaction: set it before.
            _sqlite_foreign_keys(connection, enabled=False)
        try:
            connection = connection.execution_options(**{WRITE_OPTION: True})
            with connection.begin():
                if connection.dialect.name == "postgresql":
                    connection.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY}
                    )
                step(alembic_config(connection))
                if sqlite:
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                    if broken:
                        raise RuntimeError(f"the migration broke foreign keys: {broken[:5]}")
        finally:
            if sqlite:
                _sqlite_foreign_keys(connection, enabled=True)


def _sqlite_foreign_keys(connection: Connection, *, enabled: bool) -> None:
    # On the driver's connection, which runs in autocommit mode between transactions
    # (see storage.engine): SQLAlchemy's would begin a transaction first.
    dbapi_connection = connection.connection.dbapi_connection
    assert dbapi_connection is not None
    dbapi_connection.execute(f"PRAGMA foreign_keys = {'ON' if enabled else 'OFF'}")
