"""Optuna's storage in the metadata store: a ``JournalStorage`` whose log is the store's
``tuning_journal``.

Optuna's ``RDBStorage`` cannot share Shipyard's database: its migrations would claim the same
``alembic_version`` table as Shipyard's. A journal needs only an ordered log, which the store
keeps for every study of the workspace; every worker (process or machine) replays it in the
same order, so they agree on trial numbers and states. Importing this module imports Optuna.
"""

from __future__ import annotations

import json
import threading
import weakref
from typing import Any

from optuna.storages import JournalStorage
from optuna.storages.journal import BaseJournalBackend

from shipyard.store import Backend

__all__ = ["StoreJournal", "open_storage"]


class StoreJournal(BaseJournalBackend):
    """Optuna's journal backend on a Shipyard metadata store.

    Example:
        >>> storage = JournalStorage(StoreJournal(open_workspace().backend))  # doctest: +SKIP
        >>> optuna.load_study(study_name="lr-search", storage=storage)  # doctest: +SKIP
    """

    def __init__(self, backend: Backend) -> None:
        self._backend = backend

    def read_logs(self, log_number_from: int) -> list[dict[str, Any]]:
        return [json.loads(log) for log in self._backend.read_tuning_logs(log_number_from)]

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        self._backend.append_tuning_logs([json.dumps(log, separators=(",", ":")) for log in logs])


_storages: weakref.WeakKeyDictionary[Backend, JournalStorage] = weakref.WeakKeyDictionary()
_storages_lock = threading.Lock()


def open_storage(backend: Backend) -> JournalStorage:
    """Optuna's storage of every study kept in ``backend``, one per backend and process: the
    journal is replayed once, then each call reads only the logs added since."""
    with _storages_lock:
        storage = _storages.get(backend)
        if storage is None:
            storage = _storages[backend] = JournalStorage(StoreJournal(backend))
        return storage
