"""``shipyard serve``: the real-time model server (OIP v2, MLflow scoring, KServe v1)."""

from __future__ import annotations

from typing import Annotated

import typer

from shipyard.cli._base import console, workspace_from

__all__ = ["serve"]


def serve(
    ctx: typer.Context,
    ref: Annotated[
        list[str] | None,
        typer.Argument(
            help="Models to serve: name@alias, name@3 or name (the first answers /invocations)."
        ),
    ] = None,
    port: Annotated[int, typer.Option("--port", "-p", help="Port to listen on.")] = 8080,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    workers: Annotated[int, typer.Option("--workers", "-w", min=1, help="Worker processes.")] = 1,
    max_batch_size: Annotated[
        int, typer.Option("--max-batch-size", min=1, help="Rows scored together; 1: no batching.")
    ] = 64,
    max_batch_wait_ms: Annotated[
        float, typer.Option("--max-batch-wait-ms", min=0, help="Wait for a batch to fill.")
    ] = 2.0,
    refresh_seconds: Annotated[
        float,
        typer.Option("--refresh", min=0, help="Re-resolve aliases every N seconds (0: never)."),
    ] = 30.0,
    log_predictions: Annotated[
        bool, typer.Option("--log/--no-log", help="Write the prediction log.")
    ] = True,
    trusted_pickle: Annotated[
        bool, typer.Option("--trust-pickle", help="Allow pickled models (digest-checked).")
    ] = False,
    trusted_code: Annotated[
        bool, typer.Option("--trust-code", help="Allow models that import their own code.")
    ] = False,
    max_body_mb: Annotated[
        float, typer.Option("--max-body-mb", min=0.001, help="Largest request body taken (MiB).")
    ] = 32.0,
    deployment: Annotated[
        str | None,
        typer.Option(
            "--deployment", "-d", help="Serve a deployment's routes and follow its changes."
        ),
    ] = None,
    controller: Annotated[
        bool,
        typer.Option(
            "--controller/--no-controller",
            help="Run the rollout controller in this server (off: `shipyard deploy controller`).",
        ),
    ] = True,
) -> None:
    """Serve models over HTTP until stopped (Ctrl-C or SIGTERM flushes the prediction log)."""
    try:
        from shipyard.serving import run_server
        from shipyard.serving.app import ServeSettings, create_app
        from shipyard.serving.runner import show_server_log
    except ImportError as exc:
        raise ImportError(
            f"`shipyard serve` needs the 'serve' extra: pip install 'shipyard-mlops[serve]' ({exc})"
        ) from exc

    workspace = workspace_from(ctx)
    show_server_log()
    settings = ServeSettings(
        refs=list(ref or ()),
        deployment=deployment,
        controller=controller,
        home=str(workspace.settings.home),
        max_batch_size=max_batch_size,
        max_batch_wait_ms=max_batch_wait_ms,
        refresh_seconds=refresh_seconds,
        log_predictions=log_predictions,
        trusted_pickle=trusted_pickle,
        trusted_code=trusted_code,
        max_body_bytes=int(max_body_mb * 2**20),
    )
    app = create_app(settings)  # loads every model now: a bad reference fails before listening
    server = app.state.server
    names = ", ".join(
        f"{holder.name}@{holder.current.version}"
        for holder in server.models.values()
        if holder is not server.routes
    )
    if server.routes is not None:
        table = server.routes.table
        routes = ", ".join(
            f"{r.name}={r.model_ref} {r.weight:g}%{' (shadow)' if r.mode.value == 'shadow' else ''}"
            for r in table.deployment.routes
        )
        names = ", ".join(n for n in (f"deployment {deployment} ({routes})", names) if n)
    console.print(f"Serving {names} on http://{host}:{port} ({workers} worker(s))")
    if workers > 1:
        del app  # each worker process loads its own models; the parent only supervises
        run_server(settings, host=host, port=port, workers=workers)
        return
    run_server(settings, host=host, port=port, workers=1, app=app)
