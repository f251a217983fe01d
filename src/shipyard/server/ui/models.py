"""Pages for the model registry: registered models, a model's versions, and a version with
its review (approve or reject under the four-eyes rule), validation gates, model card and
lineage graph.

Reviews go through :class:`~shipyard.registry.Registry` acting as the caller, as the API's do,
so the server enforces who may approve: an approver who neither registered nor trained the
version. The page only decides which buttons to show.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path as FilePath
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from markupsafe import Markup

from shipyard.entities import (
    AuditEntry,
    ModelVersion,
    RegisteredModel,
    ReviewState,
    Role,
    Run,
    RunStatus,
)
from shipyard.errors import (
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    ShipyardError,
)
from shipyard.registry import Registry
from shipyard.registry.service import validate_model_name
from shipyard.server.auth import Identity
from shipyard.server.errors import status_of
from shipyard.server.ui import charts
from shipyard.server.ui.pages import check_csrf, page_identity, render

__all__ = ["router"]

log = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)
_Caller = Annotated[Identity, Depends(page_identity)]
_Name = Annotated[str, Path(max_length=128)]
_Number = Annotated[str, Path(max_length=64)]

PER_PAGE = 50
"""Models or versions on one page."""
MAX_GATES = 20
"""The newest validation gates a version page shows."""
REVIEW_HISTORY = 500
"""Audit entries of a version read for its review history."""
LINEAGE_DEPTH = 2
"""Hops walked each way: data → run → version → deployment."""
_LINEAGE_KINDS = ("dataset", "run", "model", "deployment", "pipeline", "trigger")
"""What the version's graph draws (alerts belong on the deployment's page)."""

STATE_LABELS = {
    ReviewState.NONE: "not reviewed",
    ReviewState.REQUESTED: "pending review",
    ReviewState.APPROVED: "approved",
    ReviewState.REJECTED: "rejected",
}
STATE_CLASSES = {
    ReviewState.NONE: "",
    ReviewState.REQUESTED: "pending",
    ReviewState.APPROVED: "approved",
    ReviewState.REJECTED: "rejected",
}
_GRAPH_STATES = {
    "none": "not reviewed",
    "requested": "pending",
    "approved": "approved",
    "rejected": "rejected",
}
"""Review states short enough for a box of the lineage graph."""
_DONE = {
    "approve": "You approved this version.",
    "reject": "You rejected this version.",
    "request": "Review requested: an approver who neither registered nor trained it decides.",
}


def _url(*parts: object) -> str:
    return "/" + "/".join(quote(str(p), safe="@") for p in parts)


# reading ------------------------------------------------------------------------------------


def _backend(request: Request) -> Any:
    return request.app.state.workspace.backend


def _model(backend: Any, name: str) -> RegisteredModel:
    try:
        validate_model_name(name)
    except InvalidArgumentError:
        raise NotFoundError(f"no registered model {name!r}") from None
    model: RegisteredModel = backend.get_registered_model(name)
    return model


def _number(name: str, version: str) -> int:
    if not version.isdigit() or int(version) >= 2**31 or int(version) < 1:
        raise NotFoundError(f"model {name!r} has no version {version!r}")
    return int(version)


def _version(backend: Any, name: str, version: str) -> ModelVersion:
    model = _model(backend, name)
    found: ModelVersion = backend.get_model_version(model.name, _number(name, version))
    return found


@dataclass(frozen=True, slots=True)
class _Review:
    """One review step of a version, from the audit log."""

    state: str
    actor: str
    at: int
    comment: str


def _reviews(backend: Any, version: ModelVersion) -> list[_Review]:
    """The version's review history, newest first (the registry audits every step)."""
    entries: list[AuditEntry] = backend.list_audit(limit=REVIEW_HISTORY, target=version.ref)
    return [
        _Review(
            e.action.removeprefix("review."), e.actor, e.at, str(e.details.get("comment") or "")
        )
        for e in entries
        if e.target == version.ref and e.action.startswith("review.")
    ]


