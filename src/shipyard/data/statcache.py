"""Remember the digest of files already hashed, keyed by what ``stat`` says about them.

``data status`` on a folder of 20,000 unchanged files then costs 20,000 ``stat`` calls and
no hashing: a file whose (inode, size, mtime, ctime) are unchanged is taken to have the same
content (the rule git and DVC use). The cache lives in the workspace
(``.shipyard/cache/stat.db``), belongs to this machine, and is never needed for correctness:
deleting it only makes the next status slower.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path

__all__ = ["RACY_WINDOW_NS", "StatCache", "stat_key"]

StatKey = tuple[int, int, int, int]

RACY_WINDOW_NS = 2_000_000_000
"""Files modified this recently are not cached (coarse-timestamp filesystems tick in 2 s)."""


def stat_key(info: os.stat_result) -> StatKey:
    """What must not change for a cached digest to stay valid."""
    return (info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def _use_wal(db: sqlite3.Connection, seconds: float = 30.0) -> None:
    """Switch the cache to WAL once. Several processes opening a new cache at the same moment
    race for that switch, and SQLite answers the losers "database is locked" at once (its busy
    timeout does not cover a journal-mode change): try again until the winner is done."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


class StatCache:
    """A small SQLite table ``path -> (inode, size, mtime_ns, ctime_ns, digest)``."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, timeout=30, isolation_level=None)
        _use_wal(self._db)
        self._db.execute("PRAGMA synchronous=OFF")  # a lost entry only costs a re-hash
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, inode INTEGER, "
            "size INTEGER, mtime_ns INTEGER, ctime_ns INTEGER, digest TEXT)"
        )
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS folders (path TEXT PRIMARY KEY, listing TEXT, "
            "digest TEXT, size INTEGER, files INTEGER)"
        )

    @classmethod
    def in_workspace(cls, home: Path) -> StatCache:
        """The cache of the workspace folder ``home`` (``.shipyard``)."""
        return cls(home / "cache" / "stat.db")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> StatCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def lookup_under(self, prefix: str) -> dict[str, tuple[StatKey, str]]:
        """Every cached entry whose path starts with ``prefix`` (one query for a folder)."""
        end = prefix + "\U0010ffff"
        rows = self._db.execute(
            "SELECT path, inode, size, mtime_ns, ctime_ns, digest FROM files "
            "WHERE path >= ? AND path < ?",
            (prefix, end),
        )
        return {r[0]: ((r[1], r[2], r[3], r[4]), r[5]) for r in rows}

    def get(self, path: str, key: StatKey) -> str | None:
        row = self._db.execute(
            "SELECT inode, size, mtime_ns, ctime_ns, digest FROM files WHERE path = ?", (path,)
        ).fetchone()
        if row is None or tuple(row[:4]) != key:
            return None
        return str(row[4])

    def folder(self, path: str) -> tuple[str, str, int, int] | None:
        """The folder's last fingerprint: (listing key, manifest digest, size, file count)."""
        row = self._db.execute(
            "SELECT listing, digest, size, files FROM folders WHERE path = ?", (path,)
        ).fetchone()
        return None if row is None else (str(row[0]), str(row[1]), int(row[2]), int(row[3]))

    def put_folder(self, path: str, listing: str, digest: str, size: int, files: int) -> None:
        """Remember a folder's manifest digest for exactly this listing (every file's path and
        stat key): an unchanged folder is then answered without a lookup per file. Only for a
        folder none of whose files is within the racy window (see :meth:`put_many`)."""
        self._db.execute(
            "INSERT OR REPLACE INTO folders VALUES (?, ?, ?, ?, ?)",
            (path, listing, digest, size, files),
        )

    def put_many(self, entries: Iterable[tuple[str, StatKey, str]]) -> None:
        """Remember digests, except for files modified in the last few seconds.

        A file rewritten with the same size within one timestamp tick of being hashed keeps
        its mtime; caching it would vouch for the old digest ("racily clean", as git calls
        it). Such files are simply hashed again next time.
        """
        settled = time.time_ns() - RACY_WINDOW_NS
        rows = [(p, *k, d) for p, k, d in entries if k[2] < settled]
        if not rows:
            return
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?)", rows)
