"""Webhooks for real: a stdlib HTTP receiver on 127.0.0.1 records what arrives."""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import sqlalchemy as sa

from shipyard.entities import AlertEvent, AlertState, ServiceHealth, Severity, WindowResult
from shipyard.monitoring.alerts import parse_monitors, run_monitor
from shipyard.monitoring.webhooks import PAYLOAD_SCHEMA, Webhook, deliver, deliver_all, payload
from shipyard.store.sql import SqlBackend

pytestmark = pytest.mark.integration

T0 = datetime(2026, 12, 1, tzinfo=UTC)
SECRET = "tok-9f8e7d6c5b4a-very-secret"  # noqa: S105 - a fake the tests look for
PATH_SECRET = "T000-B000-pathsecret"  # noqa: S105


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class Receiver:
    """Answers each POST with the next status of ``statuses`` (then 200) and records it."""

    port: int
    requests: list[Received] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    redirect_to: str = ""
    retry_after: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    state = Receiver(port=0)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length))
            with lock:
                state.requests.append(Received(self.path, dict(self.headers.items()), body))
                status = state.statuses.pop(0) if state.statuses else 200
            self.send_response(status)
            if 300 <= status < 400:
                self.send_header("Location", state.redirect_to)
            if status == 429 and state.retry_after:
                self.send_header("Retry-After", state.retry_after)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _event(state: AlertState = AlertState.FIRING) -> AlertEvent:
    return AlertEvent(
        event_id="0123456789abcdef0123456789abcdef",
        rule="errors",
        model="churn",
        state=state,
        severity=Severity.ERROR,
        metric="health.error_rate",
        value=0.25,
        threshold=0.1,
        at=T0,
        window_start=T0 - timedelta(hours=1),
        window_end=T0,
        message="health.error_rate = 0.25 > 0.1 for window",
    )


def _window(hour: int, error_rate: float) -> WindowResult:
    end = T0 + timedelta(hours=hour)
    health = ServiceHealth(100, round(error_rate * 100), 0.03, 1.0, 2.0, 3.0)
    return WindowResult(start=end - timedelta(hours=1), end=end, rows=100, health=health)


def _no_sleep(_seconds: float) -> None:
    pass


def test_payload_is_strict_json_with_the_event_and_its_window() -> None:
    body = payload(_event())
    assert json.loads(json.dumps(body, allow_nan=False)) == body
    assert body["schema"] == PAYLOAD_SCHEMA
    assert body["event_id"] == "0123456789abcdef0123456789abcdef"
    assert (body["rule"], body["model"], body["state"], body["severity"]) == (
        "errors",
        "churn",
        "firing",
        "error",
    )
    assert (body["metric"], body["value"], body["threshold"]) == ("health.error_rate", 0.25, 0.1)
    assert body["window"] == {
        "start": "2026-11-30T23:00:00+00:00",
        "end": "2026-12-01T00:00:00+00:00",
    }
    assert body["text"].startswith("[FIRING] churn errors (error): health.error_rate")


