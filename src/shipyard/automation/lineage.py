"""The lineage graph of a model's life: data → runs → model versions → deployments → alerts →
trigger events → pipeline runs → new model versions.

Every edge points along that flow; "upstream" of something is what it came from, "downstream"
what came of it. :func:`walk` starts from one thing (any of the kinds below) and walks
breadth-first both ways. Nodes are keyed ``KIND:ID``:

==============  ========================  ============================================
kind            key                       e.g.
==============  ========================  ============================================
``dataset``     ``dataset:NAME@V``        ``dataset:customers@2``
``run``         ``run:RUN_ID``            a tracking run
``model``       ``model:NAME@V``          ``model:churn@4``
``deployment``  ``deployment:NAME``       ``deployment:churn-prod``
``alert``       ``alert:EVENT_ID``        an alert event of ``shipyard monitor run``
``pipeline``    ``pipeline:RUN_ID``       a pipeline run
``trigger``     ``trigger:EVENT_ID``      a trigger event of ``shipyard automate``
==============  ========================  ============================================

Example:
    >>> graph = walk(backend, "churn@champion", depth=3)  # doctest: +SKIP
    >>> [n.key for n in graph.upstream()]  # doctest: +SKIP
    ['run:8466…', 'pipeline:c8c6…', 'trigger:8d7a…', 'dataset:customers@2']
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from shipyard.entities import (
    AlertEvent,
    AutomationEvent,
    DatasetVersion,
    Deployment,
    ModelVersion,
    PipelineRun,
    Run,
)
from shipyard.errors import InvalidArgumentError, NotFoundError, ShipyardError
from shipyard.registry import parse_model_ref
from shipyard.store import Backend

__all__ = [
    "KINDS",
    "Edge",
    "LineageGraph",
    "Node",
    "resolve_model_version",
    "resolve_node",
    "walk",
]

KINDS = ("dataset", "run", "model", "deployment", "alert", "pipeline", "trigger")
"""The kinds of node, which are also the prefixes a reference may start with (``run:…``)."""

ALERTS_PER_DEPLOYMENT = 20
"""The newest alert events a deployment's node links to."""
_MANY = 10_000
_HEX = re.compile(r"[0-9a-f]{4,32}")
_PREFIX_HELP = ", ".join(f"{k}:" for k in KINDS)


@dataclass(frozen=True, slots=True)
class Node:
    """One thing in the lineage graph.

    Attributes:
        kind: one of :data:`KINDS`.
        key: ``KIND:ID`` (``model:churn@4``), unique in a graph.
        label: one short line for people (short id or name, state), without the kind.
        details: the thing's main fields, JSON-able.
    """

    kind: str
    key: str
    label: str
    details: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def ident(self) -> str:
        """The key without its kind (``churn@4``, a run id, …)."""
        return self.key.partition(":")[2]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "key": self.key, "label": self.label, "details": self.details}


@dataclass(frozen=True, slots=True)
class Edge:
    """``source`` led to ``target`` (keys of two nodes); ``relation`` says how."""

    source: str
    target: str
    relation: str

    def to_dict(self) -> dict[str, str]:
        return {"source": self.source, "target": self.target, "relation": self.relation}