def _run_of(backend: Any, version: ModelVersion) -> Run | None:
    if version.run_id is None:
        return None
    try:
        run: Run = backend.get_run(version.run_id)
    except NotFoundError:
        return None
    return run


def _authors(backend: Any, version: ModelVersion) -> set[str]:
    """Who registered or trained the version: the four-eyes rule keeps them from reviewing it."""
    run = _run_of(backend, version)
    return {version.created_by, *([run.user] if run is not None and run.user else [])}


# the lineage graph --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _LineageRow:
    source: tuple[str, str | None]
    relation: str
    target: tuple[str, str | None]


@dataclass(slots=True)
class _Lineage:
    chart: Markup | None = None
    nodes: list[tuple[str, str, str | None, str]] = field(default_factory=list)
    """``(kind, name, href, detail)`` of each node, the version first."""
    edges: list[_LineageRow] = field(default_factory=list)
    problem: str = ""


def _node_of(node: Any, root: str) -> charts.Node:
    """A lineage node as a box of the graph: its name, a link to its page, a short detail."""
    details: dict[str, Any] = node.details
    ident: str = node.ident
    kind: str = node.kind
    if details.get("missing"):
        return charts.Node(node.key, ident, kind, None, f"{kind} · not in the store")
    href: str | None = None
    if kind == "dataset":
        name, _, number = ident.rpartition("@")
        href = _url("datasets", name, number)
        rows = details.get("rows")
        label, detail = ident, f"dataset · {rows:,} rows" if rows is not None else "dataset"
    elif kind == "run":
        href = _url("runs", ident)
        label = str(details.get("name") or ident[:8])
        detail = f"run · {details.get('status', '')}".lower()
    elif kind == "model":
        name, _, number = ident.rpartition("@")
        href = _url("models", name, number)
        state = _GRAPH_STATES.get(str(details.get("review")), "")
        label = ident
        detail = f"{'this version' if node.key == root else 'version'} · {state}"
    elif kind == "deployment":
        href = _url("deployments", ident)
        label, detail = ident, f"deployment · {details.get('state', '')}"
    elif kind == "pipeline":
        label = str(details.get("pipeline") or ident[:8])
        detail = f"pipeline run · {details.get('status', '')}"
    else:
        label = str(details.get("automation") or ident[:8])
        detail = f"trigger · {details.get('state', '')}"
    return charts.Node(node.key, label, "version" if kind == "model" else kind, href, detail)


def _status_of_node(node: Any) -> str:
    details = node.details
    if node.kind == "model":
        review = details.get("review")
        return {"approved": "succeeded", "rejected": "failed"}.get(str(review), "")
    if node.kind == "run":
        status = str(details.get("status", ""))
        if status == RunStatus.FINISHED.value:
            return "succeeded"
        if status in (RunStatus.FAILED.value, RunStatus.CRASHED.value):
            return "failed"
    return ""


def _lineage(backend: Any, version: ModelVersion) -> _Lineage:
    """Datasets → training run → this version → deployments, walked by the code of
    ``shipyard lineage`` (:func:`shipyard.automation.lineage.walk`)."""
    from shipyard.automation.lineage import walk

    found = _Lineage()
    try:
        graph = walk(backend, f"model:{version.ref}", depth=LINEAGE_DEPTH)
    except ShipyardError as exc:
        found.problem = f"the lineage could not be read: {exc}"
        return found
    kept = {k: n for k, n in graph.nodes.items() if n.kind in _LINEAGE_KINDS}
    boxes = {key: _node_of(node, graph.root.key) for key, node in kept.items()}
    edges = [e for e in graph.edges if e.source in kept and e.target in kept]
    chart = charts.graph(
        list(boxes.values()),
        [charts.Edge(e.source, e.target, e.relation) for e in edges],
        title=f"Lineage of {version.ref}: data, training run, version, deployments",
        status={key: _status_of_node(node) for key, node in kept.items()},
    )
    found.chart = chart  # its boxes are links: charts.graph makes it a group, not an image
    found.nodes = [(kept[key].kind, box.label, box.href, box.detail) for key, box in boxes.items()]
    found.edges = [
        _LineageRow(
            (boxes[e.source].label, boxes[e.source].href),
            e.relation,
            (boxes[e.target].label, boxes[e.target].href),
        )
        for e in edges
    ]
    return found


