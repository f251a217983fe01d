"""A step's cache key, the parts it is made of, and why two keys differ.

The key is the digest of a canonical JSON document of its parts: the code digests of the
step's function and of what it calls in the user's module; its parameters (literal arguments);
the digests of its inputs (other steps' outputs, dataset versions); the digests of what it
declared it reads from outside; the materializers' versions; and its output names.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shipyard.artifacts import hash_bytes, hash_file, list_files
from shipyard.errors import InvalidArgumentError

__all__ = ["KeyParts", "cache_key", "differences", "path_digest"]


@dataclass(frozen=True)
class KeyParts:
    """What a step's cache key is made of (stored with each step run)."""

    code: dict[str, str]
    params: dict[str, Any]
    inputs: dict[str, str]
    reads: dict[str, str] = field(default_factory=dict)
    materializers: str = ""
    outputs: list[str] = field(default_factory=lambda: ["output"])

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "params": self.params,
            "inputs": self.inputs,
            "reads": self.reads,
            "materializers": self.materializers,
            "outputs": self.outputs,
        }


def cache_key(parts: KeyParts) -> str:
    """The key: a SHA-256 of the parts as canonical JSON."""
    text = json.dumps(parts.to_dict(), sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()


def path_digest(path: Path, *, step: str) -> str:
    """Digest of a file's bytes, or of a folder's files (names and contents).

    Raises:
        InvalidArgumentError: the path does not exist.
    """
    if path.is_file():
        return hash_file(path)
    if path.is_dir():
        lines = [f"{rel}\t{hash_file(real)}" for rel, real, _ in list_files(path)]
        return hash_bytes("\n".join(lines).encode())
    raise InvalidArgumentError(
        f"step {step!r} declares that it reads {str(path)!r}, which does not exist"
    )


def _short(digest: str) -> str:
    return digest[:12]


def _function(name: str) -> str:
    return name.rsplit(".", 1)[-1] if "." in name else name


def _dict_changes(what: str, old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    changes = []
    for key in sorted(set(old) | set(new)):
        if key not in old:
            changes.append(f"{what} {key!r} added")
        elif key not in new:
            changes.append(f"{what} {key!r} removed")
        elif old[key] != new[key]:
            before, after = old[key], new[key]
            if isinstance(before, str) and isinstance(after, str) and len(before) == 64:
                before, after = _short(before), _short(after)
            else:
                before, after = json.dumps(before), json.dumps(after)
            changes.append(f"{what} {key!r} changed: {before} -> {after}")
    return changes


def differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What changed between two stored key-parts documents, in words."""
    changes: list[str] = []
    old_code, new_code = old.get("code", {}), new.get("code", {})
    for name in sorted(set(old_code) | set(new_code)):
        if old_code.get(name) == new_code.get(name):
            continue
        if name not in old_code:
            changes.append(f"code: {_function(name)} is now used")
        elif name not in new_code:
            changes.append(f"code: {_function(name)} is no longer used")
        else:
            changes.append(f"code of {_function(name)} changed")
    changes += _dict_changes("parameter", old.get("params", {}), new.get("params", {}))
    changes += _dict_changes("input", old.get("inputs", {}), new.get("inputs", {}))
    changes += _dict_changes("read", old.get("reads", {}), new.get("reads", {}))
    if old.get("materializers") != new.get("materializers"):
        changes.append("materializer versions changed (a Shipyard upgrade)")
    if old.get("outputs") != new.get("outputs"):
        changes.append(f"outputs changed: {old.get('outputs')} -> {new.get('outputs')}")
    return changes
