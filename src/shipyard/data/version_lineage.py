"""Where a dataset version came from and where it went: runs that read or wrote it, and the
versions those runs produced from it."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from shipyard.data.versions import resolve, workspace
from shipyard.entities import DatasetVersion

__all__ = ["Lineage", "lineage"]


@dataclass(frozen=True, slots=True)
class Lineage:
    version: DatasetVersion
    produced_by: list[str] = field(default_factory=list)
    """Runs that wrote this version."""
    used_by: list[str] = field(default_factory=list)
    """Runs that read it."""
    derived: list[tuple[str, DatasetVersion]] = field(default_factory=list)
    """``(run_id, version)``: versions written by the runs that read this one."""


def lineage(ref: str, *, home: str | os.PathLike[str] | None = None) -> Lineage:
    version = resolve(ref, home=home)
    backend = workspace(home).backend
    users = backend.dataset_users(version.dataset, version.version)
    readers = [run for run, role in users if role == "input"]
    writers = [run for run, role in users if role == "output"]
    derived = [
        (run_id, out)
        for run_id, out in backend.run_dataset_versions(readers, "output")
        if (out.dataset, out.version) != (version.dataset, version.version)
    ]
    return Lineage(version, writers, readers, derived)
