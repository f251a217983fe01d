"""The admin pages: the audit log (filtered, paged, its chain verified on request), users and
their roles (changed through the registry, audited, never leaving no admin), and API tokens
(one's own, everyone's for an admin; revoked through ``revoke_token``; secrets never shown)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from shipyard.entities import Role
from tests.ui.conftest import Live, csrf_of, logged_in

pytestmark = pytest.mark.integration
STORE_KINDS = ("sqlite",)  # pages; the queries behind them run on PostgreSQL in tests/store


def backend_of(users: Path) -> Any:
    from shipyard.tracking import open_workspace

    return open_workspace(users).backend


def seqs(html: str) -> list[int]:
    """The entry numbers of an audit page, in the order shown."""
    return [int(n) for n in re.findall(r'<tr>\s*<td class="n">(\d+)</td>', html)]


def token_ids(html: str) -> list[str]:
    """The ids of the tokens a tokens page lists."""
    return re.findall(r"<td><code>([0-9a-f]{12})</code>", html)


def test_the_audit_log_is_newest_first_filtered_paged_and_verified(
    users: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlalchemy as sa

    from shipyard.server.ui import admin

    backend = backend_of(users)
    alice = logged_in(users, "alice")
    entries = backend.list_audit(limit=1000)
    page = alice.get("/audit")
    assert page.status_code == 200
    shown = seqs(page.text)
    assert shown == sorted(shown, reverse=True) and shown[0] == entries[0].seq
    assert "user.set" in page.text and "The chain is" not in page.text  # only on request

    mia = alice.get("/audit?target=mia").text
    expected = [e.seq for e in entries if e.target.startswith("mia")]
    assert seqs(mia) == expected and len(expected) >= 2  # her role, her password
    assert '<code>{"from": null, "to": "member"}</code>' in mia

    verified = alice.get("/audit?verify=true")
    assert "The chain is intact" in verified.text and "broken" not in verified.text

    monkeypatch.setattr(admin, "AUDIT_PER_PAGE", 3)
    first = alice.get("/audit").text
    assert seqs(first) == [e.seq for e in entries[:3]]
    older = re.search(r'<a rel="next" href="([^"]+)"', first)
    assert older and f"before={entries[2].seq}" in older.group(1)
    second = alice.get(older.group(1).replace("&amp;", "&")).text
    assert seqs(second) == [e.seq for e in entries[3:6]]

    with backend.engine.begin() as conn:  # someone edits the database behind our back
        conn.execute(sa.text("UPDATE audit_log SET actor = 'eve' WHERE seq = 2"))
    broken = alice.get("/audit?verify=true").text
    assert "The chain is broken" in broken and "entry 2" in broken and "was edited" in broken


def test_only_an_admin_changes_roles_through_the_registry_and_it_is_audited(
    users: Path,
) -> None:
    backend = backend_of(users)
    mia = logged_in(users, "mia")
    for path in ("/audit", "/users", "/audit?verify=true"):
        answer = mia.get(path)
        assert answer.status_code == 403, path
        assert "this page needs the admin role" in answer.text
    assert 'href="/audit"' not in mia.get("/tokens").text
    refused = mia.post(
        "/users", {"user": "mia", "role": "admin", "csrf": csrf_of(mia.get("/tokens").text)}
    )
    assert refused.status_code == 403 and backend.get_user("mia").role is Role.MEMBER

    alice = logged_in(users, "alice")
    assert 'href="/audit"' in alice.get("/tokens").text
    page = alice.get("/users")
    assert page.status_code == 200
    listed = re.findall(r"<tr>\s*<td>(\w+)", page.text)
    assert listed == ["ada", "alice", "mia", "otto", "vic"]
    assert "the last admin" in page.text  # alice's row has no form
    token = csrf_of(page.text)

    done = alice.post("/users", {"user": "mia", "role": "approver", "csrf": token})
    assert done.status_code == 303 and done.headers["location"] == "/users?changed=mia"
    assert "mia is now an approver" in alice.get(done.headers["location"]).text
    assert backend.get_user("mia").role is Role.APPROVER
    entry = backend.list_audit(limit=1, target="mia")[0]
    assert (entry.actor, entry.action) == ("alice", "user.set")
    assert entry.details == {"from": "member", "to": "approver"}

    for forged in (
        {"user": "mia", "role": "admin"},
        {"user": "mia", "role": "admin", "csrf": "0" * 64},
    ):
        assert alice.post("/users", forged).status_code == 403
    other_site = alice.post(
        "/users",
        {"user": "mia", "role": "admin", "csrf": token},
        headers={"origin": "https://evil.example"},
    )
    assert other_site.status_code == 403
    assert backend.get_user("mia").role is Role.APPROVER

    bad = alice.post("/users", {"user": "mia", "role": "emperor", "csrf": token})
    assert bad.status_code == 400 and "unknown role" in bad.text

    last = alice.post("/users", {"user": "alice", "role": "member", "csrf": token})
    assert last.status_code == 409 and "the last admin" in last.text
    assert backend.get_user("alice").role is Role.ADMIN

    added = alice.post("/users", {"user": "zoe", "role": "viewer", "csrf": token})
    assert added.status_code == 303 and backend.get_user("zoe").role is Role.VIEWER
    assert alice.post("/users", {"user": "otto", "role": "admin", "csrf": token}).status_code == 303
    stepped_down = alice.post("/users", {"user": "alice", "role": "member", "csrf": token})
    assert stepped_down.status_code == 303 and stepped_down.headers["location"] == "/"
    assert backend.get_user("alice").role is Role.MEMBER
    assert alice.get("/users").status_code == 403


def test_tokens_are_listed_and_revoked_by_their_owner_or_an_admin(users: Path) -> None:
    from shipyard.registry.tokens import issue_token, verify_token

    backend = backend_of(users)
    mia = logged_in(users, "mia")
    ci, ci_secret = issue_token(backend, "mia", name="ci")
    laptop, laptop_secret = issue_token(backend, "alice", name="laptop")

    page = mia.get("/tokens")
    assert page.status_code == 200
    assert len(token_ids(page.text)) == 2 and ci.token_id in token_ids(page.text)
    assert "web session" in page.text and "this session" in page.text
    for secret in (ci_secret, laptop_secret):
        # `shp_<12 hex id>_<43-character secret>`: the secret may itself hold `_`
        assert secret not in page.text and secret.split("_", 2)[2] not in page.text
    token = csrf_of(page.text)

    assert mia.post(f"/tokens/{laptop.token_id}/revoke", {"csrf": token}).status_code == 403
    assert verify_token(backend, laptop_secret).token_id == laptop.token_id
    assert mia.post(f"/tokens/{ci.token_id}/revoke", {"csrf": "f" * 64}).status_code == 403
    assert mia.post(f"/tokens/{ci.token_id}/revoke", {}).status_code == 403
    assert backend.get_api_token(ci.token_id)[0].revoked_at is None

    done = mia.post(f"/tokens/{ci.token_id}/revoke", {"csrf": token})
    assert done.status_code == 303 and done.headers["location"] == f"/tokens?revoked={ci.token_id}"
    assert backend.get_api_token(ci.token_id)[0].revoked_at is not None
    entry = backend.list_audit(limit=1, target=f"token:{ci.token_id}")[0]
    assert (entry.actor, entry.action) == ("mia", "token.revoke")
    after = mia.get(done.headers["location"]).text
    assert "is revoked" in after
    assert ci.token_id not in token_ids(after)  # active tokens only
    assert ci.token_id in token_ids(mia.get("/tokens?ended=true").text)

    alice = logged_in(users, "alice")
    everyone = alice.get("/tokens").text
    assert laptop.token_id in token_ids(everyone) and ci.token_id not in token_ids(everyone)
    assert everyone.count("<td>web session</td>") == 2  # mia's and alice's sessions
    sessions = [t for t in backend.list_api_tokens("mia") if t.name == "web session"]
    (session,) = [t for t in sessions if t.revoked_at is None]
    assert token_ids(alice.get("/tokens?user=mia").text) == [session.token_id]
    revoked = alice.post(f"/tokens/{session.token_id}/revoke", {"csrf": csrf_of(everyone)})
    assert revoked.status_code == 303
    assert mia.get("/tokens").status_code == 303  # her session ended: to the login page

    own = [t for t in backend.list_api_tokens("alice") if t.name == "web session"]
    (mine,) = [t for t in own if t.revoked_at is None]
    ended = alice.post(f"/tokens/{mine.token_id}/revoke", {"csrf": csrf_of(everyone)})
    assert ended.status_code == 303 and ended.headers["location"] == "/login"
    assert alice.get("/audit").status_code == 303


def test_admin_pages_in_a_browser(sqlite_users: Path, request: Any) -> None:
    from shipyard.registry.tokens import issue_token

    backend = backend_of(sqlite_users)
    issue_token(backend, "mia", name="ci")
    live: Live = request.getfixturevalue("live")
    live.login("alice")

    live.goto("/audit")
    assert live.page.locator("table tbody tr").count() >= 5
    live.page.get_by_role("button", name="Verify the chain").click()
    live.page.wait_for_load_state("networkidle")
    assert "The chain is intact" in live.page.locator("p.notice").inner_text()
    assert live.axe() == []
    live.shot("audit")

    live.goto("/users")
    live.page.get_by_label("New role of vic").select_option("member")
    live.page.get_by_role("button", name="Set the role of vic").click()
    live.page.wait_for_load_state("networkidle")
    assert "vic is now a member" in live.page.locator("p.notice").inner_text()
    assert backend.get_user("vic").role is Role.MEMBER
    assert live.axe() == []
    live.shot("users")

    live.goto("/tokens")
    rows = live.page.locator("table tbody tr")
    assert rows.count() == 2  # mia's token and this session
    live.page.get_by_role("button", name=re.compile("Revoke token .* of mia")).click()
    live.page.wait_for_load_state("networkidle")
    assert "is revoked" in live.page.locator("p.notice").inner_text()
    assert live.page.locator("table tbody tr").count() == 1
    assert live.axe() == []
    live.shot("tokens")
