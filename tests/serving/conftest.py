"""A registered scikit-learn model on breast_cancer, served in-process."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import shipyard
from shipyard.registry import Registry


@dataclass
class Trained:
    x: Any
    clf: Any
    home: Path


@functools.cache
def _fitted(c: float) -> tuple[Any, Any]:
    """The data and the fitted classifier, once per process: lbfgs needs thousands of
    iterations on these unscaled features (about 1 s, most of a test's set-up)."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression

    frame = load_breast_cancer(as_frame=True).frame
    x, y = frame.drop(columns="target"), frame["target"]
    return x, LogisticRegression(max_iter=5000, C=c).fit(x, y)


def register(home: Path, name: str = "cancer", c: float = 1.0) -> Trained:
    x, clf = _fitted(c)
    with shipyard.start_run(experiment="serving", log_code=False) as run:
        version = run.log_model(clf, name, input_example=x.head())
    workspace = shipyard.open_workspace()
    Registry(workspace.backend, workspace.settings.user).set_alias(version.ref, "champion")
    return Trained(x=x, clf=clf, home=home)


@pytest.fixture
def trained(home: Path) -> Trained:
    return register(home)


class AsgiClient:
    """httpx over ASGI on one event loop kept in a thread (so tests stay synchronous).

    Starlette's TestClient would do, but it warns when used with httpx; this is all we need.
    The server is started and closed as the app's lifespan would.
    """

    def __init__(self, app: Any) -> None:
        import anyio.from_thread
        import httpx

        self.app = app
        self.server = app.state.server
        self._portal_cm = anyio.from_thread.start_blocking_portal()
        self.portal = self._portal_cm.__enter__()
        self.http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://serving.test"
        )
        self.server.start()

    def request(self, method: str, url: str, **kwargs: Any) -> Any:
        return self.portal.call(functools.partial(self.http.request, method, url, **kwargs))

    def get(self, url: str, **kwargs: Any) -> Any:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> Any:
        return self.request("POST", url, **kwargs)

    def post_many(self, url: str, bodies: list[Any]) -> list[Any]:
        """POST each JSON body concurrently; the responses in order."""

        async def send_all() -> list[Any]:
            import asyncio

            return await asyncio.gather(*(self.http.post(url, json=b) for b in bodies))

        return self.portal.call(send_all)  # type: ignore[no-any-return]

    def close(self) -> None:
        try:
            self.portal.call(self.http.aclose)
            self.server.close()
        finally:
            self._portal_cm.__exit__(None, None, None)


def serve(**settings: Any) -> AsgiClient:
    from shipyard.serving import ServeSettings, create_app

    options: dict[str, Any] = {"refresh_seconds": 0, "log_flush_seconds": 0.05}
    options.update(settings)
    return AsgiClient(create_app(ServeSettings(**options)))


@pytest.fixture
def client(trained: Trained) -> Iterator[AsgiClient]:
    test_client = serve(refs=["cancer@champion"])
    try:
        yield test_client
    finally:
        test_client.close()
