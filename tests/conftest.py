"""Shared fixtures: a fresh store on SQLite *and* PostgreSQL, and a fresh workspace.

PostgreSQL tests run when ``SHIPYARD_TEST_POSTGRES_URL`` is set (``.ci/run`` and ``make test``
set it to the local server); each test gets its own schema, dropped afterwards.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from shipyard.store.sql import SqlBackend

# One OpenMP thread per process, as `shipyard demo` does: with a spinning thread per core, a
# HistGradientBoosting fit takes seconds instead of a fraction of one while the other xdist
# worker uses the second core (the train-pipeline tests took 38 s instead of 21 s). Set before
# any test module loads scikit-learn's OpenMP runtime; subprocesses inherit it.
os.environ.setdefault("OMP_NUM_THREADS", "1")

PG_ENV = "SHIPYARD_TEST_POSTGRES_URL"
PG_SKIP = (
    f"PostgreSQL tests skipped: no PostgreSQL URL configured. Set {PG_ENV}="
    "postgresql+psycopg://postgres@127.0.0.1:5432/test to run them."
)


def _pg_schema_url(base: str, schema: str) -> str:
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options=-csearch_path%3D{schema}"


@pytest.hookimpl(tryfirst=True)
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A module may narrow the stores its tests run on with ``STORE_KINDS = ("sqlite",)``.

    The store layer itself (``tests/store``, ``tracking``, ``registry``, ``data``, the REST
    server's API and every test where concurrency or SQL is the point) runs on every kind.
    Modules that test what sits on top of the store (the CLI's wording, pages, serving
    protocols, exports) name SQLite alone, so the suite does not pay twice for the same path.
    """
    kinds = getattr(metafunc.module, "STORE_KINDS", None)
    chosen = any(
        "store_url" in str(mark.args[0]) for mark in metafunc.definition.iter_markers("parametrize")
    )
    if kinds is not None and "store_url" in metafunc.fixturenames and not chosen:
        # as a marker, which the fixture's own params give way to
        metafunc.definition.add_marker(
            pytest.mark.parametrize("store_url", list(kinds), indirect=True)
        )


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """A URL of an empty metadata store: a SQLite file, or a fresh PostgreSQL schema. (The
    tracking, data and registry suites add a server: ``tests/_served.py``.)"""
    yield from make_store(request.param, tmp_path, monkeypatch)


def make_store(kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An empty store of ``kind``: ``sqlite``, ``postgresql`` (skipped without
    ``SHIPYARD_TEST_POSTGRES_URL``) or ``server`` (a real server over SQLite; see
    ``tests/_served.py``)."""
    if kind == "server":
        from tests._served import served_store

        yield from served_store(tmp_path, monkeypatch)
        return
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'store' / 'shipyard.db'}"
        return
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(PG_SKIP)
    import sqlalchemy as sa

    schema = f"test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base.replace("postgresql://", "postgresql+psycopg://", 1))
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield _pg_schema_url(base, schema)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def home(tmp_path: Path, store_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A workspace on each store kind, made current through the environment."""
    workspace = tmp_path / "project" / ".shipyard"
    workspace.mkdir(parents=True)
    monkeypatch.setenv("SHIPYARD_HOME", str(workspace))
    if not store_url.startswith("http"):  # a server is reached through SHIPYARD_SERVER
        monkeypatch.setenv("SHIPYARD_STORE_URL", store_url)
    monkeypatch.setenv("SHIPYARD_USER", "alice")
    monkeypatch.delenv("SHIPYARD_ARTIFACTS_URL", raising=False)
    monkeypatch.chdir(tmp_path / "project")
    yield workspace


@pytest.fixture(autouse=True)
def _fresh_tracking_state() -> Iterator[None]:
    """Each test starts with no active run and no open workspace."""
    yield
    from shipyard.tracking import fluent, workspace

    fluent._env_run_used = False
    while fluent._stack:
        run = fluent._stack.pop()
        with contextlib.suppress(Exception):
            run.end("KILLED")
    for ws in list(workspace._open.values()):
        with contextlib.suppress(Exception):
            ws.close()
    workspace._open.clear()


@pytest.fixture
def backend(store_url: str) -> Iterator[SqlBackend]:
    """The backend of an empty store (each kind), closed afterwards."""
    from shipyard.store import open_backend

    opened = open_backend(store_url)
    yield opened  # type: ignore[misc]
    opened.close()
