"""The write-ahead journal of metrics: what ``log_metric`` has acknowledged survives ``kill -9``.

Each process keeps one journal per run it logs to: a folder ``<home>/journal/<journal_id>/``
of numbered *segments*. ``log_metric`` appends a small binary record to the open segment with
one plain ``write()`` before it returns — the operating system keeps the bytes when the
process dies, without an ``fsync`` per call. When the metric buffer flushes, it closes the
segment and starts the next; the store applies the closed segment (remembering, in the same
transaction, the highest segment applied per journal) and only then is its file deleted.
After a crash, :mod:`shipyard.tracking.recovery` replays the segments the store has not
applied, so every acknowledged metric lands exactly once.

A segment file: the line ``SHIPYARD-JOURNAL 1``, a JSON line (run, journal, segment, owner,
store), then records — ``K`` + u16 length + UTF-8 key (the next key index of this segment), or ``M``
+ u32 key index, f64 value, i64 step, i64 timestamp (little-endian). A record cut short at
the end (a write interrupted by a power loss) ends the segment.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import struct
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from shipyard.entities import JournalSegment, MetricRecord, RunOwner

__all__ = [
    "JOURNAL_DIR",
    "JOURNAL_MAGIC",
    "SEGMENT_SUFFIX",
    "JournalFile",
    "JournalHeader",
    "RunJournal",
    "journal_header",
    "read_journal",
]

log = logging.getLogger(__name__)

JOURNAL_DIR = "journal"
"""The folder of a workspace that holds the journals."""
JOURNAL_MAGIC = b"SHIPYARD-JOURNAL 1\n"
SEGMENT_SUFFIX = ".seg"
_METRIC = struct.Struct("<cIdqq")
_PACK = _METRIC.pack
_KEY = struct.Struct("<cH")


def _segment_name(segment: int) -> str:
    return f"{segment:012d}{SEGMENT_SUFFIX}"


class RunJournal:
    """This process's journal for one run. Not thread-safe: the metric buffer serialises
    every call under its lock.

    Args:
        root: the workspace's journal folder.
        run_id: the run the metrics belong to.
        owner: this process (written into each segment, so a recovery can tell whether the
            writer is still alive).
        store: the store the metrics are for (URL without password), so that a recovery
            against another store leaves the journal alone.
        sync: ``fsync`` each segment when it is closed (``SHIPYARD_SYNC=1``), so a power loss
            cannot lose a batch that reached the store's commit.
    """

    def __init__(
        self, root: Path, run_id: str, owner: RunOwner, *, store: str = "", sync: bool = False
    ) -> None:
        self.journal_id = uuid.uuid4().hex
        self.run_id = run_id
        self.store = store
        self.folder = root / self.journal_id
        self.pending: list[MetricRecord] = []
        self._owner = owner
        self._sync = sync
        self._segment = 0
        self._fd = -1
        self._size = 0
        self._unsynced: list[int] = []
        self._keys: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"RunJournal({str(self.folder)!r}, run_id={self.run_id!r})"

    def append(self, key: str, value: float, step: int, timestamp: int) -> None:
        """Write one metric to the open segment (one ``write()``) and keep it pending."""
        index = self._keys.get(key)
        if index is None:
            self._write_new_keys([key], _PACK(b"M", len(self._keys), value, step, timestamp))
        else:
            self._write(_PACK(b"M", index, value, step, timestamp))
        self.pending.append((key, value, step, timestamp))

    def extend(self, metrics: Sequence[MetricRecord]) -> None:
        """Write several metrics with one ``write()``."""
        new: dict[str, int] = {}
        parts: list[bytes] = []
        for key, value, step, timestamp in metrics:
            index = self._keys.get(key)
            if index is None:
                index = new.get(key)
                if index is None:
                    index = new[key] = len(self._keys) + len(new)
            parts.append(_PACK(b"M", index, value, step, timestamp))
        if not parts:
            return
        if new:
            self._write_new_keys(list(new), b"".join(parts))
        else:
            self._write(b"".join(parts))
        self.pending.extend(metrics)

    def _write_new_keys(self, keys: list[str], records: bytes) -> None:
        # Keys are numbered in the order their K records appear; they count only once
        # written, so a failed write leaves the key table as the file has it.
        if self._fd < 0:
            self._open_segment()
        definitions = b"".join(_KEY.pack(b"K", len(k.encode())) + k.encode() for k in keys)
        self._write(definitions + records)
        for key in keys:
            self._keys[key] = len(self._keys)

    def _write(self, data: bytes) -> None:
        """Append ``data`` whole, or not at all: a failed or short write (a full disk) is cut
        back, so the records after it are not hidden behind a torn one."""
        try:
            written = os.write(self._fd, data)
            while written < len(data):
                written += os.write(self._fd, data[written:])
        except BaseException:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._size)
            raise
        self._size += len(data)

    def _open_segment(self) -> None:
        path = self.folder / _segment_name(self._segment)
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND
        fd = _create_in(self.folder, path, flags)
        header = {
            "run_id": self.run_id,
            "journal_id": self.journal_id,
            "segment": self._segment,
            "host": self._owner.host,
            "pid": self._owner.pid,
            "process_start": self._owner.process_start,
            "store": self.store,
        }
        self._fd, self._size = fd, 0
        try:
            self._write(JOURNAL_MAGIC + json.dumps(header).encode() + b"\n")
            if self._sync:  # the new file's name must survive a power loss too
                _fsync_folder(self.folder)
        except BaseException:
            self._close_fd()
            raise

    def take(self) -> JournalSegment | None:
        """Close the open segment and return its metrics for the store (None if empty);
        the next metric starts a new segment. With ``sync``, call :meth:`sync_taken`
        before storing it."""
        if not self.pending:
            return None
        segment = JournalSegment(self.journal_id, self.run_id, self._segment, tuple(self.pending))
        self.pending = []
        if self._sync:
            self._unsynced.append(self._fd)
            self._fd = -1
        else:
            self._close_fd()
        self._segment += 1
        self._keys = {}
        return segment

    def sync_taken(self) -> None:
        """``fsync`` and close the segments taken since the last call (``sync`` only)."""
        while self._unsynced:
            fd = self._unsynced.pop()
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def discard(self, segment: int) -> None:
        """Delete a segment the store has applied."""
        with contextlib.suppress(FileNotFoundError):
            (self.folder / _segment_name(segment)).unlink()

    def close(self) -> None:
        """Forget the journal: call only once every segment is applied and discarded."""
        self._close_fd()
        self.sync_taken()
        _remove(self.folder, list(self.folder.glob(f"*{SEGMENT_SUFFIX}")))

    def abandon(self) -> None:
        """Drop the open files without deleting anything (a forked child's copy)."""
        for fd in [self._fd, *self._unsynced]:
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._fd = -1
        self._unsynced = []
        self._keys = {}
        self.pending = []

    def _close_fd(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_CREATE_ATTEMPTS = 20


def _create_in(folder: Path, path: Path, flags: int) -> int:
    """Open ``path`` with ``flags``, creating ``folder`` first if it is missing.

    Another process's recovery removes journal folders it finds empty; one can do so between
    this ``mkdir`` and this ``open``. The folder is then simply made again.
    """
    for _ in range(_CREATE_ATTEMPTS):
        try:
            return os.open(path, flags, 0o600)
        except FileNotFoundError:  # first segment, or an idle empty folder tidied away
            folder.mkdir(parents=True, exist_ok=True)
    return os.open(path, flags, 0o600)


def _remove(folder: Path, segments: Sequence[Path]) -> None:
    for path in segments:
        path.unlink(missing_ok=True)
    with contextlib.suppress(FileNotFoundError, OSError):
        folder.rmdir()  # only if nothing else is in it


@dataclass(frozen=True, slots=True)
class JournalHeader:
    """Whose a journal segment is: the header line every segment starts with."""

    run_id: str
    journal_id: str
    segment: int
    owner: RunOwner
    store: str
    """The store the metrics are for (URL without password; "" if not recorded)."""

    @classmethod
    def parse(cls, line: bytes) -> JournalHeader:
        """Raises ValueError (or KeyError) for a header that is not one."""
        data = json.loads(line)
        owner = RunOwner(str(data["host"]), int(data["pid"]), str(data.get("process_start", "")))
        return cls(
            str(data["run_id"]),
            str(data["journal_id"]),
            int(data["segment"]),
            owner,
            str(data.get("store", "")),
        )


@dataclass(frozen=True, slots=True)
class JournalFile:
    """What a journal folder holds: whose it is and its segments still on disk."""

    folder: Path
    header: JournalHeader
    """The header of its first segment on disk."""
    segments: tuple[JournalSegment, ...]
    paths: tuple[Path, ...]
    """The segment files read (unreadable ones are not among them)."""

    def delete(self) -> None:
        """Remove the segments read (they are in the store), and the folder if now empty."""
        _remove(self.folder, self.paths)


def _split_header(data: bytes) -> tuple[JournalHeader, int] | None:
    """The header of a segment's bytes and where its records start; None if there is none."""
    end = data.find(b"\n", len(JOURNAL_MAGIC))
    if not data.startswith(JOURNAL_MAGIC) or end < 0:
        return None
    try:
        return JournalHeader.parse(data[len(JOURNAL_MAGIC) : end]), end + 1
    except (ValueError, KeyError, TypeError):
        return None


def journal_header(folder: Path) -> JournalHeader | None:
    """The header of a journal's first segment, without reading its records; None if no
    segment has a readable header yet."""
    for path in sorted(folder.glob(f"*{SEGMENT_SUFFIX}")):
        try:
            with path.open("rb") as segment:
                head = segment.read(len(JOURNAL_MAGIC) + 4096)
        except FileNotFoundError:
            continue
        found = _split_header(head)
        if found is not None:
            return found[0]
    return None


def read_journal(folder: Path) -> JournalFile | None:
    """Read every segment of a journal folder; None if it holds no readable segment."""
    segments: list[JournalSegment] = []
    paths: list[Path] = []
    first: JournalHeader | None = None
    for path in sorted(folder.glob(f"*{SEGMENT_SUFFIX}")):
        try:
            data = path.read_bytes()
        except FileNotFoundError:  # applied and deleted meanwhile
            continue
        found = _split_header(data)
        if found is None:
            if data:
                log.warning("%s is not a readable Shipyard journal segment; left alone", path)
            continue
        header, start = found
        first = first or header
        metrics = tuple(_records(path, memoryview(data)[start:]))
        segments.append(JournalSegment(header.journal_id, header.run_id, header.segment, metrics))
        paths.append(path)
    if first is None:
        return None
    return JournalFile(folder, first, tuple(segments), tuple(paths))


def _records(path: Path, view: memoryview) -> Iterator[MetricRecord]:
    keys: list[str] = []
    offset, size = 0, len(view)
    while offset < size:
        kind = view[offset : offset + 1].tobytes()
        if kind == b"M":
            if offset + _METRIC.size > size:
                return
            _, index, value, step, timestamp = _METRIC.unpack_from(view, offset)
            offset += _METRIC.size
            if index >= len(keys):
                log.warning("%s: a metric names an unknown key; the rest is skipped", path)
                return
            yield keys[index], value, step, timestamp
        elif kind == b"K":
            if offset + _KEY.size > size:
                return
            _, length = _KEY.unpack_from(view, offset)
            start = offset + _KEY.size
            if start + length > size:
                return
            keys.append(view[start : start + length].tobytes().decode())
            offset = start + length
        else:
            log.warning("%s: unreadable record at byte %d; the rest is skipped", path, offset)
            return
