"""Shipyard quick start: version a dataset, sweep hyperparameters over it, search the runs,
then check a new batch of data for drift against the training version.

Run it with `make demo` (or `python examples/quickstart.py` inside the environment). It trains
logistic-regression models with plain numpy on synthetic data, so it needs nothing else.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

import shipyard
from shipyard import data


def make_table(rows: int = 2_000, features: int = 8, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, features))
    true_w = rng.normal(size=features)
    y = (x @ true_w + rng.normal(scale=1.5, size=rows) > 0).astype(float)
    table = pd.DataFrame(x, columns=[f"f{i}" for i in range(features)])
    table["label"] = y
    return table


def split(table: pd.DataFrame) -> tuple[np.ndarray, ...]:
    x, y = table.drop(columns="label").to_numpy(), table["label"].to_numpy()
    cut = int(len(table) * 0.8)
    return x[:cut], y[:cut], x[cut:], y[cut:]


def train(run: shipyard.ActiveRun, lr: float, l2: float, epochs: int = 60) -> float:
    # Loading inside the run records that this run read churn@latest (see `data lineage`).
    x_train, y_train, x_val, y_val = split(
        data.load("churn@latest", home=run.workspace.settings.home)
    )
    w = np.zeros(x_train.shape[1])
    for epoch in range(epochs):
        p = 1 / (1 + np.exp(-(x_train @ w)))
        grad = x_train.T @ (p - y_train) / len(y_train) + l2 * w
        w -= lr * grad
        eps = 1e-12
        loss = -np.mean(y_train * np.log(p + eps) + (1 - y_train) * np.log(1 - p + eps))
        val_acc = float(np.mean(((x_val @ w) > 0) == (y_val > 0.5)))
        run.log_metrics({"train_loss": float(loss), "val_accuracy": val_acc}, step=epoch)
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "weights.csv"
        np.savetxt(weights, w, delimiter=",")
        run.log_artifact(weights)
    return val_acc


def main() -> None:
    workspace = Path(tempfile.mkdtemp(prefix="shipyard-quickstart-")) / ".shipyard"
    added = data.add(make_table(), name="churn", home=workspace)
    print(f"Versioned the training data as {added.version.ref} ({added.version.digest[:12]})")
    with shipyard.start_run(experiment="quickstart", name="sweep", home=workspace) as parent:
        parent.log_param("search", "grid")
        for lr in (0.01, 0.1, 0.5):
            for l2 in (0.0, 0.01):
                with shipyard.start_run(name=f"lr={lr},l2={l2}", nested=True) as child:
                    child.log_params({"lr": lr, "l2": l2, "model": "logreg"})
                    accuracy = train(child, lr, l2)
                    print(
                        f"  run {child.run_id[:8]}  lr={lr:<5} l2={l2:<5} accuracy={accuracy:.3f}"
                    )

    best = shipyard.search_runs(
        "quickstart",
        filter="params.model = 'logreg' and metrics.val_accuracy > 0.5",
        order_by=["metrics.val_accuracy DESC"],
        max_results=3,
        home=workspace,
    )
    print("\nTop runs by validation accuracy:")
    print(best[["run_id", "params.lr", "params.l2", "metrics.val_accuracy"]].to_string(index=False))
    # A new batch arrives: one feature moved a little, one a lot. Compare it with churn@1.
    from shipyard.monitoring import compare, render_report

    batch = make_table(seed=9)
    batch["f0"] += 0.25  # a quarter of a standard deviation
    batch["f3"] = batch["f3"] * 2.0  # twice the spread
    drift = compare(
        data.load("churn@1", home=workspace),
        batch,
        reference_label="churn@1",
        current_label="new batch",
    )
    report = workspace.parent / "drift.html"
    report.write_text(render_report(drift=drift, title="churn: new batch vs churn@1"))
    print(
        f"\nDrift of a new batch vs churn@1: {', '.join(drift.drifted_columns) or 'none'} "
        f"({drift.share_drifted:.0%} of columns); report: {report}"
    )
    # `make demo` runs inside .venv, whose bin/ is usually not on PATH: show a command that works.
    beside = Path(sys.executable).parent / "shipyard"
    on_path = shutil.which("shipyard") == str(beside)
    cli = "shipyard" if on_path or not beside.exists() else os.path.relpath(beside)
    print(f"\nWorkspace: {workspace}")
    print(f"Explore it:  {cli} --home {workspace} runs ls")
    print(
        f"             {cli} --home {workspace} runs compare "
        f"{best.run_id[0][:8]} {best.run_id[1][:8]}"
    )
    print(f"             {cli} --home {workspace} data lineage {added.version.ref}")


if __name__ == "__main__":
    main()
