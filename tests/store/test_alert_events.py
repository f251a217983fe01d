"""Alert events and alert-rule progress in the SQL store, on SQLite and PostgreSQL."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from alembic.config import Config

from shipyard.entities import AlertEvent, AlertState, Severity
from shipyard.errors import InvalidArgumentError, NotFoundError
from shipyard.store.backend import AlertProgress
from shipyard.store.sql import SqlBackend
from shipyard.store.sql.migrate import HEAD_REVISION, MIGRATIONS_DIR, current_revision

pytestmark = pytest.mark.integration

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def _event(
    event_id: str,
    hour: int,
    *,
    model: str = "churn",
    rule: str = "drift",
    state: AlertState = AlertState.FIRING,
    value: float | None = 0.5,
) -> AlertEvent:
    end = T0 + timedelta(hours=hour)
    return AlertEvent(
        event_id=event_id,
        rule=rule,
        model=model,
        state=state,
        severity=Severity.ERROR,
        metric="drift.share",
        value=value,
        threshold=0.3,
        at=end,
        window_start=end - timedelta(hours=1),
        window_end=end,
        message=f"{rule} {state}",
    )


def test_progress_and_events_round_trip(backend: SqlBackend) -> None:
    assert backend.get_alert_progress() == []
    end = T0 + timedelta(hours=2)
    progress = AlertProgress("churn", "drift", consecutive=2, firing=True, last_window_end=end)
    fired = _event("e1", 2)
    assert backend.record_alert_progress(progress, [fired], expected_window_end=None)
    [stored] = backend.get_alert_progress("churn")
    assert (stored.model, stored.rule, stored.consecutive, stored.firing) == (
        "churn",
        "drift",
        2,
        True,
    )
    assert stored.last_window_end == end
    assert stored.updated is not None and stored.updated.tzinfo is UTC
    assert backend.list_alert_events() == [fired]
    assert backend.get_alert_progress("other") == []


def test_progress_is_only_written_over_what_the_evaluator_read(backend: SqlBackend) -> None:
    first = AlertProgress("churn", "drift", consecutive=1, last_window_end=T0)
    assert backend.record_alert_progress(first, [], expected_window_end=None)
    # a second evaluator that also started from "nothing evaluated" lost the race
    stale = AlertProgress("churn", "drift", consecutive=1, firing=True, last_window_end=T0)
    assert not backend.record_alert_progress(stale, [_event("x", 0)], expected_window_end=None)
    # one that read an older window end too
    later = T0 + timedelta(hours=1)
    assert not backend.record_alert_progress(
        AlertProgress("churn", "drift", last_window_end=later),
        [],
        expected_window_end=T0 - timedelta(hours=1),
    )
    assert backend.list_alert_events() == []
    assert backend.get_alert_progress()[0].consecutive == 1
    # the rightful successor moves it on
    nxt = AlertProgress("churn", "drift", consecutive=2, firing=True, last_window_end=later)
    assert backend.record_alert_progress(nxt, [_event("e2", 1)], expected_window_end=T0)
    [stored] = backend.get_alert_progress()
    assert (stored.consecutive, stored.firing, stored.last_window_end) == (2, True, later)
    # nothing recorded yet for a rule, but the caller believes something was: refused
    assert not backend.record_alert_progress(
        AlertProgress("churn", "latency"), [], expected_window_end=T0
    )


def test_events_are_listed_newest_first_with_filters(backend: SqlBackend) -> None:
    events = [
        _event("a", 1),
        _event("b", 3, state=AlertState.RESOLVED, value=None),
        _event("c", 2, model="fraud"),
        _event("d", 4, rule="latency"),
    ]
    polled = []
    for i, event in enumerate(events):
        progress = AlertProgress(event.model, f"{event.rule}-{i}", last_window_end=event.at)
        polled.append(datetime.now(UTC))
        time.sleep(0.002)  # a poll strictly between two recordings (ms resolution)
        assert backend.record_alert_progress(progress, [event], expected_window_end=None)
    assert [e.event_id for e in backend.list_alert_events()] == ["d", "b", "c", "a"]
    assert [e.event_id for e in backend.list_alert_events(model="churn")] == ["d", "b", "a"]
    assert [e.event_id for e in backend.list_alert_events(rule="drift")] == ["b", "c", "a"]
    resolved = backend.list_alert_events(state=AlertState.RESOLVED)
    assert [e.event_id for e in resolved] == ["b"]
    assert resolved[0].value is None
    # since = recorded at or after: the last two recorded, newest window first
    assert [e.event_id for e in backend.list_alert_events(since=polled[2])] == ["d", "c"]
    assert all(e.recorded_at is not None for e in backend.list_alert_events())
    assert [e.event_id for e in backend.list_alert_events(limit=2)] == ["d", "b"]
    assert backend.list_alert_events(model="churn", rule="drift", state=AlertState.FIRING) == [
        events[0]
    ]
    with pytest.raises(InvalidArgumentError, match="limit"):
        backend.list_alert_events(limit=0)


def test_nan_values_are_stored_as_null(backend: SqlBackend) -> None:
    progress = AlertProgress("churn", "drift", last_window_end=T0)
    backend.record_alert_progress(
        progress, [_event("n", 0, value=math.nan)], expected_window_end=None
    )
    assert backend.list_alert_events()[0].value is None


def test_delivery_status(backend: SqlBackend) -> None:
    progress = AlertProgress("churn", "drift", last_window_end=T0)
    event = _event("e", 0)
    assert backend.record_alert_progress(
        progress, [event], expected_window_end=None, delivery="pending"
    )
    assert backend.list_alert_events(delivery="pending") == [event]
    backend.set_alert_delivery("e", "failed", 4)
    assert backend.list_alert_events(delivery="pending") == []
    assert backend.list_alert_events(delivery="failed") == [event]
    backend.set_alert_delivery("e", "delivered", 5)
    assert backend.list_alert_events(delivery="delivered") == [event]
    with pytest.raises(NotFoundError, match="no alert event"):
        backend.set_alert_delivery("nope", "delivered", 1)
    with pytest.raises(InvalidArgumentError, match="unknown delivery status 'sent'"):
        backend.set_alert_delivery("e", "sent", 1)
    with pytest.raises(InvalidArgumentError, match="unknown delivery status"):
        backend.list_alert_events(delivery="sent")
    with pytest.raises(InvalidArgumentError, match="initial delivery"):
        backend.record_alert_progress(progress, [], expected_window_end=T0, delivery="delivered")


def test_an_event_already_stored_is_not_stored_twice(backend: SqlBackend) -> None:
    event = _event("same", 0)
    assert backend.record_alert_progress(
        AlertProgress("churn", "drift", last_window_end=T0), [event], expected_window_end=None
    )
    later = T0 + timedelta(hours=1)
    assert backend.record_alert_progress(
        AlertProgress("churn", "drift", last_window_end=later), [event], expected_window_end=T0
    )
    assert backend.list_alert_events() == [event]


def test_naive_datetimes_are_taken_as_utc(backend: SqlBackend) -> None:
    naive = datetime(2026, 12, 1, 5)
    progress = AlertProgress("churn", "drift", last_window_end=naive)
    assert backend.record_alert_progress(progress, [], expected_window_end=None)
    stored = backend.get_alert_progress()[0].last_window_end
    assert stored == naive.replace(tzinfo=UTC)
    assert backend.record_alert_progress(
        AlertProgress("churn", "drift", consecutive=3, last_window_end=naive),
        [],
        expected_window_end=stored,
    )


def test_upgrading_a_registry_store_adds_alerts_and_keeps_its_data(store_url: str) -> None:
    """A store written by the release with the registry (0003) opens and migrates in place."""
    from alembic import command

    from shipyard.store.sql.engine import make_engine

    engine = make_engine(store_url)
    with engine.begin() as conn:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        config.attributes["connection"] = conn
        command.upgrade(config, "0003")
        conn.exec_driver_sql(
            "INSERT INTO registered_models (name, description, governed, created_at, created_by) "
            "VALUES ('churn', '', false, 1, 'alice')"
        )
    engine.dispose()
    backend = SqlBackend(store_url)
    try:
        with backend.engine.connect() as conn:
            assert current_revision(conn) == HEAD_REVISION
        assert [m.name for m in backend.list_registered_models()] == ["churn"]
        assert backend.list_alert_events() == []
        progress = AlertProgress("churn", "drift", last_window_end=T0)
        assert backend.record_alert_progress(progress, [_event("e", 0)], expected_window_end=None)
        assert len(backend.list_alert_events(model="churn")) == 1
    finally:
        backend.close()


def test_the_migration_downgrades_cleanly(store_url: str) -> None:
    from alembic import command

    from shipyard.store.sql.engine import make_engine

    SqlBackend(store_url).close()
    engine = make_engine(store_url)
    try:
        with engine.begin() as conn:
            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS_DIR))
            config.attributes["connection"] = conn
            command.downgrade(config, "0003")
            assert current_revision(conn) == "0003"
            tables = set(sa.inspect(conn).get_table_names())
            assert not tables & {"alert_events", "alert_state"}
    finally:
        engine.dispose()
