"""Walk a folder the way :meth:`ArtifactStore.put_dir` stores it, with its safety checks."""

from __future__ import annotations

import os
import stat

from shipyard.artifacts.paths import safe_relative_path
from shipyard.errors import InvalidArgumentError, NotFoundError, UnsafePathError

__all__ = ["list_files", "stat_path"]

StrPath = str | os.PathLike[str]


def stat_path(path: StrPath) -> os.stat_result:
    try:
        return os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        raise NotFoundError(f"no such file or folder: {os.fspath(path)}") from None


def list_files(path: StrPath) -> list[tuple[str, str, os.stat_result]]:
    """Return ``(relative POSIX path, absolute real path, stat)`` for every file under ``path``,
    sorted by path, with the checks :meth:`ArtifactStore.put_dir` relies on (symlinks that
    leave the folder, special files and unportable names are refused)."""
    shown = os.fspath(path)
    if not stat.S_ISDIR(stat_path(shown).st_mode):
        raise InvalidArgumentError(f"{shown} is not a folder; store it with put_file or put")
    top = os.path.realpath(shown)
    found: list[tuple[str, str, os.stat_result]] = []
    # Explicit stack rather than recursion: trees deeper than Python's recursion limit exist.
    pending: list[tuple[str, str, frozenset[str]]] = [(top, "", frozenset({top}))]
    while pending:
        folder, prefix, ancestors = pending.pop()
        with os.scandir(folder) as scan:
            children = list(scan)
        for child in children:
            relative = prefix + child.name
            if child.is_symlink():
                real = os.path.realpath(child.path)
                if real != top and not real.startswith(top.rstrip(os.sep) + os.sep):
                    raise UnsafePathError(
                        f"symlink {relative!r} in {shown} points to {real}, outside the folder "
                        "being stored"
                    )
                if os.path.isdir(real):
                    if real in ancestors:
                        raise InvalidArgumentError(
                            f"symlink {relative!r} in {shown} points to its own parent folder "
                            f"{real}; following it would never end"
                        )
                    pending.append((real, relative + "/", ancestors | {real}))
                elif os.path.isfile(real):
                    found.append((relative, real, os.stat(real)))
                elif not os.path.exists(real):
                    raise NotFoundError(f"symlink {relative!r} in {shown} is broken: {real}")
                else:
                    raise _special_file(relative, shown)
            elif child.is_dir(follow_symlinks=False):
                pending.append((child.path, relative + "/", ancestors | {child.path}))
            elif child.is_file(follow_symlinks=False):
                found.append((relative, child.path, child.stat(follow_symlinks=False)))
            else:
                raise _special_file(relative, shown)
    for relative, _, _ in found:
        # Names read from a directory hold no '/', NUL, '.' or '..' components: only a
        # backslash or a drive-like first name ("C:") can make them unsafe.
        if "\\" not in relative and ":" not in relative:
            continue
        try:
            safe_relative_path(relative)
        except UnsafePathError as exc:
            raise UnsafePathError(f"cannot store {shown}: {exc}") from exc
    found.sort()
    return found


def _special_file(relative: str, folder: str) -> InvalidArgumentError:
    return InvalidArgumentError(
        f"{relative!r} in {folder} is not a regular file (a socket, FIFO or device); "
        "remove it or store the files you need one by one"
    )