@dataclass(frozen=True, slots=True)
class LineageGraph:
    """What :func:`walk` found: the root, every node reached (root first) and the edges
    between them."""

    root: Node
    nodes: dict[str, Node]
    edges: tuple[Edge, ...]
    depth: int = 4

    def parents(self, key: str | None = None) -> list[Node]:
        """The nodes with an edge into ``key`` (default: the root)."""
        key = self.root.key if key is None else key
        return [self.nodes[e.source] for e in self.edges if e.target == key]

    def children(self, key: str | None = None) -> list[Node]:
        """The nodes ``key`` (default: the root) has an edge to."""
        key = self.root.key if key is None else key
        return [self.nodes[e.target] for e in self.edges if e.source == key]

    def upstream(self, key: str | None = None) -> list[Node]:
        """Everything ``key`` (default: the root) came from, nearest first."""
        return self._reach(self.root.key if key is None else key, self.parents)

    def downstream(self, key: str | None = None) -> list[Node]:
        """Everything that came of ``key`` (default: the root), nearest first."""
        return self._reach(self.root.key if key is None else key, self.children)

    def relation(self, source: str, target: str) -> str:
        """How ``source`` led to ``target`` ('' when no edge joins them)."""
        return next(
            (e.relation for e in self.edges if (e.source, e.target) == (source, target)), ""
        )

    @staticmethod
    def _reach(start: str, step: Callable[[str], list[Node]]) -> list[Node]:
        seen, found, frontier = {start}, [], [start]
        while frontier:
            following = []
            for key in frontier:
                for node in step(key):
                    if node.key not in seen:
                        seen.add(node.key)
                        found.append(node)
                        following.append(node.key)
            frontier = following
        return found

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": self.root.key,
            "depth": self.depth,
            "nodes": [n.to_dict() for n in self.nodes.values()],
            "edges": [e.to_dict() for e in self.edges],
            "upstream": [n.key for n in self.upstream()],
            "downstream": [n.key for n in self.downstream()],
        }

    def to_mermaid(self) -> str:
        """A Mermaid ``flowchart LR`` of the graph, the root outlined."""
        ids = {key: f"n{i}" for i, key in enumerate(self.nodes)}
        lines = ["flowchart LR"]
        for key, node in self.nodes.items():
            lines.append(f'    {ids[key]}["{_mermaid_text(f"{node.kind} {node.label}")}"]')
        for edge in self.edges:
            relation = _mermaid_text(edge.relation)
            lines.append(f"    {ids[edge.source]} -->|{relation}| {ids[edge.target]}")
        lines.append("    classDef root stroke-width:3px")
        lines.append(f"    class {ids[self.root.key]} root")
        return "\n".join(lines) + "\n"


def _mermaid_text(text: str) -> str:
    escaped = text.replace("&", "#amp;").replace('"', "#quot;").replace("|", "#124;")
    return escaped.replace("<", "#lt;").replace(">", "#gt;")


# reading references -------------------------------------------------------------------------


def resolve_model_version(backend: Backend, ref: str) -> ModelVersion:
    """``NAME@V``, ``NAME@ALIAS``, ``NAME@latest`` or ``NAME`` → the model version."""
    name, selector = parse_model_ref(ref)
    if selector == "latest":
        number = backend.latest_model_version(name)
    elif selector.isdigit():
        number = int(selector)
    else:
        number = backend.resolve_model_alias(name, selector)
    return backend.get_model_version(name, number)


def resolve_node(backend: Backend, text: str) -> Node:
    """The node a reference names.

    With a prefix (``dataset:``, ``run:``, ``model:``, ``deployment:``, ``alert:``,
    ``pipeline:``, ``trigger:``) the rest is read as that kind. Without one:

    1. ``NAME@X`` is a version of the registered model NAME (``X`` a number, an alias or
       ``latest``) when that model exists, else a dataset version (``latest`` allowed);
    2. a hex id or prefix (4+ characters) is looked up as a run, a pipeline run, a trigger
       event and an alert event, in that order — a prefix naming things of two kinds is
       refused (say which with a prefix); a whole id always wins over a prefix;
    3. any other name is a deployment.

    Raises:
        NotFoundError: nothing has that name.
        InvalidArgumentError: the reference is malformed, or names things of several kinds.
    """
    return _Walker(backend).resolve(text)


def walk(backend: Backend, text: str, *, depth: int = 4) -> LineageGraph:
    """The lineage around what ``text`` names (see :func:`resolve_node`), both ways.

    Breadth-first from the root up to ``depth`` hops upstream (what it came from) and
    ``depth`` hops downstream (what came of it); a node is expanded at most once each way.
    """
    if depth < 0:
        raise InvalidArgumentError(f"depth must be 0 or more, not {depth}")
    walker = _Walker(backend)
    root = walker.resolve(text)
    order = [root.key]
    edges: dict[tuple[str, str, str], Edge] = {}
    for upwards in (True, False):
        seen, frontier = {root.key}, [root]
        for _ in range(depth):
            following = []
            for node in frontier:
                for other, relation in walker.neighbours(node, upwards=upwards):
                    edge = (
                        Edge(other.key, node.key, relation)
                        if upwards
                        else Edge(node.key, other.key, relation)
                    )
                    edges.setdefault((edge.source, edge.target, edge.relation), edge)
                    if other.key not in seen:
                        seen.add(other.key)
                        following.append(other)
                        if other.key not in order:
                            order.append(other.key)
            frontier = following
    return LineageGraph(
        root=root,
        nodes={key: walker.nodes[key] for key in order},
        edges=tuple(edges.values()),
        depth=depth,
    )


