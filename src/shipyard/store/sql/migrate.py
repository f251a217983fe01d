"""Bring a database to the newest schema when a store opens.

The newest revision is known here without loading Alembic, so opening an up-to-date store costs
one small query. When it is behind, migrations run under a lock (SQLite's write lock,
PostgreSQL's advisory lock), so many processes opening a new store at once migrate it once.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from shipyard.errors import StoreError
from shipyard.store.sql.engine import write

__all__ = ["HEAD_REVISION", "REVISIONS", "current_revision", "upgrade"]

REVISIONS = ("0001", "0002", "0003", "0004", "0005", "0006", "0007", "0008", "0009", "0010")
"""Every schema revision this version of Shipyard knows, oldest first."""
HEAD_REVISION = REVISIONS[-1]
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
_PG_LOCK_KEY = 0x53485950  # "SHYP"


def current_revision(conn: sa.Connection) -> str | None:
    """The revision the database is at, or None for an empty database."""
    if not sa.inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


def upgrade(engine: sa.Engine) -> None:
    """Apply pending migrations, if any."""
    with engine.connect() as conn:
        if _checked(current_revision(conn)) == HEAD_REVISION:
            return
    with write(engine) as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
        if _checked(current_revision(conn)) == HEAD_REVISION:
            return
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        config.attributes["connection"] = conn
        command.upgrade(config, "head")


def _checked(revision: str | None) -> str | None:
    if revision is not None and revision not in REVISIONS:
        raise StoreError(
            f"this store has schema revision {revision!r}, written by a newer Shipyard; "
            "upgrade Shipyard (pip install -U shipyard-mlops) to open it"
        )
    return revision