def test_firing_and_resolving_events_arrive_with_bodies_and_headers(
    receiver: Receiver, backend: SqlBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALERTS_TOKEN", SECRET)
    monkeypatch.setenv("HOOK_PATH", PATH_SECRET)
    config = parse_monitors(
        {
            "webhooks": [
                {
                    "url": receiver.url + "/hooks/${HOOK_PATH}",
                    "headers": {"Authorization": "Bearer ${ALERTS_TOKEN}", "X-Team": "ml"},
                }
            ],
            "monitors": [
                {
                    "model": "churn",
                    "rules": [
                        {
                            "name": "errors",
                            "metric": "health.error_rate",
                            "threshold": 0.1,
                            "for": 2,
                            "severity": "error",
                        }
                    ],
                }
            ],
        }
    )
    [monitor] = config.monitors
    rates = [0.5, 0.5, 0.0]
    run = run_monitor(backend, monitor, [_window(i, r) for i, r in enumerate(rates)], backoff=0)
    assert [e.state for e in run.events] == [AlertState.FIRING, AlertState.RESOLVED]
    assert [d.delivered for d in run.deliveries] == [True, True]
    assert [r.body["state"] for r in receiver.requests] == ["firing", "resolved"]
    for request, event in zip(receiver.requests, run.events, strict=True):
        assert request.path == f"/hooks/{PATH_SECRET}"
        assert request.headers["Authorization"] == f"Bearer {SECRET}"
        assert request.headers["X-Team"] == "ml"
        assert request.headers["Content-Type"] == "application/json"
        assert request.headers["Idempotency-Key"] == event.event_id
        assert request.body == payload(event)
        assert request.body["value"] == event.value
        assert request.body["window"]["end"] == event.window_end.isoformat()  # type: ignore[union-attr]
    fired = receiver.requests[0].body
    assert (fired["rule"], fired["model"], fired["threshold"], fired["value"]) == (
        "errors",
        "churn",
        0.1,
        0.5,
    )
    assert len(backend.list_alert_events(delivery="delivered")) == 2
    # a second run on the same windows sends nothing again
    again = run_monitor(backend, monitor, [_window(i, r) for i, r in enumerate(rates)])
    assert again.deliveries == ()
    assert len(receiver.requests) == 2


def test_a_receiver_that_fails_twice_gets_the_event_on_the_third_attempt(
    receiver: Receiver,
) -> None:
    receiver.statuses = [503, 500]
    waits: list[float] = []
    delivery = deliver(_event(), Webhook(receiver.url + "/a"), backoff=0.5, sleep=waits.append)
    assert delivery.delivered
    assert (delivery.attempts, delivery.status, delivery.error) == (3, 200, "")
    assert len(receiver.requests) == 3
    keys = {r.headers["Idempotency-Key"] for r in receiver.requests}
    assert keys == {_event().event_id}
    assert [r.headers["X-Shipyard-Delivery-Attempt"] for r in receiver.requests] == ["1", "2", "3"]
    assert all(r.body == payload(_event()) for r in receiver.requests)
    # exponential backoff with a little jitter
    assert len(waits) == 2
    assert 0.5 <= waits[0] <= 0.5 * 1.25
    assert 1.0 <= waits[1] <= 1.0 * 1.25


def test_retry_after_is_honoured(receiver: Receiver) -> None:
    receiver.statuses = [429, 429, 429]
    receiver.retry_after = "7"
    waits: list[float] = []
    delivery = deliver(_event(), Webhook(receiver.url), attempts=2, sleep=waits.append)
    assert not delivery.delivered and delivery.status == 429 and delivery.attempts == 2
    assert waits == [7.0]
    receiver.statuses = [429]
    receiver.retry_after = "soon"  # not a number of seconds: the computed backoff instead
    waits.clear()
    delivery = deliver(_event(), Webhook(receiver.url), backoff=0.25, sleep=waits.append)
    assert delivery.delivered and delivery.attempts == 2
    assert len(waits) == 1 and 0.25 <= waits[0] <= 0.25 * 1.25


def test_a_client_error_is_not_retried_and_never_raises(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.statuses = [400]
    with caplog.at_level(logging.INFO, logger="shipyard.monitoring.webhooks"):
        delivery = deliver(_event(), Webhook(receiver.url), sleep=_no_sleep)
    assert not delivery.delivered
    assert (delivery.attempts, delivery.status, delivery.error) == (1, 400, "HTTP 400")
    assert len(receiver.requests) == 1
    assert "not delivered after 1 attempt(s): HTTP 400" in caplog.text


def test_redirects_are_not_followed(receiver: Receiver) -> None:
    receiver.statuses = [302]
    receiver.redirect_to = receiver.url + "/elsewhere"
    delivery = deliver(_event(), Webhook(receiver.url + "/first"), sleep=_no_sleep)
    assert not delivery.delivered and delivery.status == 302
    assert [r.path for r in receiver.requests] == ["/first"]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_receiver_fails_after_every_attempt(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    hook = Webhook(f"http://127.0.0.1:{_closed_port()}/x", name="down")
    [delivery] = deliver_all([_event()], [hook], attempts=3, sleep=_no_sleep)
    assert not delivery.delivered
    assert (delivery.webhook, delivery.attempts, delivery.status) == ("down", 3, None)
    assert "Connection" in delivery.error or "refused" in delivery.error.lower()


def test_secrets_never_reach_logs_or_the_store(
    receiver: Receiver,
    backend: SqlBackend,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("ALERTS_TOKEN", SECRET)
    monkeypatch.setenv("HOOK_PATH", PATH_SECRET)
    receiver.statuses = [500] * 10
    config = parse_monitors(
        {
            "monitors": [
                {
                    "model": "churn",
                    "rules": [{"name": "errors", "metric": "health.error_rate", "threshold": 0.1}],
                    "webhooks": [
                        {
                            "url": receiver.url + "/${HOOK_PATH}",
                            "headers": {"Authorization": "Bearer ${ALERTS_TOKEN}"},
                        },
                        {
                            "url": f"http://127.0.0.1:{_closed_port()}/${{HOOK_PATH}}",
                            "headers": {"Authorization": "Bearer ${ALERTS_TOKEN}"},
                        },
                        {"url": receiver.url, "headers": {"X-Key": "${UNSET_TOKEN_VAR}"}},
                    ],
                }
            ]
        }
    )
    [monitor] = config.monitors
    with caplog.at_level(logging.DEBUG):
        run = run_monitor(backend, monitor, [_window(0, 0.5)], attempts=2, backoff=0)
    [event] = run.events
    assert [d.delivered for d in run.deliveries] == [False, False, False]
    assert run.deliveries[2].error == "environment variable UNSET_TOKEN_VAR is not set"
    assert run.deliveries[2].attempts == 0
    assert len(receiver.requests) == 2  # the two attempts of the first webhook only
    assert receiver.requests[0].headers["Authorization"] == f"Bearer {SECRET}"
    # the failure is on record with the event
    assert backend.list_alert_events(delivery="failed") == [event]
    assert "not delivered" in caplog.text
    assert "UNSET_TOKEN_VAR is not set" in caplog.text
    for secret in (SECRET, PATH_SECRET):
        assert secret not in caplog.text
        assert all(secret not in str(d) for d in run.deliveries)
    # nothing in any table of the store holds a secret
    with backend.engine.connect() as conn:
        for table in sa.inspect(conn).get_table_names():
            for row in conn.execute(sa.text(f'SELECT * FROM "{table}"')):  # noqa: S608
                text = " ".join(str(value) for value in row)
                assert SECRET not in text and PATH_SECRET not in text, table


def test_a_secret_with_a_trailing_newline_is_refused_without_echoing_it(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """http.client would put the value (repr'd) into its error; we refuse it by name."""
    monkeypatch.setenv("ALERTS_TOKEN", SECRET + "\n")
    hook = Webhook(receiver.url, headers={"Authorization": "Bearer ${ALERTS_TOKEN}"})
    with caplog.at_level(logging.DEBUG):
        delivery = deliver(_event(), hook, attempts=2, backoff=0)
    assert not delivery.delivered and delivery.attempts == 0
    assert "ALERTS_TOKEN" in delivery.error and "control character" in delivery.error
    assert SECRET not in delivery.error and SECRET not in caplog.text
    assert receiver.requests == []


def test_masking_covers_escaped_and_quoted_forms() -> None:
    from shipyard.monitoring.webhooks import _mask

    secret = "a b\tc/é"  # noqa: S105 - a fake the test looks for
    text = f"raw {secret} repr {secret!r} bytes {secret.encode()!r} url a%20b%09c%2F%C3%A9"
    masked = _mask(text, [secret])
    assert "b\tc" not in masked and "b\\tc" not in masked and "%09" not in masked
    assert masked.count("***") == 4


def test_events_left_pending_are_sent_by_the_next_pass(
    receiver: Receiver, backend: SqlBackend
) -> None:
    """A pass that crashed after recording (here: --no-send) leaves events pending; the next
    pass sends them before anything new, once."""
    config = parse_monitors(
        {
            "monitors": [
                {
                    "model": "churn",
                    "rules": [{"name": "errors", "metric": "health.error_rate", "threshold": 0.1}],
                    "webhooks": [receiver.url],
                }
            ]
        }
    )
    [monitor] = config.monitors
    quiet = run_monitor(backend, monitor, [_window(0, 0.5)], send=False)
    [event] = quiet.events
    assert receiver.requests == []
    assert backend.list_alert_events(delivery="pending") == [event]
    later = run_monitor(backend, monitor, [_window(0, 0.5)], backoff=0)
    assert later.events == ()
    assert [d.event_id for d in later.deliveries] == [event.event_id]
    assert [r.body["event_id"] for r in receiver.requests] == [event.event_id]
    assert backend.list_alert_events(delivery="delivered") == [event]
    run_monitor(backend, monitor, [_window(0, 0.5)], backoff=0)
    assert len(receiver.requests) == 1
