"""Send alert events to webhooks: one JSON POST per event, retried, never raising.

Only the standard library is used, so the monitoring runtime needs nothing new. Secrets stay
out of logs and out of the store: a webhook's URL and header values may reference environment
variables as ``${NAME}``, resolved just before sending; logs name a webhook by its ``name`` or
the host of its URL as written, and any resolved value that slips into an error message is
masked.

Example::

    hook = Webhook("https://hooks.example.com/alerts",
                   headers={"Authorization": "Bearer ${ALERTS_TOKEN}"})
    delivery = deliver(event, hook)       # a Delivery; failures are logged, not raised
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import random
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from shipyard.entities import AlertEvent, AlertState
from shipyard.errors import InvalidArgumentError

__all__ = [
    "PAYLOAD_SCHEMA",
    "Delivery",
    "Webhook",
    "check_template",
    "deliver",
    "deliver_all",
    "payload",
]

log = logging.getLogger(__name__)

PAYLOAD_SCHEMA = "shipyard.alert/v1"
"""The ``schema`` field of every payload; a new field keeps it, a changed one bumps it."""

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
_MAX_RETRY_AFTER_S = 60.0


class _MissingVariableError(Exception):
    """An environment variable a webhook references is not set (a configuration error)."""


@dataclass(frozen=True, slots=True)
class Webhook:
    """Where to POST alert events.

    ``url`` and the header values are templates: ``${NAME}`` is replaced by the environment
    variable ``NAME`` when sending, never earlier, so the resolved values are not kept.
    """

    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout: float = 5.0
    """Seconds to wait for each attempt."""
    name: str = ""
    """How logs and results call this webhook; by default the host of ``url``."""

    @property
    def label(self) -> str:
        """The name safe to log: ``name``, else scheme and host of the URL as written."""
        if self.name:
            return self.name
        parts = urllib.parse.urlsplit(self.url)
        return f"{parts.scheme}://{parts.hostname or '?'}"


@dataclass(frozen=True, slots=True)
class Delivery:
    """How sending one event to one webhook went."""

    event_id: str
    webhook: str
    """The webhook's :attr:`Webhook.label`."""
    delivered: bool
    attempts: int
    status: int | None = None
    """HTTP status of the last attempt, if one answered."""
    error: str = ""
    """Why it failed, without secrets."""


def check_template(text: str, where: str) -> None:
    """Reject a malformed ``${...}`` reference early (at parse time), naming ``where``."""
    stripped = _VAR.sub("", text)
    if "${" in stripped:
        raise InvalidArgumentError(
            f"{where}: a variable reference must look like ${{NAME}} (letters, digits, _)"
        )


def _resolve(template: str, secrets: list[str]) -> str:
    def value(match: re.Match[str]) -> str:
        found = os.environ.get(match.group(1))
        if found is None:
            raise _MissingVariableError(f"environment variable {match.group(1)} is not set")
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in found):
            # A trailing newline (a mounted secret file) would otherwise surface, value and
            # all, in http.client's "Invalid header value b'...'" error.
            raise _MissingVariableError(
                f"environment variable {match.group(1)} holds a control character "
                "(a trailing newline?); strip it"
            )
        if found:
            secrets.append(found)
        return found

    return _VAR.sub(value, template)


