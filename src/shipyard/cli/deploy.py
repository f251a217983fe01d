"""``shipyard deploy``: deployments, canary rollouts, shadow traffic, the controller."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from shipyard.cli._base import console, format_time, print_json, workspace_from
from shipyard.deploy.analysis import CanarySpec
from shipyard.deploy.service import Deployments, DeploymentStatus
from shipyard.deploy.stats import latency_quantile
from shipyard.entities import Deployment, DeploymentEvent
from shipyard.errors import InvalidArgumentError

__all__ = ["app", "parse_duration"]

app = typer.Typer(
    help="Deployments: routes, canary rollouts, shadow traffic, promotion and rollback.",
    no_args_is_help=True,
)

_JSON = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
_NAME = Annotated[str, typer.Argument(help="The deployment.")]
_REASON = Annotated[str, typer.Option("--reason", "-m", help="Why (recorded in the history).")]
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*")


def parse_duration(text: str) -> float:
    """``30s``, ``2m``, ``1h``, ``500ms`` or plain seconds -> seconds."""
    match = _DURATION.fullmatch(text)
    if match is None:
        raise InvalidArgumentError(f"invalid duration {text!r}: use e.g. 30s, 2m, 1h or 500ms")
    value, unit = float(match.group(1)), match.group(2) or "s"
    return value * {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[unit]


def _steps(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise InvalidArgumentError(
            f"invalid --steps {text!r}: give rising percents, e.g. 5,25,50,100"
        ) from None


def _service(ctx: typer.Context) -> Deployments:
    workspace = workspace_from(ctx)
    return Deployments(workspace.backend, workspace.settings.user, home=workspace.settings.home)


def _deployment_dict(d: Deployment) -> dict[str, Any]:
    return {
        "name": d.name,
        "model": d.model,
        "target": d.target.value,
        "strategy": d.strategy.value,
        "state": d.state.value,
        "alias": d.alias,
        "revision": d.revision,
        "routes": [r.to_dict() for r in d.routes],
        "spec": d.spec,
        "created_at": d.created_at,
        "created_by": d.created_by,
        "updated_at": d.updated_at,
    }


def _event_dict(e: DeploymentEvent) -> dict[str, Any]:
    return {
        "seq": e.seq,
        "at": e.at,
        "actor": e.actor,
        "action": e.action,
        "reason": e.reason,
        "revision": e.revision,
        "details": e.details,
        "routes": [r.to_dict() for r in e.routes],
    }


def _routes_text(d: Deployment) -> str:
    return ", ".join(
        f"{r.name}={r.model_ref} {r.weight:g}%" + (" shadow" if r.mode.value == "shadow" else "")
        for r in d.routes
    )


def _done(d: Deployment, what: str, as_json: bool) -> None:
    if as_json:
        print_json(_deployment_dict(d))
    else:
        console.print(Text(f"{what}: {d.name} is {d.state.value} ({_routes_text(d)})"))


@app.command("create")
def create(
    ctx: typer.Context,
    name: _NAME,
    model: Annotated[str, typer.Option("--model", help="The version to serve: churn@champion.")],
    target: Annotated[
        str, typer.Option("--target", help="online (a model server) or edge (an ONNX package).")
    ] = "online",
    out: Annotated[
        Path | None, typer.Option("--out", help="Edge: the new folder for the ONNX package.")
    ] = None,
    trusted_code: Annotated[
        bool, typer.Option("--trusted-code", help="Edge: allow models that run code.")
    ] = False,
    reason: _REASON = "",
    as_json: _JSON = False,
) -> None:
    """Create a deployment with one live route (serve it: shipyard serve --deployment NAME),
    or with --target edge export an ONNX package and record it."""
    service = _service(ctx)
    if target == "online":
        _done(service.create(name, model, reason=reason), "Created", as_json)
        return
    if target != "edge":
        raise InvalidArgumentError(f"unknown --target {target!r}: use online or edge")
    if out is None:
        raise InvalidArgumentError("an edge deployment needs --out DIR for its ONNX package")
    from shipyard.deploy.service import validate_deployment_name
    from shipyard.export import export_onnx

    validate_deployment_name(name)
    with console.status(f"Exporting {model} to ONNX", spinner="dots"):
        result = export_onnx(
            model, out, trusted_code=trusted_code, home=workspace_from(ctx).settings.home
        )
    parity = {
        "rows": result.parity.get("rows"),
        "rows_source": result.parity.get("rows_source"),
        "max_abs_diff": result.parity.get("model.onnx", {}).get("max_abs_diff"),
    }
    deployment = service.edge(name, model, package=str(result.path), parity=parity, reason=reason)
    _done(deployment, f"Exported to {result.path} and recorded", as_json)


@app.command("batch")
def batch(
    ctx: typer.Context,
    name: _NAME,
    model: Annotated[str, typer.Option("--model", help="The version that scores: churn@3.")],
    input: Annotated[
        str, typer.Option("--input", "-i", help="A .parquet/.csv file or a dataset name@v.")
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Folder for one Parquet file per run.")
    ],
    schedule: Annotated[
        str | None, typer.Option("--schedule", help='Cron (UTC), e.g. "0 2 * * *".')
    ] = None,
    reason: _REASON = "",
    as_json: _JSON = False,
) -> None:
    """Record scheduled batch scoring (run by `shipyard deploy run-due`)."""
    deployment = _service(ctx).batch(
        name, model, input=input, output=str(output.resolve()), schedule=schedule, reason=reason
    )
    _done(deployment, "Created", as_json)
    next_run = deployment.analysis.get("next_run")
    if next_run and not as_json:
        console.print(Text(f"next run: {format_time(int(next_run))} (shipyard deploy run-due)"))


def _run_batch(
    deployment: Deployment, home: Path, trusted_code: bool, run_predict: Any
) -> dict[str, Any]:
    """One run of a batch deployment: what it wrote, or its error."""
    route = deployment.routes[0]
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    output = Path(deployment.spec["output"]) / f"{deployment.name}-{stamp}.parquet"
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        result = run_predict(
            route.model_ref, deployment.spec["input"], output, trusted_code=trusted_code, home=home
        )
    except Exception as exc:  # recorded, and the other deployments still run
        return {"error": f"{type(exc).__name__}: {exc}"}
    return {
        "output": str(result.output),
        "rows": result.rows,
        "model_version": result.model_version,
        "run_id": result.run_id,
    }


@app.command("run-due")
def run_due(
    ctx: typer.Context,
    name: Annotated[
        list[str] | None, typer.Argument(help="Run these batch deployments now, due or not.")
    ] = None,
    trusted_code: Annotated[
        bool, typer.Option("--trusted-code", help="Allow models that run code when loaded.")
    ] = False,
    as_json: _JSON = False,
) -> None:
    """Run the batch deployments that are due (for cron or a CI job); exit 1 if one failed."""
    from shipyard.batch import predict as run_predict

    workspace = workspace_from(ctx)
    service = _service(ctx)
    chosen = [service.get(n) for n in name] if name else service.due_batches()
    for deployment in chosen:  # every name checked before anything runs
        if deployment.target.value != "batch":
            raise InvalidArgumentError(f"deployment {deployment.name!r} is not a batch deployment")
    outcomes = []
    failed = False
    for deployment in chosen:
        outcome = _run_batch(deployment, workspace.settings.home, trusted_code, run_predict)
        ok = "error" not in outcome
        try:
            service.record_batch_run(deployment.name, outcome, ok=ok)
        except Exception as exc:  # the run happened (or failed) anyway: say so, go on
            outcome["record_error"] = f"{type(exc).__name__}: {exc}"
            ok = False
        failed = failed or not ok
        outcomes.append({"deployment": deployment.name} | outcome)
        if not as_json:
            shown = ", ".join(f"{k}={v}" for k, v in outcome.items())
            console.print(Text(f"{deployment.name}: {shown}"))
    if as_json:
        print_json(outcomes)
    elif not chosen:
        console.print("No batch deployment is due.")
    if failed:
        raise typer.Exit(1)


@app.command("ls")
def list_deployments(ctx: typer.Context, as_json: _JSON = False) -> None:
    """Every deployment with its state and routes."""
    found = _service(ctx).all()
    if not found:
        from shipyard.cli._output import print_empty

        hint = "create one with `shipyard deploy create NAME --model churn@champion`"
        print_empty("deployments in this workspace", as_json=as_json, hint=hint)
        return
    if as_json:
        print_json([_deployment_dict(d) for d in found])
        return
    table = Table("name", "model", "target", "strategy", "state", "routes", "updated")
    for d in found:
        table.add_row(
            d.name, d.model, d.target.value, d.strategy.value, d.state.value,
            _routes_text(d), format_time(d.updated_at),
        )  # fmt: skip
    console.print(table)


def _status_dict(status: DeploymentStatus) -> dict[str, Any]:
    d = status.deployment
    routes = []
    for route in d.routes:
        stats = status.stats_of(route)
        entry = route.to_dict()
        if stats is not None:
            entry |= {
                "requests": stats.requests,
                "errors": stats.errors,
                "error_rate": stats.errors / stats.requests if stats.requests else None,
                "p50_ms": latency_quantile(stats.latency_counts, 0.5),
                "p95_ms": latency_quantile(stats.latency_counts, 0.95),
                "predictions": stats.predictions,
            }
            if stats.compared or stats.mirrored_dropped:
                entry |= {
                    "compared": stats.compared,
                    "agreement": stats.agreements / stats.compared if stats.compared else None,
                    "mean_abs_difference": (
                        stats.abs_difference / stats.compared if stats.compared else None
                    ),
                    "mirrored_dropped": stats.mirrored_dropped,
                }
        routes.append(entry)
    return _deployment_dict(d) | {"routes": routes, "analysis": _public_analysis(d.analysis)}


def _public_analysis(analysis: dict[str, Any]) -> dict[str, Any]:
    """The analysis without its bookkeeping (baselines, log likelihoods)."""
    hidden = {"step_start", "log_lr", "step_log_lr", "latency_from"}
    return {k: v for k, v in analysis.items() if k not in hidden}


@app.command("status")
def status(ctx: typer.Context, name: _NAME, as_json: _JSON = False) -> None:
    """Routes, weights, live numbers per route and the analysis so far."""
    found = _service(ctx).status(name)
    data = _status_dict(found)
    if as_json:
        print_json(data)
        return
    d = found.deployment
    console.print(
        Text(
            f"{d.name}: {d.model} ({d.target.value}), {d.strategy.value}, {d.state.value}, "
            f"revision {d.revision}" + (f", follows alias {d.alias}" if d.alias else "")
        )
    )
    table = Table("route", "version", "mode", "weight %", "requests", "errors", "p50 ms", "p95 ms")
    for entry in data["routes"]:
        rate = entry.get("error_rate")
        table.add_row(
            entry["name"], str(entry["version"]), entry["mode"], f"{entry['weight']:g}",
            str(entry.get("requests", 0)),
            f"{entry.get('errors', 0)}" + (f" ({100 * rate:.2f}%)" if rate is not None else ""),
            _ms(entry.get("p50_ms")), _ms(entry.get("p95_ms")),
        )  # fmt: skip
    console.print(table)
    for entry in data["routes"]:
        if entry.get("compared"):
            console.print(
                Text(
                    f"shadow {entry['name']}: agrees with live on {100 * entry['agreement']:.1f}% "
                    f"of {entry['compared']} rows; mean |difference| "
                    f"{entry['mean_abs_difference']:.4g}; {entry['mirrored_dropped']} mirrors "
                    "dropped"
                )
            )
    analysis = data["analysis"]
    if analysis.get("rules"):
        step = int(analysis.get("step", 0)) + 1
        console.print(
            Text(
                f"analysis: step {step} at {analysis.get('weight', 0):g}%, "
                f"{analysis.get('looks', 0)} looks, {analysis.get('canary_requests', 0)} canary "
                "requests"
            )
        )
        for rule, numbers in analysis["rules"].items():
            shown = ", ".join(f"{k}={_short(v)}" for k, v in numbers.items())
            console.print(Text(f"  {rule}: {shown}"))


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value:.3g}"


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


@app.command("history")
def history(
    ctx: typer.Context,
    name: _NAME,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1)] = 100,
    as_json: _JSON = False,
) -> None:
    """Every change: who, when, why and the numbers that decided it."""
    events = _service(ctx).history(name, limit)
    if as_json:
        print_json([_event_dict(e) for e in events])
        return
    table = Table("#", "when", "who", "action", "reason", "routes")
    for e in events:
        table.add_row(
            str(e.seq), format_time(e.at), e.actor, e.action, e.reason,
            ", ".join(f"{r.name}={r.model_ref} {r.weight:g}%" for r in e.routes),
        )  # fmt: skip
    console.print(table)


@app.command("canary")
def canary(
    ctx: typer.Context,
    name: _NAME,
    model: Annotated[str, typer.Option("--model", help="The challenger: churn@challenger.")],
    steps: Annotated[
        str, typer.Option("--steps", help="Canary traffic percent per step; 100 promotes.")
    ] = "5,25,50,100",
    interval: Annotated[
        str, typer.Option("--interval", help="The least time per step (30s, 2m).")
    ] = "30s",
    min_requests: Annotated[
        int, typer.Option("--min-requests", min=1, help="Canary requests a step needs.")
    ] = 100,
    deadline: Annotated[
        str | None,
        typer.Option("--deadline", help="Hold a step without enough requests after this."),
    ] = None,
    alpha: Annotated[
        float, typer.Option("--alpha", help="Chance of rolling back a canary that is no worse.")
    ] = 0.05,
    max_latency_increase: Annotated[
        float | None,
        typer.Option("--max-latency-increase", help="Percent above stable's p95 that is slow."),
    ] = 20.0,
    no_latency: Annotated[
        bool, typer.Option("--no-latency-rule", help="Do not judge latency.")
    ] = False,
    prediction_psi: Annotated[
        float, typer.Option("--prediction-psi", help="PSI from which a prediction shift fails.")
    ] = 0.1,
    no_predictions: Annotated[
        bool, typer.Option("--no-prediction-rule", help="Do not judge the predictions.")
    ] = False,
    no_errors: Annotated[
        bool, typer.Option("--no-error-rule", help="Do not judge the error rate.")
    ] = False,
    metric: Annotated[
        str | None,
        typer.Option("--metric", help="Also judge accuracy from /feedback labels, per step."),
    ] = None,
    min_labels: Annotated[
        int, typer.Option("--min-labels", min=1, help="Labelled rows a route needs per step.")
    ] = 100,
    reason: _REASON = "",
    as_json: _JSON = False,
) -> None:
    """Start a canary: traffic moves step by step while the analysis holds; a failing rule
    rolls back, the last step promotes (and moves the alias)."""
    spec = CanarySpec(
        steps=_steps(steps),
        interval_s=parse_duration(interval),
        min_requests=min_requests,
        deadline_s=parse_duration(deadline) if deadline else None,
        alpha=alpha,
        errors=not no_errors,
        latency_increase_pct=None if no_latency else max_latency_increase,
        predictions_psi=None if no_predictions else prediction_psi,
        metric=metric,
        min_labels=min_labels,
    )
    _done(_service(ctx).canary(name, model, spec, reason=reason), "Canary started", as_json)


@app.command("ab")
def ab(
    ctx: typer.Context,
    name: _NAME,
    variant: Annotated[
        list[str],
        typer.Option("--variant", help="NAME=MODEL@VERSION:WEIGHT, e.g. a=churn@3:50 (repeat)."),
    ],
    sticky_key: Annotated[
        str | None,
        typer.Option("--sticky-key", help="header:NAME keeps a caller on one variant."),
    ] = None,
    metric: Annotated[str, typer.Option("--metric", help="What is compared.")] = "accuracy",
    alpha: Annotated[float, typer.Option("--alpha", help="The test's significance level.")] = 0.05,
    min_samples: Annotated[
        int, typer.Option("--min-samples", min=1, help="Labelled rows each variant needs.")
    ] = 200,
    reason: _REASON = "",
    as_json: _JSON = False,
) -> None:
    """Start an A/B test: sticky variants, outcomes from /feedback, concluded by hand."""
    from shipyard.deploy.ab import AbSpec, parse_variant

    spec = AbSpec(sticky_key=sticky_key, metric=metric, alpha=alpha, min_samples=min_samples)
    variants = [parse_variant(v) for v in variant]
    _done(_service(ctx).ab(name, variants, spec, reason=reason), "A/B test started", as_json)


def _print_report(report: Any) -> None:
    table = Table("variant", "weight %", "requests", "labelled", report.metric, "95% interval",
                  "P(best)")  # fmt: skip
    for v in report.variants:
        interval = f"{v.interval[0]:.4f} - {v.interval[1]:.4f}" if v.interval else ""
        table.add_row(
            v.name, f"{v.weight:g}", str(v.requests), str(v.labelled),
            "" if v.metric is None else f"{v.metric:.4f}", interval,
            "" if v.probability_best is None else f"{v.probability_best:.3f}",
        )  # fmt: skip
    console.print(table)
    srm = "" if report.srm_p_value is None else f"sample ratio p = {report.srm_p_value:.3g}; "
    console.print(Text(f"{srm}{report.verdict}"))


@app.command("ab-report")
def ab_report(ctx: typer.Context, name: _NAME, as_json: _JSON = False) -> None:
    """Per variant: the metric with its interval, p-value, probability to be best, and the
    sample-ratio check."""
    report = _service(ctx).ab_report(name)
    if as_json:
        print_json(report.to_dict())
    else:
        _print_report(report)


@app.command("conclude")
def conclude(ctx: typer.Context, name: _NAME, reason: _REASON = "", as_json: _JSON = False) -> None:
    """End the A/B test: promote the winner, or say why there is none (nothing changes)."""
    deployment, report = _service(ctx).conclude(name, reason=reason)
    if as_json:
        print_json(_deployment_dict(deployment) | {"report": report.to_dict()})
        return
    _print_report(report)
    _done(deployment, "Concluded", False)


@app.command("shadow")
def shadow(
    ctx: typer.Context,
    name: _NAME,
    model: Annotated[
        str | None, typer.Option("--model", help="The version to mirror requests to.")
    ] = None,
    percent: Annotated[
        float, typer.Option("--percent", help="Percent of live requests mirrored.")
    ] = 100.0,
    stop: Annotated[bool, typer.Option("--stop", help="Stop mirroring.")] = False,
    reason: _REASON = "",
    as_json: _JSON = False,
) -> None:
    """Mirror live requests to a shadow version: answers compared and logged, never returned."""
    service = _service(ctx)
    if stop:
        _done(service.stop_shadow(name, reason=reason), "Shadow stopped", as_json)
        return
    if model is None:
        raise InvalidArgumentError("give --model churn@5 (or --stop)")
    _done(service.shadow(name, model, percent, reason=reason), "Shadow started", as_json)


@app.command("promote")
def promote(ctx: typer.Context, name: _NAME, reason: _REASON = "", as_json: _JSON = False) -> None:
    """End the rollout now with the challenger promoted."""
    _done(_service(ctx).promote(name, reason=reason), "Promoted", as_json)


@app.command("rollback")
def rollback(ctx: typer.Context, name: _NAME, reason: _REASON = "", as_json: _JSON = False) -> None:
    """End the rollout with the challenger removed, or undo the last promotion."""
    _done(_service(ctx).rollback(name, reason=reason), "Rolled back", as_json)


@app.command("pause")
def pause(ctx: typer.Context, name: _NAME, reason: _REASON = "", as_json: _JSON = False) -> None:
    """Freeze the rollout: the controller neither advances nor rolls back."""
    _done(_service(ctx).pause(name, reason=reason), "Paused", as_json)


@app.command("resume")
def resume(ctx: typer.Context, name: _NAME, reason: _REASON = "", as_json: _JSON = False) -> None:
    """Go on with a paused or held rollout (its current step starts over)."""
    _done(_service(ctx).resume(name, reason=reason), "Resumed", as_json)


@app.command("controller")
def controller(
    ctx: typer.Context,
    name: Annotated[
        list[str] | None, typer.Argument(help="Deployments to look after (default: all).")
    ] = None,
    look: Annotated[str, typer.Option("--look", help="Time between looks.")] = "2s",
    once: Annotated[bool, typer.Option("--once", help="Look once and exit.")] = False,
) -> None:
    """Run the rollout controller (for model servers started with --no-controller)."""
    from shipyard.deploy.controller import Controller

    workspace = workspace_from(ctx)

    def said(deployment: Deployment, decision: Any) -> None:
        console.print(Text(f"{deployment.name}: {decision.action}: {decision.reason}"))

    ctl = Controller(
        workspace.backend,
        names=list(name) if name else None,
        look_seconds=parse_duration(look),
        on_decision=said,
        home=workspace.settings.home,
    )
    if once:
        ctl.tick()
        return
    console.print(Text(f"Controller {ctl.holder} looking every {look} (Ctrl-C stops)"))
    try:
        ctl.run()  # a failed look (the store away for a moment) is logged and tried again
    except KeyboardInterrupt:
        return


@app.command("manifest")
def manifest(
    ctx: typer.Context,
    name: _NAME,
    target: Annotated[str, typer.Option("--target", help="kubernetes or kserve.")] = "kubernetes",
    out: Annotated[
        Path | None, typer.Option("--out", help="Write the files into this folder.")
    ] = None,
    image: Annotated[str | None, typer.Option("--image", help="The model server image.")] = None,
) -> None:
    """Kubernetes (Deployment, Service, HPA) or KServe manifests and a Dockerfile."""
    from shipyard.deploy.manifest import (
        ManifestOptions,
        kserve_manifest,
        kubernetes_manifests,
        manifest_files,
    )

    deployment = _service(ctx).get(name)
    options = ManifestOptions(image=image) if image else ManifestOptions()
    if out is None:
        if target == "kserve":
            console.print(kserve_manifest(deployment, options), markup=False, end="")
        elif target == "kubernetes":
            console.print(kubernetes_manifests(deployment, options), markup=False, end="")
        else:
            raise InvalidArgumentError(f"unknown --target {target!r}: use kubernetes or kserve")
        return
    files = manifest_files(deployment, options, target=target)
    out.mkdir(parents=True, exist_ok=True)
    for filename, text in files.items():
        path = out / filename
        temp = path.with_name(f".{filename}.tmp")
        temp.write_text(text)
        temp.replace(path)
        console.print(Text(f"wrote {path}"))
