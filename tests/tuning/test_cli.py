"""``shipyard tune run|ls|show`` on a stand-in root app (the real one registers ``tune`` in
``shipyard.cli``), with ``--json`` and ``--html``."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from shipyard.cli import tune as tune_cli
from shipyard.cli._base import ShipyardGroup
from tests._cli import run_shipyard

pytestmark = [
    pytest.mark.integration,
    pytest.mark.parametrize("store_url", ["sqlite"], indirect=True),
]

SCRIPT = textwrap.dedent(
    """
    from shipyard.tuning import Categorical, Float

    space = {"x": Float(-5.0, 5.0), "kind": Categorical(["a", "b"])}
    other = [1, 2]


    def objective(trial):
        for step in range(2):
            trial.report(step, abs(trial.params["x"]) + 1.0 / (step + 1))
        return abs(trial.params["x"] - 1.0) + (0.5 if trial.params["kind"] == "b" else 0.0)


    if __name__ == "__main__":
        raise SystemExit("only the objective is imported")
    """
)


def _app() -> typer.Typer:
    app = typer.Typer(cls=ShipyardGroup, pretty_exceptions_enable=False)

    @app.callback()
    def _root(ctx: typer.Context) -> None:
        ctx.obj = {"home": None}

    app.add_typer(tune_cli.app, name="tune")
    return app


def _invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(_app(), list(args))
    return result.exit_code, result.stdout, result.stderr


def test_run_ls_and_show(home: Path, tmp_path: Path) -> None:
    script = tmp_path / "search.py"
    script.write_text(SCRIPT)
    code, out, err = _invoke(
        "tune", "run", f"{script}:objective", "-n", "8", "--study", "cli", "--seed", "0",
        "--json",
    )  # fmt: skip
    assert code == 0, err
    ran = json.loads(out)
    assert ran["name"] == "cli" and ran["counts"]["COMPLETE"] + ran["counts"]["PRUNED"] == 8
    assert ran["best"]["params"].keys() == {"x", "kind"}

    code, out, err = _invoke(
        "tune", "run", f"{script}:objective", "-n", "4", "--study", "cli",
        "--executor", "processes", "--n-workers", "2",
    )  # fmt: skip
    assert code == 0, err
    assert "Study cli: 12 trials" in out

    code, out, _ = _invoke("tune", "ls", "--json")
    assert code == 0
    [listed] = json.loads(out)
    assert (listed["name"], listed["trials"], listed["direction"]) == ("cli", 12, "minimize")

    code, out, _ = _invoke("tune", "ls")
    assert code == 0 and "cli" in out and "min objective" in out

    code, out, _ = _invoke("tune", "show", "cli", "--json")
    shown = json.loads(out)
    assert code == 0
    assert [t["number"] for t in shown["trials"]] == list(range(12))
    assert set(shown["importances"]) == {"x", "kind"}
    assert len(shown["history"]) == shown["counts"]["COMPLETE"]
    assert shown["best"]["value"] == min(h["value"] for h in shown["history"])
    assert shown["space"]["x"] == {"type": "float", "low": -5.0, "high": 5.0, "log": False,
                                   "step": None}  # fmt: skip

    report = tmp_path / "out" / "report.html"
    code, out, _ = _invoke("tune", "show", "cli", "--html", str(report))
    assert code == 0
    for text in ("Optimisation history", "Parameter importances", "Trials", "Wrote"):
        assert text in out
    assert any(bar in out for bar in "▁▂▃▄▅▆▇█")
    html = report.read_text()
    assert html.startswith("<!DOCTYPE html>") and "<title>Study cli</title>" in html
    assert html.count('src="data:image/png;base64,') >= 3  # history, importances, reports
    assert "Optimisation history" in html and "Parameter importances" in html
    assert [p.name for p in report.parent.iterdir()] == ["report.html"]  # no temp file left


def test_bad_input_is_one_line_and_a_code(home: Path, tmp_path: Path) -> None:
    script = tmp_path / "search.py"
    script.write_text(SCRIPT)
    code, _, err = _invoke("tune", "show", "nope")
    assert code == 1 and "error: no study named 'nope'" in err
    code, _, err = _invoke("tune", "run", f"{script}:objective", "-n", "2", "--space", "other")
    assert code == 2 and "--space" in err and "'other'" in err
    code, _, err = _invoke("tune", "run", f"{script}:missing", "-n", "2")
    assert code == 2 and "no function 'missing'" in err
    code, _, err = _invoke("tune", "run", "search.py", "-n", "2")
    assert code == 2 and "FILE.py:FUNCTION" in err
    code, _, err = _invoke("tune", "run", f"{script}:objective", "-n", "0")
    assert code == 2 and "n_trials must be" in err
    code, _, err = _invoke("tune", "run", f"{script}:objective", "-n", "2", "--direction", "up")
    assert code == 2 and "direction must be" in err
    code, out, err = _invoke("tune", "ls")
    assert code == 0 and out == "" and err.startswith("no studies in this workspace: start one")


def test_a_run_prints_its_summary_and_no_log_line_per_trial(home: Path, tmp_path: Path) -> None:
    """In a real process (Optuna's log handler writes to the process's stderr)."""
    script = tmp_path / "search.py"
    script.write_text(SCRIPT)
    done = run_shipyard("tune", "run", f"{script}:objective", "-n", "3", "--study", "quiet")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Study quiet: 3 trials")
    assert done.stderr == ""  # no "[I …] Trial 0 finished …" lines; no bar outside a terminal