# validation ---------------------------------------------------------------------------------


@dataclass(slots=True)
class _Gate:
    event_id: str
    automation: str
    state: str
    passed: bool | None
    summary: dict[str, Any]
    report: dict[str, Any] | None = None
    """The full report (``report.json``), when the artifact store holds it."""
    html: bool = False
    """Whether the gate's ``report.html`` can be served."""


_GATE_DEFAULTS: dict[str, Any] = {
    "passed": None,
    "failures": [],
    "data": "",
    "rows": None,
    "against": None,
    "main_metric": "",
    "metrics": {},
    "comparison": None,
    "fairness": {},
    "notes": [],
    "report_digest": None,
    "report_html": None,
}
"""What a gate's summary may hold (an automation without a gate policy keeps only
``passed``)."""


def _html_report(request: Request, summary: dict[str, Any]) -> FilePath | None:
    """The gate's HTML report, if it still lies under the workspace's ``reports/`` folder
    (never any other file the server can read)."""
    written = summary.get("report_html")
    if not isinstance(written, str) or not written:
        return None
    home = FilePath(request.app.state.workspace.settings.home).resolve()
    path = FilePath(written).resolve()
    if not path.is_relative_to(home / "reports") or path.suffix != ".html":
        return None
    return path if path.is_file() else None


def _gates(request: Request, version: ModelVersion) -> list[_Gate]:
    backend = _backend(request)
    objects = request.app.state.workspace.artifacts
    events = backend.list_automation_events(candidate=version.ref, limit=MAX_GATES)
    gates = []
    for event in events:
        if not event.gate:
            continue
        summary = {**_GATE_DEFAULTS, **event.gate}
        gate = _Gate(
            event.event_id,
            event.automation,
            event.state.value,
            summary.get("passed"),
            summary,
            html=_html_report(request, summary) is not None,
        )
        digest = summary.get("report_digest")
        if isinstance(digest, str) and objects.exists(digest):
            try:
                gate.report = json.loads(objects.read_bytes(digest))
            except (ValueError, ShipyardError, OSError) as exc:
                log.warning("cannot read the validation report %s: %s", digest, exc)
        gates.append(gate)
    return gates


def _report_artifacts(backend: Any, run: Run | None) -> list[str]:
    """HTML reports the training run logged (``validation/report.html`` and the like)."""
    if run is None:
        return []
    return [
        a.path
        for a in backend.list_artifacts(run.run_id)
        if not a.is_dir
        and a.path.lower().endswith((".html", ".htm"))
        and any(word in a.path.lower() for word in ("valid", "report", "eval"))
    ]


# the model card -----------------------------------------------------------------------------


def _card(request: Request, version: ModelVersion) -> Any:
    from shipyard.models import model_card

    workspace = request.app.state.workspace
    return model_card(version, backend=workspace.backend, artifacts=workspace.artifacts)


# pages --------------------------------------------------------------------------------------


@router.get("/models", response_class=HTMLResponse)
def models_page(
    request: Request,
    caller: _Caller,
    q: Annotated[str, Query(max_length=128)] = "",
    page: Annotated[int, Query(ge=1, le=10**6)] = 1,
) -> HTMLResponse:
    backend = _backend(request)
    found: list[RegisteredModel] = sorted(
        backend.list_registered_models(), key=lambda m: m.name.lower()
    )
    wanted = q.strip().lower()
    if wanted:
        found = [m for m in found if wanted in m.name.lower()]
    start = (page - 1) * PER_PAGE
    shown = found[start : start + PER_PAGE]
    rows = []
    for model in shown:
        try:
            latest: ModelVersion | None = backend.get_model_version(
                model.name, backend.latest_model_version(model.name)
            )
        except NotFoundError:
            latest = None
        rows.append((model, latest))
    return render(
        request,
        "models.html",
        title="Models",
        rows=rows,
        total=len(found),
        q=q,
        page=page,
        more=start + PER_PAGE < len(found),
        labels=STATE_LABELS,
        classes=STATE_CLASSES,
        url=_url,
    )


