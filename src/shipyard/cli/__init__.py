"""The ``shipyard`` command line (Typer + Rich).

Importing this package is cheap: the Typer app (:data:`app`) is built on first use, and each
subcommand's module is imported only when that subcommand runs (``shipyard.cli._lazy``).
"""

from __future__ import annotations

import gc as _gc  # (not `gc`: the `shipyard gc` command module binds that name here)
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shipyard.cli._root import app

__all__ = ["app", "main"]


def __getattr__(name: str) -> Any:
    if name == "app":
        from shipyard.cli._root import app

        return app
    raise AttributeError(f"module 'shipyard.cli' has no attribute {name!r}")


def main() -> None:
    """Entry point of the ``shipyard`` console script."""
    from shipyard.cli._fast import answer

    code = answer(sys.argv[1:])  # --version and data status, before Typer and Rich load
    if code is not None:
        sys.exit(code)
    from shipyard.cli._root import app

    try:
        app()
    finally:
        # Everything still alive is frozen out of the collector: the interpreter's final
        # sweeps at exit skip it (about 0.1 s for a command that opened the store).
        _gc.freeze()
