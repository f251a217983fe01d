"""Running the model server: one process, or several worker processes on one port.

With ``workers > 1`` each worker is a fresh interpreter that loads the models itself,
binds the port with ``SO_REUSEPORT`` (the kernel spreads connections over the workers evenly,
where one shared socket lets whichever worker wakes first take a burst of them) and has its
own batching and its own prediction-log segments. Their metrics meet in one folder, so
``GET /metrics`` on any worker counts them all. The parent only watches: it restarts a
worker that dies (retrying with a growing pause while it cannot start, the others serving on),
and on SIGTERM or SIGINT stops every worker gracefully (requests in flight answered, prediction
logs written). On Linux a worker gets SIGTERM when the supervisor dies, even by SIGKILL, so no
worker outlives it holding the port.
"""

from __future__ import annotations

import logging
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import TYPE_CHECKING, Any

from shipyard.errors import InvalidArgumentError

if TYPE_CHECKING:
    from shipyard.serving.app import ServeSettings
    from shipyard.serving.asgi import ServingApp

__all__ = ["run_server"]

log = logging.getLogger(__name__)

_STOP_TIMEOUT = 60.0
GRACEFUL_SHUTDOWN_SECONDS = 20.0
"""After SIGTERM, requests still running this long are cancelled, so shutdown always ends."""
_RESTART_PAUSE = (1.0, 60.0)
"""The pause before restarting a dead worker: doubled after each failed start, up to the max."""


def _pause(failures: int) -> float:
    low, high = _RESTART_PAUSE
    return float(min(high, low * 2.0**failures))


def _listen(host: str, port: int, *, shared: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP, and
    # without it small answers wait for the client's delayed ACK (~40 ms each).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if shared:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise InvalidArgumentError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def show_server_log() -> None:
    """Send Shipyard's own log lines (INFO and up) to stderr: which versions a server now
    serves, each rollout decision, a worker restarted. Does nothing where the host program has
    set up logging itself."""
    logger = logging.getLogger("shipyard")
    if logger.handlers or logging.getLogger().handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(
        logging.Formatter(
            "%(asctime)s [%(process)d] %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S"
        )
    )
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def _uvicorn_server(app: ServingApp) -> Any:
    import gc

    import uvicorn

    # The models and libraries loaded so far live as long as the process: keep them out of
    # the collector's way, or every full collection walks them all (a p99 of tens of ms).
    gc.collect()
    gc.freeze()

    config = uvicorn.Config(
        app,
        log_level="warning",
        lifespan="on",
        timeout_keep_alive=30,
        timeout_graceful_shutdown=int(GRACEFUL_SHUTDOWN_SECONDS),
    )
    return uvicorn.Server(config)


def run_server(
    settings: ServeSettings,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    workers: int = 1,
    app: ServingApp | None = None,
) -> None:
    """Serve until SIGTERM or SIGINT, then stop gracefully.

    Args:
        settings: what to serve.
        host, port: where to listen (``port`` 0: any free port, one process only).
        workers: processes answering requests; each loads the models.
        app: an app already built from ``settings`` (used when ``workers`` is 1).

    Raises:
        InvalidArgumentError: the port is taken, or a worker could not start.
    """
    if workers < 1:
        raise InvalidArgumentError("workers must be at least 1")
    if workers == 1:
        from shipyard.serving.app import create_app

        sock = _listen(host, port, shared=False)
        try:
            _uvicorn_server(app or create_app(settings)).run(sockets=[sock])
        finally:
            sock.close()
        return
    if port == 0:
        raise InvalidArgumentError("give a port for several workers (0 picks one per process)")
    # A plain bind fails when anyone listens there, even a group sharing the port: so a second
    # server started by mistake on the same port is refused rather than sharing the traffic.
    _listen(host, port, shared=False).close()
    _Supervisor(settings, host, port, workers).run()


_READY_FD_ENV = "SHIPYARD_SERVE_READY_FD"
_SUPERVISOR_ENV = "SHIPYARD_SERVE_SUPERVISOR"
"""``<pid> <metrics folder to remove, or nothing>``: who started the worker."""
_WORKER = "from shipyard.serving.runner import worker_main; worker_main()"


def worker_main() -> None:
    """One worker process (started by the supervisor): load the models, listen, serve.

    Its settings come in :data:`~shipyard.serving.app.SETTINGS_ENV`, the address in
    ``argv``; it says ``ready`` (or why not) on the pipe named by ``SHIPYARD_SERVE_READY_FD``.
    """
    import sys

    from shipyard.serving.app import create_app_from_env

    host, port = sys.argv[1], int(sys.argv[2])
    show_server_log()
    ready = int(os.environ.pop(_READY_FD_ENV))
    supervisor, _, own_folder = os.environ.pop(_SUPERVISOR_ENV, "").partition(" ")
    _die_with_parent(int(supervisor or 0))
    try:
        app = create_app_from_env()
        sock = _listen(host, port, shared=True)
    except BaseException as exc:
        os.write(ready, f"{os.getpid()} {type(exc).__name__}: {exc}\n".encode()[:500])
        raise
    os.write(ready, f"{os.getpid()} ready\n".encode())
    os.close(ready)

    def orphaned_cleanup() -> None:
        if own_folder and os.getppid() != int(supervisor or 0):
            # the supervisor was killed and cannot remove the metrics folder it made: the
            # workers, all stopping with it, do (removing files others have open is harmless)
            shutil.rmtree(own_folder, ignore_errors=True)

    def stopped_by(signum: int, frame: Any) -> None:
        # uvicorn re-raises the signal that stopped it once it has shut down gracefully
        orphaned_cleanup()
        signal.signal(signum, signal.SIG_DFL)
        signal.raise_signal(signum)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stopped_by)
    try:
        _uvicorn_server(app).run(sockets=[sock])
    finally:
        sock.close()
    orphaned_cleanup()


