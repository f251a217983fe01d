"""Who owns a run and whether it is alive: the store's side (both stores) and the OS's side."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import shipyard
from shipyard.entities import JournalSegment, RunOwner, RunStatus
from shipyard.errors import InvalidArgumentError
from shipyard.store import Backend
from shipyard.tracking.liveness import owner_is_dead, process_start, this_process
from shipyard.tracking.recovery import check_resumable, end_stored_run, recover


def _now() -> int:
    return time.time_ns() // 1_000_000


def _run(backend: Backend, owner: RunOwner | None, start: int = 1_000) -> str:
    exp = backend.get_or_create_experiment("e").experiment_id
    return backend.create_run(exp, name="r", user="u", start_time=start, owner=owner).run_id


FAR = RunOwner("another-host", 12345, "1")


def _dead_here(pid: int = 2**22 + 7) -> RunOwner:
    """An owner on this machine whose pid cannot exist (above Linux's pid_max)."""
    me = this_process()
    return RunOwner(me.host, pid, me.process_start.rpartition("/")[0] + "/1")


# --- the operating system's side --------------------------------------------------------


def test_this_process_is_alive_and_a_reused_pid_is_not() -> None:
    me = this_process()
    assert me.pid == os.getpid() and me.host
    assert not owner_is_dead(me, 0, _now(), 60)
    reused = RunOwner(me.host, me.pid, me.process_start.rpartition("/")[0] + "/1")
    assert owner_is_dead(reused, _now(), _now(), 60)  # fresh heartbeat: the pid decides


def test_same_host_name_on_another_machine_is_judged_by_its_heartbeat() -> None:
    twin = RunOwner(this_process().host, 2**22 + 5, "other-boot:pid:[1]/123")
    assert not owner_is_dead(twin, _now(), _now(), 60)
    assert owner_is_dead(twin, _now() - 61_000, _now(), 60)


def test_a_killed_child_is_dead_even_before_it_is_reaped() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        owner = RunOwner(this_process().host, child.pid, process_start(child.pid) or "")
        assert not owner_is_dead(owner, 0, _now(), 60)
        child.kill()
        deadline = time.monotonic() + 10
        while process_start(child.pid) is not None and time.monotonic() < deadline:
            time.sleep(0.01)  # a zombie until waited for: still counts as dead
        assert owner_is_dead(owner, 0, _now(), 60)
    finally:
        child.kill()
        child.wait()


def test_on_another_host_only_the_heartbeat_tells() -> None:
    now = _now()
    assert not owner_is_dead(FAR, now - 5_000, now, 60)
    assert owner_is_dead(FAR, now - 61_000, now, 60)


# --- the store's side -------------------------------------------------------------------


def test_a_journal_segment_is_applied_once_even_by_racing_writers(backend: Backend) -> None:
    run_id = _run(backend, None)
    seg0 = JournalSegment("j1", run_id, 0, tuple(("m", float(i), i, 1) for i in range(100)))
    seg1 = JournalSegment("j1", run_id, 1, (("m", 1.0, 100, 2),))
    results: list[int] = []
    threads = [
        threading.Thread(target=lambda: results.append(backend.log_journal([seg0])))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [0, 0, 0, 100]
    assert backend.log_journal([seg0, seg1]) == 1  # only the new segment
    assert backend.applied_segment("j1") == 1
    assert len(backend.get_metric_history(run_id, "m")) == 101


def test_a_journal_of_an_unknown_run_writes_nothing(backend: Backend) -> None:
    from shipyard.errors import NotFoundError

    with pytest.raises(NotFoundError, match="no run"):
        backend.log_journal([JournalSegment("j2", "f" * 32, 0, (("m", 1.0, 0, 1),))])
    assert backend.applied_segment("j2") == -1


def test_crashed_runs_end_at_their_last_sign_of_life_and_revive_on_a_heartbeat(
    backend: Backend,
) -> None:
    run_id = _run(backend, FAR, start=1_000)
    assert backend.get_run(run_id).heartbeat == 1_000
    backend.log_journal([JournalSegment("j", run_id, 0, (("m", 1.0, 0, 5_000),))])
    assert backend.mark_run_crashed(run_id, heartbeat=999, now=_now()) is None  # moved on
    assert backend.mark_run_crashed(run_id, heartbeat=1_000, now=_now()) == 5_000
    run = backend.get_run(run_id)
    assert (run.status, run.end_time, run.owner) == (RunStatus.CRASHED, 5_000, FAR)
    assert backend.heartbeat([run_id], RunOwner("someone-else", 1, ""), 9_000) == 0
    assert backend.get_run(run_id).status is RunStatus.CRASHED
    assert backend.heartbeat([run_id], FAR, 9_000) == 1
    run = backend.get_run(run_id)
    assert (run.status, run.end_time, run.heartbeat) == (RunStatus.RUNNING, None, 9_000)


def test_recovery_marks_silent_remote_runs_and_leaves_live_ones(
    backend: Backend, tmp_path: Path
) -> None:
    silent = _run(backend, FAR, start=_now() - 120_000)
    talking = _run(backend, FAR, start=_now())
    unowned = _run(backend, None, start=1)  # created outside start_run: nothing watches it
    done = recover(backend, tmp_path, heartbeat_timeout=60)
    assert [r for r, _ in done.crashed] == [silent]
    assert backend.get_run(silent).status is RunStatus.CRASHED
    assert backend.get_run(talking).status is RunStatus.RUNNING
    assert backend.get_run(unowned).status is RunStatus.RUNNING


def test_recovery_replays_only_journals_of_dead_writers_for_this_store(
    backend: Backend, tmp_path: Path
) -> None:
    from shipyard.tracking.journal import JOURNAL_DIR, RunJournal

    run_id = _run(backend, None)
    dead = _dead_here(2**22 + 11)
    for owner, store, value in (
        (dead, backend.url, 1.0),  # replayed
        (dead, "sqlite:///some/other.db", 2.0),  # another store's: left alone
        (this_process(), backend.url, 3.0),  # a live writer's: left alone
    ):
        RunJournal(tmp_path / JOURNAL_DIR, run_id, owner, store=store).append("m", value, 0, 1)
    done = recover(backend, tmp_path)
    assert (done.journals, done.metrics) == (1, 1)
    assert [m.value for m in backend.get_metric_history(run_id, "m")] == [1.0]
    assert len(list((tmp_path / JOURNAL_DIR).iterdir())) == 2


def test_ending_by_hand_uses_the_last_sign_of_life(backend: Backend) -> None:
    dead = _run(backend, _dead_here(), start=1_000)
    backend.log_journal([JournalSegment("j", dead, 0, (("m", 1.0, 0, 4_000),))])
    run = end_stored_run(backend, dead, "finished")
    assert (run.status, run.end_time) == (RunStatus.FINISHED, 4_000)
    with pytest.raises(InvalidArgumentError, match="already ended"):
        end_stored_run(backend, dead)
    with pytest.raises(InvalidArgumentError, match="finished, failed or killed"):
        end_stored_run(backend, dead, "crashed")
    alive = _run(backend, this_process(), start=_now())
    with pytest.raises(InvalidArgumentError, match=r"still running .*--force"):
        end_stored_run(backend, alive)
    with pytest.raises(InvalidArgumentError, match="nothing to resume"):
        check_resumable(backend, alive)
    forced = end_stored_run(backend, alive, force=True)
    assert forced.status is RunStatus.KILLED and forced.end_time is not None
    assert forced.end_time >= _now() - 10_000


def test_a_run_records_its_owner_and_heartbeats_while_active(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHIPYARD_HEARTBEAT_INTERVAL", "0.05")
    with shipyard.start_run(experiment="beat", log_code=False) as run:
        first = shipyard.get_run(run.run_id)
        assert first.owner == this_process()
        deadline = time.monotonic() + 10
        while shipyard.get_run(run.run_id).heartbeat == first.heartbeat:
            assert time.monotonic() < deadline, "no heartbeat within 10 s"
            time.sleep(0.02)
        assert shipyard.get_run(run.run_id).status is RunStatus.RUNNING  # not judged dead
    ended = shipyard.get_run(run.run_id)
    assert ended.status is RunStatus.FINISHED
    assert not list((home / "journal").glob("*/*.seg"))


def test_a_run_owned_by_a_live_process_is_joined_not_taken_over(home: Path) -> None:
    backend = shipyard.open_workspace().backend
    owner = RunOwner(this_process().host, os.getppid(), process_start(os.getppid()) or "")
    run_id = _run(backend, owner, start=_now())
    with shipyard.start_run(run_id=run_id, log_code=False) as joined:
        joined.log_metric("m", 1.0)
        assert shipyard.get_run(run_id).owner == owner
    crashed = _run(backend, _dead_here(2**22 + 9), start=_now())
    with shipyard.start_run(run_id=crashed, log_code=False):
        assert shipyard.get_run(crashed).owner == this_process()
        assert shipyard.get_run(crashed).status is RunStatus.RUNNING


def test_sync_fsyncs_each_batch_and_makes_sqlite_commits_full(
    home: Path, monkeypatch: pytest.MonkeyPatch, store_url: str
) -> None:
    import shipyard.tracking.journal as journal_module

    synced: list[int] = []
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:  # counts, then really syncs
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(journal_module.os, "fsync", counting_fsync)
    monkeypatch.setenv("SHIPYARD_SYNC", "1")
    with shipyard.start_run(experiment="sync", log_code=False) as run:
        run.log_metric("m", 1.0)
        run.flush()
        assert len(synced) == 2  # the new segment's folder entry, then the segment itself
        run.log_metric("m", 2.0)
        backend = run.workspace.backend
    assert len(synced) == 4
    if store_url.startswith("sqlite"):
        from shipyard.store.sql import SqlBackend

        assert isinstance(backend, SqlBackend)
        with backend.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL


def test_a_bad_sync_value_is_refused(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIPYARD_SYNC", "maybe")
    with pytest.raises(InvalidArgumentError, match="SHIPYARD_SYNC must be 1 or 0"):
        shipyard.start_run(log_code=False)


def test_a_heartbeat_timeout_too_close_to_the_interval_is_refused(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHIPYARD_HEARTBEAT_INTERVAL", "30")
    monkeypatch.setenv("SHIPYARD_HEARTBEAT_TIMEOUT", "60")
    with pytest.raises(InvalidArgumentError, match="at least 3 x SHIPYARD_HEARTBEAT_INTERVAL"):
        shipyard.start_run(log_code=False)


def test_recovery_reports_a_journal_it_cannot_replay_and_goes_on(
    backend: Backend, tmp_path: Path
) -> None:
    from shipyard.tracking.journal import JOURNAL_DIR, RunJournal

    good = _run(backend, None)
    root = tmp_path / JOURNAL_DIR
    RunJournal(root, "e" * 32, _dead_here(), store=backend.url).append("m", 1.0, 0, 1)
    RunJournal(root, good, _dead_here(), store=backend.url).append("m", 2.0, 0, 1)
    done = recover(backend, tmp_path)
    assert done.journals == 1 and len(done.problems) == 1
    assert "no run" in done.problems[0]
    assert [m.value for m in backend.get_metric_history(good, "m")] == [2.0]