@router.get("/models/{name}", response_class=HTMLResponse)
def model_page(
    request: Request,
    caller: _Caller,
    name: _Name,
    page: Annotated[int, Query(ge=1, le=10**6)] = 1,
) -> HTMLResponse:
    backend = _backend(request)
    model = _model(backend, name)
    versions: list[ModelVersion] = sorted(
        backend.list_model_versions(model.name), key=lambda v: v.version, reverse=True
    )
    start = (page - 1) * PER_PAGE
    shown = versions[start : start + PER_PAGE]
    return render(
        request,
        "model.html",
        title=f"Model {model.name}",
        model=model,
        versions=shown,
        total=len(versions),
        aliases=sorted(model.aliases.items()),
        page=page,
        more=start + PER_PAGE < len(versions),
        labels=STATE_LABELS,
        classes=STATE_CLASSES,
        url=_url,
    )


def _version_page(
    request: Request,
    caller: Identity,
    version: ModelVersion,
    *,
    status: int = 200,
    problem: str = "",
    notice: str = "",
    comment: str = "",
) -> HTMLResponse:
    backend = _backend(request)
    model = backend.get_registered_model(version.model)
    run = _run_of(backend, version)
    reviews = _reviews(backend, version)
    decided = next((r for r in reviews if r.state == version.review.value), None)
    card, card_problem = None, ""
    try:
        card = _card(request, version)
    except (ShipyardError, OSError, ValueError, KeyError) as exc:
        card_problem = f"the card could not be made: {exc}"
    deployments = backend.deployments_of_version(version.model, version.version)
    return render(
        request,
        "model_version.html",
        status=status,
        title=f"{version.ref}",
        model=model,
        mv=version,
        run=run,
        reviews=reviews,
        decided=decided,
        is_author=caller.user in _authors(backend, version),
        can_review=caller.role.allows(Role.APPROVER),
        can_request=caller.role.allows(Role.MEMBER),
        deployments=deployments,
        gates=_gates(request, version),
        report_files=_report_artifacts(backend, run),
        card=card,
        card_problem=card_problem,
        lineage=_lineage(backend, version),
        problem=problem,
        notice=notice,
        comment=comment,
        labels=STATE_LABELS,
        classes=STATE_CLASSES,
        url=_url,
    )


@router.get("/models/{name}/{version}", response_class=HTMLResponse)
def version_page(
    request: Request,
    caller: _Caller,
    name: _Name,
    version: _Number,
    done: Annotated[str, Query(max_length=16)] = "",
) -> Response:
    backend = _backend(request)
    if not version.isdigit():  # an alias or `latest`: the version it names, by number
        _model(backend, name)
        found = Registry(backend, caller.user).resolve(f"{name}@{version}")
        return RedirectResponse(_url("models", found.model, found.version), status_code=303)
    found = _version(backend, name, version)
    return _version_page(request, caller, found, notice=_DONE.get(done, ""))


