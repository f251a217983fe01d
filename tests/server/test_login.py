"""Passwords and logging in: scrypt hashes, HTTP Basic with a password (as the `mlflow` client
sends MLFLOW_TRACKING_USERNAME/PASSWORD), the login and token endpoints with their rules, and
`shipyard login URL` / `logout` against a real server."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from shipyard.config import init_workspace
from shipyard.entities import Role
from shipyard.errors import AuthenticationError, InvalidArgumentError, PermissionDeniedError
from shipyard.registry import Registry
from shipyard.registry.passwords import check_password, hash_password, set_password, verify_password
from shipyard.tracking import open_workspace
from tests._cli import ROOT
from tests.server.test_api import Client
from tests.server.test_mlflow_client import _serve

pytestmark = pytest.mark.integration
STORE_KINDS = ("sqlite",)  # logging in; the REST API on PostgreSQL: test_api.py and tests/tracking

PASSWORD = "correct horse battery"  # noqa: S105 - a test user's


def test_passwords_are_salted_scrypt_hashes_and_never_defaulted() -> None:
    first, second = hash_password(PASSWORD), hash_password(PASSWORD)
    assert first != second and first.startswith("scrypt$32768$8$1$")  # a salt each
    assert PASSWORD not in first
    assert verify_password(PASSWORD, first) and not verify_password(PASSWORD + "!", first)
    assert not verify_password(PASSWORD, "md5$abc") and not verify_password(PASSWORD, "junk")
    with pytest.raises(InvalidArgumentError, match="at least 12"):
        hash_password("short")


def test_users_set_their_own_password_and_only_admins_anyone_elses(home: Path) -> None:
    init_workspace(home.parent)
    backend = open_workspace().backend
    Registry(backend, "alice").bootstrap_admin()
    backend.set_user("bob", Role.MEMBER, actor="alice")
    backend.set_user("carol", Role.MEMBER, actor="alice")
    with pytest.raises(AuthenticationError):
        check_password(backend, "bob", PASSWORD)  # none yet: no default password
    set_password(backend, "bob", "bob", PASSWORD)
    check_password(backend, "bob", PASSWORD)
    with pytest.raises(PermissionDeniedError):
        set_password(backend, "bob", "carol", PASSWORD)
    set_password(backend, "alice", "carol", PASSWORD)
    with pytest.raises(AuthenticationError, match="wrong user name or password"):
        check_password(backend, "nobody", PASSWORD)
    actions = [e.action for e in backend.list_audit(limit=10)]
    assert actions.count("user.password") == 2
    assert PASSWORD not in json.dumps([e.details for e in backend.list_audit(limit=50)])


@pytest.fixture
def world(home: Path) -> Client:
    from shipyard.server import create_app

    init_workspace(home.parent)
    backend = open_workspace().backend
    Registry(backend, "alice").bootstrap_admin()
    backend.set_user("bob", Role.MEMBER, actor="alice")
    set_password(backend, "alice", "bob", PASSWORD)
    return Client(create_app(home, auth=True))


def _basic(user: str, password: str) -> dict[str, str]:
    return {"authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_basic_with_a_password_logs_in_and_wrong_guesses_are_limited(world: Client) -> None:
    who = world("GET", "/api/v1/whoami", headers=_basic("bob", PASSWORD))
    assert who.json() == {"user": "bob", "role": "member", "token_id": None, "auth": True}
    again = world("GET", "/api/v1/whoami", headers=_basic("bob", PASSWORD))  # remembered
    assert again.status_code == 200
    wrong = world("GET", "/api/v1/whoami", headers=_basic("bob", "not the password!"))
    assert wrong.status_code == 401 and "not the password" not in wrong.text
    for _ in range(9):
        world("GET", "/api/v1/whoami", headers=_basic("bob", "guess guess guess"))
    limited = world("GET", "/api/v1/whoami", headers=_basic("bob", PASSWORD))
    assert limited.status_code == 429 and "Retry-After" in limited.headers
    denied = open_workspace().backend.list_audit(limit=50)
    assert sum(e.action == "auth.denied" for e in denied) >= 10


def test_a_changed_password_takes_effect_at_once(world: Client) -> None:
    assert world("GET", "/api/v1/whoami", headers=_basic("bob", PASSWORD)).status_code == 200
    changed = world(
        "PUT",
        "/api/v1/users/bob/password",
        json={"password": "a brand new passphrase"},
        headers=_basic("bob", PASSWORD),
    )
    assert changed.status_code == 204
    assert world("GET", "/api/v1/whoami", headers=_basic("bob", PASSWORD)).status_code == 401
    fresh = world("GET", "/api/v1/whoami", headers=_basic("bob", "a brand new passphrase"))
    assert fresh.status_code == 200


def test_login_issues_a_token_and_tokens_follow_the_same_rules(world: Client) -> None:
    issued = world("POST", "/api/v1/login", json={}, headers=_basic("bob", PASSWORD))
    assert issued.status_code == 201
    token = issued.json()["token"]
    bearer = {"authorization": f"Bearer {token}"}
    assert (
        world("GET", "/api/v1/whoami", headers=bearer).json()["token_id"]
        == issued.json()["token_id"]
    )
    mine = world("GET", "/api/v1/tokens", headers=bearer).json()
    assert [t["token_id"] for t in mine] == [issued.json()["token_id"]]
    assert all("token" not in t for t in mine)  # never the secret again
    others = world("GET", "/api/v1/tokens", params={"all": "true"}, headers=bearer)
    assert others.status_code == 403
    for_alice = world("POST", "/api/v1/tokens", json={"user": "alice"}, headers=bearer)
    assert for_alice.status_code == 403
    gone = world("DELETE", f"/api/v1/tokens/{issued.json()['token_id']}", headers=bearer)
    assert gone.status_code == 200 and gone.json()["revoked_at"] is not None
    assert world("GET", "/api/v1/whoami", headers=bearer).status_code == 401


def _shipyard(
    cwd: Path, *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in (env or os.environ).items() if not k.startswith("SHIPYARD_")}
    return subprocess.run(
        [sys.executable, "-c", "from shipyard.cli import main; main()", *args],
        cwd=cwd,
        env={**environ, "PYTHONPATH": str(ROOT / "src"), "SHIPYARD_USER": "bob"},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_shipyard_login_keeps_a_private_token_for_that_server_only(
    home: Path, tmp_path: Path
) -> None:
    init_workspace(home.parent)
    backend = open_workspace().backend
    Registry(backend, "alice").bootstrap_admin()
    backend.set_user("bob", Role.MEMBER, actor="alice")
    set_password(backend, "alice", "bob", PASSWORD)
    server, url = _serve(home, "--auth")
    laptop = tmp_path / "laptop"
    laptop.mkdir()
    try:
        refused = _shipyard(laptop, "login", url, "--password-stdin", stdin="wrong password!!\n")
        assert refused.returncode == 3, refused.stderr
        assert refused.stderr.startswith("error:") and "refused the login" in refused.stderr
        done = _shipyard(laptop, "login", url, "--password-stdin", stdin=PASSWORD + "\n")
        assert done.returncode == 0, done.stderr
        assert "as bob (member)" in done.stderr
        credentials = laptop / ".shipyard" / "credentials"
        assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
        saved = json.loads(credentials.read_text())
        assert saved["server"] == url and saved["token"].startswith("shp_")
        assert PASSWORD not in credentials.read_text()
        # commands in this workspace now use the server, as bob — `init` too (a member)
        again = _shipyard(laptop, "init")
        assert again.returncode == 0, again.stderr
        assert "is the admin" not in again.stdout
        backend.create_experiment("on-the-server")
        listed = _shipyard(laptop, "experiments", "ls", "--json")
        assert listed.returncode == 0, listed.stderr
        assert "on-the-server" in {e["name"] for e in json.loads(listed.stdout)}
        # tokens and passwords are managed through the server, by the same rules
        made = _shipyard(laptop, "token", "create", "--name", "ci", "--json")
        assert made.returncode == 0, made.stderr
        assert json.loads(made.stdout)["user"] == "bob"
        mine = json.loads(_shipyard(laptop, "token", "ls", "--json").stdout)
        assert {t["name"] for t in mine} >= {"ci"} and all(t["user"] == "bob" for t in mine)
        others = _shipyard(laptop, "token", "ls", "--all")
        assert others.returncode != 0 and "admin" in others.stderr
        short = _shipyard(laptop, "users", "passwd", "--stdin", stdin="short\n")
        assert short.returncode != 0 and "at least 12" in short.stderr
        changed = _shipyard(laptop, "users", "passwd", "--stdin", stdin="another long passphrase\n")
        assert changed.returncode == 0, changed.stderr
        check_password(backend, "bob", "another long passphrase")
        # the token is only ever sent to the server that issued it
        from shipyard.config import load_settings

        here = laptop / ".shipyard"
        assert load_settings(here, env={}).token == saved["token"]
        elsewhere = load_settings(here, env={"SHIPYARD_SERVER": "http://elsewhere:5000"})
        assert elsewhere.store_url == "http://elsewhere:5000" and elsewhere.token == ""
        out = _shipyard(laptop, "logout")
        assert out.returncode == 0 and not credentials.exists()
        token = saved["token"]
        revoked = httpx.get(f"{url}/api/v1/whoami", headers={"authorization": f"Bearer {token}"})
        assert revoked.status_code == 401
    finally:
        server.terminate()
        server.communicate(timeout=20)
