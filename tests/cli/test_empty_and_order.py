"""Listings with nothing to show say so alike, and `runs ls` warns about a filter or an order
that names a key no run has, instead of sorting or filtering silently."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import shipyard
from shipyard.cli import app
from shipyard.cli.runs import _exists_filter
from shipyard.store.filters import Comparison, Field, parse_filter
from shipyard.tracking import open_workspace
from tests._cli import run_shipyard

pytestmark = pytest.mark.e2e
STORE_KINDS = ("sqlite",)  # the wording of listings; the store layer runs on PostgreSQL elsewhere

runner = CliRunner()

EMPTY_LISTINGS = {
    ("experiments", "ls"): "no experiments in this workspace: start one with",
    ("runs", "ls"): "no runs in this workspace",
    ("models", "ls"): "no models in the registry: register one with",
    ("data", "ls"): "no datasets in this workspace: add one with `shipyard data add",
    ("users", "ls"): "no users with a role in this workspace",
    ("audit", "ls"): "no audit entries in this workspace",
    ("deploy", "ls"): "no deployments in this workspace: create one with",
    ("tune", "ls"): "no studies in this workspace: start one with",
    ("pipeline", "runs"): "no pipeline runs in this workspace: start one with",
    ("automate", "events"): "no trigger events",
    ("monitor", "events"): "no alert events",
    ("token", "ls"): "no tokens of alice: make one with `shipyard token create NAME`",
}


def _run(name: str, params: dict[str, str] | None = None, **metrics: float) -> str:
    with shipyard.start_run(experiment="churn", name=name, log_code=False) as run:
        run.log_params(params or {})
        run.log_metrics(metrics)
        return run.run_id


@pytest.fixture
def churn(home: Path) -> dict[str, str]:
    """Two runs of `churn`, the older one alone with the metric `val loss`."""
    return {
        "rf": _run("rf-run", {"model": "rf"}, auc=0.9, **{"val loss": 0.3}),
        "gbm": _run("gbm-run", {"model": "gbm"}, auc=0.8),
    }


# --- nothing to show ------------------------------------------------------------------------


@pytest.mark.parametrize("command", list(EMPTY_LISTINGS), ids=" ".join)
def test_an_empty_listing_says_so_on_one_stderr_line(home: Path, command: tuple[str, str]) -> None:
    result = runner.invoke(app, list(command))
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert result.stderr.startswith(EMPTY_LISTINGS[command]), result.stderr
    assert result.stderr.count("\n") == 1


@pytest.mark.parametrize("command", list(EMPTY_LISTINGS), ids=" ".join)
def test_an_empty_listing_in_json_is_exactly_an_empty_list(
    home: Path, command: tuple[str, str]
) -> None:
    result = runner.invoke(app, [*command, "--json"])
    assert result.exit_code == 0, result.output
    assert result.stdout == "[]\n"
    assert result.stderr == ""


def test_a_run_without_artifacts_says_so_for_ls_and_get(home: Path, tmp_path: Path) -> None:
    run_id = _run("bare")
    out = str(tmp_path / "x")
    for args in (["artifacts", "ls", run_id[:6]], ["artifacts", "get", run_id, "--out", out]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        assert (result.stdout, result.stderr) == ("", f"no artifacts in run {run_id[:8]}\n")
    listed = runner.invoke(app, ["artifacts", "ls", run_id, "--json"])
    assert (listed.exit_code, listed.stdout, listed.stderr) == (0, "[]\n", "")
    assert not (tmp_path / "x").exists()


def test_a_filter_that_matches_nothing_names_the_experiment_and_the_filter(
    churn: dict[str, str],
) -> None:
    result = runner.invoke(app, ["runs", "ls", "-e", "churn", "-f", "metrics.auc > 0.95"])
    assert result.exit_code == 0, result.output
    # auc exists (just not that high): no warning, only the empty result.
    assert (result.stdout, result.stderr) == ("", "no runs in churn match 'metrics.auc > 0.95'\n")


def test_empty_json_listings_are_one_document_from_the_real_command(tmp_path: Path) -> None:
    project = tmp_path / "fresh"
    env_home = ["--home", str(project / ".shipyard")]
    assert run_shipyard("init", str(project), cwd=tmp_path).returncode == 0
    for command in (["experiments", "ls"], ["runs", "ls"], ["models", "ls"], ["data", "ls"]):
        done = run_shipyard(*env_home, *command, "--json", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == [] and done.stdout == "[]\n", command
        plain = run_shipyard(*env_home, *command, cwd=tmp_path)
        assert plain.returncode == 0 and plain.stdout == "", command
        assert plain.stderr.startswith("no ") and plain.stderr.count("\n") == 1, plain.stderr


# --- --order-by and --filter naming a key no run has ----------------------------------------


def test_ordering_by_a_metric_no_run_has_warns_and_keeps_newest_first(
    churn: dict[str, str],
) -> None:
    result = runner.invoke(app, ["runs", "ls", "-e", "churn", "-o", "metrics.acu DESC", "--json"])
    assert result.exit_code == 0, result.output
    assert [r["name"] for r in json.loads(result.stdout)] == ["gbm-run", "rf-run"]
    assert result.stderr == (
        "warning: no run in churn has metrics.acu (named in --order-by); "
        "the order is by start time, newest first\n"
    )


def test_a_missing_key_beside_a_real_one_does_not_change_the_order(
    churn: dict[str, str],
) -> None:
    result = runner.invoke(
        app, ["runs", "ls", "-o", "params.seed", "-o", "metrics.auc ASC", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert [r["name"] for r in json.loads(result.stdout)] == ["gbm-run", "rf-run"]
    assert result.stderr == (
        "warning: no run in this workspace has params.seed (named in --order-by); "
        "it does not change the order\n"
    )


def test_filtering_on_a_param_no_run_has_warns(churn: dict[str, str]) -> None:
    result = runner.invoke(
        app, ["runs", "ls", "-e", "churn", "-f", "params.modle = 'rf' or metrics.auc > 0.85"]
    )
    assert result.exit_code == 0, result.output
    assert "rf-run" in result.stdout and "gbm-run" not in result.stdout
    assert result.stderr == (
        "warning: no run in churn has params.modle (named in --filter); check its spelling\n"
    )


def test_a_key_only_a_run_outside_the_listing_has_is_no_typo(churn: dict[str, str]) -> None:
    # The listing holds gbm-run alone, which lacks `val loss`; rf-run has it: the store says so.
    args = ["runs", "ls", "-f", "params.model = 'gbm'", "--json"]
    result = runner.invoke(app, [*args, "-o", "metrics.`val loss` DESC"])
    assert result.exit_code == 0, result.output
    assert [r["name"] for r in json.loads(result.stdout)] == ["gbm-run"]
    assert result.stderr == ""
    typo = runner.invoke(app, [*args, "-o", "metrics.`val los` DESC"])
    assert typo.exit_code == 0 and json.loads(typo.stdout)[0]["name"] == "gbm-run"
    assert typo.stderr.startswith("warning: no run in this workspace has metrics.val los (named")


def test_keys_in_an_experiment_without_runs_get_no_warning(home: Path) -> None:
    with shipyard.start_run(experiment="other", log_code=False) as run:
        run.log_metric("auc", 0.5)
    open_workspace().backend.create_experiment("empty")
    result = runner.invoke(app, ["runs", "ls", "-e", "empty", "-o", "metrics.nothing"])
    assert result.exit_code == 0, result.output
    assert (result.stdout, result.stderr) == ("", "no runs in empty\n")


@pytest.mark.parametrize("key", ["auc", "val loss", "odd`key", 'odd`"key', "a.b/c:d"])
def test_the_existence_filter_names_exactly_the_key(key: str) -> None:
    assert parse_filter(_exists_filter(Field("metrics", key))) == Comparison(
        Field("metrics", key), "is not null", None
    )
