"""Where a workspace lives and how it is configured.

A workspace is a ``.shipyard/`` folder, found the way git finds its repository: walk up from the
working directory. ``SHIPYARD_HOME`` (or ``--home`` on the CLI) points at one directly.
Inside it, ``config.toml`` may set the store URLs; environment variables override the file:

``SHIPYARD_STORE_URL``
    SQLAlchemy URL of the metadata store (default: ``sqlite:///<home>/shipyard.db``).
``SHIPYARD_ARTIFACTS_URL``
    folder or fsspec URL of the artifact store (default: ``<home>/artifacts``).
``SHIPYARD_USER``
    who is acting (default: the operating-system user).
``SHIPYARD_METRIC_FLUSH_INTERVAL`` / ``SHIPYARD_METRIC_BUFFER_SIZE``
    seconds between background metric flushes (default 2) and buffered metrics that force a
    flush (default 10000).
``SHIPYARD_HEARTBEAT_INTERVAL`` / ``SHIPYARD_HEARTBEAT_TIMEOUT``
    seconds between a running process's heartbeats (default 5), and the silence after which a
    run owned by a process on *another* host counts as crashed (default 60).
``SHIPYARD_SYNC``
    ``1`` to ``fsync`` each metric batch (journal segment and SQLite commit), so that a power
    loss cannot undo a batch; off by default (a ``kill -9`` loses nothing either way).
``SHIPYARD_SERVER`` / ``SHIPYARD_TOKEN``
    a platform server to use instead of local stores, and the API token for it. ``shipyard
    login URL`` keeps both in ``.shipyard/credentials`` (mode 0600) instead; the token there
    is only ever sent to the server it was issued by.
"""

from __future__ import annotations

import getpass
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from shipyard.errors import InvalidArgumentError, WorkspaceNotFoundError

__all__ = [
    "CONFIG_FILE",
    "CREDENTIALS_FILE",
    "WORKSPACE_DIR",
    "Settings",
    "find_workspace",
    "init_workspace",
    "load_settings",
    "redact_url",
]

WORKSPACE_DIR = ".shipyard"
CONFIG_FILE = "config.toml"
CREDENTIALS_FILE = "credentials"
"""JSON ``{"server": URL, "token": TOKEN}`` written by ``shipyard login`` (mode 0600)."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything Shipyard needs to know to open a workspace."""

    home: Path
    store_url: str
    artifacts_url: str
    user: str
    metric_flush_interval: float = 2.0
    """Seconds between background flushes of buffered metrics."""
    metric_buffer_size: int = 10_000
    """Buffered metrics that trigger an immediate flush."""
    heartbeat_interval: float = 5.0
    """Seconds between the heartbeats of a process that owns runs."""
    heartbeat_timeout: float = 60.0
    """Seconds without a heartbeat after which a run owned on another host counts as
    crashed (on this host the operating system says whether the owner is alive)."""
    sync: bool = False
    """``fsync`` each metric batch so that it survives a power loss, not only a crash."""
    token: str = field(default="", repr=False)
    """The API token for a server with ``--auth`` (``SHIPYARD_TOKEN``); never shown."""


