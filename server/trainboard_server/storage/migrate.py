"""Applying the Alembic migrations, safe when several processes start at once."""

from __future__ import annotations

import zlib
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
    with engine.connect() as connection:
        connection = connection.execution_options(**{WRITE_OPTION: True})
        with connection.begin():
            if connection.dialect.name == "postgresql":
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY}
                )
            command.upgrade(alembic_config(connection), "head")
