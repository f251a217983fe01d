"""What the command line imports to start: `--version`, `--help` and a `data status` that the
stat cache answers load no framework, store or table library they do not use (no timings
here: bench/RESULTS.md has those)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import typer
from typer._coercion import RuntimeParam, build_runtime_param
from typer.core import TyperGroup, _TyperParameter

from shipyard.cli._lazy import COMMANDS, _Conversion, _is_text_or_path, load_command

if TYPE_CHECKING:
    from typer._click import Command

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]

HEAVY = {
    "alembic",
    "duckdb",
    "fsspec",
    "httpx",
    "numpy",
    "pandas",
    "pyarrow",
    "pydantic",  # Typer converts values with it; shipyard.cli._lazy does without for these
    "sqlalchemy",
}

# Runs the CLI with the given arguments, then writes the names of the modules it imported.
PROBE = """
import json, os, sys
from shipyard.cli import main
code = 0
try:
    main()
except SystemExit as exc:
    code = exc.code or 0
with open(os.environ["PROBE_MODULES"], "w") as out:
    json.dump(sorted(sys.modules), out)
sys.exit(code)
"""


def _run(
    tmp_path: Path, cwd: Path, *args: str
) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    modules = tmp_path / "modules.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    env.update(PYTHONPATH=str(ROOT / "src"), PROBE_MODULES=str(modules))
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert modules.exists(), done.stderr
    return done, set(json.loads(modules.read_text()))


def _top_level(modules: set[str]) -> set[str]:
    return {name.split(".")[0] for name in modules}


@pytest.fixture
def tracked(tmp_path: Path) -> Path:
    """A workspace whose ``data.bin`` was added and has not changed since."""
    project = tmp_path / "project"
    project.mkdir()
    data = project / "data.bin"
    data.write_bytes(os.urandom(256 * 1024))
    old = time.time() - 60  # outside the stat cache's racy window: the cache vouches for it
    os.utime(data, (old, old))
    for args in (("init",), ("data", "add", "data.bin", "--name", "raw", "--no-profile")):
        done, _ = _run(tmp_path, project, *args)
        assert done.returncode == 0, done.stderr
    return project


def test_data_status_of_an_unchanged_file_imports_no_store_or_table_library(
    tmp_path: Path, tracked: Path
) -> None:
    done, modules = _run(tmp_path, tracked, "data", "status")
    assert done.returncode == 0, done.stderr
    assert "unchanged" in done.stdout and "raw@1" in done.stdout
    assert _top_level(modules) & HEAVY == set()
    unused = ("shipyard.store", "shipyard.tracking.", "shipyard.entities", "shipyard.registry")
    assert not any(m.startswith(unused) for m in modules)
    # answered before Typer and Rich load (shipyard.cli._fast)
    assert {"typer", "rich", "click"} & _top_level(modules) == set()
    assert {m for m in modules if m.startswith("shipyard.cli.")} == {"shipyard.cli._fast"}
    assert {m for m in modules if m.startswith("shipyard.artifacts.")} <= {
        "shipyard.artifacts.digest",
        "shipyard.artifacts.listing",
        "shipyard.artifacts.manifest",
        "shipyard.artifacts.paths",
    }


# The same command through the Typer app, which answers whatever the fast path passes on.
TYPER = """
import sys
from shipyard.cli._root import app
sys.argv[0] = "shipyard"
app()
"""


@pytest.mark.parametrize(
    "args",
    [
        ("data", "status"),
        ("data", "status", "--json"),
        ("data", "status", "data.bin"),
        ("data", "status", "nothing-here"),
        ("data", "status", "--json", "subfolder"),
    ],
)
@pytest.mark.parametrize("changed", [False, True])
def test_the_fast_status_prints_what_the_typer_command_prints(
    tmp_path: Path, tracked: Path, args: tuple[str, ...], changed: bool
) -> None:
    (tracked / "subfolder").mkdir()
    if changed:
        (tracked / "data.bin").write_bytes(b"other bytes")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    env.update(PYTHONPATH=str(ROOT / "src"))
    outcomes = []
    for code in ("from shipyard.cli import main; main()", TYPER):
        done = subprocess.run(
            [sys.executable, "-c", code, *args],
            cwd=tracked,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        outcomes.append((done.returncode, done.stdout, done.stderr))
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][0] in (0, 1, 2)


def test_options_the_fast_path_does_not_know_go_to_typer(tmp_path: Path, tracked: Path) -> None:
    done, modules = _run(tmp_path, tracked, "data", "status", "--help")
    assert done.returncode == 0 and "Usage: shipyard data status" in done.stdout
    assert "typer" in _top_level(modules)
    done, _ = _run(tmp_path, tracked, "data", "status", "--bogus")
    assert done.returncode == 2 and done.stderr.startswith("error: no such option")


def test_data_checkout_with_nothing_to_restore_imports_no_store(
    tmp_path: Path, tracked: Path
) -> None:
    done, modules = _run(tmp_path, tracked, "data", "checkout")
    assert done.returncode == 0, done.stderr
    assert "Everything already matches" in done.stdout
    assert _top_level(modules) & HEAVY == set()
    assert not any(m.startswith("shipyard.store") for m in modules)


def test_adding_a_folder_of_files_that_are_not_tables_imports_no_table_library(
    tmp_path: Path,
) -> None:
    project = tmp_path / "project"
    (project / "images").mkdir(parents=True)
    for i in range(3):
        (project / "images" / f"{i}.png").write_bytes(os.urandom(1000))
    assert _run(tmp_path, project, "init")[0].returncode == 0
    done, modules = _run(tmp_path, project, "data", "add", "images", "--name", "images")
    assert done.returncode == 0, done.stderr
    assert _top_level(modules) & {"duckdb", "pandas", "pyarrow"} == set()


def test_a_changed_file_is_still_reported(tmp_path: Path, tracked: Path) -> None:
    (tracked / "data.bin").write_bytes(b"other bytes")
    done, modules = _run(tmp_path, tracked, "data", "status", "--json")
    assert done.returncode == 1
    assert json.loads(done.stdout)[0]["state"] == "modified"
    assert _top_level(modules) & HEAVY == set()


def test_version_imports_neither_typer_nor_rich(tmp_path: Path) -> None:
    done, modules = _run(tmp_path, tmp_path, "--version")
    from shipyard import __version__

    assert (done.returncode, done.stdout, done.stderr) == (0, f"{__version__}\n", "")
    assert _top_level(modules) & (HEAVY | {"typer", "rich", "click"}) == set()


def test_root_help_lists_every_command_without_importing_one(tmp_path: Path) -> None:
    done, modules = _run(tmp_path, tmp_path, "--help")
    assert done.returncode == 0, done.stderr
    listed = {line.split()[0] for line in done.stdout.splitlines() if line.startswith("  ")}
    assert set(COMMANDS) <= listed
    assert "Print Shipyard's version." in done.stdout
    assert {m for m in modules if m.startswith("shipyard.cli.")} == {
        "shipyard.cli._fast",  # which passed it on
        "shipyard.cli._base",
        "shipyard.cli._lazy",
        "shipyard.cli._root",
    }


def test_lazy_names_of_shipyard_data_are_the_functions_and_the_packages_pickle(
    tmp_path: Path,
) -> None:
    """``shipyard.data.diff`` and ``.lineage`` are functions, whatever was imported first (their
    modules are ``version_diff`` and ``version_lineage``, so no submodule takes their name), and
    the lazy packages stay plain modules: cloudpickle (Ray) pickles them by reference."""
    code = (
        "from shipyard.data.version_diff import diff_versions\n"
        "import shipyard.data.version_lineage, shipyard.tracking, shipyard.artifacts\n"
        "import cloudpickle, pickle, shipyard\n"
        "from shipyard import data\n"
        "from shipyard.data import diff, status\n"
        "print(type(data.diff).__name__, type(data.lineage).__name__, diff is data.diff,"
        " status.__module__)\n"
        "for module in (shipyard, data, shipyard.tracking, shipyard.artifacts):\n"
        "    assert pickle.loads(cloudpickle.dumps(module)) is module\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["function", "function", "True", "shipyard.data.tracked"]


def _first_paragraph(text: str | None) -> str:
    return " ".join((text or "").split("\n\n")[0].split())


def test_every_command_module_is_in_the_table_with_its_own_summary() -> None:
    """The root help shows :data:`COMMANDS`' one-liners: they must say what the commands'
    own help says (edit the table when a command's first paragraph changes)."""
    for name, entry in COMMANDS.items():
        command = load_command(name, entry)
        assert command.name == name
        assert entry.summary == _first_paragraph(command.help), name
    modules = {p.stem for p in (ROOT / "src/shipyard/cli").glob("*.py") if p.stem[0] != "_"}
    targets = {entry.target.split(":")[0].rsplit(".", 1)[1] for entry in COMMANDS.values()}
    assert modules - targets == set(), "a command module that no table entry loads"


def _walk(command: Command) -> list[Command]:
    found = [command]
    if isinstance(command, TyperGroup):
        for sub in command.commands.values():
            found += _walk(sub)
    return found


def _convert(converter: RuntimeParam, value: object, param: _TyperParameter, ctx: Any) -> object:
    try:
        return converter.coerce(value, param=param, ctx=ctx)
    except typer.BadParameter as exc:
        return ("error", exc.format_message())


def test_text_and_path_values_convert_as_typer_itself_converts_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-file.csv").write_text("x\n1\n")
    (tmp_path / "a-folder").mkdir()
    samples = ["a-file.csv", "a-folder", "missing.csv", "", "-", "sub/../a-file.csv"]
    compared = 0
    for name, entry in COMMANDS.items():
        for command in _walk(load_command(name, entry)):
            ctx = typer.Context(command)
            for param in command.params:
                if not isinstance(param, _TyperParameter):
                    continue
                descriptor = param.type_descriptor
                if not _is_text_or_path(descriptor):
                    continue
                ours = _Conversion(descriptor.parameter_info, descriptor.annotation, True)
                typers = build_runtime_param(descriptor)
                multi = param.multiple or param.nargs == -1
                for value in [samples, None] if multi else [*samples, None]:
                    assert _convert(ours, value, param, ctx) == _convert(
                        typers, value, param, ctx
                    ), (name, command.name, param.name, value)
                    compared += 1
    assert compared > 100  # the commands do take text and paths
