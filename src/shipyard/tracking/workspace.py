"""An open workspace: settings, the metadata store and the artifact store, opened lazily."""

from __future__ import annotations

import os
import threading
from functools import cached_property
from pathlib import Path

from shipyard.artifacts import ArtifactStore
from shipyard.config import Settings, load_settings
from shipyard.store import Backend, open_backend
from shipyard.tracking.buffer import MetricBuffer

__all__ = ["Workspace", "open_workspace"]


class Workspace:
    """Where tracking data lives. Opening is cheap; the stores open on first use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Workspace(home={str(self.settings.home)!r})"

    @cached_property
    def backend(self) -> Backend:
        with self._lock:
            return open_backend(self.settings.store_url)

    @cached_property
    def artifacts(self) -> ArtifactStore:
        return ArtifactStore(self.settings.artifacts_url)

    @cached_property
    def metric_buffer(self) -> MetricBuffer:
        return MetricBuffer(
            lambda batch: self.backend.log_metrics(batch),
            max_size=self.settings.metric_buffer_size,
            interval=self.settings.metric_flush_interval,
        )

    def flush(self) -> None:
        """Write buffered metrics now."""
        if "metric_buffer" in self.__dict__:
            self.metric_buffer.flush()

    def close(self) -> None:
        """Flush, stop the flusher and release database connections."""
        if "metric_buffer" in self.__dict__:
            self.metric_buffer.close()
        if "backend" in self.__dict__:
            self.backend.close()


_open: dict[tuple[Path, str, str, str], Workspace] = {}
_open_lock = threading.Lock()


def open_workspace(
    home: str | os.PathLike[str] | None = None, *, create: bool = False
) -> Workspace:
    """The workspace for ``home`` (see :func:`shipyard.config.load_settings`), reused while
    its settings stay the same, so that every run of a process shares one metric buffer."""
    settings = load_settings(home, create=create)
    key = (settings.home, settings.store_url, settings.artifacts_url, settings.user)
    with _open_lock:
        workspace = _open.get(key)
        if workspace is None:
            workspace = _open[key] = Workspace(settings)
        return workspace


def open_workspaces() -> list[Workspace]:
    with _open_lock:
        return list(_open.values())
