"""Which table format a file or folder holds, from its name alone: without importing DuckDB
(``data add`` of a folder of images asks this and reads no table)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["CSV_SUFFIXES", "PARQUET_SUFFIXES", "table_format"]

CSV_SUFFIXES = (".csv", ".tsv")
_COMPRESSIONS = ("", ".gz", ".zst")
PARQUET_SUFFIXES = (".parquet", ".pq")


def table_format(path: str | os.PathLike[str]) -> str:
    """Name the table format of a file or folder from its name.

    Args:
        path: a file or folder.

    Returns:
        ``"csv"`` for ``.csv`` and ``.tsv`` files (also ``.gz`` or ``.zst`` compressed),
        ``"parquet"`` for ``.parquet`` and ``.pq`` files and for a folder holding at least one
        of them (at any depth), ``""`` for anything else.
    """
    p = Path(path)
    name = p.name.lower()
    if p.is_dir():
        return "parquet" if _holds_parquet(p) else ""
    if any(name.endswith(s + c) for s in CSV_SUFFIXES for c in _COMPRESSIONS):
        return "csv"
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    return ""


def _holds_parquet(folder: Path) -> bool:
    """Whether :func:`_parquet_files` would find any, without listing them all (a folder of
    20,000 images is answered by a walk that never builds a path object)."""
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith((".", "_"))]
        for name in files:
            if name.lower().endswith(PARQUET_SUFFIXES) and not name.startswith((".", "_")):
                if os.path.isfile(os.path.join(root, name)):
                    return True
    return False
