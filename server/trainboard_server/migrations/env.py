"""Alembic environment for Trainboard's schema.

Run through ``trainboard_server.storage.migrate.upgrade_to_head``, which passes an
open connection (already inside a locked transaction) as
``config.attributes["connection"]``; there is no alembic.ini and no URL here.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from trainboard_server.storage.models import Base

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError(
        "Trainboard migrations run through trainboard_server.storage.migrate, "
        "which passes the connection in config.attributes"
    )
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER much
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
