"""Fixtures of the web UI's tests: an app with a user of each role (passwords set), a
cookie-keeping client over ASGI, a live server, and a real browser (Debian's chromium driven
by Playwright) with screenshots and an axe-core accessibility check.

Browser tests skip, saying why, where ``/usr/bin/chromium`` or Playwright is missing
(``make test`` installs chromium when it runs as root with apt).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from shipyard.config import init_workspace
from shipyard.entities import Role

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = Path(os.environ.get("SHIPYARD_TEST_OUTPUT", ROOT / "test-output")) / "ui"
AXE = Path(__file__).parent / "vendor" / "axe.min.js"
CHROMIUM = Path("/usr/bin/chromium")
PASSWORD = "correct horse battery staple"  # noqa: S105 - a test user's password
USERS = {
    "alice": Role.ADMIN,  # the workspace's user (SHIPYARD_USER), its first admin
    "mia": Role.MEMBER,
    "ada": Role.APPROVER,
    "otto": Role.APPROVER,
    "vic": Role.VIEWER,
}


class Pages:
    """Pages in-process over ASGI, keeping cookies as a browser does."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.cookies = httpx.Cookies()

    def __call__(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        headers = {"accept": "text/html", **kwargs.pop("headers", {})}

        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://ui", cookies=self.cookies
            ) as client:
                response = await client.request(method, url, headers=headers, **kwargs)
                self.cookies = client.cookies
                return response

        # In a thread of its own: Playwright's sync API keeps an event loop running in this one.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, send()).result()

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self("GET", url, **kwargs)

    def post(self, url: str, data: dict[str, str], **kwargs: Any) -> httpx.Response:
        return self("POST", url, data=data, **kwargs)

    def csrf(self, url: str = "/login") -> str:
        """The CSRF token of the forms on ``url``."""
        return csrf_of(self.get(url).text)

    def login(self, user: str, password: str = PASSWORD) -> httpx.Response:
        token = self.csrf("/login")
        return self.post("/login", {"user": user, "password": password, "csrf": token})


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


def make_users(home: Path) -> None:
    """A workspace at ``home`` with a user of each role, each with :data:`PASSWORD`."""
    from shipyard.registry import Registry
    from shipyard.registry.passwords import set_password
    from shipyard.tracking import open_workspace

    init_workspace(home.parent)
    backend = open_workspace().backend
    Registry(backend, "alice").bootstrap_admin()
    for name, role in USERS.items():
        if name != "alice":
            backend.set_user(name, role, actor="alice")
        set_password(backend, "alice", name, PASSWORD)


@pytest.fixture
def users(home: Path) -> Path:
    """The workspace (on SQLite and PostgreSQL) with a user of each role."""
    make_users(home)
    return home


@pytest.fixture
def pages(users: Path) -> Pages:
    """The UI with authentication on, not logged in."""
    from shipyard.server import create_app

    return Pages(create_app(users, auth=True))


def logged_in(users: Path, name: str) -> Pages:
    from shipyard.server import create_app

    client = Pages(create_app(users, auth=True))
    assert client.login(name).status_code == 303
    return client


# ---------------------------------------------------------------- the real browser


@dataclass
class Live:
    """A live server and a logged-out browser page on it."""

    url: str
    page: Any
    name: str

    def goto(self, path: str) -> Any:
        response = self.page.goto(self.url + path)
        self.page.wait_for_load_state("networkidle")
        return response

    def login(self, user: str, password: str = PASSWORD) -> None:
        self.goto("/login")
        self.page.get_by_label("User name").fill(user)
        self.page.get_by_label("Password").fill(password)
        self.page.get_by_role("button", name="Log in").click()
        self.page.wait_for_load_state("networkidle")

    def logout(self) -> None:
        self.page.get_by_role("button", name="Log out").click()
        self.page.wait_for_load_state("networkidle")

    def shot(self, label: str) -> Path:
        """A full-page screenshot under ``test-output/ui/<test>/``."""
        folder = OUTPUT / self.name
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{label}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def axe(self) -> list[dict[str, Any]]:
        """axe-core's serious and critical violations on the current page."""
        self.page.add_script_tag(path=str(AXE))
        result = self.page.evaluate(
            "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        )
        return [v for v in result if v.get("impact") in ("serious", "critical")]


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """The browser, per test module: Playwright's sync API runs an event loop in the main
    thread while it is open, which later modules' ``asyncio.run`` would trip over."""
    if not CHROMIUM.exists():
        pytest.skip("no /usr/bin/chromium on this machine (`make browser` installs it)")
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield browser
        browser.close()


@pytest.fixture
def sqlite_users(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A workspace on SQLite with a user of each role (browser tests run on one store)."""
    workspace = tmp_path / "project" / ".shipyard"
    workspace.mkdir(parents=True)
    monkeypatch.setenv("SHIPYARD_HOME", str(workspace))
    monkeypatch.setenv("SHIPYARD_STORE_URL", f"sqlite:///{tmp_path / 'store' / 'shipyard.db'}")
    monkeypatch.setenv("SHIPYARD_USER", "alice")
    monkeypatch.delenv("SHIPYARD_ARTIFACTS_URL", raising=False)
    monkeypatch.delenv("SHIPYARD_SERVER", raising=False)
    make_users(workspace)
    return workspace


@pytest.fixture
def live(sqlite_users: Path, chromium: Any, request: pytest.FixtureRequest) -> Iterator[Live]:
    """A real server with authentication on over ``sqlite_users``, and a browser page on it.
    Fill the workspace before the first request (the server opens it once)."""
    from tests._served import Served

    with Served(sqlite_users, auth=True) as served:
        context = chromium.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        try:
            yield Live(served.url, page, re.sub(r"\W+", "-", request.node.name).strip("-"))
        finally:
            context.close()
        assert not errors, f"the page raised in the browser: {errors}"
