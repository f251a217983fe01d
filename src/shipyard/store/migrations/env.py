"""Alembic environment: Shipyard always passes an open connection (see store/sql/migrate.py)."""

from __future__ import annotations

from alembic import context

from shipyard.store.sql.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only the alembic CLI gets here
    raise RuntimeError("run migrations through shipyard.store (it opens the connection)")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
