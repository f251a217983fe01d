"""What every `shipyard` command does alike: one-line errors with documented exit codes, help
in the user's words, tables that fit an 80-column pipe, and a quiet end when the reader of its
output leaves (`| head`)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

import shipyard
from shipyard import errors
from shipyard.cli import app
from tests._cli import ROOT, run_shipyard

pytestmark = pytest.mark.e2e

runner = CliRunner()

LONG_NAME = "a-name-long-enough-to-be-cut-in-any-table-of-eighty-columns"


def _without_columns() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "COLUMNS"}


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["data", "add"], "error: missing argument 'PATH' (see: shipyard data add --help)"),
        (["data", "add", "x.csv"], "error: missing option '--name' / '-n'"),
        (["runs", "ls", "--bogus"], "error: no such option: --bogus (see: shipyard runs ls"),
        (
            ["runs", "ls", "-n", "abc"],
            "error: invalid value for '--limit' / '-n': 'abc' is not a whole number (see:",
        ),
        (
            ["monitor", "events", "--since", "yesterday"],
            "error: invalid value for '--since': 'yesterday' is not a date or time (e.g. 2026",
        ),
        (["runs", "ls", "-n", "0"], "error: invalid value for '--limit' / '-n'"),
        (["nope"], "error: no such command 'nope' (see: shipyard --help)"),
        (["rnus"], "error: no such command 'rnus'; did you mean 'runs'?"),
        (["data", "nope"], "error: no such command 'nope' (see: shipyard data --help)"),
        (["--home"], "error: option '--home' requires an argument"),
        (["runs", "end", "abcd", "--status", "crashed"], "error: invalid value for '--status'"),
        (["version", "extra"], "error: got unexpected extra argument(s) (extra)"),
    ],
)
def test_a_usage_error_is_one_line_and_exit_code_2(
    tmp_path: Path, args: list[str], expected: str
) -> None:
    result = run_shipyard(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert result.stderr.startswith(expected), result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.endswith("--help)\n"), result.stderr
    assert "Usage:" not in result.stderr and "╭" not in result.stderr


def test_a_shipyard_error_is_one_line_with_its_exit_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SHIPYARD_HOME", raising=False)
    monkeypatch.delenv("SHIPYARD_STORE_URL", raising=False)
    missing = run_shipyard("experiments", "ls", cwd=tmp_path)
    assert missing.returncode == 1 and missing.stdout == ""
    assert re.fullmatch(r"error: no Shipyard workspace [^\n]*\n", missing.stderr)

    assert run_shipyard("init", cwd=tmp_path).returncode == 0
    filtered = run_shipyard("runs", "ls", "-f", "metrics.auc >> 1", cwd=tmp_path)
    assert filtered.returncode == errors.FilterSyntaxError.exit_code == 2
    assert filtered.stdout == ""
    # the parser's caret picture becomes a position on the same line
    assert re.fullmatch(
        r"error: .+ \(at character \d+ of 'metrics\.auc >> 1'\)\n", filtered.stderr
    ), filtered.stderr


def test_a_group_alone_shows_its_help(tmp_path: Path) -> None:
    for args, usage in ((["data"], "Usage: shipyard data "), ([], "Usage: shipyard ")):
        shown = run_shipyard(*args, cwd=tmp_path)
        assert shown.returncode == 0 and shown.stderr == ""
        assert shown.stdout.startswith(usage), shown.stdout  # no blank line first
        assert "Commands:" in shown.stdout


def test_every_exit_code_is_documented() -> None:
    text = (ROOT / "docs" / "cli.md").read_text()
    rows = dict(re.findall(r"^\| (\d+) \| (.+) \|$", text, re.MULTILINE))
    assert {"0", "1", "2", "130"} <= rows.keys()
    for error in vars(errors).values():
        if isinstance(error, type) and issubclass(error, errors.ShipyardError):
            assert str(error.exit_code) in rows, error
            if error.exit_code != 1:  # every error not named under 1 is one
                assert error.__name__ in rows[str(error.exit_code)], error


# --- help -----------------------------------------------------------------------------------


def _command_paths() -> Iterator[list[str]]:
    import typer.main

    def walk(command: object, path: list[str]) -> Iterator[list[str]]:
        yield path
        for name, sub in dict(getattr(command, "commands", {})).items():  # loads every one
            yield from walk(sub, [*path, name])

    yield from walk(typer.main.get_command(app), [])


def test_every_help_speaks_the_users_words() -> None:
    paths = list(_command_paths())
    assert len(paths) > 80, paths  # the whole tree, lazy commands included
    for path in paths:
        shown = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "80"})
        where = " ".join(["shipyard", *path])
        assert shown.exit_code == 0, (where, shown.output)
        text = shown.output
        assert text.startswith(f"Usage: {where} "), (where, text)
        for typer_word in ("<bool>", "<list[", "<str>", "<int", "<path>", "<float", "\\["):
            assert typer_word not in text, (where, typer_word, text)
        assert not re.search(r"\{[a-z_]+\}", text), (where, text)  # `{path}`
        for line in text.splitlines():
            assert len(line) <= 80, (where, line)
            assert not re.search(r"(…|[a-z,]\.\.\.)$", line), (where, line)  # a sentence cut
            assert not re.search(r"\w-$", line), (where, line)  # nor a word at its hyphen


def test_help_shows_values_as_click_does() -> None:
    def help_of(*path: str) -> str:
        shown = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "80"})
        assert shown.exit_code == 0, shown.output
        return shown.output

    added = help_of("data", "add")
    assert added.startswith("Usage: shipyard data add [OPTIONS] PATH\n")
    assert re.search(r"^  -n, --name TEXT +Dataset name\.", added, re.MULTILINE)
    assert re.search(r"^  --link +Hard-link", added, re.MULTILINE)  # a flag: no value
    listed = help_of("runs", "ls")
    assert re.search(r"^  -e, --experiment TEXT +Experiment name \(repeatable\)", listed, re.M)
    assert re.search(r"^  -n, --limit INTEGER +\[default: 50; x>=1\]", listed, re.MULTILINE)
    assert "--ci [github|gitlab]" in help_of("init")
    assert "shipyard-mlops[sklearn,validation]" in help_of("init")
    assert help_of("serve").startswith("Usage: shipyard serve [OPTIONS] [REF]...\n")
    # a command's line in its group's list is its whole first paragraph, not cut at 45
    listed = " ".join(help_of("data").split())
    assert "get Materialise a version into a folder (reflinks where possible, copies" in listed


# --- tables in a pipe ----------------------------------------------------------------------


@pytest.fixture
def filled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """A workspace with long names everywhere; how many rows each listing has."""
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / ".shipyard"))
    monkeypatch.delenv("SHIPYARD_STORE_URL", raising=False)
    monkeypatch.delenv("SHIPYARD_ARTIFACTS_URL", raising=False)
    monkeypatch.setenv("SHIPYARD_USER", "alice")
    monkeypatch.chdir(tmp_path)
    assert runner.invoke(app, ["init", str(tmp_path)]).exit_code == 0
    for i, name in enumerate([LONG_NAME, "rf", f"gbm-{LONG_NAME}"]):
        with shipyard.start_run(experiment=f"churn-{LONG_NAME}", name=name, log_code=False) as r:
            r.log_params({"model": name})
            for metric in ("auc", "accuracy", "f1_score_macro_average", "log_loss_validation"):
                r.log_metric(metric, 0.123456789 * (i + 1))
    (tmp_path / "rows.csv").write_text("a,b\n1,2\n")
    for dataset in (LONG_NAME, "small"):
        added = runner.invoke(app, ["data", "add", "rows.csv", "-n", dataset])
        assert added.exit_code == 0, added.output
    model = tmp_path / "model"
    model.mkdir()
    (model / "shipyard-model.json").write_text('{"flavor": "sklearn"}')
    (model / "model.skops").write_bytes(b"weights")
    for name in (LONG_NAME, "churn"):
        registered = runner.invoke(app, ["models", "register", str(model), "--name", name])
        assert registered.exit_code == 0, registered.output
        created = runner.invoke(app, ["deploy", "create", f"{name}-prod", "--model", f"{name}@1"])
        assert created.exit_code == 0, created.output
    return {"runs": 3, "experiments": 1, "data": 2, "models": 2, "deploy": 2}


def test_tables_fit_an_80_column_pipe_one_line_per_row(filled: dict[str, int]) -> None:
    for group, rows in filled.items():
        listed = run_shipyard(group, "ls", env=_without_columns())
        assert listed.returncode == 0 and listed.stderr == "", (group, listed.stderr)
        lines = listed.stdout.splitlines()
        assert len(lines) == rows + 1, (group, listed.stdout)  # a header, then one per row
        assert lines[0].strip(), (group, listed.stdout)  # no blank line first
        assert all(len(line) <= 80 for line in lines), (group, listed.stdout)
        assert "…" in listed.stdout, (group, listed.stdout)  # LONG_NAME was cut, not wrapped
    ids = [r["run_id"][:8] for r in json.loads(run_shipyard("runs", "ls", "--json").stdout)]
    shown = run_shipyard("runs", "ls", env=_without_columns()).stdout
    assert all(re.search(rf"^{run_id}  ", shown, re.MULTILINE) for run_id in ids), shown


def test_columns_widens_the_pipe(filled: dict[str, int]) -> None:
    wide = run_shipyard("runs", "ls", env={**_without_columns(), "COLUMNS": "250"})
    assert wide.returncode == 0
    assert LONG_NAME in wide.stdout and "log_loss_validation" in wide.stdout
    assert len(wide.stdout.splitlines()) == filled["runs"] + 1


# --- a reader that leaves early -------------------------------------------------------------


def _into_a_closed_pipe(*args: str) -> subprocess.CompletedProcess[str]:
    """``shipyard ARGS | head -0``, but certain: the pipe's reader is gone before the command
    writes its first byte."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            [sys.executable, "-c", "from shipyard.cli import main; main()", *args],
            stdout=write_end,
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        os.close(write_end)


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["-h"],
        ["runs", "ls", "--help"],
        ["data"],
        ["version"],
        ["--version"],
        ["runs", "ls"],
        ["runs", "ls", "--json"],
    ],
)
def test_a_reader_that_leaves_early_ends_the_command_quietly(
    filled: dict[str, int], args: list[str]
) -> None:
    done = _into_a_closed_pipe(*args)
    assert (done.returncode, done.stderr) == (0, "")