def _die_with_parent(parent: int) -> None:
    """Have the kernel send this process SIGTERM when its parent dies (Linux); exit at once when
    it already has (it may die before the request is made)."""
    if not parent or not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):  # pragma: no cover - no prctl in this libc
        log.warning("cannot ask to be stopped with the supervisor (no prctl)")
    if os.getppid() != parent:
        sys.exit("the supervisor is gone")


class _Supervisor:
    def __init__(self, settings: ServeSettings, host: str, port: int, workers: int) -> None:
        from dataclasses import replace

        self.own_folder = settings.metrics_dir is None
        folder = settings.metrics_dir or tempfile.mkdtemp(prefix="shipyard-serve-metrics-")
        self.settings = replace(settings, metrics_dir=folder)
        self.host = host
        self.port = port
        self.workers = workers
        self.processes: list[subprocess.Popen[bytes]] = []
        self.stop = threading.Event()
        self.ready_read, self.ready_write = os.pipe()

    def _start_one(self) -> subprocess.Popen[bytes]:
        from shipyard.serving.app import SETTINGS_ENV

        env = dict(os.environ)
        env[SETTINGS_ENV] = self.settings.to_json()
        env[_READY_FD_ENV] = str(self.ready_write)
        owned = self.settings.metrics_dir if self.own_folder else ""
        env[_SUPERVISOR_ENV] = f"{os.getpid()} {owned}"
        return subprocess.Popen(  # noqa: S603 - this interpreter, our own code
            self._command(), env=env, pass_fds=(self.ready_write,)
        )

    def _command(self) -> list[str]:
        return [sys.executable, "-c", _WORKER, self.host, str(self.port)]

    def _wait_ready(self, processes: list[subprocess.Popen[bytes]]) -> None:
        waiting = {process.pid for process in processes}
        lines = b""
        while waiting and not self.stop.is_set():
            readable, _, _ = select.select([self.ready_read], [], [], 0.5)
            if not readable:
                for process in processes:
                    if process.pid in waiting and process.poll() is not None:
                        raise InvalidArgumentError(
                            f"a worker exited while starting (exit code {process.returncode})"
                        )
                continue
            lines += os.read(self.ready_read, 4096)
            *done, lines = lines.split(b"\n")
            for line in done:
                pid, _, status = line.decode(errors="replace").partition(" ")
                if status != "ready":
                    raise InvalidArgumentError(f"a worker could not start: {status}")
                waiting.discard(int(pid))

    def run(self) -> None:
        previous = {
            sig: signal.signal(sig, lambda *_: self.stop.set())
            for sig in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            self.processes = [self._start_one() for _ in range(self.workers)]
            self._wait_ready(self.processes)
            self._watch()
        finally:
            self._stop_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            os.close(self.ready_read)
            os.close(self.ready_write)
            if self.own_folder:
                shutil.rmtree(self.settings.metrics_dir or "", ignore_errors=True)

    def _watch(self) -> None:
        """Restart workers that die, without stopping the others while one cannot start.

        A worker that cannot start (the registry unreachable for a moment, say) is retried
        after a pause that doubles with each failure; the healthy workers serve meanwhile.
        """
        from prometheus_client.multiprocess import mark_process_dead

        slots: list[subprocess.Popen[bytes] | None] = list(self.processes)
        failures = [0] * len(slots)
        retry_at = [0.0] * len(slots)
        starting: set[int] = set()
        lines = b""
        while not self.stop.is_set():
            readable, _, _ = select.select([self.ready_read], [], [], 0.5)
            if readable:
                lines += os.read(self.ready_read, 4096)
                *done, lines = lines.split(b"\n")
                for line in done:
                    pid, _, status = line.decode(errors="replace").partition(" ")
                    if status == "ready":
                        starting.discard(int(pid))
                        for i, process in enumerate(slots):
                            if process is not None and process.pid == int(pid):
                                failures[i] = 0
                    else:
                        log.warning("a worker (pid %s) could not start: %s", pid, status)
            if self.stop.is_set():
                break
            now = time.monotonic()
            for i, process in enumerate(slots):
                if process is not None and process.poll() is not None:
                    mark_process_dead(process.pid, self.settings.metrics_dir)  # type: ignore[no-untyped-call]
                    if process.pid in starting:
                        starting.discard(process.pid)
                        failures[i] += 1
                    pause = _pause(failures[i])
                    log.warning(
                        "worker %s exited (%s)%s; starting another in %g s",
                        process.pid,
                        process.returncode,
                        f" after {failures[i]} failed start(s)" if failures[i] else "",
                        pause,
                    )
                    slots[i] = None
                    retry_at[i] = now + pause
                elif process is None and now >= retry_at[i]:
                    try:
                        process = slots[i] = self._start_one()
                    except OSError:
                        failures[i] += 1
                        retry_at[i] = now + _pause(failures[i])
                        log.exception("could not start a worker")
                        continue
                    starting.add(process.pid)
            self.processes = [p for p in slots if p is not None]

    def _stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + _STOP_TIMEOUT
        for process in self.processes:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("worker %s did not stop in time; killing it", process.pid)
                process.kill()
                process.wait()
