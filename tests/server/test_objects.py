"""Artifacts over HTTP: uploads streamed and verified (never whole in memory), downloads with
ranges, run artifacts recorded only for stored objects at safe paths."""

from __future__ import annotations

import os
import random
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
from blake3 import blake3

from shipyard.config import init_workspace
from shipyard.tracking import open_workspace
from tests.server.test_api import Client

pytestmark = pytest.mark.integration

CHUNK = 1 << 20


def _chunks(seed: int, count: int) -> Iterator[bytes]:
    block = random.Random(seed).randbytes(16) * (CHUNK // 16)  # noqa: S311 - test bytes
    for i in range(count):
        yield bytes([seed, i % 256]) + block[2:]


def _digest(seed: int, count: int) -> str:
    hasher = blake3()
    for chunk in _chunks(seed, count):
        hasher.update(chunk)
    return hasher.hexdigest()


@pytest.fixture
def api(home: Path) -> Client:
    from shipyard.server import create_app

    init_workspace(home.parent)
    return Client(create_app(home))


def test_an_upload_is_streamed_verified_and_downloadable_in_ranges(api: Client) -> None:
    payload = b"".join(_chunks(1, 3))
    digest = blake3(payload).hexdigest()
    bad = api("PUT", f"/api/v1/objects/{digest}", content=payload[:-1])
    assert bad.status_code == 400 and "nothing was stored" in bad.json()["message"]
    assert api("HEAD", f"/api/v1/objects/{digest}").status_code == 404
    sent = api("PUT", f"/api/v1/objects/{digest}", content=iter([payload[:1000], payload[1000:]]))
    assert sent.status_code == 201 and sent.json()["stored"] is True
    again = api("PUT", f"/api/v1/objects/{digest}", content=payload)
    assert again.json()["stored"] is False
    head = api("HEAD", f"/api/v1/objects/{digest}")
    assert head.status_code == 200 and int(head.headers["content-length"]) == len(payload)
    whole = api("GET", f"/api/v1/objects/{digest}")
    assert whole.content == payload and whole.headers["x-shipyard-digest"] == digest
    part = api("GET", f"/api/v1/objects/{digest}", headers={"range": "bytes=1000-1999"})
    assert part.status_code == 206 and part.content == payload[1000:2000]
    spool = Path(os.environ["SHIPYARD_HOME"]) / "tmp"
    assert list(spool.iterdir()) == []  # no temporary file left behind


def test_a_large_upload_never_sits_in_memory(api: Client) -> None:
    count = 48  # 48 MiB
    digest = _digest(2, count)
    tracemalloc.start()
    try:
        sent = api("PUT", f"/api/v1/objects/{digest}", content=_chunks(2, count))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sent.status_code == 201, sent.text
    assert peak < 12 * CHUNK, f"peak {peak / CHUNK:.1f} MiB while uploading 48 MiB"


def test_run_artifacts_are_recorded_for_stored_objects_at_safe_paths(api: Client) -> None:
    payload = b"roc curve"
    digest = blake3(payload).hexdigest()
    api("PUT", f"/api/v1/objects/{digest}", content=payload)
    run_id = api("POST", "/api/v1/runs", json={"experiment_name": "a"}).json()["run_id"]
    item = {"path": "plots/roc.txt", "digest": digest, "size": len(payload)}
    made = api("POST", f"/api/v1/runs/{run_id}/artifacts", json={"artifacts": [item]})
    assert made.status_code == 201
    escape = api(
        "POST",
        f"/api/v1/runs/{run_id}/artifacts",
        json={"artifacts": [{**item, "path": "../../etc/passwd"}]},
    )
    assert escape.status_code == 400
    unknown = api(
        "POST",
        f"/api/v1/runs/{run_id}/artifacts",
        json={"artifacts": [{**item, "digest": "f" * 64}]},
    )
    assert unknown.status_code == 404 and "upload it first" in unknown.json()["message"]
    listed = api("GET", f"/api/v1/runs/{run_id}/artifacts").json()
    assert [a["path"] for a in listed] == ["plots/roc.txt"]
    # the Python API reads the same artifact
    stored = open_workspace().backend.list_artifacts(run_id)
    assert [a.path for a in stored] == ["plots/roc.txt"]
    assert api("GET", "/api/v1/objects/not-a-digest").status_code == 422