def _mask(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret, as written, escaped (repr) or URL-quoted, replaced."""
    forms = set()
    for secret in secrets:
        forms |= {
            secret,
            repr(secret)[1:-1],
            repr(secret.encode())[2:-1],
            urllib.parse.quote(secret, safe=""),
        }
    for form in sorted(forms - {""}, key=len, reverse=True):
        text = text.replace(form, "***")
    return text


def payload(event: AlertEvent) -> dict[str, Any]:
    """The JSON body sent for ``event``: its fields, the window, a one-line ``text``."""
    body = event.to_dict()
    body["schema"] = PAYLOAD_SCHEMA
    body["window"] = {"start": body["window_start"], "end": body["window_end"]}
    marker = "FIRING" if event.state is AlertState.FIRING else "RESOLVED"
    body["text"] = f"[{marker}] {event.model} {event.rule} ({event.severity}): {event.message}"
    return body


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # A redirect would turn the POST into a GET and could carry the headers (tokens) to
    # another host: treat it as a failed delivery instead.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _retry_after(error: urllib.error.HTTPError) -> float | None:
    raw = error.headers.get("Retry-After") if error.headers is not None else None
    try:
        return None if raw is None else min(max(float(raw), 0.0), _MAX_RETRY_AFTER_S)
    except ValueError:
        return None


def deliver(
    event: AlertEvent,
    webhook: Webhook,
    *,
    attempts: int = 4,
    backoff: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
) -> Delivery:
    """POST ``event`` to ``webhook``, retrying connection errors, timeouts, 408, 425, 429 and
    5xx with exponential backoff (``backoff``, twice that, …, with jitter; ``Retry-After`` is
    honoured up to a minute). Every attempt carries the same ``Idempotency-Key`` (the event
    id), so a receiver can drop a repeat whose first answer was lost.

    Never raises: a failure is logged (without secrets) and returned.
    """
    label = webhook.label
    secrets: list[str] = []
    try:
        url = _resolve(webhook.url, secrets)
        headers = {k: _resolve(v, secrets) for k, v in webhook.headers.items()}
    except _MissingVariableError as exc:
        log.warning("webhook %s: event %s not sent: %s", label, event.event_id, exc)
        return Delivery(event.event_id, label, False, 0, error=str(exc))
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        error = "the URL must start with http:// or https://"
        log.warning("webhook %s: event %s not sent: %s", label, event.event_id, error)
        return Delivery(event.event_id, label, False, 0, error=error)
    body = json.dumps(payload(event)).encode()
    opener = urllib.request.build_opener(_NoRedirects)
    status: int | None = None
    error = ""
    attempt = 0
    attempts = max(attempts, 1)
    for attempt in range(1, attempts + 1):
        request = urllib.request.Request(  # noqa: S310 - scheme checked above
            url,
            data=body,
            method="POST",
            headers={
                "User-Agent": "shipyard-alerts",
                **headers,
                "Content-Type": "application/json",
                "Idempotency-Key": event.event_id,
                "X-Shipyard-Delivery-Attempt": str(attempt),
            },
        )
        wait: float | None = None
        try:
            with opener.open(request, timeout=webhook.timeout) as response:
                response.read(65536)
                status = int(response.status)
            return Delivery(event.event_id, label, True, attempt, status=status)
        except urllib.error.HTTPError as exc:
            status = exc.code
            error = f"HTTP {exc.code}"
            retry = exc.code in _RETRY_STATUSES
            wait = _retry_after(exc)
            exc.close()
        except (OSError, http.client.HTTPException) as exc:  # refused, reset, timed out
            status = None
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            error = _mask(f"{type(reason).__name__}: {reason}", secrets)
            retry = True
        except Exception as exc:  # never into the evaluation loop
            status = None
            error = _mask(f"{type(exc).__name__}: {exc}", secrets)
            retry = False
        if not retry or attempt >= attempts:
            break
        log.info(
            "webhook %s: attempt %d for event %s failed (%s)", label, attempt, event.event_id, error
        )
        delay = backoff * 2 ** (attempt - 1) * (1 + random.random() / 4)  # noqa: S311 - jitter
        sleep(wait if wait is not None else delay)
    log.warning(
        "webhook %s: event %s not delivered after %d attempt(s): %s",
        label,
        event.event_id,
        attempt,
        error,
    )
    return Delivery(event.event_id, label, False, attempt, status=status, error=error)


def deliver_all(
    events: Sequence[AlertEvent],
    webhooks: Sequence[Webhook],
    *,
    attempts: int = 4,
    backoff: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Delivery]:
    """Send every event to every webhook, oldest event first; one :class:`Delivery` each."""
    ordered = sorted(events, key=lambda e: e.at)
    return [
        deliver(event, hook, attempts=attempts, backoff=backoff, sleep=sleep)
        for event in ordered
        for hook in webhooks
    ]
