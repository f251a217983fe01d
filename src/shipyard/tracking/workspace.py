"""An open workspace: settings, the metadata store and the artifact store, opened lazily."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from functools import cached_property

from shipyard.artifacts import ArtifactStore
from shipyard.config import Settings, load_settings, redact_url
from shipyard.store import Backend, open_backend
from shipyard.tracking.buffer import MetricBuffer
from shipyard.tracking.journal import JOURNAL_DIR
from shipyard.tracking.liveness import Heartbeat, this_process
from shipyard.tracking.recovery import Recovery, recover

__all__ = ["Workspace", "open_workspace"]

log = logging.getLogger(__name__)


class Workspace:
    """Where tracking data lives. Opening is cheap; the stores open on first use.

    When the metadata store opens, the journals of processes that died are replayed and
    their runs marked ``CRASHED`` (see :meth:`recover`).
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._unreported: Recovery | None = Recovery()
        """What the opening of the store recovered and nobody was told yet (None: it failed)."""

    def __repr__(self) -> str:
        return f"Workspace(home={str(self.settings.home)!r})"

    @cached_property
    def backend(self) -> Backend:
        with self._lock:
            backend = open_backend(
                self.settings.store_url,
                sync=self.settings.sync,
                token=self.settings.token or None,
            )
        try:
            self._unreported = self._recover(backend)
        except Exception as exc:  # recovery must never stop a command; the next open retries
            log.warning("could not recover crashed runs yet: %s", exc)
            self._unreported = None
        return backend

    @cached_property
    def artifacts(self) -> ArtifactStore:
        return ArtifactStore(self.settings.artifacts_url, token=self.settings.token or None)

    @cached_property
    def metric_buffer(self) -> MetricBuffer:
        return MetricBuffer(
            lambda segments: self.backend.log_journal(segments),
            journal_root=self.settings.home / JOURNAL_DIR,
            owner=this_process(),
            store=redact_url(self.settings.store_url),
            max_size=self.settings.metric_buffer_size,
            interval=self.settings.metric_flush_interval,
            sync=self.settings.sync,
        )

    @cached_property
    def heartbeat(self) -> Heartbeat:
        """The thread that keeps this process's runs marked alive."""

        def beat(run_ids: Sequence[str], now: int) -> None:
            if self.backend.heartbeat(run_ids, this_process(), now):
                log.warning("runs of this process were shown CRASHED; they are RUNNING again")

        return Heartbeat(beat, self.settings.heartbeat_interval)

    def recover(self) -> Recovery:
        """Replay the metric journals of dead processes and mark their runs ``CRASHED``;
        the report includes what the opening of the store did (opening it now is enough)."""
        opening = "backend" not in self.__dict__
        backend = self.backend
        opened = self._unreported
        fresh = Recovery() if opening and opened is not None else self._recover(backend)
        self._unreported = Recovery()
        return (opened or Recovery()).merge(fresh)

    def _recover(self, backend: Backend) -> Recovery:
        return recover(
            backend, self.settings.home, heartbeat_timeout=self.settings.heartbeat_timeout
        )

    def flush(self) -> None:
        """Write buffered metrics now."""
        if "metric_buffer" in self.__dict__:
            self.metric_buffer.flush()

    def close(self) -> None:
        """Flush, stop the flusher and the heartbeat, release database connections."""
        if "heartbeat" in self.__dict__:
            self.heartbeat.close()
        if "metric_buffer" in self.__dict__:
            self.metric_buffer.close()
        if "backend" in self.__dict__:
            self.backend.close()
        if "artifacts" in self.__dict__:
            self.artifacts.close()


_open: dict[Settings, Workspace] = {}
_open_lock = threading.Lock()


def open_workspace(
    home: str | os.PathLike[str] | None = None, *, create: bool = False
) -> Workspace:
    """The workspace for ``home`` (see :func:`shipyard.config.load_settings`), reused while
    its settings stay the same, so that every run of a process shares one metric buffer."""
    settings = load_settings(home, create=create)
    with _open_lock:
        workspace = _open.get(settings)
        if workspace is None:
            workspace = _open[settings] = Workspace(settings)
        return workspace


def open_workspaces() -> list[Workspace]:
    with _open_lock:
        return list(_open.values())
