"""``automation.yaml``: what retrains a model, and what a new version must pass to replace it.

Example::

    automations:
      - name: retrain-churn
        pipeline: pipelines/train.py:train       # FILE.py:NAME, relative to this file
        params: {trials: 6}
        model: churn                             # the model the pipeline registers
        triggers:
          - schedule: "0 3 * * *"                # cron, UTC
          - dataset: customers                   # a new version of a dataset
            param: dataset                       # ... passed to the pipeline as this param
          - alert: {model: churn-prod, rule: drift-share}    # a firing alert event
          - performance: {model: churn-prod, metric: accuracy, below: 0.75, window: 1h}
        gate:                                    # `shipyard validate` against the champion
          data: customers-holdout@latest
          target: churned
          policy: gate.yaml
          sensitive: [gender]
        approval: review                         # or auto (a model that is not governed)
        rollout:
          deployment: churn-prod
          canary: {steps: [10, 50, 100], interval: 30s, min_requests: 100}
          # also: deadline, alpha, metric: accuracy, min_labels, errors: false,
          # prediction_psi: 0.1 (null: off), max_latency_increase: 20 (percent; null: off)
        limits: {max_rejections: 3, period: 1d, backoff: 15m}

Every error names the file and line and says what to write instead.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from shipyard.errors import InvalidArgumentError, NotFoundError

__all__ = [
    "AlertTrigger",
    "Automation",
    "AutomationPolicy",
    "DatasetTrigger",
    "Gate",
    "Limits",
    "PerformanceTrigger",
    "Rollout",
    "ScheduleTrigger",
    "Trigger",
    "load_policy",
    "parse_policy",
]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")
_PIPELINE = re.compile(r"^.+\.py:[A-Za-z_][A-Za-z0-9_]*$")
APPROVALS = ("auto", "review")


@dataclass(frozen=True, slots=True)
class ScheduleTrigger:
    """Fires at each time a 5-field cron expression (UTC) names."""

    name: str
    cron: str
    kind: str = "schedule"


@dataclass(frozen=True, slots=True)
class DatasetTrigger:
    """Fires for a new version of ``dataset``; ``param`` passes its ref to the pipeline."""

    name: str
    dataset: str
    param: str | None = None
    kind: str = "dataset"


@dataclass(frozen=True, slots=True)
class AlertTrigger:
    """Fires for each firing alert event of ``model`` (the deployment a monitor watches),
    of ``rule`` when given."""

    name: str
    model: str
    rule: str | None = None
    kind: str = "alert"


@dataclass(frozen=True, slots=True)
class PerformanceTrigger:
    """Fires when the newest complete monitoring window of ``model``'s traffic measures
    ``metric`` below ``below`` — from feedback labels when at least ``min_labels`` arrived,
    else (``estimated``) from the model's confidence (CBPE)."""

    name: str
    model: str
    metric: str
    below: float
    window: timedelta = timedelta(hours=1)
    min_labels: int = 50
    estimated: bool = True
    kind: str = "performance"


Trigger = ScheduleTrigger | DatasetTrigger | AlertTrigger | PerformanceTrigger


@dataclass(frozen=True, slots=True)
class Gate:
    """``shipyard validate CANDIDATE --data DATA --against MODEL@AGAINST --policy POLICY``."""

    data: str
    target: str = "target"
    policy: Path | None = None
    sensitive: tuple[str, ...] = ()
    slices: tuple[str, ...] = ()
    against: str = "champion"


@dataclass(frozen=True, slots=True)
class Rollout:
    """A canary on ``deployment`` (its spec as ``shipyard deploy canary`` takes it), or with
    no deployment: move the ``alias`` to the candidate."""

    deployment: str | None = None
    canary: dict[str, Any] = field(default_factory=dict)
    alias: str = "champion"


@dataclass(frozen=True, slots=True)
class Limits:
    """How a run of rejected candidates slows the automation down.

    After a rejected (or failed) candidate the next one waits ``backoff``, doubled for each
    further rejection in a row; once ``max_rejections`` were rejected within ``period``, new
    trigger events are skipped (recorded, with the reason) until the period has passed.
    """

    max_rejections: int = 3
    period: timedelta = timedelta(days=1)
    backoff: timedelta = timedelta(minutes=15)


@dataclass(frozen=True, slots=True)
class Automation:
    name: str
    pipeline: str
    """``/abs/path/file.py:name`` (made absolute from the policy file's folder)."""
    model: str
    triggers: tuple[Trigger, ...]
    params: dict[str, Any] = field(default_factory=dict)
    gate: Gate | None = None
    approval: str = "auto"
    rollout: Rollout = field(default_factory=Rollout)
    limits: Limits = field(default_factory=Limits)

    @property
    def pipeline_file(self) -> Path:
        return Path(self.pipeline.rsplit(":", 1)[0])


