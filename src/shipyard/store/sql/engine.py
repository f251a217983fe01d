"""Engines tuned for many writers: SQLite in WAL mode with immediate write transactions,
PostgreSQL with a pre-pinged pool; and a retry for the transient errors both can raise."""

from __future__ import annotations

import logging
import os
import random
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from shipyard.config import redact_url
from shipyard.errors import InvalidArgumentError, StoreError

__all__ = [
    "BUSY_TIMEOUT_S",
    "chunks",
    "dialect_insert",
    "is_unique_violation",
    "make_engine",
    "read",
    "with_retries",
    "with_unique_retries",
    "write",
]

log = logging.getLogger(__name__)

BUSY_TIMEOUT_S = 30.0
"""How long a SQLite writer waits for the lock before SQLite itself gives up."""
_RETRY_DEADLINE_S = 120.0
_WRITE = "shipyard_write"

# SQLSTATEs worth retrying on PostgreSQL: serialization failure, deadlock, lock timeout. Each
# guarantees the transaction was rolled back. Connection errors are *not* retried: when a
# connection drops during COMMIT, the write may have landed, and repeating it would
# duplicate metric rows.
_PG_TRANSIENT = {"40001", "40P01", "55P03"}

_engines: weakref.WeakSet[sa.Engine] = weakref.WeakSet()


def _dispose_after_fork() -> None:
    # A forked child must not use its parent's pooled connections; close=False leaves them
    # open for the parent (the pattern SQLAlchemy documents for multiprocessing).
    for engine in list(_engines):
        engine.dispose(close=False)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_dispose_after_fork)

T = TypeVar("T")


def make_engine(url: str, *, sync: bool = False) -> sa.Engine:
    """Create an engine for ``url``. ``postgresql://`` means the psycopg 3 driver; ``sync``
    makes SQLite commits wait for the disk."""
    try:
        parsed = make_url(url)
        _ = parsed.port  # a non-numeric port only fails when read
    except (sa.exc.ArgumentError, ValueError) as exc:
        raise InvalidArgumentError(f"not a database URL: {redact_url(url)}") from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        engine = _sqlite_engine(parsed, sync=sync)
    elif backend == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        try:
            engine = sa.create_engine(parsed, pool_pre_ping=True, pool_size=4, max_overflow=8)
        except ModuleNotFoundError as exc:
            raise InvalidArgumentError(
                "PostgreSQL needs the psycopg driver: pip install 'shipyard-mlops[postgres]'"
            ) from exc
    else:
        raise InvalidArgumentError(
            f"unsupported store {redact_url(url)}: use sqlite:///path or postgresql+psycopg://..."
        )
    _engines.add(engine)
    return engine


def _sqlite_engine(url: sa.URL, *, sync: bool) -> sa.Engine:
    database = url.database or ""
    if database and database != ":memory:":
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(
        url,
        connect_args={"timeout": BUSY_TIMEOUT_S, "check_same_thread": False},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Autocommit at the driver level: SQLAlchemy's "begin" hook below emits BEGIN itself.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        cursor.execute("PRAGMA journal_mode=WAL")
        # NORMAL is durable against process crashes (kill -9) in WAL mode; only a power loss
        # can undo the last transactions. FULL (SHIPYARD_SYNC=1) syncs every commit.
        cursor.execute(f"PRAGMA synchronous={'FULL' if sync else 'NORMAL'}")
        cursor.execute("PRAGMA foreign_keys=ON")
        # LIKE is case-sensitive on PostgreSQL; make SQLite agree so a filter means the same
        # on both stores (ILIKE is the case-insensitive form).
        cursor.execute("PRAGMA case_sensitive_like=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        # A deferred transaction that later writes fails at once with SQLITE_BUSY when
        # another writer got there first (the busy handler is not consulted); taking the
        # write lock up front makes writers queue behind busy_timeout instead.
        immediate = connection.get_execution_options().get(_WRITE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


@contextmanager
def write(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A write transaction: committed when the block exits, rolled back on error."""
    with engine.connect().execution_options(**{_WRITE: True}) as conn, conn.begin():
        yield conn


@contextmanager
def read(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A read-only transaction (a consistent snapshot); database errors become StoreError."""
    try:
        with engine.connect() as conn, conn.begin():
            yield conn
    except DBAPIError as exc:
        raise StoreError(f"reading the store failed: {_first_line(exc.orig)}") from exc


def _is_transient(exc: DBAPIError) -> bool:
    if isinstance(exc, OperationalError):
        message = str(exc.orig).lower()
        if "database is locked" in message or "database is busy" in message:
            return True
    sqlstate = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return sqlstate in _PG_TRANSIENT


def with_retries(operation: Callable[[], T], *, what: str) -> T:
    """Run ``operation`` (one whole transaction), retrying transient lock/deadlock errors.

    The operation must be safe to repeat: it runs in its own transaction, and a failed
    attempt has been rolled back. Integrity errors propagate for the caller to explain; any
    other database error becomes a :class:`StoreError` whose message names the operation.
    """
    deadline = time.monotonic() + _RETRY_DEADLINE_S
    delay = 0.01
    while True:
        try:
            return operation()
        except IntegrityError:
            raise
        except DBAPIError as exc:
            if not _is_transient(exc):
                raise StoreError(f"{what} failed: {_first_line(exc.orig)}") from exc
            if time.monotonic() > deadline:
                raise StoreError(f"{what}: the store stayed busy for too long") from exc
            log.debug("retrying %s after transient error: %s", what, exc.orig)
            time.sleep(delay * (1 + random.random()))  # noqa: S311 - jitter, not crypto
            delay = min(delay * 2, 1.0)


def _first_line(error: BaseException | None) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def chunks(items: Sequence[str], size: int = 500) -> Iterator[Sequence[str]]:
    """``items`` in slices small enough for one ``IN (...)`` list."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def is_unique_violation(exc: IntegrityError) -> bool:
    """Another writer took a unique key first (worth another try in a fresh transaction)."""
    return getattr(exc.orig, "sqlstate", None) == "23505" or "UNIQUE constraint failed" in str(
        exc.orig
    )


def with_unique_retries(operation: Callable[[], T], *, what: str, attempts: int = 20) -> T:
    """:func:`with_retries`, and also repeat the transaction when it lost a race for a unique
    key (the next version number, the first audit entry), with jittered backoff.

    Any other integrity error (an unknown foreign key, say) is raised at once.
    """
    for attempt in range(attempts):
        try:
            return with_retries(operation, what=what)
        except IntegrityError as exc:
            if not is_unique_violation(exc):
                raise
            time.sleep(random.uniform(0, 0.01 * 2 ** min(attempt, 6)))  # noqa: S311
    raise StoreError(f"{what}: too many concurrent writers, try again")


def dialect_insert(dialect: str, table: sa.Table) -> Any:
    """``INSERT`` with the dialect's ``ON CONFLICT`` support (PostgreSQL or SQLite).

    The dialect module is imported on use: PostgreSQL's pulls in every driver's module, which a
    SQLite store never needs.
    """
    import importlib

    name = "postgresql" if dialect == "postgresql" else "sqlite"
    return importlib.import_module(f"sqlalchemy.dialects.{name}").insert(table)