# the walker ---------------------------------------------------------------------------------

_Neighbours = list[tuple[Node, str]]


class _Walker:
    """Loads nodes (each once) and finds their neighbours in the store."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.nodes: dict[str, Node] = {}
        self.entities: dict[str, Any] = {}
        self._experiments: dict[int, str] = {}
        self._alerts: dict[str | None, list[AlertEvent]] = {}
        self._deployments: list[Deployment] | None = None

    # resolving ------------------------------------------------------------------------------

    def resolve(self, text: str) -> Node:
        text = text.strip()
        if not text:
            raise InvalidArgumentError(f"give something to trace: {_PREFIX_HELP} or a name")
        kind, sep, rest = text.partition(":")
        if sep and kind in KINDS:
            if not rest.strip():
                raise InvalidArgumentError(f"{text!r}: give what follows {kind}:")
            return self._explicit(kind, rest.strip())
        if sep:
            raise InvalidArgumentError(
                f"{text!r}: unknown kind {kind!r}; start a reference with one of {_PREFIX_HELP}"
            )
        if "@" in text:
            return self._versioned(text)
        return self._named(text)

    def _explicit(self, kind: str, rest: str) -> Node:
        backend = self.backend
        if kind == "dataset":
            name, _, selector = rest.partition("@")
            return self._add_dataset(backend.get_dataset_version(name, selector or "latest"))
        if kind == "model":
            return self._add_model(resolve_model_version(backend, rest))
        if kind == "run":
            return self._add_run(backend.get_run(backend.resolve_run_id(rest)))
        if kind == "pipeline":
            return self._add_pipeline(backend.get_pipeline_run(rest))
        if kind == "trigger":
            try:
                return self._add_trigger(backend.get_automation_event(rest))
            except NotFoundError:
                events = backend.list_automation_events(limit=_MANY)
                if sum(e.event_id.startswith(rest) for e in events) > 1:
                    self._several(rest, kind)
                raise
        if kind == "alert":
            found = self._alert_matches(rest)
            if not found:
                raise NotFoundError(f"no alert event {rest!r}: see `shipyard monitor events`")
            if len(found) > 1:
                raise InvalidArgumentError(f"alert event prefix {rest!r} is ambiguous")
            return self._add_alert(found[0])
        return self._add_deployment(backend.get_deployment(rest))

    def _versioned(self, text: str) -> Node:
        name, _, selector = text.partition("@")
        try:
            self.backend.get_registered_model(name)
        except (NotFoundError, InvalidArgumentError):
            pass
        else:
            return self._add_model(resolve_model_version(self.backend, text))
        try:
            version = self.backend.get_dataset_version(name, selector or "latest")
        except NotFoundError:
            raise NotFoundError(
                f"{text!r}: no registered model and no dataset named {name!r} "
                f"(start the reference with one of {_PREFIX_HELP})"
            ) from None
        return self._add_dataset(version)

    def _named(self, text: str) -> Node:
        """A deployment's name, or a hex id of a run, pipeline run, trigger or alert event."""
        found: list[tuple[str, Any]] = []
        try:
            found.append(("deployment", self.backend.get_deployment(text)))
        except (NotFoundError, InvalidArgumentError):
            pass
        if _HEX.fullmatch(text.lower()):
            found.extend(self._by_id(text.lower()))
        exact = [(k, e) for k, e in found if _ident(k, e) == text.lower() or k == "deployment"]
        if len(exact) == 1:
            found = exact
        if len(found) == 1:
            kind, entity = found[0]
            return self._add(kind, entity)
        if found:
            named = " and ".join(f"a {_kind_name(k)} ({k}:{_ident(k, e)})" for k, e in found)
            raise InvalidArgumentError(
                f"{text!r} names {named}: say which with a prefix, e.g. {found[0][0]}:{text}"
            )
        hint = self._name_hint(text)
        raise NotFoundError(
            f"nothing named {text!r}: no deployment"
            + (", run, pipeline run, trigger event or alert event" if _HEX.fullmatch(text) else "")
            + (f"; {hint}" if hint else f" (start the reference with one of {_PREFIX_HELP})")
        )

    def _by_id(self, prefix: str) -> list[tuple[str, Any]]:
        backend = self.backend
        found: list[tuple[str, Any]] = []
        lookups: list[tuple[str, Callable[[], Any]]] = [
            ("run", lambda: backend.get_run(backend.resolve_run_id(prefix))),
            ("pipeline", lambda: backend.get_pipeline_run(prefix)),
        ]
        for kind, lookup in lookups:
            try:
                found.append((kind, lookup()))
            except NotFoundError:
                pass
            except InvalidArgumentError:  # several of one kind share the prefix
                self._several(prefix, kind)
        events = backend.list_automation_events(limit=_MANY)
        for kind, matches in (
            ("trigger", [e for e in events if e.event_id.startswith(prefix)]),
            ("alert", self._alert_matches(prefix)),
        ):
            if len(matches) > 1:
                self._several(prefix, kind)
            found.extend((kind, m) for m in matches)
        return found

    @staticmethod
    def _several(prefix: str, kind: str) -> None:
        raise InvalidArgumentError(
            f"{prefix!r} starts the ids of several {_kind_name(kind)}s: give more of it"
        )

    def _name_hint(self, text: str) -> str:
        hints = []
        try:
            self.backend.get_registered_model(text)
            hints.append(f"{text!r} is a registered model: write {text}@latest or model:{text}")
        except (NotFoundError, InvalidArgumentError):
            pass
        if any(d.name == text for d in self.backend.list_datasets()):
            hints.append(f"{text!r} is a dataset: write {text}@latest or dataset:{text}")
        return "; ".join(hints)

    def _alert_matches(self, prefix: str) -> list[AlertEvent]:
        return [e for e in self._alert_events(None) if e.event_id.startswith(prefix)]

    def _alert_events(self, model: str | None) -> list[AlertEvent]:
        if model not in self._alerts:
            self._alerts[model] = self.backend.list_alert_events(model=model, limit=_MANY)
        return self._alerts[model]

    # nodes ----------------------------------------------------------------------------------

    def _add(self, kind: str, entity: Any) -> Node:
        adder: Callable[[Any], Node] = getattr(self, f"_add_{kind}")
        return adder(entity)

    def _keep(self, node: Node, entity: Any) -> Node:
        self.nodes.setdefault(node.key, node)
        self.entities.setdefault(node.key, entity)
        return self.nodes[node.key]

    def _add_dataset(self, v: DatasetVersion) -> Node:
        rows = v.profile.rows if v.profile is not None else None
        shown = [v.ref, *([f"{rows} rows"] if rows is not None else []), f"by {v.created_by}"]
        details = _fields(v, "ref digest created_at created_by run_id source") | {"rows": rows}
        return self._keep(Node("dataset", f"dataset:{v.ref}", " · ".join(shown), details), v)

    def _add_run(self, run: Run) -> Node:
        experiment = self._experiment(run.experiment_id)
        label = f"{run.run_id[:8]} · {run.name} · {experiment} · {run.status.value}"
        details = _fields(run, "run_id name status user start_time end_time")
        details["experiment"] = experiment
        return self._keep(Node("run", f"run:{run.run_id}", label, details), run)

    def _add_model(self, v: ModelVersion) -> Node:
        shown = [v.ref, *([", ".join(v.aliases)] if v.aliases else []), f"review {v.review.value}"]
        details = _fields(v, "ref aliases review run_id created_at created_by flavor digest")
        return self._keep(Node("model", f"model:{v.ref}", " · ".join(shown), details), v)

    def _add_deployment(self, d: Deployment) -> Node:
        stable = d.route("stable") or (d.live_routes[0] if d.live_routes else None)
        shown = [d.name, d.state.value]
        shown.append(f"stable {stable.model_ref}" if stable is not None else "no live route")
        shown += [f"{r.name} {r.model_ref} {r.weight:g}%" for r in d.routes if r is not stable]
        details = _fields(d, "name model state strategy target alias revision")
        details["routes"] = [r.to_dict() for r in d.routes]
        return self._keep(Node("deployment", f"deployment:{d.name}", " · ".join(shown), details), d)

    def _add_alert(self, e: AlertEvent) -> Node:
        value = "-" if e.value is None else f"{e.value:.4g}"
        label = (
            f"{e.event_id[:8]} · {e.rule} · {e.state.value} · "
            f"{e.metric} {value} vs {e.threshold:g} · {e.model}"
        )
        details = _fields(e, "event_id model rule state metric value threshold message")
        details["at"] = e.at.isoformat()
        return self._keep(Node("alert", f"alert:{e.event_id}", label, details), e)

    def _add_pipeline(self, run: PipelineRun) -> Node:
        from shipyard.pipelines.runner import shown_status

        status = shown_status(run)
        label = f"{run.run_id[:8]} · {run.pipeline} · {status}"
        details = _fields(run, "run_id pipeline params user start_time end_time")
        details["status"] = status
        return self._keep(Node("pipeline", f"pipeline:{run.run_id}", label, details), run)

    def _add_trigger(self, e: AutomationEvent) -> Node:
        label = f"{e.event_id[:8]} · {e.automation} · {e.kind} {e.source} · {e.state.value}"
        details = _fields(
            e,
            "event_id automation trigger kind source state reason candidate pipeline_run_id "
            "deployment detected_at",
        )
        return self._keep(Node("trigger", f"trigger:{e.event_id}", label, details), e)

    def _missing(self, kind: str, ident: str) -> Node:
        node = Node(kind, f"{kind}:{ident}", f"{ident} (not in the store)", {"missing": True})
        return self._keep(node, None)

    def _load(self, kind: str, ident: str, load: Callable[[], Any]) -> Node:
        """The node ``kind:ident``, loaded once; a placeholder if it no longer exists."""
        key = f"{kind}:{ident}"
        if key in self.nodes:
            return self.nodes[key]
        try:
            entity = load()
        except ShipyardError:
            return self._missing(kind, ident)
        return self._add(kind, entity)

    def _experiment(self, experiment_id: int) -> str:
        if experiment_id not in self._experiments:
            try:
                name = self.backend.get_experiment(experiment_id).name
            except NotFoundError:
                name = f"experiment {experiment_id}"
            self._experiments[experiment_id] = name
        return self._experiments[experiment_id]

    def dataset(self, ref: str) -> Node:
        name, _, number = ref.partition("@")
        return self._load("dataset", ref, lambda: self.backend.get_dataset_version(name, number))

    def run(self, run_id: str) -> Node:
        return self._load("run", run_id, lambda: self.backend.get_run(run_id))

    def model(self, ref: str) -> Node:
        def load() -> ModelVersion:
            name, _, number = ref.partition("@")
            if not number.isdigit():
                raise NotFoundError(f"no model version {ref!r}")
            return self.backend.get_model_version(name, int(number))

        return self._load("model", ref, load)

    def deployment(self, name: str) -> Node:
        return self._load("deployment", name, lambda: self.backend.get_deployment(name))

    def pipeline(self, run_id: str) -> Node:
        return self._load("pipeline", run_id, lambda: self.backend.get_pipeline_run(run_id))

    def trigger(self, event: AutomationEvent) -> Node:
        return self.nodes.get(f"trigger:{event.event_id}") or self._add_trigger(event)

    def alert(self, event: AlertEvent | str, model: str | None = None) -> Node:
        if isinstance(event, AlertEvent):
            return self.nodes.get(f"alert:{event.event_id}") or self._add_alert(event)
        event_id = str(event)
        key = f"alert:{event_id}"
        if key in self.nodes:
            return self.nodes[key]
        found = next((e for e in self._alert_events(model) if e.event_id == event_id), None)
        if found is None and model is not None:
            found = next((e for e in self._alert_events(None) if e.event_id == event_id), None)
        return self._add_alert(found) if found is not None else self._missing("alert", event_id)

    # neighbours -----------------------------------------------------------------------------

    def neighbours(self, node: Node, *, upwards: bool) -> _Neighbours:
        """What ``node`` came from (``upwards``) or what came of it, with the relation."""
        entity = self.entities.get(node.key)
        if entity is None:
            return []
        finder: Callable[[Any], _Neighbours] = getattr(
            self, f"_{node.kind}_{'up' if upwards else 'down'}"
        )
        return _unique(finder(entity))

    def _dataset_up(self, v: DatasetVersion) -> _Neighbours:
        users = self.backend.dataset_users(v.dataset, v.version)
        writers = [run_id for run_id, role in users if role == "output"]
        if v.run_id is not None and v.run_id not in writers:
            writers.append(v.run_id)
        found = [(self.run(r), "wrote") for r in writers]
        for edge in self.backend.pipeline_lineage(kind="dataset_version", ref=v.ref):
            if edge.direction == "made":
                found.append((self.pipeline(edge.run_id), "wrote"))
        return found

    def _dataset_down(self, v: DatasetVersion) -> _Neighbours:
        users = self.backend.dataset_users(v.dataset, v.version)
        readers = [run_id for run_id, role in users if role == "input"]
        found = [(self.run(r), "read by") for r in readers]
        for edge in self.backend.pipeline_lineage(kind="dataset_version", ref=v.ref):
            if edge.direction == "read":
                found.append((self.pipeline(edge.run_id), "read by"))
        for event in self.backend.list_automation_events(source=v.ref, limit=100):
            found.append((self.trigger(event), "triggered"))
        return found

    def _run_up(self, run: Run) -> _Neighbours:
        found = [
            (self.dataset(v.ref), "read by")
            for _, v in self.backend.run_dataset_versions([run.run_id], "input")
        ]
        for edge in self.backend.pipeline_lineage(kind="run", ref=run.run_id):
            found.append((self.pipeline(edge.run_id), "made"))
        return found

    def _run_down(self, run: Run) -> _Neighbours:
        found = [
            (self.dataset(v.ref), "wrote")
            for _, v in self.backend.run_dataset_versions([run.run_id], "output")
        ]
        for model, version, _ in self.backend.model_versions_of_runs([run.run_id]):
            found.append((self.model(f"{model}@{version}"), "registered"))
        return found

    def _model_up(self, v: ModelVersion) -> _Neighbours:
        found: _Neighbours = []
        if v.run_id is not None:
            found.append((self.run(v.run_id), "registered"))
        for edge in self.backend.pipeline_lineage(kind="model_version", ref=v.ref):
            if edge.direction == "made":
                found.append((self.pipeline(edge.run_id), "made"))
        for event in self.backend.list_automation_events(candidate=v.ref, limit=100):
            found.append((self.trigger(event), "candidate"))
        return found

    def _model_down(self, v: ModelVersion) -> _Neighbours:
        return [
            (self.deployment(name), "deployed to")
            for name, _ in self.backend.deployments_of_version(v.model, v.version)
        ]

    def _deployment_up(self, d: Deployment) -> _Neighbours:
        refs = [r.model_ref for r in d.routes]
        for event in reversed(self.backend.list_deployment_events(d.name, limit=100)):
            refs.extend(r.model_ref for r in event.routes)
        found: _Neighbours = []
        for ref in dict.fromkeys(refs):
            found.append((self.model(ref), "deployed to"))
            for trigger in self.backend.list_automation_events(candidate=ref, limit=100):
                if trigger.deployment == d.name:
                    found.append((self.trigger(trigger), "rolled out to"))
        return found

    def _deployment_down(self, d: Deployment) -> _Neighbours:
        events = {
            e.event_id: e
            for model in dict.fromkeys((d.name, d.model))
            for e in self.backend.list_alert_events(model=model, limit=ALERTS_PER_DEPLOYMENT)
        }
        newest = sorted(events.values(), key=lambda e: e.at, reverse=True)
        return [(self.alert(e), "alerted") for e in newest[:ALERTS_PER_DEPLOYMENT]]

    def _alert_up(self, e: AlertEvent) -> _Neighbours:
        if self._deployments is None:
            self._deployments = self.backend.list_deployments()
        names = [e.model] + [d.name for d in self._deployments if d.model == e.model]
        found: _Neighbours = []
        for name in dict.fromkeys(names):
            node = self.deployment(name)
            if not node.details.get("missing"):
                found.append((node, "alerted"))
        return found

    def _alert_down(self, e: AlertEvent) -> _Neighbours:
        return [
            (self.trigger(t), "triggered")
            for t in self.backend.list_automation_events(source=f"alert {e.event_id}", limit=100)
        ]

    def _pipeline_up(self, run: PipelineRun) -> _Neighbours:
        found = [
            (self.dataset(edge.ref), "read by")
            for edge in self.backend.pipeline_lineage(run_id=run.run_id, kind="dataset_version")
            if edge.direction == "read"
        ]
        for event in self.backend.list_automation_events(pipeline_run_id=run.run_id, limit=100):
            found.append((self.trigger(event), "started"))
        return found

    def _pipeline_down(self, run: PipelineRun) -> _Neighbours:
        edges = list(self.backend.pipeline_lineage(run_id=run.run_id))
        for step in self.backend.list_step_runs(run.run_id):
            if step.reused_from:  # a cached step made what its original run made
                try:
                    original = self.backend.get_step_run(step.reused_from)
                except NotFoundError:
                    continue
                edges.extend(
                    e
                    for e in self.backend.pipeline_lineage(run_id=original.run_id)
                    if e.step_run_id == original.step_run_id
                )
        found: _Neighbours = []
        makers: dict[str, Callable[[str], Node]] = {
            "run": self.run,
            "model_version": self.model,
            "dataset_version": self.dataset,
        }
        for edge in edges:
            if edge.direction == "made" and edge.kind in makers:
                relation = "wrote" if edge.kind == "dataset_version" else "made"
                found.append((makers[edge.kind](edge.ref), relation))
        return found

    def _trigger_up(self, e: AutomationEvent) -> _Neighbours:
        if e.kind == "dataset":
            ref = str(e.details.get("dataset") or e.source)
            return [(self.dataset(ref), "triggered")]
        if e.kind == "alert" and e.source.startswith("alert "):
            model = e.details.get("model")
            alert = self.alert(e.source.removeprefix("alert "), str(model) if model else None)
            return [(alert, "triggered")]
        if e.kind == "performance" and e.details.get("model"):
            node = self.deployment(str(e.details["model"]))
            return [] if node.details.get("missing") else [(node, "triggered")]
        return []

    def _trigger_down(self, e: AutomationEvent) -> _Neighbours:
        found: _Neighbours = []
        if e.pipeline_run_id is not None:
            found.append((self.pipeline(e.pipeline_run_id), "started"))
        if e.candidate is not None:
            found.append((self.model(e.candidate), "candidate"))
        if e.deployment is not None:
            found.append((self.deployment(e.deployment), "rolled out to"))
        return found


def _fields(entity: Any, names: str) -> dict[str, Any]:
    """``entity``'s attributes ``names`` as JSON-able values (enums as their values)."""
    values = {name: getattr(entity, name) for name in names.split()}
    return {
        k: v.value if isinstance(v, Enum) else list(v) if isinstance(v, tuple) else v
        for k, v in values.items()
    }


def _unique(found: Iterable[tuple[Node, str]]) -> _Neighbours:
    seen: set[tuple[str, str]] = set()
    kept = []
    for node, relation in found:
        if (node.key, relation) not in seen:
            seen.add((node.key, relation))
            kept.append((node, relation))
    return kept


def _ident(kind: str, entity: Any) -> str:
    if kind == "deployment":
        return str(entity.name)
    return str(getattr(entity, "run_id", None) or getattr(entity, "event_id", ""))


def _kind_name(kind: str) -> str:
    return {
        "run": "run",
        "pipeline": "pipeline run",
        "trigger": "trigger event",
        "alert": "alert event",
        "deployment": "deployment",
    }.get(kind, kind)
