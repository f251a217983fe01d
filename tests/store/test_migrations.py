"""Migrations run on open, once, and produce exactly the tables in schema.py."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from shipyard.errors import StoreError
from shipyard.store.sql import SqlBackend
from shipyard.store.sql.migrate import HEAD_REVISION, MIGRATIONS_DIR, REVISIONS, current_revision
from shipyard.store.sql.schema import metadata

pytestmark = pytest.mark.integration


def test_revision_constants_match_the_scripts() -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    scripts = ScriptDirectory.from_config(config)
    assert scripts.get_current_head() == HEAD_REVISION
    oldest_first = [s.revision for s in reversed(list(scripts.walk_revisions()))]
    assert tuple(oldest_first) == REVISIONS


def test_a_store_from_a_newer_shipyard_is_refused_clearly(store_url: str) -> None:
    backend = SqlBackend(store_url)
    with backend.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
    backend.close()
    with pytest.raises(StoreError, match="newer Shipyard"):
        SqlBackend(store_url)


def test_open_migrates_to_head_and_matches_schema(store_url: str) -> None:
    backend = SqlBackend(store_url)
    with backend.engine.connect() as conn:
        assert current_revision(conn) == HEAD_REVISION
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []
    backend.close()
    # opening again changes nothing and keeps the data
    again = SqlBackend(store_url)
    again.create_experiment("kept")
    again.close()
    third = SqlBackend(store_url)
    assert [e.name for e in third.list_experiments()] == ["kept"]
    third.close()


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "s.db"
    backend = SqlBackend(f"sqlite:///{path}")
    with backend.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    backend.close()


def test_unsupported_url_is_a_clear_error() -> None:
    from shipyard.errors import InvalidArgumentError

    with pytest.raises(InvalidArgumentError, match="unsupported store"):
        SqlBackend("mysql://root@127.0.0.1/test")
    with pytest.raises(InvalidArgumentError, match="not a database URL"):
        SqlBackend("::::")


def test_upgrading_an_older_store_keeps_its_data(store_url: str) -> None:
    """A store written by the release before datasets existed opens and migrates in place."""
    from alembic import command

    from shipyard.store.sql.engine import make_engine

    engine = make_engine(store_url)
    with engine.begin() as conn:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        config.attributes["connection"] = conn
        command.upgrade(config, "0001")
        conn.exec_driver_sql(
            "INSERT INTO experiments (name, description, created_at) VALUES ('old', '', 1)"
        )
    engine.dispose()
    backend = SqlBackend(store_url)
    try:
        assert [e.name for e in backend.list_experiments()] == ["old"]
        with backend.engine.connect() as conn:
            assert current_revision(conn) == HEAD_REVISION
        assert backend.list_datasets() == []
    finally:
        backend.close()


def test_runs_of_an_older_store_are_kept_and_not_watched(store_url: str) -> None:
    """A 0004 store gains owners and journals; its RUNNING runs have no owner, so nothing
    marks them crashed; downgrading removes the new columns and table again."""
    from pathlib import Path

    import sqlalchemy as sa
    from alembic import command

    from shipyard.entities import RunStatus
    from shipyard.store.sql.engine import make_engine
    from shipyard.tracking.recovery import recover

    engine = make_engine(store_url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0004")
        conn.exec_driver_sql(
            "INSERT INTO experiments (name, description, created_at) VALUES ('old', '', 1)"
        )
        conn.exec_driver_sql(
            'INSERT INTO runs (run_id, experiment_id, name, status, start_time, "user") '
            "VALUES ('" + "a" * 32 + "', 1, 'r', 'RUNNING', 1, 'u')"
        )
    backend = SqlBackend(store_url)
    try:
        run = backend.get_run("a" * 32)
        assert (run.status, run.owner, run.heartbeat) == (RunStatus.RUNNING, None, None)
        assert backend.watched_runs() == []
        assert recover(backend, Path("/nonexistent")).crashed == []
    finally:
        backend.close()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0004")
        assert current_revision(conn) == "0004"
        columns = {c["name"] for c in sa.inspect(conn).get_columns("runs")}
        assert not columns & {"host", "pid", "process_start", "heartbeat"}
        assert "run_journals" not in sa.inspect(conn).get_table_names()
    engine.dispose()
