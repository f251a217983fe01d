"""Helpers for the data tests."""

from __future__ import annotations

import os
import time
from pathlib import Path


def settle(root: Path) -> None:
    """Date files an hour back: the stat cache does not vouch for files modified in the last
    seconds (they could change again within the same timestamp tick)."""
    past = time.time_ns() - 3600 * 10**9
    paths = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
    for path in paths:
        os.utime(path, ns=(past, past))
