"""The SQL metadata store (SQLite or PostgreSQL)."""

from shipyard.store.sql.backend import SqlBackend

__all__ = ["SqlBackend"]
