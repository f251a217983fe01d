"""The metric journal's file format: what is written is read back, a cut-off tail is not."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shipyard.entities import RunOwner
from shipyard.tracking.journal import RunJournal, journal_header, read_journal

OWNER = RunOwner("host-a", 4242, "987654")


def _journal(root: Path) -> RunJournal:
    return RunJournal(root, "a" * 32, OWNER, store="sqlite:///x.db")


def test_segments_round_trip_with_their_owner(tmp_path: Path) -> None:
    journal = _journal(tmp_path)
    journal.append("loss", 0.5, 0, 1000)
    journal.append("loss", math.nan, 1, 1001)
    journal.extend([("acc", math.inf, 1, 1001), ("loss", -math.inf, 2, 1002)])
    first = journal.take()
    journal.append("acc", 0.25, 7, 1003)  # a new segment: its own key table
    second = journal.take()
    assert first is not None and second is not None
    assert (first.segment, second.segment) == (0, 1)
    found = read_journal(journal.folder)
    assert found is not None
    assert found.header.owner == OWNER and found.header.run_id == "a" * 32
    assert [s.segment for s in found.segments] == [0, 1]
    values = found.segments[0].metrics
    assert [(k, s, t) for k, _, s, t in values] == [
        ("loss", 0, 1000),
        ("loss", 1, 1001),
        ("acc", 1, 1001),
        ("loss", 2, 1002),
    ]
    assert values[0][1] == 0.5 and math.isnan(values[1][1])
    assert values[2][1] == math.inf and values[3][1] == -math.inf
    assert found.segments[1].metrics == (("acc", 0.25, 7, 1003),)
    header = journal_header(journal.folder)
    assert header is not None
    assert (header.run_id, header.owner, header.store) == ("a" * 32, OWNER, "sqlite:///x.db")
    assert header.journal_id == journal.journal_id and header.segment == 0


def test_a_record_cut_short_ends_the_segment(tmp_path: Path) -> None:
    journal = _journal(tmp_path)
    for step in range(3):
        journal.append("loss", float(step), step, 1000 + step)
    segment = next(journal.folder.glob("*.seg"))
    data = segment.read_bytes()
    for cut in range(1, 29):  # every way of losing part of the last record
        segment.write_bytes(data[:-cut])
        found = read_journal(journal.folder)
        assert found is not None
        assert [m[2] for m in found.segments[0].metrics] == [0, 1]


def test_discarded_segments_are_gone_and_close_removes_the_folder(tmp_path: Path) -> None:
    journal = _journal(tmp_path)
    journal.append("loss", 1.0, 0, 1)
    first = journal.take()
    journal.append("loss", 2.0, 1, 2)
    assert first is not None
    journal.discard(first.segment)
    found = read_journal(journal.folder)
    assert found is not None and [s.segment for s in found.segments] == [1]
    journal.take()
    journal.close()
    assert not journal.folder.exists()


def test_files_that_are_not_journals_are_left_alone(tmp_path: Path) -> None:
    folder = tmp_path / "x"
    folder.mkdir()
    (folder / "000000000000.seg").write_bytes(b"something else")
    assert read_journal(folder) is None
    assert journal_header(folder) is None
    assert (folder / "000000000000.seg").exists()


def test_segments_are_private_to_their_user(tmp_path: Path) -> None:
    journal = _journal(tmp_path)
    journal.append("loss", 1.0, 0, 1)
    segment = next(journal.folder.glob("*.seg"))
    assert os.stat(segment).st_mode & 0o077 == 0


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.text(min_size=1, max_size=20),
            st.floats(allow_nan=False),
            st.integers(-(2**63), 2**63 - 1),
            st.integers(-(2**63), 2**63 - 1),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_any_metrics_round_trip(
    tmp_path_factory: pytest.TempPathFactory, records: list[tuple[str, float, int, int]]
) -> None:
    root = tmp_path_factory.mktemp("j")
    journal = RunJournal(root, "b" * 32, OWNER)
    for record in records:
        journal.append(*record)
    found = read_journal(journal.folder)
    assert found is not None
    assert list(found.segments[0].metrics) == records


def test_a_failed_write_is_cut_back_and_later_records_stay_readable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk mid-record (simulated: the OS call is the one thing replaced here)."""
    import shipyard.tracking.journal as journal_module

    journal = _journal(tmp_path)
    journal.append("loss", 1.0, 0, 1)
    real_write = os.write

    def half_then_full(fd: int, data: bytes) -> int:
        real_write(fd, data[: len(data) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(journal_module.os, "write", half_then_full)
    with pytest.raises(OSError, match="No space"):
        journal.append("acc", 2.0, 0, 2)  # a new key: its definition must not count
    monkeypatch.setattr(journal_module.os, "write", real_write)
    journal.append("acc", 3.0, 1, 3)
    journal.append("loss", 4.0, 1, 4)
    found = read_journal(journal.folder)
    assert found is not None
    assert list(found.segments[0].metrics) == [
        ("loss", 1.0, 0, 1),
        ("acc", 3.0, 1, 3),
        ("loss", 4.0, 1, 4),
    ]
    assert journal.pending == list(found.segments[0].metrics)


def test_ending_a_run_waits_for_a_flush_in_flight_before_deleting_its_journal(
    tmp_path: Path,
) -> None:
    import threading

    from shipyard.tracking.buffer import MetricBuffer

    storing, release = threading.Event(), threading.Event()
    stored: list[int] = []
    on_disk_while_storing: list[bool] = []

    def slow_sink(segments: object) -> None:
        storing.set()
        release.wait(10)
        on_disk_while_storing.append(any(tmp_path.glob("*/*.seg")))
        stored.append(1)

    buffer = MetricBuffer(slow_sink, journal_root=tmp_path, owner=OWNER, interval=3600)
    buffer.add("r" * 32, "loss", 1.0, 0, 1)
    flusher = threading.Thread(target=buffer.flush)
    flusher.start()
    assert storing.wait(10)
    closer = threading.Thread(target=buffer.close_journal, args=("r" * 32,))
    closer.start()
    closer.join(0.3)
    assert closer.is_alive(), "close_journal must wait for the flush in flight"
    release.set()
    flusher.join(10)
    closer.join(10)
    assert stored == [1] and on_disk_while_storing == [True]
    assert not any(tmp_path.iterdir())
    buffer.close()


def test_a_folder_tidied_away_between_mkdir_and_open_is_made_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process's recovery removes empty journal folders; when that happens right after
    this writer made its folder, the first metric must still be written (seen in CI with 8
    writers sharing one home)."""
    journal = _journal(tmp_path)
    real_mkdir = Path.mkdir
    tidied: list[Path] = []

    def mkdir_then_tidied(self: Path, *args: object, **kwargs: object) -> None:
        real_mkdir(self, *args, **kwargs)  # type: ignore[arg-type]
        if self == journal.folder and len(tidied) < 3:  # the recovery wins the race 3 times
            tidied.append(self)
            self.rmdir()

    monkeypatch.setattr(Path, "mkdir", mkdir_then_tidied)
    journal.append("loss", 0.5, 0, 1000)
    assert len(tidied) == 3
    assert journal.take() is not None
    found = read_journal(journal.folder)
    assert found is not None and found.segments[0].metrics == (("loss", 0.5, 0, 1000),)
