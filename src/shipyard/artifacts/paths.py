"""Checks for user-supplied artifact paths, so that no path can leave the folder it names into.

Logical artifact paths (inside a run, or inside a directory manifest) are relative POSIX paths:
``"model/weights.bin"``. They are portable, so they must mean the same thing on every platform:
backslashes, drive letters and ``..`` are refused everywhere, not only on Windows.
"""

from __future__ import annotations

import re
from pathlib import Path

from shipyard.errors import InvalidArgumentError, UnsafePathError

__all__ = ["resolve_inside", "safe_relative_path"]

_DRIVE_RE = re.compile(r"[A-Za-z]:")


def safe_relative_path(path: str) -> str:
    """Validate a user-supplied artifact path and return it normalised as POSIX.

    ``"."`` components and repeated or trailing slashes are collapsed: ``"a//./b/"`` becomes
    ``"a/b"``.

    Args:
        path: a logical path inside a run or a manifest, such as ``"data/train.csv"``.

    Returns:
        The normalised path, such as ``"data/train.csv"``.

    Raises:
        UnsafePathError: if ``path`` is empty (or only ``.`` and slashes), absolute (``/x``,
            ``C:\\x``, ``C:x``, ``\\\\server\\share``), contains a ``..`` component, a NUL
            byte or a backslash. The message names the path and says why.
        InvalidArgumentError: if ``path`` is not a string.
    """
    if not isinstance(path, str):
        raise InvalidArgumentError(f"artifact path must be a string, not {type(path).__name__}")
    reason = _unsafe_reason(path)
    if reason is not None:
        raise UnsafePathError(f"unsafe artifact path {path!r}: {reason}")
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if not parts:
        raise UnsafePathError(f"unsafe artifact path {path!r}: it names no file")
    # Checked after collapsing, so that "./C:" cannot smuggle a drive to the front.
    if _DRIVE_RE.match(parts[0]):
        raise UnsafePathError(
            f"unsafe artifact path {path!r}: it starts with a Windows drive letter"
        )
    return "/".join(parts)


def _unsafe_reason(path: str) -> str | None:
    if path == "":
        return "it is empty"
    if "\x00" in path:
        return "it contains a NUL byte"
    if "\\" in path:
        return "it contains a backslash; use '/' to separate folders"
    if path.startswith("/"):
        return "it is absolute; give a path relative to the artifact root"
    if ".." in path.split("/"):
        return "it contains a '..' component"
    return None


def resolve_inside(root: Path, relative: str) -> Path:
    """Return ``root / relative`` resolved, after checking that it stays inside ``root``.

    Symlinks are followed, so a symlink under ``root`` that points outside it is caught. The
    check is made when this function runs; a folder that untrusted processes can change while
    Shipyard writes into it is not protected.

    Args:
        root: the folder that must contain the result. It need not exist.
        relative: a user-supplied path, validated with :func:`safe_relative_path`.

    Returns:
        The resolved absolute path, strictly inside ``root.resolve()``.

    Raises:
        UnsafePathError: if ``relative`` is unsafe, or resolves to ``root`` itself or to a
            place outside it.
    """
    clean = safe_relative_path(relative)
    base = Path(root).resolve()
    target = (base / clean).resolve()
    if target == base or not target.is_relative_to(base):
        raise UnsafePathError(
            f"unsafe artifact path {relative!r}: it resolves to {target}, which is not inside "
            f"{base} (a symlink on the way points elsewhere)"
        )
    return target
