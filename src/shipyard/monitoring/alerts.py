"""Alert rules over monitoring windows: ``monitors.yaml``, evaluation, events in the store.

Example ``monitors.yaml``::

    webhooks:                                   # every monitor's events go here
      - url: https://hooks.example.com/alerts
        headers: {Authorization: "Bearer ${ALERTS_TOKEN}"}
    monitors:
      - model: churn                            # the deployment (served model name)
        window: 1h
        reference: churn-train@3
        rules:
          - name: drift-share
            metric: drift.share                 # a name of WindowResult.metrics()
            op: ">"
            threshold: 0.3
            for: 2                              # consecutive windows
            severity: error

A rule is a small state machine per (model, rule): each window, in time order, either
satisfies ``metric op threshold`` (the count of consecutive windows grows; reaching ``for``
fires the alert once) or does not (the count drops to 0; a firing alert resolves). A window
without the metric (no labels yet, no drift report) neither fires nor resolves, nor resets the
count. Each window is evaluated once per rule: the store keeps, per (model, rule), the count,
whether it fires and the end of the newest window evaluated, so ``shipyard monitor run`` can
run on every cron tick, and running it twice on the same windows changes nothing.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.entities import AlertEvent, AlertRule, AlertState, Severity, WindowResult
from shipyard.errors import InvalidArgumentError, NotFoundError
from shipyard.monitoring.webhooks import Delivery, Webhook, check_template, deliver
from shipyard.store.backend import AlertProgress

if TYPE_CHECKING:
    from shipyard.store import Backend

__all__ = [
    "METRICS",
    "OPS",
    "Monitor",
    "MonitorConfig",
    "MonitorRun",
    "evaluate",
    "evaluated_until",
    "event_id",
    "is_known_metric",
    "list_events",
    "load_monitors",
    "parse_monitors",
    "run_monitor",
]

OPS = (">", ">=", "<", "<=")
METRICS = (
    "rows",
    "drift.share",
    "drift.drifted",
    "drift.column.<column>.distance",
    "drift.column.<column>.drifted",
    "drift.prediction.distance",
    "drift.prediction.drifted",
    "quality.errors",
    "quality.warnings",
    "performance.<metric>",
    "estimated.<metric>",
    "labels.rows",
    "labels.delay_p50_s",
    "health.requests",
    "health.request_rate",
    "health.error_rate",
    "health.latency_p50_ms",
    "health.latency_p95_ms",
    "health.latency_p99_ms",
)
"""The metric names a rule may watch (:meth:`WindowResult.metrics`); ``<…>`` is a name."""

_PLACEHOLDERS = {re.escape("<column>"): ".+", re.escape("<metric>"): r"[A-Za-z0-9_.\-]+"}


def _pattern(template: str) -> re.Pattern[str]:
    regex = re.escape(template)
    for placeholder, part in _PLACEHOLDERS.items():
        regex = regex.replace(placeholder, part)
    return re.compile(f"^{regex}$")


_PATTERNS = tuple(_pattern(m) for m in METRICS)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_TOP_KEYS = ("monitors", "webhooks")
_MONITOR_KEYS = ("description", "model", "reference", "rules", "webhooks", "window")
_RULE_KEYS = ("delay", "description", "for", "metric", "name", "op", "severity", "threshold")
_WEBHOOK_KEYS = ("headers", "name", "timeout", "url")


def is_known_metric(name: str) -> bool:
    """Whether ``name`` is in the flat metric vocabulary of :meth:`WindowResult.metrics`."""
    return any(p.match(name) for p in _PATTERNS)


@dataclass(frozen=True, slots=True)
class Monitor:
    """One entry of ``monitors.yaml``: a deployment, its window, reference and rules."""

    model: str
    window: timedelta
    rules: tuple[AlertRule, ...]
    reference: str | None = None
    """What drift is measured against (``churn-train@3``, ``churn@champion`` …), as written."""
    webhooks: tuple[Webhook, ...] = ()
    """The file's webhooks followed by the monitor's own."""
    description: str = ""


@dataclass(frozen=True, slots=True)
class MonitorConfig:
    """A parsed ``monitors.yaml``."""

    monitors: tuple[Monitor, ...]
    webhooks: tuple[Webhook, ...] = ()
    """Webhooks at the top of the file (already included in every monitor's)."""
    source: str = "monitors.yaml"

    @property
    def rules(self) -> tuple[AlertRule, ...]:
        """Every rule of every monitor (each knows its ``model``)."""
        return tuple(rule for monitor in self.monitors for rule in monitor.rules)


# parsing -------------------------------------------------------------------------------------


class _Where:
    """Builds the one-line error: file, monitor, rule, field."""

    def __init__(self, source: str, *parts: str) -> None:
        self.source = source
        self.parts = parts

    def at(self, part: str) -> _Where:
        return _Where(self.source, *self.parts, part)

    def error(self, problem: str) -> InvalidArgumentError:
        return InvalidArgumentError(f"{', '.join((self.source, *self.parts))}: {problem}")


def _mapping(value: Any, where: _Where, what: str, keys: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise where.error(f"{what} must be a mapping, not {value!r}")
    unknown = [str(k) for k in value if k not in keys]
    if unknown:
        raise where.error(f"unknown field {unknown[0]!r}; known: {', '.join(keys)}")
    return value


def _string(value: Any, where: _Where, name: str, *, pattern: re.Pattern[str] | None = None) -> str:
    if not isinstance(value, str) or not value.strip():
        raise where.error(f"field {name!r} must be a non-empty string, not {value!r}")
    if pattern is not None and not pattern.match(value):
        raise where.error(
            f"field {name!r} {value!r} must be letters, digits, '.', '_' or '-' "
            "(at most 128, starting with a letter or digit)"
        )
    return value


def _number(value: Any, where: _Where, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise where.error(f"field {name!r} must be a number, not {value!r}")
    return float(value)


def _duration(value: Any, where: _Where, name: str = "window", zero: bool = False) -> timedelta:
    match = _DURATION.match(value) if isinstance(value, str) else None
    if match is None or (int(match.group(1)) == 0 and not zero):
        raise where.error(
            f"field {name!r} must be a duration such as 30m, 1h or 1d (s, m, h, d, w), "
            f"not {value!r}"
        )
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def _webhooks(value: Any, where: _Where) -> tuple[Webhook, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise where.error(f"field 'webhooks' must be a list, not {value!r}")
    hooks = []
    for i, raw in enumerate(value, start=1):
        at = where.at(f"webhook {i}")
        if isinstance(raw, str):
            raw = {"url": raw}
        entry = _mapping(raw, at, "a webhook", _WEBHOOK_KEYS)
        url = _string(entry.get("url"), at, "url")
        check_template(url, f"{', '.join((at.source, *at.parts))}: field 'url'")
        if not url.startswith(("http://", "https://")):
            raise at.error("field 'url' must start with http:// or https://")
        headers = entry.get("headers") or {}
        if not isinstance(headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            # The value may hold a secret: never echo it.
            raise at.error("field 'headers' must map header names to strings")
        for key, template in headers.items():
            check_template(template, f"{', '.join((at.source, *at.parts))}: header {key!r}")
        timeout = _number(entry.get("timeout", 5.0), at, "timeout")
        if timeout <= 0:
            raise at.error(f"field 'timeout' must be > 0, not {timeout:g}")
        name = entry.get("name", "")
        if not isinstance(name, str):
            raise at.error(f"field 'name' must be a string, not {name!r}")
        hooks.append(Webhook(url, dict(headers), timeout, name))
    return tuple(hooks)


def _rule(raw: Any, monitor: _Where, index: int, model: str) -> AlertRule:
    where = monitor.at(f"rule {index}")
    entry = _mapping(raw, where, "a rule", _RULE_KEYS)
    name = _string(entry.get("name"), where, "name", pattern=_NAME)
    where = monitor.at(f"rule {index} ({name})")
    metric = _string(entry.get("metric"), where, "metric")
    if not is_known_metric(metric):
        raise where.error(f"field 'metric': unknown metric {metric!r}; known: {', '.join(METRICS)}")
    op = entry.get("op", ">")
    if op not in OPS:
        raise where.error(
            f"field 'op' must be one of {', '.join(OPS)} (quoted in YAML: op: \">\"), not {op!r}"
        )
    if "threshold" not in entry:
        raise where.error("field 'threshold' is required")
    threshold = _number(entry["threshold"], where, "threshold")
    for_windows = entry.get("for", 1)
    if isinstance(for_windows, bool) or not isinstance(for_windows, int) or for_windows < 1:
        raise where.error(
            f"field 'for' must be a whole number of windows >= 1, not {for_windows!r}"
        )
    severity = entry.get("severity", "warning")
    if severity not in tuple(Severity):
        known = ", ".join(s.value for s in Severity)
        raise where.error(f"field 'severity' must be one of {known}, not {severity!r}")
    description = entry.get("description", "")
    if not isinstance(description, str):
        raise where.error(f"field 'description' must be a string, not {description!r}")
    delay = _duration(entry.get("delay", "0s"), where, "delay", zero=True)
    return AlertRule(
        name=name,
        metric=metric,
        threshold=threshold,
        op=op,
        for_windows=for_windows,
        severity=Severity(severity),
        model=model,
        description=description,
        delay_seconds=delay.total_seconds(),
    )


def parse_monitors(document: Any, source: str = "monitors.yaml") -> MonitorConfig:
    """Check a parsed ``monitors.yaml`` document and build the :class:`MonitorConfig`.

    Raises:
        InvalidArgumentError: one line naming the file, the monitor, the rule and the field
            at fault (a header's value is never echoed: it may hold a secret).
    """
    top = _Where(source)
    doc = _mapping(document, top, "the file", _TOP_KEYS)
    shared = _webhooks(doc.get("webhooks"), top)
    monitors = doc.get("monitors")
    if not isinstance(monitors, list) or not monitors:
        raise top.error("field 'monitors' must be a non-empty list of monitors")
    parsed: list[Monitor] = []
    seen: dict[tuple[str, str], int] = {}
    for i, raw in enumerate(monitors, start=1):
        where = top.at(f"monitor {i}")
        entry = _mapping(raw, where, "a monitor", _MONITOR_KEYS)
        model = _string(entry.get("model"), where, "model", pattern=_NAME)
        where = top.at(f"monitor {i} ({model})")
        reference = entry.get("reference")
        if reference is not None:
            reference = _string(reference, where, "reference")
        description = entry.get("description", "")
        if not isinstance(description, str):
            raise where.error(f"field 'description' must be a string, not {description!r}")
        raw_rules = entry.get("rules")
        if not isinstance(raw_rules, list) or not raw_rules:
            raise where.error("field 'rules' must be a non-empty list of rules")
        rules = []
        for j, raw_rule in enumerate(raw_rules, start=1):
            rule = _rule(raw_rule, where, j, model)
            if (model, rule.name) in seen:
                raise where.at(f"rule {j} ({rule.name})").error(
                    f"field 'name': model {model!r} already has a rule {rule.name!r} "
                    f"(monitor {seen[(model, rule.name)]}); rule names are unique per model"
                )
            seen[(model, rule.name)] = i
            rules.append(rule)
        parsed.append(
            Monitor(
                model=model,
                window=_duration(entry.get("window", "1h"), where),
                rules=tuple(rules),
                reference=reference,
                webhooks=shared + _webhooks(entry.get("webhooks"), where),
                description=description,
            )
        )
    return MonitorConfig(tuple(parsed), shared, source)


def load_monitors(path: str | os.PathLike[str]) -> MonitorConfig:
    """Read and check a ``monitors.yaml``.

    Raises:
        NotFoundError: no such file.
        InvalidArgumentError: not YAML, or see :func:`parse_monitors`.
    """
    try:
        import yaml
    except ModuleNotFoundError as exc:  # pragma: no cover - depends on the environment
        raise InvalidArgumentError(
            "reading monitors.yaml needs PyYAML: pip install 'shipyard-mlops[monitoring]'"
        ) from exc
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotFoundError(f"no monitors file {file}") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidArgumentError(f"{file}: not valid YAML: {exc}") from exc
    return parse_monitors(document, str(file))


# evaluation ----------------------------------------------------------------------------------


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def event_id(model: str, rule: str, state: AlertState, window_end: datetime) -> str:
    """The stable id of an event: the same rule changing state at the same window end always
    gets the same id (it is also the webhooks' ``Idempotency-Key``)."""
    key = "\x1f".join((model, rule, AlertState(state).value, _utc(window_end).isoformat()))
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def _alert(
    rule: AlertRule, model: str, state: AlertState, window: WindowResult, value: float, count: int
) -> AlertEvent:
    if state is AlertState.FIRING:
        windows = "window" if count == 1 else f"{count} consecutive windows"
        message = f"{rule.metric} = {value:.4g} {rule.op} {rule.threshold:g} for {windows}"
    else:
        message = f"{rule.metric} = {value:.4g}, no longer {rule.op} {rule.threshold:g}"
    if rule.description:
        message = f"{rule.description}: {message}"
    end = _utc(window.end)
    return AlertEvent(
        event_id=event_id(model, rule.name, state, end),
        rule=rule.name,
        model=model,
        state=state,
        severity=rule.severity,
        metric=rule.metric,
        value=value,
        threshold=rule.threshold,
        at=end,
        window_start=_utc(window.start),
        window_end=end,
        message=message,
    )


def evaluate(
    rules: Sequence[AlertRule],
    model: str,
    windows: Sequence[WindowResult],
    state: MutableMapping[str, AlertProgress],
    *,
    now: datetime | None = None,
) -> list[AlertEvent]:
    """Run ``model``'s windows through its rules; return the events, oldest first.

    ``state`` maps a rule name to its progress so far and is updated in place. Windows are
    taken in order of their end; those ending at or before a rule's ``last_window_end`` are
    skipped (already evaluated), and so are windows that ended less than the rule's
    ``delay_seconds`` before ``now`` (default: the current time) — they are evaluated by a
    later pass, once their labels had time to arrive. Rules for another model are ignored.
    No I/O.
    """
    current = _utc(now) if now is not None else datetime.now(UTC)
    ordered = sorted(windows, key=lambda w: _utc(w.end))
    values = [(w, w.metrics()) for w in ordered]
    events: list[AlertEvent] = []
    for rule in rules:
        if rule.model not in (None, model):
            continue
        progress = state.get(rule.name) or AlertProgress(model, rule.name)
        settled = current - timedelta(seconds=rule.delay_seconds)
        for window, metrics in values:
            end = _utc(window.end)
            if progress.last_window_end is not None and end <= _utc(progress.last_window_end):
                continue
            if rule.delay_seconds and end > settled:
                break  # too young for this rule; later windows are younger still
            count, firing = progress.consecutive, progress.firing
            value = metrics.get(rule.metric)
            if value is None:
                pass  # no measurement: neither fires, resolves nor resets the count
            elif rule.holds(value):
                count += 1
                if not firing and count >= rule.for_windows:
                    firing = True
                    events.append(_alert(rule, model, AlertState.FIRING, window, value, count))
            else:
                count = 0
                if firing:
                    firing = False
                    events.append(_alert(rule, model, AlertState.RESOLVED, window, value, 0))
            progress = replace(progress, consecutive=count, firing=firing, last_window_end=end)
        state[rule.name] = progress
    events.sort(key=lambda e: e.at)
    return events


@dataclass(frozen=True, slots=True)
class MonitorRun:
    """What one evaluation of a monitor did."""

    model: str
    events: tuple[AlertEvent, ...]
    """Events recorded by this run, oldest first."""
    deliveries: tuple[Delivery, ...] = ()
    lost: tuple[str, ...] = ()
    """Rules another evaluator recorded first (their windows were not evaluated twice)."""


def evaluated_until(backend: Backend, monitor: Monitor) -> datetime | None:
    """The end of the newest window every rule of ``monitor`` has evaluated (None: some rule
    has evaluated nothing yet). Windows ending later are the ones worth computing."""
    progress = {p.rule: p for p in backend.get_alert_progress(monitor.model)}
    ends = [progress[r.name].last_window_end if r.name in progress else None for r in monitor.rules]
    if not ends or any(end is None for end in ends):
        return None
    return min(_utc(end) for end in ends if end is not None)


def run_monitor(
    backend: Backend,
    monitor: Monitor,
    windows: Sequence[WindowResult],
    *,
    send: bool = True,
    attempts: int = 4,
    backoff: float = 0.5,
    now: datetime | None = None,
) -> MonitorRun:
    """Evaluate ``windows`` of ``monitor.model`` against its rules, record the progress and
    events in the store, then POST the events to the monitor's webhooks.

    Each rule's progress and events are written in one transaction, and only over the progress
    this run read: a concurrent run on the same windows records nothing twice. Events still
    ``pending`` from an earlier pass (it crashed, or ran with ``send=False``) are sent first;
    ``failed`` ones are not retried. Webhook failures never raise; each event's delivery
    (``none`` without webhooks, ``pending`` when ``send`` is False, then ``delivered`` or
    ``failed``) is kept with the event.
    """
    stored = {p.rule: p for p in backend.get_alert_progress(monitor.model)}
    delivery = "pending" if monitor.webhooks else "none"
    # Events a crashed (or --no-send) pass recorded but never sent go out first.
    unsent = (
        backend.list_alert_events(model=monitor.model, delivery="pending", limit=1000)
        if send and monitor.webhooks
        else []
    )
    recorded: list[AlertEvent] = []
    lost: list[str] = []
    for rule in monitor.rules:
        before = stored.get(rule.name)
        state: dict[str, AlertProgress] = {} if before is None else {rule.name: before}
        events = evaluate([rule], monitor.model, windows, state, now=now)
        after = state[rule.name]
        previous = None if before is None else before.last_window_end
        if after.last_window_end == previous:
            continue  # no new window
        if backend.record_alert_progress(
            after, events, expected_window_end=previous, delivery=delivery
        ):
            recorded.extend(events)
        else:
            lost.append(rule.name)
    recorded.sort(key=lambda e: e.at)
    deliveries: list[Delivery] = []
    if send and monitor.webhooks:
        for event in [*sorted(unsent, key=lambda e: e.at), *recorded]:
            sent = [
                deliver(event, hook, attempts=attempts, backoff=backoff)
                for hook in monitor.webhooks
            ]
            deliveries.extend(sent)
            status = "delivered" if all(d.delivered for d in sent) else "failed"
            backend.set_alert_delivery(event.event_id, status, sum(d.attempts for d in sent))
    return MonitorRun(monitor.model, tuple(recorded), tuple(deliveries), tuple(lost))


def list_events(
    backend: Backend | None = None,
    *,
    model: str | None = None,
    rule: str | None = None,
    state: AlertState | str | None = None,
    since: datetime | None = None,
    limit: int = 100,
) -> list[AlertEvent]:
    """Alert events, newest first: what the CLI lists and what retraining can poll.

    Args:
        backend: the metadata store; by default the current workspace's.
        model: only this deployment's events.
        rule: only this rule's events.
        state: ``firing`` or ``resolved``.
        since: only events *recorded* at or after this time (a naive datetime is UTC), so a
            poller passing the time of its previous poll misses nothing — even an event about
            an older window that a late pass recorded. Poll with a small overlap and skip
            event ids already handled (ids are stable): a pass that was committing while
            you polled stamps its events slightly before your poll.
        limit: at most this many.

    Example:
        >>> fired = list_events(model="churn", state="firing", since=last_poll)  # doctest: +SKIP
        >>> for event in fired:  # doctest: +SKIP
        ...     if event.event_id not in handled:  # doctest: +SKIP
        ...         trigger_retraining(event.model, reason=event.message)
    """
    if backend is None:
        from shipyard.tracking.workspace import open_workspace

        backend = open_workspace().backend
    if state is not None:
        try:
            state = AlertState(state)
        except ValueError:
            raise InvalidArgumentError(
                f"unknown alert state {state!r}; known: firing, resolved"
            ) from None
    return backend.list_alert_events(model=model, rule=rule, state=state, since=since, limit=limit)
