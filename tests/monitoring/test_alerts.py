"""Alert rules: monitors.yaml parsing, the per-rule state machine, and runs that persist."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shipyard.entities import AlertRule, AlertState, ServiceHealth, Severity, WindowResult
from shipyard.errors import InvalidArgumentError, NotFoundError
from shipyard.monitoring.alerts import (
    MonitorConfig,
    evaluate,
    evaluated_until,
    event_id,
    is_known_metric,
    list_events,
    load_monitors,
    parse_monitors,
    run_monitor,
)
from shipyard.store.backend import AlertProgress
from shipyard.store.sql import SqlBackend
from tests._cli import ROOT

T0 = datetime(2026, 12, 1, tzinfo=UTC)

EXAMPLE = """
webhooks:
  - url: https://hooks.example.com/${HOOK_PATH}
    headers: {Authorization: "Bearer ${ALERTS_TOKEN}"}
monitors:
  - model: churn
    window: 1h
    reference: churn-train@3
    rules:
      - name: drift-share
        metric: drift.share
        op: ">"
        threshold: 0.3
        for: 2
        severity: error
      - name: age-drift
        metric: drift.column.age.distance
        threshold: 0.2
      - name: accuracy
        metric: performance.accuracy
        op: "<"
        threshold: 0.8
        description: accuracy fell
    webhooks:
      - name: oncall
        url: http://127.0.0.1:9/alerts
        timeout: 2
  - model: fraud
    window: 30m
    rules:
      - {name: errors, metric: health.error_rate, op: ">=", threshold: 0.05, severity: info}
      - {name: p99, metric: health.latency_p99_ms, threshold: 500}
      - {name: estimated, metric: estimated.accuracy, op: "<=", threshold: 0.7}
