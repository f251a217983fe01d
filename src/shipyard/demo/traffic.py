"""Callers of the demo's model server: one row per request, then its true label as feedback.

Plain ``http.client`` over keep-alive connections, a few threads at a steady pace, so the
prediction log fills at a known rate and monitoring windows hold what the demo meant them to.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

__all__ = ["Traffic", "TrafficResult", "wait_until_ready"]


@dataclass(slots=True)
class TrafficResult:
    requests: int = 0
    failures: int = 0
    labelled: int = 0
    correct: int = 0

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.labelled if self.labelled else None


def wait_until_ready(host: str, port: int, timeout: float = 60.0) -> None:
    """Return once the server answers ``/v2/health/ready``; raise TimeoutError otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection(host, port, timeout=2)
            conn.request("GET", "/v2/health/ready")
            if conn.getresponse().status == 200:
                conn.close()
                return
            conn.close()
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"the model server on {host}:{port} did not become ready in {timeout:.0f} s")


class Traffic:
    """Send the rows of a table to ``/invocations`` and post their labels to ``/feedback``.

    Args:
        host, port: the model server.
        model: the served model name.
        features: the columns sent; ``target`` is the label posted as feedback.
        threads: concurrent callers.
    """

    def __init__(
        self,
        host: str,
        port: int,
        model: str,
        features: tuple[str, ...],
        target: str,
        *,
        threads: int = 4,
    ) -> None:
        self.host, self.port, self.model = host, port, model
        self.features, self.target, self.threads = features, target, threads

    def send(
        self,
        rows: pd.DataFrame,
        *,
        rate: float = 100.0,
        stop: threading.Event | None = None,
        on_request: Callable[[int], None] | None = None,
    ) -> TrafficResult:
        """Send every row (at about ``rate`` requests per second in all) until done or
        ``stop`` is set; each answer's label is posted as feedback right away."""
        result = TrafficResult()
        lock = threading.Lock()
        records = rows.to_dict("records")
        interval = self.threads / rate

        def caller(part: list[dict[str, Any]]) -> None:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
            next_at = time.monotonic()
            for record in part:
                if stop is not None and stop.is_set():
                    break
                next_at += interval
                outcome = self._one(conn, record)
                if outcome is None:  # a reset connection: open a fresh one, go on
                    conn.close()
                    conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
                with lock:
                    result.requests += 1
                    if outcome is None:
                        result.failures += 1
                    else:
                        result.labelled += 1
                        result.correct += outcome
                    count = result.requests
                if on_request is not None:
                    on_request(count)
                time.sleep(max(0.0, next_at - time.monotonic()))
            conn.close()

        workers = [
            threading.Thread(target=caller, args=(records[i :: self.threads],), daemon=True)
            for i in range(self.threads)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        return result

    def _one(self, conn: http.client.HTTPConnection, record: dict[str, Any]) -> int | None:
        request_id = uuid.uuid4().hex
        body = json.dumps(
            {
                "dataframe_split": {
                    "columns": list(self.features),
                    "data": [[_plain(record[c]) for c in self.features]],
                }
            }
        )
        try:
            conn.request(
                "POST",
                "/invocations",
                body=body,
                headers={"content-type": "application/json", "x-request-id": request_id},
            )
            response = conn.getresponse()
            answer = json.loads(response.read())
            if response.status != 200:
                return None
            label = _plain(record[self.target])
            conn.request(
                "POST",
                "/feedback",
                body=json.dumps({"request_id": request_id, "label": label, "row": 0}),
                headers={"content-type": "application/json"},
            )
            conn.getresponse().read()
        except (OSError, http.client.HTTPException, ValueError):
            return None
        predicted = answer.get("predictions", [None])[0]
        return int(predicted == label)


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value