@router.post("/models/{name}/{version}/review", response_class=HTMLResponse)
def review(
    request: Request,
    caller: _Caller,
    name: _Name,
    version: _Number,
    decision: Annotated[str, Form(max_length=16)] = "",
    comment: Annotated[str, Form(max_length=4000)] = "",
    csrf: Annotated[str, Form(max_length=128)] = "",
) -> Response:
    """Approve, reject or ask for a review, as the caller, through the registry's rules."""
    check_csrf(request, csrf)
    backend = _backend(request)
    found = _version(backend, name, version)
    try:
        if decision not in _DONE:
            raise InvalidArgumentError(f"decide approve, reject or request, not {decision!r}")
        needed = Role.MEMBER if decision == "request" else Role.APPROVER
        if not caller.role.allows(needed):
            role = f"to {decision} a version takes the {needed.value} role"
            if needed is Role.APPROVER and caller.user in _authors(backend, found):
                # The deeper reason first: no role would let an author review (the registry
                # says the same to an approver who is the author).
                raise PermissionDeniedError(
                    f"{caller.user!r} registered or trained {found.ref} and so may not "
                    f"{decision} it: another approver must review it (four-eyes rule); "
                    f"besides, {caller.user!r} is a {caller.role.value} and {role}"
                )
            raise PermissionDeniedError(f"{caller.user!r} is a {caller.role.value}: {role}")
        registry = Registry(backend, caller.user)
        if decision == "approve":
            registry.approve(found.ref, comment)
        elif decision == "reject":
            registry.reject(found.ref, comment)
        else:
            registry.request_review(found.ref, comment)
    except ShipyardError as exc:
        if isinstance(exc, NotFoundError):
            raise
        status, _ = status_of(exc)
        current = backend.get_model_version(found.model, found.version)
        return _version_page(
            request, caller, current, status=status, problem=str(exc), comment=comment
        )
    return RedirectResponse(
        _url("models", found.model, found.version) + f"?done={decision}", status_code=303
    )


# files --------------------------------------------------------------------------------------

_SANDBOX = "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:"
"""A served HTML file is a sandboxed document: it can run no script as the site."""


def _sandboxed(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = _SANDBOX
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get("/models/{name}/{version}/card.{kind}")
def card_file(
    request: Request, caller: _Caller, name: _Name, version: _Number, kind: str
) -> Response:
    """The model card as Markdown or as one self-contained HTML page."""
    if kind not in ("md", "html"):
        raise NotFoundError(f"no card format {kind!r}: card.md or card.html")
    found = _version(_backend(request), name, version)
    card = _card(request, found)
    if kind == "md":
        stem = found.ref.replace("@", "-")
        return Response(
            card.to_markdown(),
            media_type="text/markdown; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{stem}.md"'},
        )
    return _sandboxed(HTMLResponse(card.to_html()))


def _gate_of(request: Request, found: ModelVersion, event_id: str) -> dict[str, Any]:
    event = _backend(request).get_automation_event(event_id)
    if event.candidate != found.ref or not event.gate:
        raise NotFoundError(f"{event_id!r} did not validate {found.ref}")
    gate: dict[str, Any] = dict(event.gate)
    return gate


@router.get("/models/{name}/{version}/validation/{event_id}/report.json")
def report_json(
    request: Request,
    caller: _Caller,
    name: _Name,
    version: _Number,
    event_id: Annotated[str, Path(max_length=64)],
) -> Response:
    """A gate's full validation report as stored in the artifact store."""
    from shipyard.server.objects import serve_object

    found = _version(_backend(request), name, version)
    digest = _gate_of(request, found, event_id).get("report_digest")
    if not isinstance(digest, str) or not digest:
        raise NotFoundError(f"the gate {event_id!r} of {found.ref} stored no report")
    response = serve_object(request.app.state.workspace.artifacts, digest, "application/json")
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@router.get("/models/{name}/{version}/validation/{event_id}/report.html")
def report_html(
    request: Request,
    caller: _Caller,
    name: _Name,
    version: _Number,
    event_id: Annotated[str, Path(max_length=64)],
) -> Response:
    """A gate's HTML report (plots and tables), sandboxed."""
    found = _version(_backend(request), name, version)
    path = _html_report(request, _gate_of(request, found, event_id))
    if path is None:
        raise NotFoundError(f"the HTML report of the gate {event_id!r} is no longer on disk")
    return _sandboxed(FileResponse(path, media_type="text/html; charset=utf-8"))