@dataclass(frozen=True, slots=True)
class AutomationPolicy:
    automations: tuple[Automation, ...]
    source: str = "automation.yaml"

    def get(self, name: str) -> Automation:
        for automation in self.automations:
            if automation.name == name:
                return automation
        known = ", ".join(a.name for a in self.automations)
        raise NotFoundError(f"{self.source} has no automation {name!r} (it has: {known})")


# YAML with line numbers ----------------------------------------------------------------------


class _Node:
    """A YAML value and the line it starts on."""

    def __init__(self, value: Any, line: int, where: str) -> None:
        self.value = value
        self.line = line
        self.where = where

    def error(self, source: str, problem: str) -> InvalidArgumentError:
        return InvalidArgumentError(f"{source}:{self.line}: {self.where}: {problem}")


def _convert(node: Any, where: str) -> _Node:
    import yaml

    line = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        mapping: dict[str, _Node] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            mapping[key] = _convert(value_node, f"{where}.{key}" if where else key)
        return _Node(mapping, line, where or "the document")
    if isinstance(node, yaml.SequenceNode):
        items = [_convert(item, f"{where}[{i}]") for i, item in enumerate(node.value)]
        return _Node(items, line, where)
    value = yaml.SafeLoader(" ").construct_object(node, deep=True)
    return _Node(value, line, where)


class _Reader:
    def __init__(self, source: str, base: Path) -> None:
        self.source = source
        self.base = base

    def mapping(self, node: _Node, keys: tuple[str, ...], what: str) -> dict[str, _Node]:
        if not isinstance(node.value, dict):
            raise node.error(self.source, f"{what} must be a mapping (key: value lines)")
        unknown = sorted(set(node.value) - set(keys))
        if unknown:
            bad = node.value[unknown[0]]
            raise bad.error(
                self.source, f"unknown key {unknown[0]!r} in {what}; known: {', '.join(keys)}"
            )
        return dict(node.value)

    def required(self, mapping: dict[str, _Node], key: str, parent: _Node) -> _Node:
        if key not in mapping:
            raise parent.error(self.source, f"{key!r} is required")
        return mapping[key]

    def string(self, node: _Node, *, pattern: re.Pattern[str] | None = None, hint: str = "") -> str:
        if not isinstance(node.value, str) or not node.value.strip():
            raise node.error(self.source, f"must be a non-empty string{hint}")
        if pattern is not None and not pattern.match(node.value):
            raise node.error(self.source, f"{node.value!r} is not valid{hint}")
        return node.value

    def strings(self, node: _Node) -> tuple[str, ...]:
        items = node.value if isinstance(node.value, list) else [node]
        return tuple(self.string(item) for item in items)

    def number(self, node: _Node, *, minimum: float | None = None) -> float:
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            raise node.error(self.source, f"must be a number, not {node.value!r}")
        if minimum is not None and node.value < minimum:
            raise node.error(self.source, f"must be at least {minimum:g}")
        return float(node.value)

    def integer(self, node: _Node, *, minimum: int = 0) -> int:
        if isinstance(node.value, bool) or not isinstance(node.value, int):
            raise node.error(self.source, f"must be a whole number, not {node.value!r}")
        if node.value < minimum:
            raise node.error(self.source, f"must be at least {minimum}")
        return node.value

    def boolean(self, node: _Node) -> bool:
        if not isinstance(node.value, bool):
            raise node.error(self.source, f"must be true or false, not {node.value!r}")
        return node.value

    def duration(self, node: _Node) -> timedelta:
        from shipyard.monitoring.windows import parse_window

        try:
            return parse_window(str(node.value))
        except InvalidArgumentError as exc:
            raise node.error(self.source, str(exc)) from None

    def path(self, node: _Node) -> Path:
        path = Path(self.string(node))
        return path if path.is_absolute() else self.base / path

    def plain(self, node: _Node) -> Any:
        if isinstance(node.value, dict):
            return {k: self.plain(v) for k, v in node.value.items()}
        if isinstance(node.value, list):
            return [self.plain(v) for v in node.value]
        return node.value


_TRIGGER_KINDS = ("schedule", "dataset", "alert", "performance")


