"""What a model folder must pass before anything in it is loaded."""

from __future__ import annotations

from pathlib import Path

from shipyard.entities.data import Severity
from shipyard.errors import UntrustedModelError
from shipyard.models.scan import scan_pickles

__all__ = ["UntrustedModelError", "refuse_pickles"]


def refuse_pickles(path: Path) -> None:
    """Raise unless the folder ``path`` holds no pickle-like file.

    Raises:
        UntrustedModelError: naming each pickle and the worst globals it would import.
    """
    findings = scan_pickles(path)
    if not findings:
        return
    lines = []
    for finding in findings:
        worst = [imp.qualified_name for imp in finding.imports if imp.severity is Severity.ERROR]
        note = f" (imports {', '.join(worst)})" if worst else ""
        lines.append(f"{finding.path}{note}")
    raise UntrustedModelError(
        f"the model holds pickle files, which can run any code when loaded: {'; '.join(lines)}. "
        "Pass trusted_pickle=True only if you trust where this model came from "
        "(`shipyard models scan` lists what each pickle imports)"
    )
