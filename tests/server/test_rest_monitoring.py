"""Monitoring alerts through a real `shipyard server`: each alert method of `RestBackend` gives
what the SQL store gives (results, compare-and-set, errors, exact times), the roles hold, and
`shipyard monitor run` with ``SHIPYARD_SERVER`` records its events in the server's store."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from shipyard.config import init_workspace
from shipyard.entities import AlertEvent, AlertState, Role, Severity
from shipyard.errors import ConflictError, InvalidArgumentError, PermissionDeniedError
from shipyard.monitoring.alerts import event_id, list_events
from shipyard.registry import Registry
from shipyard.registry.tokens import issue_token
from shipyard.store import Backend, open_backend
from shipyard.store.backend import AlertProgress
from shipyard.store.rest import RestBackend
from shipyard.tracking import open_workspace
from tests._cli import run_shipyard
from tests._served import Served
from tests.monitoring._logs import spread, write_predictions

pytestmark = pytest.mark.integration

HOUR = timedelta(hours=1)
T0 = datetime(2026, 12, 1, 9, 0, 0, 123_000, tzinfo=UTC)
"""Milliseconds, as the store keeps them: what goes in comes back equal."""
PLUS_TWO = timezone(timedelta(hours=2))


@dataclass
class Clients:
    served: Served
    store: Backend
    """The server's own store, read directly."""
    member: RestBackend
    viewer: RestBackend


@pytest.fixture
def clients(home: Path) -> Iterator[Clients]:
    """The `home` workspace served with authentication; a member's and a viewer's client."""
    init_workspace(home.parent)
    store = open_workspace(home).backend
    Registry(store, "alice").bootstrap_admin()
    store.set_user("mo", Role.MEMBER, actor="alice")
    store.set_user("vic", Role.VIEWER, actor="alice")
    tokens = {user: issue_token(store, user)[1] for user in ("mo", "vic")}
    with Served(home, auth=True) as served:
        member = RestBackend(served.url, token=tokens["mo"])
        viewer = RestBackend(served.url, token=tokens["vic"])
        try:
            yield Clients(served, store, member, viewer)
        finally:
            member.close()
            viewer.close()


def _event(
    rule: str, state: AlertState, hour: int, value: float | None = 0.5, model: str = "churn"
) -> AlertEvent:
    end = T0 + hour * HOUR
    return AlertEvent(
        event_id=event_id(model, rule, state, end),
        rule=rule,
        model=model,
        state=state,
        severity=Severity.ERROR if rule == "drift" else Severity.INFO,
        metric="drift.share" if rule == "drift" else "drift.column.plan kind é.distance",
        value=value,
        threshold=0.3,
        at=end,
        window_start=end - HOUR,
        window_end=end,
        message=f"{rule}: {value} > 0.3 — for 2 windows",
    )


