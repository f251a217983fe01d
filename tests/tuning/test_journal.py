"""Optuna's journal in the metadata store: logs come back as written, in one order for all."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from shipyard.store.sql import SqlBackend

pytestmark = pytest.mark.integration


def test_logs_round_trip_in_order(backend: SqlBackend) -> None:
    from shipyard.tuning.journal import StoreJournal

    journal = StoreJournal(backend)
    assert list(journal.read_logs(0)) == []
    first = [{"op_code": 0, "worker_id": "w", "study_name": "é ü", "directions": [1]}]
    journal.append_logs(first)
    journal.append_logs([{"op_code": 4, "n": i, "value": 0.1 * i} for i in range(3)])
    journal.append_logs([])
    logs = list(journal.read_logs(0))
    assert logs == first + [{"op_code": 4, "n": i, "value": 0.1 * i} for i in range(3)]
    assert list(journal.read_logs(2)) == logs[2:]
    assert list(journal.read_logs(10)) == []
    stored = backend.read_tuning_logs(0)
    assert stored[0] == json.dumps(first[0], separators=(",", ":"))


def test_concurrent_appends_get_one_gapless_order(backend: SqlBackend) -> None:
    """Threads append batches at once: every log appears once, batches stay contiguous, and
    any reader's prefix is a prefix of the final order."""
    from shipyard.tuning.journal import StoreJournal

    journal = StoreJournal(backend)
    prefixes: list[list[str]] = []

    def writer(w: int) -> None:
        for b in range(10):
            journal.append_logs([{"w": w, "b": b, "i": i} for i in range(3)])
            prefixes.append([json.dumps(x) for x in journal.read_logs(0)])

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(writer, range(4)))
    logs = list(journal.read_logs(0))
    assert len(logs) == 4 * 10 * 3
    keys = [(x["w"], x["b"], x["i"]) for x in logs]
    assert len(set(keys)) == len(keys)
    for start in range(0, len(logs), 3):
        batch = logs[start : start + 3]
        assert [x["i"] for x in batch] == [0, 1, 2]
        assert len({(x["w"], x["b"]) for x in batch}) == 1
    final = [json.dumps(x) for x in logs]
    for prefix in prefixes:
        assert final[: len(prefix)] == prefix
    for w in range(4):  # each writer's batches in the order it wrote them
        assert [x["b"] for x in logs if x["w"] == w and x["i"] == 0] == list(range(10))
