"""The docs cover what users can call: every CLI command and every public name."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer

import shipyard
from shipyard.cli import app

DOCS = Path(__file__).resolve().parents[1] / "docs"


def _commands(command: Any, prefix: str) -> list[str]:
    """Every command's path (``data status``); the root group builds each one on lookup."""
    subcommands = getattr(command, "commands", None)
    if subcommands is None:
        return [prefix.strip()]
    return [
        path
        for name in list(subcommands)
        for path in _commands(subcommands[name], f"{prefix} {name}")
    ]


def test_every_cli_command_has_a_section_in_cli_md() -> None:
    text = (DOCS / "cli.md").read_text()
    headings = re.findall(r"^### `shipyard ([^`\[]+?)(?: [\[A-Z-].*)?`$", text, re.MULTILINE)
    documented = {h.strip() for h in headings}
    commands = set(_commands(typer.main.get_command(app), ""))
    assert commands, "no commands found"
    assert commands - documented == set()
    assert documented - commands == set(), "docs describe commands that do not exist"


def test_every_public_name_is_in_the_api_reference() -> None:
    text = (DOCS / "tracking.md").read_text()
    reference = text.split("## Python API reference", 1)[1]
    missing = [name for name in shipyard.__all__ if f"`{name}`" not in reference]
    assert missing == []
