"""``shipyard models``, ``shipyard users`` and ``shipyard audit``: the registry and its trail."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from shipyard.cli._base import console, format_time, print_json, workspace_from
from shipyard.entities import ModelVersion, Severity
from shipyard.registry import Registry

__all__ = ["audit_app", "models_app", "users_app"]

models_app = typer.Typer(help="Registered models: versions, aliases, review.", no_args_is_help=True)
users_app = typer.Typer(help="Who may do what in the registry.", no_args_is_help=True)
audit_app = typer.Typer(help="The registry's tamper-evident audit log.", no_args_is_help=True)

_JSON = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
_COMMENT = Annotated[str, typer.Option("--comment", "-m", help="Why.")]


def _registry(ctx: typer.Context) -> Registry:
    workspace = workspace_from(ctx)
    return Registry(workspace.backend, workspace.settings.user)


def _version_dict(version: ModelVersion) -> dict[str, Any]:
    data = dataclasses.asdict(version)
    data["ref"] = version.ref
    data["review"] = version.review.value
    data["aliases"] = list(version.aliases)
    return data


@models_app.command("register")
def register(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="Folder (or file) holding the model.")],
    name: Annotated[str, typer.Option("--name", "-n", help="Registered model name.")],
    run_id: Annotated[str | None, typer.Option("--run", help="Run that produced it.")] = None,
    flavor: Annotated[
        str | None, typer.Option("--flavor", help="Default: from shipyard-model.json.")
    ] = None,
    description: Annotated[str, typer.Option("--description", "-d")] = "",
    as_json: _JSON = False,
) -> None:
    """Store a model folder and register it as the next version of NAME."""
    workspace = workspace_from(ctx)
    registry = Registry(workspace.backend, workspace.settings.user)
    if run_id is not None:
        run_id = workspace.backend.resolve_run_id(run_id)
    info = workspace.artifacts.put(path)
    meta = path / "shipyard-model.json"
    if flavor is None and meta.is_file():
        flavor = str(json.loads(meta.read_text()).get("flavor", "unknown"))
    version = registry.register(
        name,
        digest=info.digest,
        flavor=flavor or "unknown",
        run_id=run_id,
        source=str(path.resolve()),
        description=description,
    )
    if as_json:
        print_json(_version_dict(version))
    else:
        console.print(Text(f"Registered {version.ref} ({version.flavor}, {info.digest[:12]})"))


@models_app.command("ls")
def list_models(ctx: typer.Context, as_json: _JSON = False) -> None:
    """List registered models with their aliases."""
    registry = _registry(ctx)
    models = registry.models()
    if not models:
        from shipyard.cli._output import print_empty

        print_empty(
            "models in the registry",
            as_json=as_json,
            hint="register one with run.log_model(...) or `shipyard models register`",
        )
        return
    if as_json:
        print_json([dataclasses.asdict(m) for m in models])
        return
    table = Table(box=None, header_style="bold")
    for column in ("Model", "Latest", "Aliases", "Governed", "Created (UTC)", "By"):
        table.add_column(column)
    for model in models:
        latest = registry.backend.latest_model_version(model.name)
        aliases = ", ".join(f"{a}→{v}" for a, v in model.aliases.items())
        table.add_row(
            Text(model.name),
            str(latest),
            Text(aliases or "-"),
            "yes" if model.governed else "",
            format_time(model.created_at),
            Text(model.created_by),
        )
    console.print(table)


@models_app.command("show")
def show(ctx: typer.Context, ref: str, as_json: _JSON = False) -> None:
    """Show a version (NAME@VERSION, NAME@ALIAS or NAME for the latest)."""
    version = _registry(ctx).resolve(ref)
    if as_json:
        print_json(_version_dict(version))
        return
    console.print(Text(f"{version.ref}  {version.flavor}", style="bold"))
    console.print(
        Text(
            f"digest {version.digest} · registered {format_time(version.created_at)} by "
            f"{version.created_by} · review {version.review.value}"
            + (f" · run {version.run_id}" if version.run_id else "")
        )
    )
    if version.aliases:
        console.print(Text(f"aliases: {', '.join(version.aliases)}"))
    for key, value in version.tags.items():
        console.print(Text(f"tag {key} = {value}"))
    if version.description:
        console.print(Text(version.description))


@models_app.command("versions")
def versions(ctx: typer.Context, name: str, as_json: _JSON = False) -> None:
    """List every version of a model."""
    found = _registry(ctx).versions(name)
    if not found:
        from shipyard.cli._output import print_empty

        print_empty(f"versions of model {name}", as_json=as_json)
        return
    if as_json:
        print_json([_version_dict(v) for v in found])
        return
    table = Table(box=None, header_style="bold")
    for column in ("Version", "Flavor", "Aliases", "Review", "Registered (UTC)", "By", "Run"):
        table.add_column(column)
    for v in found:
        table.add_row(
            v.ref,
            v.flavor,
            Text(", ".join(v.aliases) or "-"),
            v.review.value,
            format_time(v.created_at),
            Text(v.created_by),
            (v.run_id or "-")[:8],
        )
    console.print(table)


@models_app.command("alias")
def alias(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME@VERSION the alias should point at.")],
    name: Annotated[str, typer.Argument(help="The alias, e.g. champion.")],
    delete: Annotated[bool, typer.Option("--delete", help="Remove the alias instead.")] = False,
) -> None:
    """Point an alias at a version (moving it atomically), or delete it."""
    registry = _registry(ctx)
    if delete:
        model = ref.partition("@")[0]
        registry.delete_alias(model, name)
        console.print(Text(f"Deleted {model}@{name}"))
        return
    version = registry.set_alias(ref, name)
    console.print(Text(f"{version.model}@{name} -> {version.ref}"))


@models_app.command("tag")
def tag(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME (the model) or NAME@VERSION.")],
    key: str,
    value: str,
) -> None:
    """Set a tag on a model or on one of its versions (audited)."""
    _registry(ctx).tag(ref, key, value)
    console.print(Text(f"{ref}: {key} = {value}"))


@models_app.command("govern")
def govern(
    ctx: typer.Context,
    name: str,
    off: Annotated[bool, typer.Option("--off", help="Stop governing the model.")] = False,
) -> None:
    """Require an approved version before the champion alias can move (admins only)."""
    _registry(ctx).set_governed(name, not off)
    console.print(Text(f"{name} is {'no longer ' if off else ''}governed"))


@models_app.command("request-review")
def request_review(ctx: typer.Context, ref: str, comment: _COMMENT = "") -> None:
    """Ask for a version to be reviewed."""
    version = _registry(ctx).request_review(ref, comment)
    console.print(Text(f"{version.ref} is awaiting review"))


@models_app.command("approve")
def approve(ctx: typer.Context, ref: str, comment: _COMMENT = "") -> None:
    """Approve a version (approver role; not its author)."""
    version = _registry(ctx).approve(ref, comment)
    console.print(Text(f"{version.ref} approved"))


@models_app.command("reject")
def reject(ctx: typer.Context, ref: str, comment: _COMMENT = "") -> None:
    """Reject a version, saying why (approver role; not its author)."""
    version = _registry(ctx).reject(ref, comment)
    console.print(Text(f"{version.ref} rejected"))


@models_app.command("lineage")
def lineage(ctx: typer.Context, ref: str, as_json: _JSON = False) -> None:
    """The run that produced a version, the dataset versions that run read, and the
    deployments that routed traffic to it."""
    workspace = workspace_from(ctx)
    version = Registry(workspace.backend, workspace.settings.user).resolve(ref)
    inputs = (
        workspace.backend.run_dataset_versions([version.run_id], "input") if version.run_id else []
    )
    deployments = workspace.backend.deployments_of_version(version.model, version.version)
    pipeline_steps = []
    for edge in workspace.backend.pipeline_lineage(kind="model_version", ref=version.ref):
        step = workspace.backend.get_step_run(edge.step_run_id)
        run = workspace.backend.get_pipeline_run(edge.run_id)
        pipeline_steps.append({"pipeline": run.pipeline, "run_id": run.run_id, "step": step.name})
    data = {
        "version": version.ref,
        "digest": version.digest,
        "run_id": version.run_id,
        "datasets": [v.ref for _, v in inputs],
        "pipeline_runs": pipeline_steps,
        "deployments": [{"name": name, "since": since} for name, since in deployments],
    }
    if as_json:
        print_json(data)
        return
    console.print(Text(version.ref, style="bold"))
    if version.run_id is None:
        console.print("  registered without a run")
    else:
        console.print(Text(f"  produced by run {version.run_id}"))
    for made in pipeline_steps:
        console.print(
            Text(
                f"  in step {made['step']} of pipeline {made['pipeline']} "
                f"(run {made['run_id'][:8]})"
            )
        )
    for _, dataset in inputs:
        console.print(Text(f"  which read {dataset.ref}"))
    for name, since in deployments:
        console.print(Text(f"  deployed by {name} since {format_time(since)}"))


@users_app.command("add")
def add_user(
    ctx: typer.Context,
    name: str,
    role: Annotated[str, typer.Option("--role", "-r", help="viewer, member, approver or admin.")],
    password: Annotated[
        bool, typer.Option("--password", help="Also set a password (asked for twice).")
    ] = False,
) -> None:
    """Give a user a role (admins only), and optionally a password for logging in."""
    registry = _registry(ctx)
    registry.set_user(name, role)
    console.print(Text(f"{name} is now {role}"))
    if password:
        _set_password(registry, name, stdin=False)


@users_app.command("passwd")
def set_user_password(
    ctx: typer.Context,
    name: Annotated[
        str | None, typer.Argument(help="Whose (default: you; others: admins).")
    ] = None,
    stdin: Annotated[bool, typer.Option("--stdin", help="Read the password from stdin.")] = False,
    remove: Annotated[bool, typer.Option("--remove", help="Remove the password.")] = False,
) -> None:
    """Set a password for `shipyard login` and HTTP Basic (scrypt-hashed; never a default)."""
    registry = _registry(ctx)
    user = name or registry.user
    if remove:
        from shipyard.registry.passwords import set_password

        set_password(registry.backend, registry.user, user, None)
        console.print(Text(f"{user} has no password now (tokens only)"))
        return
    _set_password(registry, user, stdin=stdin)


def _set_password(registry: Registry, user: str, *, stdin: bool) -> None:
    import sys

    from shipyard.registry.passwords import set_password

    if stdin:
        secret = sys.stdin.readline().rstrip("\r\n")
    else:
        secret = typer.prompt(f"New password for {user}", hide_input=True, confirmation_prompt=True)
    set_password(registry.backend, registry.user, user, secret)
    console.print(Text(f"password set for {user}"))


@users_app.command("ls")
def list_users(ctx: typer.Context, as_json: _JSON = False) -> None:
    """List users with a role (everyone else is a member)."""
    found = _registry(ctx).users()
    if not found:
        from shipyard.cli._output import print_empty

        print_empty("users with a role in this workspace", as_json=as_json)
        return
    if as_json:
        print_json(
            [{"name": u.name, "role": u.role.value, "created_at": u.created_at} for u in found]
        )
        return
    for user in found:
        console.print(Text(f"{user.name:<24} {user.role.value}"))


@audit_app.command("ls")
def list_audit(
    ctx: typer.Context,
    target: Annotated[str | None, typer.Option("--target", "-t", help="e.g. churn")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1)] = 50,
    before: Annotated[
        int | None,
        typer.Option(
            "--before",
            min=1,
            metavar="N",
            help="Only entries older than entry N: page back with the last # shown.",
        ),
    ] = None,
    as_json: _JSON = False,
) -> None:
    """The newest audit entries (older pages with --before)."""
    backend = workspace_from(ctx).backend
    entries = backend.list_audit(limit=limit, target=target, before=before)
    if not entries:
        from shipyard.cli._output import print_empty

        where = f"for {target}" if target else "in this workspace"
        if before is not None:
            where += f" older than entry {before}"
        print_empty(f"audit entries {where}", as_json=as_json)
        return
    if as_json:
        print_json([dataclasses.asdict(e) for e in entries])
        return
    table = Table(box=None, header_style="bold")
    for column in ("#", "When (UTC)", "Who", "What", "Target", "Details"):
        table.add_column(column)
    for e in entries:
        table.add_row(
            str(e.seq),
            format_time(e.at),
            Text(e.actor),
            e.action,
            Text(e.target),
            Text(json.dumps(e.details, sort_keys=True)),
        )
    console.print(table)


@audit_app.command("verify")
def verify(ctx: typer.Context) -> None:
    """Check the hash chain: exit 1 if an entry was edited, inserted or deleted."""
    problems = workspace_from(ctx).backend.verify_audit()
    if problems:
        for problem in problems:
            console.print(Text(f"tampered: {problem}", style="bold red"))
        raise typer.Exit(code=1)
    console.print(Text("audit log intact", style="green"))


@models_app.command("scan")
def scan(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(help="A folder or file, or NAME@VERSION.")],
    as_json: _JSON = False,
) -> None:
    """Report unsafe imports in every pickle found (never unpickling); exit 1 if any."""
    from shipyard.errors import NotFoundError
    from shipyard.models import scan_pickles
    from shipyard.models.logged import model_path

    path = Path(target)
    if not path.exists() and "@" not in target:
        raise NotFoundError(f"no such file or folder: {target}")
    if not path.exists():
        workspace = workspace_from(ctx)
        version = Registry(workspace.backend, workspace.settings.user).resolve(target)
        path = model_path(version, workspace)
    findings = scan_pickles(path)
    if as_json:
        print_json(
            [
                {
                    "path": f.path,
                    "severity": f.severity.value,
                    "error": f.error,
                    "imports": [
                        {
                            "module": i.module,
                            "name": i.name,
                            "severity": i.severity.value,
                            "reason": i.reason,
                        }
                        for i in f.imports
                    ],
                }
                for f in findings
            ]
        )
    elif not findings:
        console.print(Text(f"no pickle files in {target}", style="green"))
    else:
        for finding in findings:
            console.print(Text(f"{finding.severity.value:>7}  {finding.path}"))
            for imp in finding.unsafe:
                console.print(Text(f"         {imp.module}.{imp.name}  {imp.reason}"))
            if finding.error:
                console.print(Text(f"         (read partly: {finding.error})"))
    if any(f.severity is Severity.ERROR for f in findings):
        raise typer.Exit(code=1)


@models_app.command("card")
def card(
    ctx: typer.Context,
    ref: str,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write into.")] = Path("."),
    intended_use: Annotated[
        str, typer.Option("--intended-use", help="Who should use it for what.")
    ] = "",
    limitations: Annotated[
        str, typer.Option("--limitations", help="Where it must not be used.")
    ] = "",
    validation: Annotated[
        Path | None, typer.Option("--validation", help="A validation report.json to include.")
    ] = None,
) -> None:
    """Write the model card of a version (Markdown and self-contained HTML)."""
    from shipyard.errors import InvalidArgumentError
    from shipyard.models import model_card

    workspace = workspace_from(ctx)
    version = Registry(workspace.backend, workspace.settings.user).resolve(ref)
    report = None
    if validation is not None:
        try:
            report = json.loads(validation.read_text())
        except (OSError, ValueError) as exc:
            raise InvalidArgumentError(
                f"cannot read validation report {validation}: {exc}"
            ) from exc
    written = model_card(
        version,
        backend=workspace.backend,
        artifacts=workspace.artifacts,
        validation=report,
        intended_use=intended_use,
        limitations=limitations,
    ).write(out)
    for path in written:
        console.print(Text(f"wrote {path}"))


@models_app.command("why")
def why(ctx: typer.Context, ref: str, as_json: _JSON = False) -> None:
    """Why a version is where it is: aliases and deployments, the trigger that started it,
    its training and data, the gate's numbers, the approval and the rollout."""
    from shipyard.automation.why import explain_version

    explained = explain_version(workspace_from(ctx).backend, ref)
    if as_json:
        print_json(explained.to_dict())
        return
    console.print(Text(explained.version, style="bold"))
    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for label, text in explained.lines:
        table.add_row(label, Text(text))
    console.print(table)
