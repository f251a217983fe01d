"""Metric writes, journals applied exactly once, and the liveness of runs (mixed into
:class:`~shipyard.store.sql.SqlBackend`).

A process logs metrics to a write-ahead journal on its own disk first; the store applies the
journal segment by segment. ``run_journals`` remembers the highest segment applied per
journal *in the same transaction* as the metrics, so a segment replayed after a crash (or by
two recoveries at once) lands once. Runs started by ``start_run`` record their owner (host,
pid, process start) and a heartbeat; a run whose owner died is marked ``CRASHED`` with its
last sign of life as its end time.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from shipyard.entities import JournalSegment, Metric, RunOwner, RunStatus
from shipyard.errors import NotFoundError
from shipyard.store.sql.engine import chunks, dialect_insert, read, with_retries, write
from shipyard.store.sql.schema import latest_metrics, run_journals, runs
from shipyard.store.sql.schema import metrics as metrics_table

__all__ = ["LivenessMethods", "insert_metrics"]


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _db_float(value: float) -> float | None:
    return None if math.isnan(value) else value


def _insert(conn: sa.Connection, table: sa.Table) -> Any:
    return dialect_insert(conn.dialect.name, table)


def insert_metrics(conn: sa.Connection, metrics: Sequence[Metric]) -> None:
    """Insert metrics and move each key's latest value forward, in ``conn``'s transaction.

    Raises:
        NotFoundError: a metric names a run that does not exist (nothing is written).
    """
    _insert_rows(
        conn,
        [
            {
                "run_id": m.run_id,
                "key": m.key,
                "value": _db_float(m.value),
                "step": m.step,
                "timestamp": m.timestamp,
            }
            for m in metrics
        ],
    )


def _segment_rows(segments: Sequence[JournalSegment]) -> list[dict[str, Any]]:
    return [
        {
            "run_id": segment.run_id,
            "key": key,
            "value": _db_float(value),
            "step": step,
            "timestamp": timestamp,
        }
        for segment in segments
        for key, value, step, timestamp in segment.metrics
    ]


def _insert_rows(conn: sa.Connection, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        ident = (row["run_id"], row["key"])
        current = latest.get(ident)
        if current is None or (row["step"], row["timestamp"]) >= (
            current["step"],
            current["timestamp"],
        ):
            latest[ident] = row
    require_runs(conn, {row["run_id"] for row in rows})
    conn.execute(metrics_table.insert(), rows)
    stmt = _insert(conn, latest_metrics)
    newer = sa.or_(
        stmt.excluded.step > latest_metrics.c.step,
        sa.and_(
            stmt.excluded.step == latest_metrics.c.step,
            stmt.excluded.timestamp >= latest_metrics.c.timestamp,
        ),
    )
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["run_id", "key"],
            set_={
                "value": stmt.excluded.value,
                "step": stmt.excluded.step,
                "timestamp": stmt.excluded.timestamp,
            },
            where=newer,
        ),
        list(latest.values()),
    )


def require_runs(conn: sa.Connection, run_ids: set[str]) -> None:
    """Raise NotFoundError naming the first of ``run_ids`` that is not in the store."""
    wanted = sorted(run_ids)
    known: set[str] = set()
    for chunk in chunks(wanted):
        known.update(
            conn.execute(sa.select(runs.c.run_id).where(runs.c.run_id.in_(chunk))).scalars().all()
        )
    unknown = run_ids - known
    if unknown:
        raise NotFoundError(f"no run {sorted(unknown)[0]}")


def _owner_matches(owner: RunOwner) -> sa.ColumnElement[bool]:
    return sa.and_(
        runs.c.host == owner.host,
        runs.c.pid == owner.pid,
        runs.c.process_start == owner.process_start,
    )


class LivenessMethods:
    """Journals and run liveness of the SQL backend. Needs ``self._engine``."""

    _engine: sa.Engine

    def log_journal(self, segments: Sequence[JournalSegment]) -> int:
        """Write the metrics of journal segments not applied yet; return how many were new.

        Segments at or below a journal's applied mark are skipped, so a segment written
        twice (a crash between the commit and the deletion of its file, two recoveries at
        once) is stored once.
        """
        if not segments:
            return 0
        by_journal: dict[str, list[JournalSegment]] = {}
        for segment in segments:
            by_journal.setdefault(segment.journal_id, []).append(segment)

        def op() -> int:
            now = _now_ms()
            written = 0
            with write(self._engine) as conn:
                require_runs(conn, {s.run_id for s in segments})
                fresh: list[JournalSegment] = []
                marks: dict[str, int] = {}
                # Sorted, so that two writers lock journal rows in the same order.
                for journal_id in sorted(by_journal):
                    parts = by_journal[journal_id]
                    conn.execute(
                        _insert(conn, run_journals)
                        .values(
                            journal_id=journal_id,
                            run_id=parts[0].run_id,
                            applied_segment=-1,
                            updated=now,
                        )
                        .on_conflict_do_nothing(index_elements=["journal_id"])
                    )
                    applied = conn.execute(
                        sa.select(run_journals.c.applied_segment)
                        .where(run_journals.c.journal_id == journal_id)
                        .with_for_update()
                    ).scalar_one()
                    new = [p for p in parts if p.segment > applied]
                    if new:
                        marks[journal_id] = max(p.segment for p in new)
                        fresh.extend(new)
                rows = _segment_rows(fresh)
                _insert_rows(conn, rows)
                written = len(rows)
                for journal_id, mark in marks.items():
                    conn.execute(
                        run_journals.update()
                        .where(run_journals.c.journal_id == journal_id)
                        .values(applied_segment=mark, updated=now)
                    )
            return written

        total = sum(len(s.metrics) for s in segments)
        return with_retries(op, what=f"logging {total} metrics")

    def applied_segment(self, journal_id: str) -> int:
        """The highest segment of a journal already in the store (-1 for none)."""
        with read(self._engine) as conn:
            found = conn.execute(
                sa.select(run_journals.c.applied_segment).where(
                    run_journals.c.journal_id == journal_id
                )
            ).scalar()
        return -1 if found is None else int(found)

    def heartbeat(self, run_ids: Sequence[str], owner: RunOwner, now: int) -> int:
        """Record that ``owner`` is alive for its runs; a run of it shown ``CRASHED`` (it was
        suspended, not dead) is ``RUNNING`` again. Returns how many runs were revived."""
        if not run_ids:
            return 0

        def op() -> int:
            with write(self._engine) as conn:
                mine = sa.and_(runs.c.run_id.in_(list(run_ids)), _owner_matches(owner))
                conn.execute(
                    runs.update()
                    .where(mine, runs.c.status == RunStatus.RUNNING.value)
                    .values(heartbeat=now)
                )
                revived = conn.execute(
                    runs.update()
                    .where(mine, runs.c.status == RunStatus.CRASHED.value)
                    .values(heartbeat=now, status=RunStatus.RUNNING.value, end_time=None)
                )
                return int(revived.rowcount or 0)

        return with_retries(op, what="recording a heartbeat")

    def watched_runs(self) -> list[tuple[str, RunOwner, int]]:
        """``(run_id, owner, heartbeat)`` of every RUNNING run that has an owner."""
        with read(self._engine) as conn:
            rows = conn.execute(
                sa.select(
                    runs.c.run_id,
                    runs.c.host,
                    runs.c.pid,
                    runs.c.process_start,
                    runs.c.heartbeat,
                ).where(
                    runs.c.status == RunStatus.RUNNING.value,
                    runs.c.heartbeat.is_not(None),
                    runs.c.pid.is_not(None),
                )
            ).all()
        return [
            (run_id, RunOwner(host or "", int(pid), process_start or ""), int(heartbeat))
            for run_id, host, pid, process_start, heartbeat in rows
        ]

    def mark_run_crashed(self, run_id: str, *, heartbeat: int | None, now: int) -> int | None:
        """Mark a RUNNING run ``CRASHED`` if its heartbeat is still ``heartbeat`` (what the
        caller judged stale or dead); its end time is its last sign of life: the later of
        that heartbeat and its newest metric (timestamps after ``now`` ignored).

        Returns the end time recorded, or None when the run had moved on meanwhile.
        """

        def op() -> int | None:
            with write(self._engine) as conn:
                row = conn.execute(
                    sa.select(runs.c.status, runs.c.heartbeat, runs.c.start_time).where(
                        runs.c.run_id == run_id
                    )
                ).first()
                if row is None:
                    raise NotFoundError(f"no run {run_id}")
                if row.status != RunStatus.RUNNING.value or row.heartbeat != heartbeat:
                    return None
                newest = conn.execute(
                    sa.select(sa.func.max(metrics_table.c.timestamp)).where(
                        metrics_table.c.run_id == run_id, metrics_table.c.timestamp <= now
                    )
                ).scalar()
                end = max(heartbeat or 0, int(row.start_time), int(newest or 0))
                # Conditional again: on PostgreSQL another transaction (an end, a heartbeat)
                # may have committed since the SELECT above.
                same_beat = (
                    runs.c.heartbeat.is_(None)
                    if heartbeat is None
                    else runs.c.heartbeat == heartbeat
                )
                done = conn.execute(
                    runs.update()
                    .where(
                        runs.c.run_id == run_id,
                        runs.c.status == RunStatus.RUNNING.value,
                        same_beat,
                    )
                    .values(status=RunStatus.CRASHED.value, end_time=end)
                )
                return end if done.rowcount == 1 else None

        return with_retries(op, what=f"marking run {run_id} crashed")
