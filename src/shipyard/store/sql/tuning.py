"""Optuna's journal of tuning studies, kept in the metadata store (mixed into
:class:`~shipyard.store.sql.SqlBackend`).

Optuna's ``JournalStorage`` needs one thing of its backend: an ordered log that every worker
reads in the same order. Log numbers are given out under a lock (SQLite's write lock, a
PostgreSQL advisory lock), so a reader never sees a gap that a slower writer fills in later.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from shipyard.store.sql.engine import read, with_retries, write
from shipyard.store.sql.schema import tuning_journal

__all__ = ["TuningMethods"]

_PG_JOURNAL_LOCK = 0x54554E45  # "TUNE"


class TuningMethods:
    _engine: sa.Engine

    def append_tuning_logs(self, logs: Sequence[str]) -> int:
        """Append ``logs`` (JSON documents) in order; return the log number of the first."""

        def change() -> int:
            with write(self._engine) as conn:
                if conn.dialect.name == "postgresql":
                    conn.execute(
                        sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_JOURNAL_LOCK}
                    )
                first = int(
                    conn.execute(
                        sa.select(sa.func.coalesce(sa.func.max(tuning_journal.c.seq) + 1, 0))
                    ).scalar_one()
                )
                if logs:
                    conn.execute(
                        tuning_journal.insert(),
                        [{"seq": first + i, "log": log} for i, log in enumerate(logs)],
                    )
                return first

        return with_retries(change, what="appending to the tuning journal")

    def read_tuning_logs(self, start: int = 0) -> list[str]:
        """The journal's logs from log number ``start`` on, in order."""
        with read(self._engine) as conn:
            rows = conn.execute(
                sa.select(tuning_journal.c.log)
                .where(tuning_journal.c.seq >= start)
                .order_by(tuning_journal.c.seq)
            )
            return [row.log for row in rows]
