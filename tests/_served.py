"""A real `shipyard server` in a thread of the test process (uvicorn on 127.0.0.1), and the
``server`` kind of store: the test's workspace reaches its stores through that server, so a
suite parametrised with it runs the same tests against `RestBackend` (issue 16)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served:
    """``with Served(home, auth=...) as served:`` — the app over ``home`` at ``served.url``."""

    def __init__(self, home: Path, *, auth: bool) -> None:
        import uvicorn

        from shipyard.server import create_app

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = create_app(home, auth=auth)
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Served:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def served_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A server over a fresh SQLite workspace of its own; this process's workspaces use it
    (``SHIPYARD_SERVER``), auth off, acting as ``alice``. Yields the server's URL."""
    from shipyard.config import init_workspace

    monkeypatch.setenv("SHIPYARD_USER", "alice")
    for name in ("SHIPYARD_SERVER", "SHIPYARD_TOKEN", "SHIPYARD_STORE_URL"):
        monkeypatch.delenv(name, raising=False)
    server_home = init_workspace(tmp_path / "server")
    monkeypatch.setenv("SHIPYARD_STORE_URL", f"sqlite:///{server_home / 'shipyard.db'}")
    with Served(server_home, auth=False) as served:
        monkeypatch.delenv("SHIPYARD_STORE_URL")
        monkeypatch.setenv("SHIPYARD_SERVER", served.url)
        yield served.url


@pytest.fixture(name="store_url", params=["sqlite", "postgresql", "server"])
def store_url_or_server(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """``store_url`` for the suites that also run through a server: a package's conftest
    imports it (``from tests._served import store_url_or_server``) to add the ``server`` kind."""
    from tests.conftest import make_store

    yield from make_store(request.param, tmp_path, monkeypatch)


def local_stores_only(store_url: str, why: str) -> None:
    """Skip a test of the ``server`` kind that is about the workspace's own disk (``why``)."""
    if store_url.startswith(("http://", "https://")):
        pytest.skip(f"through a server: {why}")
