"""Commands answered before Typer and Rich load, because they are run often and do little.

``shipyard --version`` and ``shipyard [--home DIR] data status [PATH]... [--json]`` are
recognised here exactly; anything else — help, another option, ``--`` — goes to the Typer app,
which answers the same way. Loading Typer and Rich costs ~60-90 ms, more than a status
that the stat cache answers takes in all; git answers its hot commands the same way.
``tests/cli/test_startup.py`` checks that both paths print the same bytes and exit codes.
"""

from __future__ import annotations

import json
import os
import sys

__all__ = ["NOTHING_TRACKED", "answer"]

NOTHING_TRACKED = "Nothing tracked here: `shipyard data add PATH --name NAME` tracks a path."
"""What ``data status`` says with nothing to report (here and in the Typer command)."""

_COLOURS = {"unchanged": "32", "modified": "33", "missing": "31"}  # green, yellow, red


def answer(argv: list[str]) -> int | None:
    """Run ``argv`` here and return its exit code, or None when Typer must answer it."""
    if argv == ["--version"]:
        from shipyard import __version__

        return _write(f"{__version__}\n")
    home: str | None = None
    if len(argv) >= 2 and argv[0] == "--home":
        home, argv = argv[1], argv[2:]
    elif argv and argv[0].startswith("--home="):
        home, argv = argv[0].split("=", 1)[1], argv[1:]
    if argv[:2] != ["data", "status"]:
        return None
    paths: list[str] = []
    as_json = False
    for arg in argv[2:]:
        if arg == "--json":
            as_json = True
        elif arg.startswith("-"):
            return None  # --help, -h, --, an unknown option: Typer's answer
        else:
            paths.append(arg)
    return _status(paths, as_json, home or os.environ.get("SHIPYARD_HOME") or None)


def _status(paths: list[str], as_json: bool, home: str | None) -> int:
    from shipyard.data.tracked import PathState, status
    from shipyard.errors import ShipyardError

    try:
        results = status(list(paths) or None, home=home)
    except ShipyardError as exc:
        return _error(str(exc), exc.exit_code)
    except OSError as exc:
        return _error(str(exc), 1)
    if as_json:
        text = json.dumps([r.to_dict() for r in results], indent=2) + "\n"
    elif not results:
        text = NOTHING_TRACKED + "\n"
    else:
        colour = _colour()
        lines = []
        for r in results:
            state = f"{r.state.value:>9}  "
            if colour:
                state = f"\x1b[{_COLOURS[r.state.value]}m{state}\x1b[0m"
            lines.append(f"{state}{r.path}  ({r.pointer.ref})\n")
        text = "".join(lines)
    code = _write(text)
    changed = any(r.state is not PathState.UNCHANGED for r in results)
    return 1 if changed and code == 0 else code


def _colour() -> bool:
    """Colours as Rich would choose them: a terminal, unless NO_COLOR or TERM=dumb."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") in ("dumb", "unknown"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    return sys.stdout.isatty()


def _write(text: str) -> int:
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:  # `| head -1`: the reader left; end quietly, as the Typer path does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def _error(message: str, code: int) -> int:
    sys.stderr.write(f"error: {message}\n")
    return code
