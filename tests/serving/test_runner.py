"""The supervisor of several workers, with stand-in worker processes (no models to load)."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from shipyard.serving import ServeSettings, runner

# A stand-in worker: the 3rd and 4th starts fail (the registry unreachable, say), others serve.
FAKE_WORKER = """
import os, sys, time
fd = int(os.environ["SHIPYARD_SERVE_READY_FD"])
with open(sys.argv[1], "a+") as starts:
    starts.write("x")
    starts.seek(0)
    n = len(starts.read())
ok = n not in (3, 4)
status = "ready" if ok else "ConnectionError: the registry is unreachable"
os.write(fd, f"{os.getpid()} {status}\\n".encode())
if not ok:
    sys.exit(1)
time.sleep(600)
"""


class _FakeSupervisor(runner._Supervisor):
    def __init__(self, starts: Path, metrics: Path) -> None:
        settings = ServeSettings(refs=["m"], metrics_dir=str(metrics))
        super().__init__(settings, "127.0.0.1", 0, workers=2)
        self.starts = starts
        self.watching = threading.Event()  # set once every first worker said it is ready

    def _watch(self) -> None:
        self.watching.set()
        super()._watch()

    def _command(self) -> list[str]:
        return [sys.executable, "-c", FAKE_WORKER, str(self.starts)]


def test_a_worker_that_cannot_restart_is_retried_while_the_others_serve(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner, "_RESTART_PAUSE", (0.1, 1.0))
    supervisor = _FakeSupervisor(tmp_path / "starts", tmp_path)
    seen: dict[str, Any] = {}

    def drive() -> None:
        deadline = time.monotonic() + 60
        # A kill before both first workers are ready would be a failed start, which stops the
        # supervisor by design; this test is about a worker that dies later.
        assert supervisor.watching.wait(60), "the first workers never became ready"
        first, second = supervisor.processes[:2]
        first.kill()  # its next two replacements fail to start
        while (tmp_path / "starts").read_text().count("x") < 5 and time.monotonic() < deadline:
            assert second.poll() is None, "a healthy worker was stopped"
            time.sleep(0.05)
        while time.monotonic() < deadline and not (
            len(supervisor.processes) == 2 and all(p.poll() is None for p in supervisor.processes)
        ):
            time.sleep(0.05)
        seen["alive"] = [p.poll() is None for p in supervisor.processes]
        seen["second"] = second in supervisor.processes and second.poll() is None
        supervisor.stop.set()

    def drive_then_stop() -> None:
        try:
            drive()
        finally:
            supervisor.stop.set()

    driver = threading.Thread(target=drive_then_stop)
    driver.start()
    try:
        supervisor.run()
    finally:
        supervisor.stop.set()
        driver.join()
    assert (tmp_path / "starts").read_text() == "x" * 5  # 2, then 2 failed restarts and one good
    assert seen == {"alive": [True, True], "second": True}


SHOW_LOG = """
import logging, sys
if sys.argv[1] == "configured":
    logging.basicConfig(format="host: %(message)s")
from shipyard.serving.runner import show_server_log
show_server_log()
logging.getLogger("shipyard.deploy.controller").info("deployment d: advance: step 1 passed")
logging.getLogger("elsewhere").info("not ours")
"""


@pytest.mark.parametrize("host", ["plain", "configured"])
def test_the_server_log_shows_shipyards_info_lines_unless_the_host_set_up_logging(
    host: str,
) -> None:
    import subprocess

    done = subprocess.run(
        [sys.executable, "-c", SHOW_LOG, host], capture_output=True, text=True, check=True
    )
    if host == "plain":
        assert "INFO deployment d: advance: step 1 passed" in done.stderr
    else:  # the host program's own setup decides (its root level is WARNING here)
        assert done.stderr == ""
    assert "not ours" not in done.stderr


def test_uvicorn_cancels_requests_that_outlast_a_graceful_shutdown() -> None:
    import gc

    server = runner._uvicorn_server(object())  # type: ignore[arg-type]
    gc.unfreeze()  # _uvicorn_server freezes what a worker has loaded; not this test process
    assert server.config.timeout_graceful_shutdown == runner.GRACEFUL_SHUTDOWN_SECONDS == 20
