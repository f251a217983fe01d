"""What code and environment produced a run: git commit, uncommitted diff, Python, packages.

The standard-library modules used here load on first use: they would add ~20 ms to
``import shipyard``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CodeVersion", "capture_code_version", "installed_packages", "python_version"]

_GIT_TIMEOUT_S = 10


@dataclass(frozen=True, slots=True)
class CodeVersion:
    """The git state of a checkout. ``diff`` holds tracked changes against ``commit``."""

    commit: str
    diff: bytes
    root: Path

    @property
    def dirty(self) -> bool:
        return bool(self.diff)


def _git(cwd: Path, *args: str) -> bytes | None:
    import shutil
    import subprocess

    git = shutil.which("git")
    if git is None:
        return None
    try:
        result = subprocess.run(  # noqa: S603 - fixed git arguments, no shell
            [git, "-C", str(cwd), *args],
            capture_output=True,
            timeout=_GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout if result.returncode == 0 else None


def capture_code_version(path: Path) -> CodeVersion | None:
    """The commit checked out at ``path`` and the diff of tracked files against it.

    Returns None outside a git checkout, before the first commit, or without git.
    """
    head = _git(path, "rev-parse", "HEAD", "--show-toplevel")
    if not head:
        return None
    commit, _, root = head.decode().partition("\n")
    diff = _git(path, "diff", "HEAD", "--binary", "--no-color", "--no-ext-diff") or b""
    return CodeVersion(commit.strip(), diff, Path(root.strip() or "."))


@functools.cache
def installed_packages() -> str:
    """``name==version`` lines for every installed distribution, sorted (requirements format).

    Read once per process: scanning site-packages costs ~15 ms, and every run of a process
    shares the same environment.
    """
    from importlib import metadata

    seen: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name and name.lower() not in seen:
            seen[name.lower()] = f"{name}=={dist.version}"
    return "".join(f"{line}\n" for _, line in sorted(seen.items()))


def python_version() -> str:
    import platform

    return f"{platform.python_implementation()} {platform.python_version()}"
