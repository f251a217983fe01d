"""How users name datasets and their versions: ``churn``, ``churn@3``, ``churn@latest``,
``churn@a1b2c3`` (a digest prefix)."""

from __future__ import annotations

import re

from shipyard.entities import DatasetRef
from shipyard.errors import InvalidArgumentError

__all__ = ["DatasetRef", "parse_ref", "ref", "validate_dataset_name"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")


def validate_dataset_name(name: str) -> str:
    """A dataset name: 1-128 letters, digits, ``_ . -``, starting with a letter or digit."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidArgumentError(
            f"invalid dataset name {name!r}: use 1-128 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    return name


def parse_ref(ref: str, default: str = "latest") -> tuple[str, str]:
    """Split ``name@version`` into ``(name, version)``; a bare name means ``default``."""
    name, sep, version = ref.strip().partition("@")
    validate_dataset_name(name)
    if sep and not version:
        raise InvalidArgumentError(f"{ref!r}: give a version after '@', e.g. {name}@latest")
    return name, version or default


def ref(text: str) -> DatasetRef:
    """Name a dataset version for a pipeline step: ``shipyard.data.ref("churn@latest")``."""
    name, version = parse_ref(text)
    return DatasetRef(name, version)
