"""What changed between two dataset versions: files of folders, rows, columns and statistics
of tables."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shipyard.data.versions import resolve, workspace
from shipyard.entities import DatasetProfile, DatasetVersion

if TYPE_CHECKING:
    from shipyard.artifacts import ArtifactStore

__all__ = ["DatasetDiff", "diff", "diff_versions"]

_STATS = ("null_share", "distinct", "min", "max", "mean", "std")


@dataclass(frozen=True, slots=True)
class DatasetDiff:
    old: DatasetVersion
    new: DatasetVersion
    same_content: bool
    files_added: list[str] = field(default_factory=list)
    files_removed: list[str] = field(default_factory=list)
    files_changed: list[str] = field(default_factory=list)
    rows: tuple[int, int] | None = None
    columns_added: list[str] = field(default_factory=list)
    columns_removed: list[str] = field(default_factory=list)
    type_changes: dict[str, tuple[str, str]] = field(default_factory=dict)
    stat_changes: dict[str, dict[str, tuple[Any, Any]]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "old": self.old.ref,
            "new": self.new.ref,
            "same_content": self.same_content,
            "files": {
                "added": self.files_added,
                "removed": self.files_removed,
                "changed": self.files_changed,
            },
            "rows": None if self.rows is None else {"old": self.rows[0], "new": self.rows[1]},
            "columns": {
                "added": self.columns_added,
                "removed": self.columns_removed,
                "type_changes": {
                    k: {"old": a, "new": b} for k, (a, b) in self.type_changes.items()
                },
            },
            "statistics": {
                col: {stat: {"old": a, "new": b} for stat, (a, b) in stats.items()}
                for col, stats in self.stat_changes.items()
            },
        }


def _stat(profile: DatasetProfile, column: str, name: str) -> Any:
    col = profile.column(column)
    return col.null_share if name == "null_share" else getattr(col, name)


def _table_changes(old: DatasetProfile, new: DatasetProfile) -> dict[str, Any]:
    old_cols = {c.name: c for c in old.columns}
    new_cols = {c.name: c for c in new.columns}
    stat_changes: dict[str, dict[str, tuple[Any, Any]]] = {}
    for name in old_cols.keys() & new_cols.keys():
        changed = {
            stat: (_stat(old, name, stat), _stat(new, name, stat))
            for stat in _STATS
            if _stat(old, name, stat) != _stat(new, name, stat)
        }
        if changed:
            stat_changes[name] = changed
    return {
        "rows": (old.rows, new.rows),
        "columns_added": sorted(new_cols.keys() - old_cols.keys()),
        "columns_removed": sorted(old_cols.keys() - new_cols.keys()),
        "type_changes": {
            n: (old_cols[n].type, new_cols[n].type)
            for n in sorted(old_cols.keys() & new_cols.keys())
            if old_cols[n].type != new_cols[n].type
        },
        "stat_changes": dict(sorted(stat_changes.items())),
    }


def diff(old_ref: str, new_ref: str, *, home: str | os.PathLike[str] | None = None) -> DatasetDiff:
    """Compare two versions (of one dataset or of two)."""
    old, new = resolve(old_ref, home=home), resolve(new_ref, home=home)
    return diff_versions(workspace(home).artifacts, old, new)


def diff_versions(store: ArtifactStore, old: DatasetVersion, new: DatasetVersion) -> DatasetDiff:
    """Compare two versions already in hand, reading folder manifests from ``store``."""
    changes: dict[str, Any] = {}
    if old.kind == "dir" and new.kind == "dir" and old.digest != new.digest:
        a = {e.path: e.digest for e in store.read_manifest(old.digest).entries}
        b = {e.path: e.digest for e in store.read_manifest(new.digest).entries}
        changes["files_added"] = sorted(b.keys() - a.keys())
        changes["files_removed"] = sorted(a.keys() - b.keys())
        changes["files_changed"] = sorted(p for p in a.keys() & b.keys() if a[p] != b[p])
    if old.profile is not None and new.profile is not None:
        changes.update(_table_changes(old.profile, new.profile))
    return DatasetDiff(old, new, old.digest == new.digest, **changes)