"""


def window(hour: int, **metrics: float | None) -> WindowResult:
    """A one-hour window ending ``hour`` hours after T0 with the given health metrics."""
    end = T0 + timedelta(hours=hour)
    error_rate = metrics.get("error_rate")
    health = None
    if error_rate is not None:
        health = ServiceHealth(
            requests=1000,
            errors=round(error_rate * 1000),
            request_rate=1000 / 3600,
            latency_p50_ms=10.0,
            latency_p95_ms=20.0,
            latency_p99_ms=metrics.get("p99"),
        )
    accuracy = metrics.get("accuracy")
    return WindowResult(
        start=end - timedelta(hours=1),
        end=end,
        rows=1000,
        health=health,
        performance=None if accuracy is None else {"accuracy": accuracy},
    )


def rule(**kwargs: Any) -> AlertRule:
    defaults: dict[str, Any] = {
        "name": "errors",
        "metric": "health.error_rate",
        "threshold": 0.1,
        "op": ">",
        "for_windows": 2,
        "severity": Severity.ERROR,
        "model": "churn",
    }
    return AlertRule(**{**defaults, **kwargs})


# parsing -------------------------------------------------------------------------------------


def test_the_documented_example_parses(tmp_path: Path) -> None:
    path = tmp_path / "monitors.yaml"
    path.write_text(EXAMPLE)
    config = load_monitors(path)
    assert isinstance(config, MonitorConfig)
    churn, fraud = config.monitors
    assert churn.model == "churn"
    assert churn.window == timedelta(hours=1)
    assert churn.reference == "churn-train@3"
    assert fraud.window == timedelta(minutes=30)
    assert fraud.reference is None
    drift = churn.rules[0]
    assert (drift.name, drift.metric, drift.op, drift.threshold) == (
        "drift-share",
        "drift.share",
        ">",
        0.3,
    )
    assert (drift.for_windows, drift.severity, drift.model) == (2, Severity.ERROR, "churn")
    age = churn.rules[1]
    assert (age.op, age.for_windows, age.severity) == (">", 1, Severity.WARNING)
    assert churn.rules[2].description == "accuracy fell"
    assert fraud.rules[0].severity == Severity.INFO
    # the file's webhooks go to every monitor, a monitor's own after them
    assert [h.label for h in churn.webhooks] == ["https://hooks.example.com", "oncall"]
    assert [h.label for h in fraud.webhooks] == ["https://hooks.example.com"]
    # templates are kept as written: resolved only when sending
    assert churn.webhooks[0].headers == {"Authorization": "Bearer ${ALERTS_TOKEN}"}
    assert churn.webhooks[1].timeout == 2.0
    assert len(config.rules) == 6
    assert {r.model for r in config.rules} == {"churn", "fraud"}


def _monitor(**rule_fields: Any) -> dict[str, Any]:
    entry = {"name": "r", "metric": "drift.share", "threshold": 0.3, **rule_fields}
    return {"monitors": [{"model": "churn", "rules": [entry]}]}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "m.yaml: the file must be a mapping"),
        ({"monitor": []}, "m.yaml: unknown field 'monitor'; known: monitors, webhooks"),
        ({"monitors": []}, "m.yaml: field 'monitors' must be a non-empty list"),
        ({"monitors": [{"rules": []}]}, "m.yaml, monitor 1: field 'model' must be a non-empty"),
        (
            {"monitors": [{"model": "churn"}]},
            "m.yaml, monitor 1 (churn): field 'rules' must be a non-empty list",
        ),
        (
            {"monitors": [{"model": "churn", "rules": [{"name": "r"}], "window": "1 hour"}]},
            "m.yaml, monitor 1 (churn), rule 1 (r): field 'metric' must be a non-empty",
        ),
        (
            _monitor(metric="drift.shares"),
            "rule 1 (r): field 'metric': unknown metric 'drift.shares'; known: rows, drift.share",
        ),
        (_monitor(op="=="), "rule 1 (r): field 'op' must be one of >, >=, <, <= (quoted"),
        (_monitor(threshold="high"), "rule 1 (r): field 'threshold' must be a number, not 'high'"),
        (_monitor(threshold=True), "field 'threshold' must be a number"),
        (_monitor(**{"for": 0}), "rule 1 (r): field 'for' must be a whole number of windows >= 1"),
        (_monitor(**{"for": 1.5}), "field 'for' must be a whole number"),
        (_monitor(severity="critical"), "field 'severity' must be one of info, warning, error"),
        (_monitor(treshold=1), "rule 1: unknown field 'treshold'; known:"),
        (_monitor(name="has space"), "rule 1: field 'name' 'has space' must be letters"),
    ],
)
def test_each_mistake_is_one_line_naming_file_monitor_rule_and_field(
    document: Any, message: str
) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        parse_monitors(document, "m.yaml")
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
    assert str(caught.value).startswith("m.yaml")


def test_a_missing_threshold_and_a_bad_window_are_named() -> None:
    doc = {"monitors": [{"model": "churn", "rules": [{"name": "r", "metric": "rows"}]}]}
    with pytest.raises(InvalidArgumentError, match=r"rule 1 \(r\): field 'threshold' is required"):
        parse_monitors(doc)
    doc = _monitor()
    doc["monitors"][0]["window"] = "0h"
    with pytest.raises(InvalidArgumentError, match=r"monitor 1 \(churn\): field 'window' must"):
        parse_monitors(doc)


def test_rule_names_are_unique_per_model() -> None:
    doc = _monitor()
    doc["monitors"].append(
        {"model": "churn", "window": "1d", "rules": [dict(doc["monitors"][0]["rules"][0])]}
    )
    with pytest.raises(InvalidArgumentError, match=r"monitor 2 \(churn\), rule 1 \(r\): .*already"):
        parse_monitors(doc)


def test_webhook_mistakes_never_echo_header_values() -> None:
    def hooked(hook: Any) -> dict[str, Any]:
        return {**_monitor(), "webhooks": [hook]}

    with pytest.raises(InvalidArgumentError, match="webhook 1: field 'url' must start with http"):
        parse_monitors(hooked("ftp://example.com"))
    with pytest.raises(InvalidArgumentError, match="webhook 1: unknown field 'header'"):
        parse_monitors(hooked({"url": "http://x", "header": {}}))
    with pytest.raises(InvalidArgumentError, match="field 'timeout' must be > 0"):
        parse_monitors(hooked({"url": "http://x", "timeout": 0}))
    with pytest.raises(InvalidArgumentError, match=r"header 'Authorization': .*\$\{NAME\}"):
        parse_monitors(hooked({"url": "http://x", "headers": {"Authorization": "${BAD-NAME}"}}))
    with pytest.raises(InvalidArgumentError) as caught:
        parse_monitors(hooked({"url": "http://x", "headers": {"X-Token": 12345678}}))
    assert "12345678" not in str(caught.value)
    assert "field 'headers' must map header names to strings" in str(caught.value)


def test_loading_reports_missing_files_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no monitors file"):
        load_monitors(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("monitors: [\n")
    with pytest.raises(InvalidArgumentError, match=r"bad\.yaml: not valid YAML"):
        load_monitors(bad)
    bad.write_text(
        "monitors:\n  - model: churn\n    rules: [{name: r, metric: nope, threshold: 1}]\n"
    )
    with pytest.raises(InvalidArgumentError, match=r"bad\.yaml, monitor 1 \(churn\), rule 1"):
        load_monitors(bad)


def test_the_metric_vocabulary_matches_window_metrics() -> None:
    from shipyard.entities import ColumnDrift, DriftReport

    col = ColumnDrift(
        "age", "numeric", "ks", 0.1, 0.01, 0.02, "wasserstein", 0.3, 0.1, True, "moved", 10, 10
    )
    drift = DriftReport("ref", "cur", (col,), True, 1.0, 0.5, "bh", 0.05, 10, 10, prediction=col)
    full = WindowResult(
        start=T0,
        end=T0 + timedelta(hours=1),
        rows=10,
        drift=drift,
        performance={"accuracy": 0.9, "roc_auc": 0.8},
        estimated_performance={"accuracy": 0.85},
        labelled_rows=5,
        label_delay_seconds={"p50": 3.0},
        health=ServiceHealth(10, 1, 0.1, 1.0, 2.0, 3.0),
    )
    names = full.metrics()
    assert len(names) >= 20
    assert all(is_known_metric(name) for name in names), [
        n for n in names if not is_known_metric(n)
    ]
    assert not is_known_metric("performance.")
    assert not is_known_metric("health.latency_p90_ms")


# evaluation ----------------------------------------------------------------------------------


def test_fires_after_for_windows_and_resolves_when_it_stops_holding() -> None:
    state: dict[str, AlertProgress] = {}
    r = rule()
    rates = [0.05, 0.2, 0.3, 0.4, 0.05, 0.2]
    events = evaluate([r], "churn", [window(i, error_rate=v) for i, v in enumerate(rates)], state)
    assert [(e.state, e.at) for e in events] == [
        (AlertState.FIRING, T0 + timedelta(hours=2)),
        (AlertState.RESOLVED, T0 + timedelta(hours=4)),
    ]
    fired, resolved = events
    assert fired.value == 0.3 and fired.threshold == 0.1 and fired.severity is Severity.ERROR
    assert fired.metric == "health.error_rate" and fired.model == "churn"
    assert fired.window_start == T0 + timedelta(hours=1) and fired.window_end == fired.at
    assert fired.message == "health.error_rate = 0.3 > 0.1 for 2 consecutive windows"
    assert resolved.message == "health.error_rate = 0.05, no longer > 0.1"
    assert fired.event_id == event_id("churn", "errors", AlertState.FIRING, fired.at)
    assert state["errors"] == AlertProgress(
        "churn", "errors", consecutive=1, firing=False, last_window_end=T0 + timedelta(hours=5)
    )


def test_for_one_fires_on_the_first_window_and_fires_once_while_it_holds() -> None:
    events = evaluate(
        [rule(for_windows=1)],
        "churn",
        [window(i, error_rate=0.5) for i in range(5)],
        {},
    )
    assert [e.state for e in events] == [AlertState.FIRING]
    assert events[0].message == "health.error_rate = 0.5 > 0.1 for window"


def test_a_missing_metric_neither_fires_resolves_nor_resets() -> None:
    state: dict[str, AlertProgress] = {}
    r = rule(metric="performance.accuracy", op="<", threshold=0.8)
    # hour 1: low, hour 2: no labels yet, hour 3: low again -> 2 consecutive measurements
    windows = [window(1, accuracy=0.7), window(2), window(3, accuracy=0.6)]
    events = evaluate([r], "churn", windows, state)
    assert [(e.state, e.at.hour) for e in events] == [(AlertState.FIRING, 3)]
    # while firing, windows without labels do not resolve it
    assert evaluate([r], "churn", [window(4), window(5)], state) == []
    assert state["errors"].firing
    assert state["errors"].last_window_end == T0 + timedelta(hours=5)
    [resolved] = evaluate([r], "churn", [window(6, accuracy=0.95)], state)
    assert resolved.state is AlertState.RESOLVED


def test_a_silent_window_neither_resolves_an_error_alert_nor_passes_quality() -> None:
    """No requests is not "no errors": a dead service must not resolve its alert."""
    state: dict[str, AlertProgress] = {}
    r = rule(for_windows=1, threshold=0.05)
    [fired] = evaluate([r], "churn", [window(1, error_rate=0.5)], state)
    assert fired.state is AlertState.FIRING
    end = T0 + timedelta(hours=2)
    silent = WindowResult(
        start=end - timedelta(hours=1),
        end=end,
        rows=0,
        health=ServiceHealth(0, 0, 0.0, None, None, None),
    )
    metrics = silent.metrics()
    assert "health.error_rate" not in metrics and "quality.errors" not in metrics
    assert metrics["health.requests"] == 0
    assert evaluate([r], "churn", [silent], state) == []
    assert state["errors"].firing


def test_a_delayed_rule_waits_until_its_windows_are_old_enough() -> None:
    """Labels arrive late: a rule with a delay evaluates a window only once it is settled."""
    state: dict[str, AlertProgress] = {}
    r = rule(metric="performance.accuracy", op="<", threshold=0.8, for_windows=1,
             delay_seconds=2 * 86400)  # fmt: skip
    windows = [window(1, accuracy=0.9), window(2, accuracy=0.5)]
    now = T0 + timedelta(hours=1, days=2)  # window 1 is settled, window 2 is not
    assert evaluate([r], "churn", windows, state, now=now) == []
    assert state["errors"].last_window_end == T0 + timedelta(hours=1)
    later = now + timedelta(hours=1)
    [fired] = evaluate([r], "churn", windows, state, now=later)
    assert (fired.state, fired.at) == (AlertState.FIRING, T0 + timedelta(hours=2))


def test_a_delay_is_parsed_from_the_rule() -> None:
    config = parse_monitors(
        {"monitors": [{"model": "churn", "rules": [
            {"name": "acc", "metric": "performance.accuracy", "op": "<", "threshold": 0.8,
             "delay": "2d"}]}]}
    )  # fmt: skip
    assert config.rules[0].delay_seconds == 2 * 86400
    with pytest.raises(InvalidArgumentError, match="field 'delay'"):
        parse_monitors(
            {"monitors": [{"model": "churn", "rules": [
                {"name": "acc", "metric": "rows", "threshold": 1, "delay": "soon"}]}]}
        )  # fmt: skip


def test_windows_already_evaluated_are_never_evaluated_again() -> None:
    state: dict[str, AlertProgress] = {}
    windows = [window(i, error_rate=0.5) for i in range(3)]
    first = evaluate([rule()], "churn", windows, state)
    assert len(first) == 1
    snapshot = dict(state)
    assert evaluate([rule()], "churn", windows, state) == []
    assert state == snapshot
    # an old window arriving late is ignored too; a newer one is taken
    assert evaluate([rule()], "churn", [window(1, error_rate=0.0)], state) == []
    [resolved] = evaluate(
        [rule()], "churn", [window(1, error_rate=0.0), window(3, error_rate=0.0)], state
    )
    assert resolved.at == T0 + timedelta(hours=3)


def test_windows_are_taken_in_time_order_and_other_models_rules_are_ignored() -> None:
    state: dict[str, AlertProgress] = {}
    shuffled = [window(2, error_rate=0.5), window(0, error_rate=0.5), window(1, error_rate=0.0)]
    events = evaluate([rule(), rule(name="fraud-only", model="fraud")], "churn", shuffled, state)
    assert events == []  # 0.5, 0.0, 0.5: never two in a row
    assert set(state) == {"errors"}
    assert state["errors"].consecutive == 1
    # a rule without a model applies to every model
    assert evaluate([rule(model=None, for_windows=1)], "fraud", [window(0, error_rate=1.0)], {})


def test_naive_window_times_are_utc() -> None:
    naive = WindowResult(start=datetime(2026, 12, 1), end=datetime(2026, 12, 1, 1), rows=1)
    state: dict[str, AlertProgress] = {}
    [event] = evaluate(
        [rule(metric="rows", for_windows=1, threshold=0, model=None)], "m", [naive], state
    )
    assert event.at == datetime(2026, 12, 1, 1, tzinfo=UTC)


@given(
    st.lists(st.one_of(st.none(), st.floats(0, 1)), max_size=30),
    st.integers(1, 4),
    st.integers(0, 30),
)
def test_evaluating_in_pieces_equals_evaluating_at_once(
    values: list[float | None], for_windows: int, cut: int
) -> None:
    """A cron tick that sees part of the windows, then the rest, raises the same events."""
    windows = [window(i, error_rate=v) for i, v in enumerate(values)]
    r = rule(for_windows=for_windows, threshold=0.5)
    whole_state: dict[str, AlertProgress] = {}
    whole = evaluate([r], "churn", windows, whole_state)
    piece_state: dict[str, AlertProgress] = {}
    pieces = evaluate([r], "churn", windows[:cut], piece_state)
    pieces += evaluate([r], "churn", windows, piece_state)  # overlapping: the seen part skipped
    assert pieces == whole
    assert piece_state == whole_state
    # firing and resolved alternate, starting with firing
    assert [e.state for e in whole] == [
        AlertState.FIRING if i % 2 == 0 else AlertState.RESOLVED for i in range(len(whole))
    ]


# runs against the store ------------------------------------------------------------------------


def _config() -> MonitorConfig:
    return parse_monitors(
        {
            "monitors": [
                {
                    "model": "churn",
                    "rules": [
                        {
                            "name": "errors",
                            "metric": "health.error_rate",
                            "threshold": 0.1,
                            "for": 2,
                        },
                        {"name": "p99", "metric": "health.latency_p99_ms", "threshold": 100},
                    ],
                }
            ]
        }
    )


@pytest.mark.integration
def test_a_run_persists_and_the_next_tick_continues_where_it_left_off(backend: SqlBackend) -> None:
    [monitor] = _config().monitors
    assert evaluated_until(backend, monitor) is None
    first = run_monitor(
        backend, monitor, [window(0, error_rate=0.5), window(1, error_rate=0.5, p99=50)]
    )
    assert [(e.rule, e.state) for e in first.events] == [("errors", AlertState.FIRING)]
    assert first.deliveries == ()
    assert evaluated_until(backend, monitor) == T0 + timedelta(hours=1)
    # the same windows again (a cron tick that saw nothing new): nothing changes
    again = run_monitor(backend, monitor, [window(0, error_rate=0.5), window(1, error_rate=0.5)])
    assert again.events == ()
    assert len(backend.list_alert_events()) == 1
    # the next tick resolves it and fires p99
    time.sleep(0.005)  # stamps are milliseconds: keep the poll apart from the first run's
    last_poll = datetime.now(UTC)
    nxt = run_monitor(backend, monitor, [window(2, error_rate=0.0, p99=500)])
    assert [(e.rule, e.state) for e in nxt.events] == [
        ("errors", AlertState.RESOLVED),
        ("p99", AlertState.FIRING),
    ]
    progress = {p.rule: p for p in backend.get_alert_progress("churn")}
    assert progress["p99"].firing and not progress["errors"].firing
    assert [e.state for e in list_events(backend, model="churn", rule="errors")] == [
        AlertState.RESOLVED,
        AlertState.FIRING,
    ]
    assert [e.rule for e in list_events(backend, state="firing")] == ["p99", "errors"]
    # `since` is when events were recorded: a poller remembering its last poll sees the two
    # recorded after it, whatever windows they are about
    assert {(e.rule, e.state) for e in list_events(backend, since=last_poll)} == {
        ("errors", AlertState.RESOLVED),
        ("p99", AlertState.FIRING),
    }
    assert all(e.recorded_at is not None for e in list_events(backend))
    assert list_events(backend, since=datetime.now(UTC) + timedelta(seconds=1)) == []
    assert len(list_events(backend, limit=1)) == 1
    with pytest.raises(InvalidArgumentError, match="unknown alert state 'fired'"):
        list_events(backend, state="fired")


@pytest.mark.integration
def test_a_run_that_lost_the_race_records_nothing_twice(backend: SqlBackend) -> None:
    """Two runs read the same progress; the one that writes second records nothing."""
    [monitor] = _config().monitors
    windows = [window(0, error_rate=0.5), window(1, error_rate=0.5)]
    stale: dict[str, AlertProgress] = {}
    stale_events = evaluate(monitor.rules, "churn", windows, stale)
    assert run_monitor(backend, monitor, windows).events
    for rule_name, progress in stale.items():
        mine = [e for e in stale_events if e.rule == rule_name]
        assert not backend.record_alert_progress(progress, mine, expected_window_end=None)
    assert len(backend.list_alert_events()) == 1


@pytest.mark.integration
def test_list_events_defaults_to_the_current_workspace(home: Path) -> None:
    from shipyard.tracking.workspace import open_workspace

    [monitor] = _config().monitors
    backend = open_workspace().backend
    run_monitor(backend, monitor, [window(0, error_rate=0.5), window(1, error_rate=0.5)])
    [event] = list_events(model="churn")
    assert event.rule == "errors"


def test_importing_alerts_loads_no_heavy_library() -> None:
    code = (
        "import sys, shipyard.monitoring.alerts, shipyard.monitoring.webhooks, "
        "shipyard.monitoring.exporter\n"
        "heavy = ('prometheus_client', 'numpy', 'pandas', 'yaml', 'sqlalchemy', 'scipy')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT / "src"), "PATH": ""},
    )
    assert out.stdout.strip() == "[]"
