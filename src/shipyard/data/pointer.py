"""Pointer files: ``PATH.ship`` beside tracked data, small enough to commit to git.

A pointer names the dataset version whose content ``PATH`` should hold, so that a checkout of
old code can ``shipyard data checkout`` the data that went with it (like DVC's ``.dvc`` files).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from shipyard.artifacts import is_digest
from shipyard.errors import InvalidArgumentError

__all__ = ["POINTER_FORMAT", "POINTER_SUFFIX", "Pointer", "find_pointers", "pointer_path"]

POINTER_SUFFIX = ".ship"
POINTER_FORMAT = "shipyard.pointer/1"
_SKIP_DIRS = {".git", ".shipyard", ".venv", "node_modules", "__pycache__", ".dvc"}


@dataclass(frozen=True, slots=True)
class Pointer:
    """What a ``.ship`` file says about the data beside it."""

    dataset: str
    version: int
    digest: str
    size: int
    files: int
    kind: str
    path: str
    """The data's file or folder name, relative to the pointer's folder."""

    @property
    def ref(self) -> str:
        return f"{self.dataset}@{self.version}"

    def to_text(self) -> str:
        data = {"format": POINTER_FORMAT, **asdict(self)}
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    def write(self, pointer_file: Path) -> None:
        """Write atomically: a crash leaves the old pointer or the new one, never half."""
        temp = pointer_file.with_name(f".{pointer_file.name}.{os.getpid()}.tmp")
        temp.write_text(self.to_text())
        os.replace(temp, pointer_file)

    @classmethod
    def read(cls, pointer_file: Path) -> Pointer:
        try:
            data = json.loads(pointer_file.read_text())
            if not isinstance(data, dict):
                raise ValueError("it is not a JSON object")
            if data.get("format") != POINTER_FORMAT:
                raise ValueError(f"format is {data.get('format')!r}, not {POINTER_FORMAT!r}")
            if not is_digest(str(data.get("digest"))) or data.get("kind") not in ("file", "dir"):
                raise ValueError("its digest or kind is malformed")
            return cls(
                dataset=str(data["dataset"]),
                version=int(data["version"]),
                digest=str(data["digest"]),
                size=int(data["size"]),
                files=int(data["files"]),
                kind=str(data["kind"]),
                path=str(data["path"]),
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InvalidArgumentError(f"cannot read pointer file {pointer_file}: {exc}") from exc

    def data_path(self, pointer_file: Path) -> Path:
        """The tracked file or folder this pointer describes: always the pointer's own name
        without ``.ship`` (a pointer cannot aim checkout at ``.git`` or anything else)."""
        expected = pointer_file.name.removesuffix(POINTER_SUFFIX)
        if self.path != expected:
            raise InvalidArgumentError(
                f"pointer file {pointer_file} names {self.path!r}; a pointer describes only "
                f"the path it sits beside ({expected!r})"
            )
        return pointer_file.parent / expected


def pointer_path(data: Path) -> Path:
    """``data.csv`` -> ``data.csv.ship``; a folder ``images/`` -> ``images.ship``."""
    return data.parent / f"{data.name}{POINTER_SUFFIX}"


def find_pointers(paths: list[Path]) -> list[Path]:
    """Pointer files named in ``paths`` (data paths or ``.ship`` files) or found below them
    (not descending into tracked folders, ``.git``, ``.shipyard`` or virtualenvs)."""
    found: list[Path] = []
    for path in paths:
        if path.name.endswith(POINTER_SUFFIX) and path.is_file():
            found.append(path)
        elif pointer_path(path).is_file():
            found.append(pointer_path(path))
        elif path.is_dir():
            found.extend(_walk(path))
        else:
            raise InvalidArgumentError(f"{path} is not tracked (no {pointer_path(path).name})")
    return sorted(set(found))


def _walk(root: Path) -> list[Path]:
    found = []
    pending = [root]
    while pending:
        folder = pending.pop()
        with os.scandir(folder) as entries:
            listed = list(entries)
        names = {e.name for e in listed}
        for entry in listed:
            if entry.name.endswith(POINTER_SUFFIX) and entry.is_file():
                found.append(Path(entry.path))
            elif (
                entry.is_dir(follow_symlinks=False)
                and entry.name not in _SKIP_DIRS
                and f"{entry.name}{POINTER_SUFFIX}" not in names  # a tracked folder
            ):
                pending.append(Path(entry.path))
    return found