def _trigger(r: _Reader, node: _Node, index: int) -> Trigger:
    keys = r.mapping(node, ("name", *_TRIGGER_KINDS, "param"), "a trigger")
    kinds = [k for k in _TRIGGER_KINDS if k in keys]
    if len(kinds) != 1:
        raise node.error(
            r.source, f"a trigger names exactly one of {', '.join(_TRIGGER_KINDS)} (found {kinds})"
        )
    kind = kinds[0]
    name = (
        r.string(keys["name"], pattern=_NAME, hint=" (letters, digits, . _ -)")
        if "name" in keys
        else (kind if index == 0 else f"{kind}-{index + 1}")
    )
    body = keys[kind]
    if "param" in keys and kind != "dataset":
        raise keys["param"].error(r.source, "only a dataset trigger passes a param")
    if kind == "schedule":
        from shipyard.deploy.service import next_cron

        cron = r.string(body)
        try:
            next_cron(cron, 0)
        except InvalidArgumentError:
            raise body.error(
                r.source,
                f'{cron!r} is not a 5-field cron expression (UTC), e.g. "0 3 * * *" for 03:00',
            ) from None
        return ScheduleTrigger(name, cron)
    if kind == "dataset":
        param = r.string(keys["param"]) if "param" in keys else None
        return DatasetTrigger(name, r.string(body), param)
    if kind == "alert":
        if isinstance(body.value, str):
            return AlertTrigger(name, r.string(body))
        fields = r.mapping(body, ("model", "rule"), "an alert trigger")
        rule = r.string(fields["rule"]) if "rule" in fields else None
        return AlertTrigger(name, r.string(r.required(fields, "model", body)), rule)
    fields = r.mapping(
        body,
        ("model", "metric", "below", "window", "min_labels", "estimated"),
        "a performance trigger",
    )
    return PerformanceTrigger(
        name,
        model=r.string(r.required(fields, "model", body)),
        metric=r.string(r.required(fields, "metric", body)),
        below=r.number(r.required(fields, "below", body)),
        window=r.duration(fields["window"]) if "window" in fields else timedelta(hours=1),
        min_labels=r.integer(fields["min_labels"], minimum=1) if "min_labels" in fields else 50,
        estimated=r.boolean(fields["estimated"]) if "estimated" in fields else True,
    )


def _gate(r: _Reader, node: _Node) -> Gate:
    keys = r.mapping(node, ("data", "target", "policy", "sensitive", "slices", "against"), "gate")
    policy = None
    if "policy" in keys:
        from shipyard.validation import load_policy

        policy = r.path(keys["policy"])
        try:
            load_policy(policy)
        except (InvalidArgumentError, NotFoundError) as exc:
            raise keys["policy"].error(r.source, str(exc)) from None
    return Gate(
        data=r.string(r.required(keys, "data", node)),
        target=r.string(keys["target"]) if "target" in keys else "target",
        policy=policy,
        sensitive=r.strings(keys["sensitive"]) if "sensitive" in keys else (),
        slices=r.strings(keys["slices"]) if "slices" in keys else (),
        against=r.string(keys["against"]) if "against" in keys else "champion",
    )


_CANARY_RULES = {
    "prediction_psi": "predictions_psi",
    "max_latency_increase": "latency_increase_pct",
}
_CANARY_KEYS = (
    "steps",
    "interval",
    "min_requests",
    "deadline",
    "alpha",
    "metric",
    "min_labels",
    "errors",
    *_CANARY_RULES,
)


def _rollout(r: _Reader, node: _Node) -> Rollout:
    from shipyard.deploy.analysis import CanarySpec

    keys = r.mapping(node, ("deployment", "canary", "alias"), "rollout")
    canary: dict[str, Any] = {}
    if "canary" in keys:
        raw = r.mapping(keys["canary"], _CANARY_KEYS, "canary")
        for key, value in raw.items():
            if key in ("interval", "deadline"):
                canary[f"{key}_s"] = r.duration(value).total_seconds()
            elif key == "steps":
                canary["steps"] = [r.number(v) for v in (value.value or [])]
            elif key in _CANARY_RULES:
                # A number sets the rule's threshold; null (or false) turns the rule off.
                off = value.value is None or value.value is False
                canary[_CANARY_RULES[key]] = None if off else r.number(value)
            elif key == "errors":
                canary["errors"] = r.boolean(value)
            else:
                canary[key] = r.plain(value)
        try:
            CanarySpec(**canary)
        except (InvalidArgumentError, TypeError) as exc:
            raise keys["canary"].error(r.source, str(exc)) from None
    if "canary" in keys and "deployment" not in keys:
        raise node.error(r.source, "a canary needs the 'deployment' it runs on")
    return Rollout(
        deployment=r.string(keys["deployment"]) if "deployment" in keys else None,
        canary=canary,
        alias=r.string(keys["alias"]) if "alias" in keys else "champion",
    )


