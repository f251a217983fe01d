"""How a command says that it found nothing, or warns: the same way in every listing.

An empty listing prints ``no THINGS …`` (e.g. ``no runs in churn``, ``no artifacts in run
3f2a9c1b``) as one line on stderr and exits 0; with ``--json`` it prints exactly ``[]`` on
stdout and nothing else, so a script reads one JSON document either way. A warning is one
``warning: …`` line on stderr: the command goes on and its output is unchanged.
"""

from __future__ import annotations

from rich.markup import escape

from shipyard.cli._base import err_console, print_json

__all__ = ["print_empty", "print_warning"]


def print_empty(what: str, *, as_json: bool, hint: str = "") -> None:
    """Say that a listing is empty: ``[]`` on stdout with ``--json``, else one stderr line.

    Args:
        what: what there is none of, and where: ``"runs in churn"`` prints ``no runs in
            churn``.
        as_json: the command's ``--json``.
        hint: what to do about it, after a colon: ``"add one with `shipyard data add`"``.
    """
    if as_json:
        print_json([])
        return
    message = f"no {what}" + (f": {hint}" if hint else "")
    err_console.print(escape(message), soft_wrap=True)


def print_warning(message: str) -> None:
    """``warning: MESSAGE`` as one line on stderr."""
    err_console.print(f"[bold yellow]warning:[/] {escape(message)}", soft_wrap=True)