def _outcome(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except Exception as exc:  # the kind and words of an error are part of the contract
        return (type(exc).__name__, str(exc))


def _progress(found: list[AlertProgress]) -> list[AlertProgress]:
    """Progress without the store's write time (checked apart: it is the server's clock)."""
    for p in found:
        assert p.updated is not None and p.updated.utcoffset() == timedelta(0)
    return [replace(p, updated=None) for p in found]


def _scenario(b: Backend) -> list[Any]:
    """Every alert method, with filters, lost races and mistakes: what each call answered."""
    seen: list[Any] = [b.get_alert_progress()]
    drift1 = AlertProgress("churn", "drift", 2, True, T0 + HOUR)
    fired = [_event("drift", AlertState.FIRING, 1)]
    seen.append(
        b.record_alert_progress(drift1, fired, expected_window_end=None, delivery="pending")
    )
    # a second evaluator that read the same (empty) progress loses, and records nothing
    seen.append(b.record_alert_progress(drift1, fired, expected_window_end=None))
    seen.append(_outcome(lambda: b.record_alert_progress(drift1, [], expected_window_end=None,
                                                         delivery="sent")))  # fmt: skip
    # windows evaluated later: naive (UTC) and +02:00 times are the same instants
    time.sleep(0.005)
    plan = AlertProgress("churn", "plan", 1, True, (T0 + 2 * HOUR).astimezone(PLUS_TWO))
    plan_events = [_event("plan", AlertState.FIRING, 2, value=float("nan"))]
    seen.append(b.record_alert_progress(plan, plan_events, expected_window_end=None))
    other = AlertProgress("fraud", "drift", 0, False, (T0 + HOUR).replace(tzinfo=None))
    seen.append(b.record_alert_progress(other, [], expected_window_end=None))
    time.sleep(0.005)  # recording stamps are milliseconds: keep this pass apart
    since = max(e.recorded_at for e in b.list_alert_events() if e.recorded_at is not None)
    time.sleep(0.005)
    drift2 = replace(drift1, consecutive=0, firing=False, last_window_end=T0 + 3 * HOUR)
    resolved = [_event("drift", AlertState.RESOLVED, 3, value=0.1)]
    seen.append(b.record_alert_progress(drift2, resolved, expected_window_end=T0 + 2 * HOUR))
    seen.append(b.record_alert_progress(drift2, resolved, expected_window_end=T0 + HOUR))
    seen.append(_progress(b.get_alert_progress()))
    seen.append(_progress(b.get_alert_progress("churn")))
    seen.append(b.get_alert_progress("nobody"))
    for query in (
        {},
        {"model": "churn"},
        {"model": "churn", "rule": "drift"},
        {"state": AlertState.FIRING},
        {"state": AlertState.RESOLVED, "model": "fraud"},
        {"since": since},
        {"since": since.astimezone(PLUS_TWO)},
        {"since": datetime.now(UTC) + timedelta(seconds=5)},
        {"delivery": "pending"},
        {"delivery": "none"},
        {"limit": 1},
        {"limit": 0},
        {"delivery": "sent"},
    ):
        seen.append((sorted(query), _outcome(lambda q=query: b.list_alert_events(**q))))
    seen.append(b.set_alert_delivery(fired[0].event_id, "delivered", 3))
    seen.append(b.list_alert_events(delivery="delivered"))
    seen.append(b.list_alert_events(delivery="pending"))
    seen.append(_outcome(lambda: b.set_alert_delivery("f" * 32, "failed", 1)))
    seen.append(_outcome(lambda: b.set_alert_delivery(fired[0].event_id, "sent", 1)))
    return seen


def test_every_alert_method_answers_as_the_sql_store_does(clients: Clients, tmp_path: Path) -> None:
    reference = open_backend(f"sqlite:///{tmp_path / 'reference.db'}")
    try:
        expected = _scenario(reference)
    finally:
        reference.close()
    through_server = _scenario(clients.member)
    assert through_server == expected
    # and what the server stored reads the same directly
    assert clients.member.list_alert_events() == clients.store.list_alert_events()
    assert _progress(clients.member.get_alert_progress()) == _progress(
        clients.store.get_alert_progress()
    )


def test_what_goes_in_comes_back_equal_with_utc_times(clients: Clients) -> None:
    events = [
        _event("drift", AlertState.FIRING, 1, value=0.123456789012345),
        replace(
            _event("drift", AlertState.RESOLVED, 2, value=None),
            at=(T0 + 2 * HOUR).astimezone(PLUS_TWO),
            window_start=None,
            message="",
        ),
    ]
    progress = AlertProgress("churn", "drift", 7, False, T0 + 2 * HOUR)
    before = datetime.now(UTC)
    assert clients.member.record_alert_progress(progress, events, expected_window_end=None)
    back = clients.member.list_alert_events()
    assert back == events[::-1]  # newest first
    for event in back:
        assert event.at.utcoffset() == timedelta(0)
        assert event.recorded_at is not None
        assert before - timedelta(seconds=1) <= event.recorded_at <= datetime.now(UTC)
        assert event.window_end is not None and event.window_end.tzinfo is not None
    [stored] = clients.member.get_alert_progress("churn")
    assert replace(stored, updated=None) == progress
    assert stored.last_window_end is not None and stored.last_window_end.utcoffset() == timedelta(0)
    # the exact recording time works as an inclusive `since`, as locally
    newest = max(e.recorded_at for e in back if e.recorded_at is not None)
    assert clients.member.list_alert_events(since=newest) == clients.store.list_alert_events(
        since=newest
    )
    assert len(clients.member.list_alert_events(since=newest)) == 2
    # on the wire, a lost race is a 409 (which the client answers as False)
    body = {"progress": {"model": "churn", "rule": "drift"}, "expected_window_end": None}
    with pytest.raises(ConflictError, match="another evaluator recorded these windows first"):
        clients.member._api("POST", "/alerts/progress", json=body)


def test_viewers_read_members_write(clients: Clients) -> None:
    progress = AlertProgress("churn", "drift", 1, True, T0 + HOUR)
    fired = [_event("drift", AlertState.FIRING, 1)]
    with pytest.raises(PermissionDeniedError, match="needs the member role"):
        clients.viewer.record_alert_progress(progress, fired, expected_window_end=None)
    assert clients.store.list_alert_events() == []
    assert clients.member.record_alert_progress(progress, fired, expected_window_end=None)
    assert clients.viewer.list_alert_events() == fired
    assert _progress(clients.viewer.get_alert_progress()) == [progress]
    with pytest.raises(PermissionDeniedError):
        clients.viewer.set_alert_delivery(fired[0].event_id, "delivered", 1)


def test_the_server_refuses_what_the_store_could_not_keep(clients: Clients) -> None:
    progress = AlertProgress("churn", "drift", 1, True, T0 + HOUR)
    cases: list[tuple[AlertProgress, list[AlertEvent], str]] = [
        (progress, [_event("plan", AlertState.FIRING, 1)], "not of the progress' rule"),
        (progress, [replace(_event("drift", AlertState.FIRING, 1), threshold=float("inf"))],
         "threshold"),
        (replace(progress, last_window_end=datetime(9999, 12, 31, 23, tzinfo=UTC)), [],
         "last_window_end"),
        (replace(progress, model="bad model/name"), [], "progress.model"),
        (progress, [replace(_event("drift", AlertState.FIRING, 1), message="a\x00b")],
         "message"),
    ]  # fmt: skip
    for bad_progress, events, field in cases:
        with pytest.raises(InvalidArgumentError, match=field):
            clients.member.record_alert_progress(bad_progress, events, expected_window_end=None)
    assert clients.store.list_alert_events() == [] and clients.store.get_alert_progress() == []


# one real path: `shipyard monitor run` and `shipyard monitor events` through the server ----


@dataclass
class Receiver:
    url: str
    bodies: list[dict[str, Any]]


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    """A webhook receiver on 127.0.0.1 that answers 200 and keeps each body."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    bodies: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            bodies.append(json.loads(self.rfile.read(length)))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield Receiver(f"http://127.0.0.1:{server.server_address[1]}/alerts", bodies)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def laptop(clients: Clients, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A client workspace of its own whose store is the server (``SHIPYARD_SERVER``)."""
    token = issue_token(clients.store, "mo")[1]
    client = tmp_path / "laptop" / ".shipyard"
    init_workspace(client.parent)
    for name in ("SHIPYARD_STORE_URL", "SHIPYARD_ARTIFACTS_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SHIPYARD_HOME", str(client))
    monkeypatch.setenv("SHIPYARD_SERVER", clients.served.url)
    monkeypatch.setenv("SHIPYARD_TOKEN", token)
    monkeypatch.chdir(client.parent)
    yield client


def test_monitor_run_through_the_server_records_and_lists_events(
    clients: Clients, laptop: Path, receiver: Receiver
) -> None:
    from shipyard.data.versions import add

    rng = np.random.default_rng(3)

    def customers(shift: float) -> pd.DataFrame:
        return pd.DataFrame(
            {"age": rng.normal(40 + shift, 10, 300), "income": rng.normal(50, 5, 300)}
        )

    add(customers(0.0), "customers")  # the reference, stored through the server
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - 3 * HOUR
    for hour, shift in ((0, 0.0), (1, 15.0)):  # the second hour's ages drifted
        inputs = customers(shift)
        write_predictions(
            laptop, "churn", inputs, timestamps=spread(start + hour * HOUR, 300, HOUR),
            predictions=(inputs["age"] > 45).astype(int).tolist(),
        )  # fmt: skip
    config = laptop.parent / "monitors.yaml"
    config.write_text(
        f"webhooks: ['{receiver.url}']\n"
        "monitors:\n"
        "  - model: churn\n    window: 1h\n    reference: customers@1\n"
        "    rules:\n      - {name: age-drift, metric: drift.column.age.distance, threshold: 0.2,"
        " severity: error}\n"
    )
    done = run_shipyard("monitor", "run", "--config", str(config))
    assert done.returncode == 0, done.stderr
    assert "FIRING" in done.stdout and "age-drift" in done.stdout

    # the events are in the server's store, delivered, and read back through the server
    [fired] = clients.store.list_alert_events(model="churn")
    assert (fired.rule, fired.state, fired.severity) == ("age-drift", "firing", "error")
    assert fired.window_start == start + HOUR and fired.at == start + 2 * HOUR
    assert clients.store.list_alert_events(delivery="delivered") == [fired]
    assert [b["event_id"] for b in receiver.bodies] == [fired.event_id]
    assert list_events(model="churn") == [fired]  # the Python API, through SHIPYARD_SERVER
    assert isinstance(open_workspace().backend, RestBackend)
    [progress] = clients.store.get_alert_progress("churn")
    assert progress.last_window_end is not None and progress.last_window_end >= fired.at

    listed = run_shipyard("monitor", "events", "--model", "churn", "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == [fired.to_dict()]
