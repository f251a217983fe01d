"""Logging in and out of the web UI, sessions as revocable tokens, CSRF on every form, and
error pages (not tracebacks) for what does not exist."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.ui.conftest import PASSWORD, Pages, csrf_of, logged_in

pytestmark = pytest.mark.integration
STORE_KINDS = ("sqlite",)  # pages; the queries behind them run on PostgreSQL in tests/store


def test_a_page_without_a_session_goes_to_the_login_page_and_back(pages: Pages) -> None:
    first = pages.get("/experiments?deleted=true")
    assert first.status_code == 303
    assert first.headers["location"] == "/login?next=%2Fexperiments%3Fdeleted%3Dtrue"
    token = pages.csrf("/login")
    answer = pages.post(
        "/login",
        {"user": "mia", "password": PASSWORD, "csrf": token, "next": "/experiments?deleted=true"},
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/experiments?deleted=true"
    cookie = answer.headers["set-cookie"]
    assert "shipyard_session=shp_" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    page = pages.get("/experiments")
    assert page.status_code == 200
    assert "mia · member" in page.text


def test_a_wrong_password_is_refused_in_place_and_audited(pages: Pages, users: Path) -> None:
    from shipyard.tracking import open_workspace

    answer = pages.post(
        "/login", {"user": "mia", "password": "not her password", "csrf": pages.csrf()}
    )
    assert answer.status_code == 401
    assert "Wrong user name or password." in answer.text
    assert "shipyard_session" not in answer.headers.get("set-cookie", "")
    denied = open_workspace(users).backend.list_audit(limit=5)
    assert any(e.action == "auth.denied" and e.target == "POST /login" for e in denied)


def test_login_never_redirects_to_another_site(pages: Pages) -> None:
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
        answer = pages.post(
            "/login", {"user": "mia", "password": PASSWORD, "csrf": pages.csrf(), "next": target}
        )
        assert answer.headers["location"] == "/"


def test_a_form_without_the_right_csrf_token_is_refused(pages: Pages) -> None:
    assert pages.post("/login", {"user": "mia", "password": PASSWORD}).status_code == 403
    forged = pages.post("/login", {"user": "mia", "password": PASSWORD, "csrf": "0" * 64})
    assert forged.status_code == 403
    assert "CSRF" in forged.text
    other_site = pages.post(
        "/login",
        {"user": "mia", "password": PASSWORD, "csrf": pages.csrf()},
        headers={"origin": "https://evil.example"},
    )
    assert other_site.status_code == 403


def test_logging_out_revokes_the_session_everywhere(users: Path) -> None:
    browser = logged_in(users, "mia")
    stolen = browser.cookies.get("shipyard_session")
    assert stolen and browser.get("/experiments").status_code == 200
    page = browser.get("/experiments").text
    assert browser.post("/logout", {"csrf": csrf_of(page)}).status_code == 303
    assert browser.get("/experiments").status_code == 303
    from shipyard.server import create_app

    thief = Pages(create_app(users, auth=True))
    thief.cookies.set("shipyard_session", stolen, domain="ui")
    assert thief.get("/experiments").status_code == 303


def test_logging_out_needs_the_csrf_token(users: Path) -> None:
    browser = logged_in(users, "mia")
    assert browser.post("/logout", {"csrf": "f" * 64}).status_code == 403
    assert browser.get("/experiments").status_code == 200


def test_a_page_that_does_not_exist_is_a_404_page_not_a_traceback(users: Path) -> None:
    browser = logged_in(users, "vic")
    for path in ("/runs/ffffffffffffffff", "/runs/not-an-id", "/experiments/999999", "/nowhere"):
        answer = browser.get(path)
        assert answer.status_code == 404, path
        assert answer.headers["content-type"].startswith("text/html")
        assert "Not found" in answer.text and "Traceback" not in answer.text
    api = browser.get("/api/v1/runs/not-an-id", headers={"accept": "application/json"})
    assert api.headers["content-type"] == "application/json"


def test_the_api_still_answers_json_with_a_bearer_token(users: Path) -> None:
    from shipyard.registry.tokens import issue_token
    from shipyard.server import create_app
    from shipyard.tracking import open_workspace

    _, secret = issue_token(open_workspace(users).backend, "vic")
    client = Pages(create_app(users, auth=True))
    page = client.get("/experiments", headers={"authorization": f"Bearer {secret}"})
    assert page.status_code == 200 and "vic · viewer" in page.text
    refused = client.get("/api/v1/experiments")
    assert refused.status_code == 401 and refused.headers["content-type"] == "application/json"


def test_a_solo_server_needs_no_login_but_still_checks_csrf(home: Path) -> None:
    from shipyard.server import create_app
    from tests.ui.conftest import make_users

    make_users(home)
    solo = Pages(create_app(home, auth=False))
    assert solo.get("/experiments").status_code == 200
    assert "alice · admin" in solo.get("/experiments").text
    assert "Log out" not in solo.get("/experiments").text
    assert solo.post("/logout", {"csrf": "0" * 64}).status_code == 403
