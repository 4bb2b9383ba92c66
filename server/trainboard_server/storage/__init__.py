"""The SQL storage behind ``trainboard_server.sql_store.SqlStore``, split by concern.

- ``models``: the schema as typed SQLAlchemy models (the migrations create it).
- ``engine``: building an engine from a URL, SQLite pragmas and BEGIN IMMEDIATE.
- ``session``: the one helper owning transactions, retries and error translation.
- ``migrate``: applying the Alembic migrations, safely from several processes.
- ``runs``, ``batches``, ``scalars``, ``histograms``, ``graphs``: one concern each.
"""