def find_workspace(start: Path | None = None) -> Path | None:
    """Return the nearest ``.shipyard/`` folder at or above ``start`` (default: cwd)."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / WORKSPACE_DIR
        if candidate.is_dir():
            return candidate
    return None


def _as_home(path: str | os.PathLike[str]) -> Path:
    """Accept the ``.shipyard`` folder itself, or the project folder that holds (or will
    hold) one. A folder with another name counts as a workspace only if it already holds a
    store, so that ``--home myproject`` never scatters store files into a project."""
    p = Path(path).expanduser().resolve()
    if p.name == WORKSPACE_DIR or (p / "shipyard.db").exists() or (p / CONFIG_FILE).exists():
        return p
    return p / WORKSPACE_DIR


def init_workspace(path: str | os.PathLike[str] | None = None) -> Path:
    """Create ``.shipyard/`` in ``path`` (default: cwd) if missing and return it."""
    base = Path(path).expanduser().resolve() if path is not None else Path.cwd().resolve()
    home = base if base.name == WORKSPACE_DIR else base / WORKSPACE_DIR
    home.mkdir(parents=True, exist_ok=True)
    gitignore = home / ".gitignore"
    if not gitignore.exists():
        gitignore.write_text("# Shipyard workspace: stores are not for git\n*\n")
    return home


def _read_credentials(file: Path) -> dict[str, str]:
    import json

    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise InvalidArgumentError(
            f"{file} cannot be read ({exc}): `shipyard logout` removes it, then log in again"
        ) from exc
    if not isinstance(data, dict):
        return {}
    return {k: str(v) for k, v in data.items() if k in ("server", "token", "user")}


def load_settings(
    home: str | os.PathLike[str] | None = None,
    *,
    create: bool = False,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Find the workspace and read its configuration.

    Args:
        home: the workspace to use; otherwise ``SHIPYARD_HOME``, otherwise the nearest
            ``.shipyard/`` at or above the working directory.
        create: make ``./.shipyard`` when none is found instead of raising.
        env: environment to read (default: ``os.environ``).

    Raises:
        WorkspaceNotFoundError: none was found and ``create`` is false.
        InvalidArgumentError: ``config.toml`` cannot be parsed.
    """
    environ = os.environ if env is None else env
    chosen = home if home is not None else environ.get("SHIPYARD_HOME") or None
    if chosen is not None:
        path = _as_home(chosen)
        if not path.is_dir():
            if not create:
                raise WorkspaceNotFoundError(
                    f"no Shipyard workspace at {path}; run `shipyard init {path.parent}`"
                )
            path = init_workspace(path)
    else:
        found = find_workspace()
        if found is None:
            if not create:
                raise WorkspaceNotFoundError(
                    f"no Shipyard workspace (.shipyard/) in {Path.cwd()} or any parent; "
                    "run `shipyard init` or set SHIPYARD_HOME"
                )
            found = init_workspace()
        path = found

    file_config = _read_config(path / CONFIG_FILE)
    store_url = environ.get("SHIPYARD_STORE_URL") or file_config.get("store", {}).get("url")
    artifacts_url = environ.get("SHIPYARD_ARTIFACTS_URL") or file_config.get("artifacts", {}).get(
        "url"
    )
    login = _read_credentials(path / CREDENTIALS_FILE)
    server = (
        environ.get("SHIPYARD_SERVER")
        or file_config.get("server", {}).get("url")
        or login.get("server")
    )
    token = environ.get("SHIPYARD_TOKEN", "")
    if not token and server and login.get("server", "").rstrip("/") == server.rstrip("/"):
        token = login.get("token", "")  # only for the server that issued it
    if server:
        # A team server holds both stores; this folder keeps only what is per machine.
        if not server.startswith(("http://", "https://")):
            raise InvalidArgumentError(
                f"SHIPYARD_SERVER={server!r} is not a URL: write e.g. http://127.0.0.1:5000"
            )
        store_url = server.rstrip("/")
        artifacts_url = f"{store_url}/api/v1/objects"
    settings = Settings(
        home=path,
        store_url=store_url or f"sqlite:///{path / 'shipyard.db'}",
        artifacts_url=artifacts_url or str(path / "artifacts"),
        user=environ.get("SHIPYARD_USER") or _os_user(),
        metric_flush_interval=_number(environ, "SHIPYARD_METRIC_FLUSH_INTERVAL", 2.0),
        metric_buffer_size=int(_number(environ, "SHIPYARD_METRIC_BUFFER_SIZE", 10_000)),
        heartbeat_interval=_number(environ, "SHIPYARD_HEARTBEAT_INTERVAL", 5.0),
        heartbeat_timeout=_number(environ, "SHIPYARD_HEARTBEAT_TIMEOUT", 60.0),
        sync=_flag(environ, "SHIPYARD_SYNC"),
        token=token,
    )
    if settings.heartbeat_timeout < 3 * settings.heartbeat_interval:
        raise InvalidArgumentError(
            f"SHIPYARD_HEARTBEAT_TIMEOUT ({settings.heartbeat_timeout:g} s) must be at least "
            f"3 x SHIPYARD_HEARTBEAT_INTERVAL ({settings.heartbeat_interval:g} s), or live "
            "runs on other hosts would look crashed"
        )
    return settings


def _flag(environ: Mapping[str, str], name: str) -> bool:
    text = environ.get(name, "").strip().lower()
    if text in ("", "0", "false", "no", "off"):
        return False
    if text in ("1", "true", "yes", "on"):
        return True
    raise InvalidArgumentError(f"{name} must be 1 or 0, not {text!r}")


def _number(environ: Mapping[str, str], name: str, default: float) -> float:
    text = environ.get(name)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise InvalidArgumentError(f"{name} must be a number, not {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise InvalidArgumentError(f"{name} must be a positive number, not {text!r}")
    return value


def _read_config(path: Path) -> dict[str, dict[str, str]]:
    if not path.is_file():
        return {}
    import tomllib  # only when there is a file to read (most workspaces have none)

    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidArgumentError(f"cannot read {path}: {exc}") from exc
    return {k: v for k, v in data.items() if isinstance(v, dict)}


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


_USERINFO = re.compile(
    r"^(?P<head>[A-Za-z][\w+.-]*://[^:@/]*):(?P<secret>.*)@(?P<tail>[^@]*)$", re.S
)
_QUERY_SECRET = re.compile(r"(?i)([?&](?:password|passwd|pwd|secret|token)=)[^&]*")


def redact_url(url: str) -> str:
    """Hide the password in a URL so that it can be shown or logged.

    Handles what SQLAlchemy accepts: passwords with unescaped ``/ # ? @``, and a password
    given as a query argument.
    """
    match = _USERINFO.match(url)
    if match is not None:
        url = f"{match['head']}:***@{match['tail']}"
    return _QUERY_SECRET.sub(r"\1***", url)
