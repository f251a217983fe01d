"""Is the process that owns a run still alive? Its identity, the check, and the heartbeat.

A run started by ``start_run`` records its owner: the host, the pid and the process's start
time (so that a later process reusing the pid is not mistaken for it). On the same host the
answer comes from the operating system (a zombie counts as dead). From another host only the
heartbeat can tell: the owner writes it every few seconds, and a run whose heartbeat is older
than the timeout is taken for dead. A process that was only suspended revives its run at its
next heartbeat.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Sequence

from shipyard.entities import RunOwner

__all__ = ["Heartbeat", "owner_is_dead", "process_start", "this_process"]

log = logging.getLogger(__name__)

_identity: tuple[int, RunOwner] | None = None
_machine_id: str | None = None
_live_heartbeats: weakref.WeakSet[Heartbeat] = weakref.WeakSet()


def _machine() -> str:
    """Which kernel and pid namespace pids are counted in: a boot id and a namespace, so
    that two machines (or containers) with one host name are told apart; "" if unknown."""
    global _machine_id
    if _machine_id is None:
        try:
            with open("/proc/sys/kernel/random/boot_id") as boot:
                boot_id = boot.read().strip()
            namespace = os.readlink("/proc/self/ns/pid")
            _machine_id = f"{boot_id}:{namespace}"
        except OSError:
            _machine_id = ""
    return _machine_id


def process_start(pid: int) -> str | None:
    """A token naming one process's life as seen from here (Linux: this machine's boot id
    and pid namespace, then the start time in clock ticks since boot), "" where the system
    cannot say, or None when no such live process exists."""
    if pid <= 0:
        return None
    if not os.path.exists("/proc/self/stat"):  # not Linux: existence is all we can learn
        return _signal_check(pid)
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            text = stat.read()
    except OSError:  # gone, or hidden from us (hidepid): ask the kernel directly
        return _signal_check(pid)
    # The command name (field 2) is in parentheses and may hold spaces or parentheses.
    fields = text[text.rfind(b")") + 2 :].split()
    if not fields or fields[0] in (b"Z", b"X"):  # zombie or dead: it logs nothing more
        return None
    return f"{_machine()}/{fields[19].decode()}" if len(fields) > 19 else ""


def _signal_check(pid: int) -> str | None:
    if os.name != "posix":
        return ""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # alive, owned by someone else
        return ""
    return ""


def this_process() -> RunOwner:
    """This process as a run owner (recomputed after a fork)."""
    global _identity
    pid = os.getpid()
    if _identity is None or _identity[0] != pid:
        import socket  # lazily: it pulls in selectors, which a bare import does not need

        start = process_start(pid)
        _identity = (pid, RunOwner(socket.gethostname(), pid, start or ""))
    return _identity[1]


def _same_machine(owner: RunOwner) -> bool:
    me = this_process()
    if owner.host != me.host or os.name != "posix":
        return False  # signal 0 means CTRL_C_EVENT on Windows: there, only heartbeats tell
    mine, theirs = me.process_start.rpartition("/")[0], owner.process_start.rpartition("/")[0]
    return mine == theirs


def owner_is_dead(owner: RunOwner, heartbeat: int, now: int, timeout_s: float) -> bool:
    """Whether the owner of a run can no longer log to it.

    On this machine (same host name, boot and pid namespace), by asking the operating
    system; elsewhere, when its last heartbeat is more than ``timeout_s`` old.
    """
    if _same_machine(owner):
        found = process_start(owner.pid)
        if found is None:
            return True
        return bool(owner.process_start and found and found != owner.process_start)
    return now - heartbeat > timeout_s * 1000


class Heartbeat:
    """A daemon thread that tells the store, every ``interval`` seconds, that this process
    is alive for the runs it owns.

    Args:
        beat: writes one heartbeat for ``(run_ids, now_ms)``; raises on failure.
        interval: seconds between beats.
    """

    def __init__(self, beat: Callable[[Sequence[str], int], object], interval: float) -> None:
        self._beat = beat
        self._interval = interval
        self._runs: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        _live_heartbeats.add(self)

    def watch(self, run_id: str) -> None:
        with self._lock:
            self._runs.add(run_id)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="shipyard-heartbeat", daemon=True
                )
                self._thread.start()

    def unwatch(self, run_id: str) -> None:
        with self._lock:
            self._runs.discard(run_id)

    def watched(self) -> list[str]:
        with self._lock:
            return sorted(self._runs)

    def beat(self) -> None:
        """Write one heartbeat now (for the runs watched at this moment)."""
        runs = self.watched()
        if runs:
            self._beat(runs, time.time_ns() // 1_000_000)

    def close(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    def _run(self) -> None:
        warned = False
        while not self._stop.wait(self._interval):
            try:
                self.beat()
                warned = False
            except Exception as exc:  # the next beat retries; a missed one is not fatal
                if not warned:
                    log.warning("could not record a heartbeat (%s); will retry", exc)
                    warned = True

    def _after_fork(self) -> None:
        # A forked child owns none of its parent's runs and has no thread.
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._runs = set()
        self._thread = None


def _reset_after_fork() -> None:
    for heartbeat in list(_live_heartbeats):
        heartbeat._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)