def test_help_into_head(tmp_path: Path) -> None:
    shell = f'set -o pipefail; "{sys.executable}" -m shipyard.cli --help | head -1'
    done = subprocess.run(
        ["bash", "-c", shell],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        timeout=120,
        check=False,
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == "Usage: shipyard [OPTIONS] COMMAND [ARGS]...\n"


def test_output_starts_with_the_output(tmp_path: Path) -> None:
    """Progress bars live on stderr (and only in a terminal): stdout of a command that showed
    one starts with its first line of output, not a blank line where the bar was."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    assert run_shipyard("init", cwd=tmp_path, env=env).returncode == 0
    folder = tmp_path / "files"
    folder.mkdir()
    for i in range(300):
        (folder / f"{i}.txt").write_text(f"file {i}\n")
    added = run_shipyard("data", "add", "files", "--name", "files", cwd=tmp_path, env=env)
    assert added.returncode == 0, added.stderr
    assert added.stdout.startswith("Added files@1"), repr(added.stdout[:40])
    pushed = run_shipyard("data", "push", "--remote", "remote", cwd=tmp_path, env=env)
    assert pushed.returncode == 0, pushed.stderr
    assert pushed.stdout.startswith("Pushed "), repr(pushed.stdout[:40])
    assert added.stderr == pushed.stderr == ""