def _limits(r: _Reader, node: _Node) -> Limits:
    keys = r.mapping(node, ("max_rejections", "period", "backoff"), "limits")
    defaults = Limits()
    return Limits(
        max_rejections=(
            r.integer(keys["max_rejections"], minimum=1)
            if "max_rejections" in keys
            else defaults.max_rejections
        ),
        period=r.duration(keys["period"]) if "period" in keys else defaults.period,
        backoff=r.duration(keys["backoff"]) if "backoff" in keys else defaults.backoff,
    )


_AUTOMATION_KEYS = (
    "name",
    "pipeline",
    "params",
    "model",
    "triggers",
    "gate",
    "approval",
    "rollout",
    "limits",
)


def _automation(r: _Reader, node: _Node) -> Automation:
    keys = r.mapping(node, _AUTOMATION_KEYS, "an automation")
    name = r.string(r.required(keys, "name", node), pattern=_NAME, hint=" (letters, digits, . _ -)")
    pipeline_node = r.required(keys, "pipeline", node)
    pipeline = r.string(pipeline_node, pattern=_PIPELINE, hint=": write FILE.py:NAME")
    file, function = pipeline.rsplit(":", 1)
    path = Path(file) if Path(file).is_absolute() else r.base / file
    if not path.is_file():
        raise pipeline_node.error(r.source, f"no pipeline file {path}")
    triggers_node = r.required(keys, "triggers", node)
    if not isinstance(triggers_node.value, list) or not triggers_node.value:
        raise triggers_node.error(r.source, "give a list of at least one trigger")
    triggers = tuple(_trigger(r, t, i) for i, t in enumerate(triggers_node.value))
    names = [t.name for t in triggers]
    if len(set(names)) != len(names):
        raise triggers_node.error(r.source, "two triggers have the same name: name them")
    params = r.plain(keys["params"]) if "params" in keys else {}
    if not isinstance(params, dict):
        raise keys["params"].error(r.source, "params must be a mapping of pipeline parameters")
    approval = "auto"
    if "approval" in keys:
        approval = r.string(keys["approval"])
        if approval not in APPROVALS:
            raise keys["approval"].error(
                r.source, f"approval is 'auto' or 'review' (a governed review), not {approval!r}"
            )
    from shipyard.registry.service import validate_model_name

    model_node = r.required(keys, "model", node)
    try:
        model = validate_model_name(r.string(model_node))
    except InvalidArgumentError as exc:
        raise model_node.error(r.source, str(exc)) from None
    return Automation(
        name=name,
        pipeline=f"{path.resolve()}:{function}",
        model=model,
        triggers=triggers,
        params=params,
        gate=_gate(r, keys["gate"]) if "gate" in keys else None,
        approval=approval,
        rollout=_rollout(r, keys["rollout"]) if "rollout" in keys else Rollout(),
        limits=_limits(r, keys["limits"]) if "limits" in keys else Limits(),
    )


def parse_policy(
    text: str, source: str = "automation.yaml", base: Path | None = None
) -> AutomationPolicy:
    """Parse and check the text of an ``automation.yaml``.

    Args:
        text: the YAML.
        source: the file name used in errors.
        base: the folder relative paths (pipeline files, gate policies) start from.

    Raises:
        InvalidArgumentError: ``source:LINE: where: what to fix``.
    """
    import yaml

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise InvalidArgumentError(f"{source}{line}: not valid YAML: {problem}") from None
    if root is None:
        raise InvalidArgumentError(f"{source}: the file is empty; see docs/automation.md")
    reader = _Reader(source, base or Path.cwd())
    document = reader.mapping(_convert(root, ""), ("automations",), "the file")
    listed = reader.required(document, "automations", _convert(root, ""))
    if not isinstance(listed.value, list) or not listed.value:
        raise listed.error(source, "give a list of at least one automation")
    automations = tuple(_automation(reader, item) for item in listed.value)
    names = [a.name for a in automations]
    if len(set(names)) != len(names):
        raise listed.error(source, "two automations have the same name")
    return AutomationPolicy(automations, source)


def load_policy(path: str | os.PathLike[str]) -> AutomationPolicy:
    """Read and check an ``automation.yaml`` (relative paths start from its folder).

    Raises:
        NotFoundError: no such file.
        InvalidArgumentError: see :func:`parse_policy`.
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotFoundError(
            f"no automation policy {file}: write one (see docs/automation.md)"
        ) from None
    return parse_policy(text, str(file), file.resolve().parent)
