"""Push and pull by pack: a local folder, ``memory://`` and an S3 API on 127.0.0.1.

The S3 endpoint is moto's server mode (a real HTTP server speaking the S3 protocol, reached
through s3fs and botocore as a bucket would be): a stand-in for the cloud, which cannot be
reached from here.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipyard.artifacts import ArtifactStore, hash_bytes
from shipyard.artifacts import packs as packs_module
from shipyard.artifacts.gc import collect
from shipyard.artifacts.transfer import transfer
from shipyard.errors import ArtifactCorruptedError, InvalidArgumentError

COUNT = 2000


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    pytest.importorskip("s3fs")
    server_module = pytest.importorskip("moto.server")
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    saved = {k: os.environ.get(k) for k in _S3_ENV}
    os.environ.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",  # noqa: S106 - moto's dummy credentials
        AWS_DEFAULT_REGION="us-east-1",
    )
    try:
        import boto3

        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="shipyard-test")
        yield endpoint
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        server.stop()


_S3_ENV = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")


@pytest.fixture(params=["folder", "memory", "s3"])
def remote(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "folder":
        return str(tmp_path / "remote")
    if request.param == "memory":
        return f"memory://remote-{uuid.uuid4().hex}"
    request.getfixturevalue("s3_endpoint")
    return f"s3://shipyard-test/{uuid.uuid4().hex}"


def _local_with_files(tmp_path: Path, count: int = COUNT) -> tuple[ArtifactStore, str, list[str]]:
    folder = tmp_path / "src"
    blobs = {}
    for i in range(count):
        path = folder / f"part-{i % 10}" / f"{i:05d}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        data = os.urandom(512) + str(i).encode()
        path.write_bytes(data)
        blobs[hash_bytes(data)] = data
    local = ArtifactStore(tmp_path / "local")
    info = local.put_dir(folder)
    return local, info.digest, [*blobs, info.digest]


def _remote_files(url: str) -> list[str]:
    import fsspec.core

    fs, root = fsspec.core.url_to_fs(url)
    fs.invalidate_cache()
    return [str(k) for k in fs.find(root)]


def test_push_sends_packs_and_pull_brings_them_back(
    remote: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    local, manifest, digests = _local_with_files(tmp_path)
    caplog.set_level(logging.DEBUG, logger="s3fs")
    pushed = transfer(local, ArtifactStore(remote), digests)
    assert (pushed.copied, pushed.skipped) == (COUNT + 1, 0)
    # 2,000 files arrive as one pack, its index and the manifest: three files, not 2,001
    names = sorted(key.rsplit("/", 1)[-1] for key in _remote_files(remote))
    assert [n.rsplit(".", 1)[-1] for n in names if n.startswith("pack-")] == ["idx", "pack"]
    assert len(names) == 3
    if remote.startswith("s3://"):
        calls = [r.getMessage() for r in caplog.records if r.getMessage().startswith("CALL:")]
        # listings, the pack, its index (temp + move), the manifest (check, temp + move): ~21
        assert len(calls) < 30, calls
    again = transfer(local, ArtifactStore(remote), digests)
    assert (again.copied, again.skipped) == (0, COUNT + 1)

    fresh = ArtifactStore(tmp_path / "fresh")
    pulled = transfer(ArtifactStore(remote), fresh, digests)
    assert pulled.copied == COUNT + 1
    fresh.get_dir(manifest, tmp_path / "out")
    assert len(list((tmp_path / "out").rglob("*.json"))) == COUNT
    assert sorted(fresh.iter_digests()) == sorted(digests)
    # the pulled pack is installed as a pack, not as 2,000 files
    assert len(list((tmp_path / "fresh" / "packs").glob("pack-*"))) == 2


def test_adding_a_folder_straight_into_a_remote_store_packs_it_in_a_few_requests(
    remote: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`SHIPYARD_ARTIFACTS_URL=s3://…`: small files of a new folder need no existence check
    each (the loose-object folders are listed once)."""
    folder = tmp_path / "src"
    for i in range(COUNT):
        path = folder / f"part-{i % 10}" / f"{i:05d}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(512) + str(i).encode())
    caplog.set_level(logging.DEBUG, logger="s3fs")
    store = ArtifactStore(remote)
    info = store.put_dir(folder)
    assert info.file_count == COUNT
    names = [key.rsplit("/", 1)[-1] for key in _remote_files(remote)]
    assert sum(n.startswith("pack-") for n in names) == 2 and len(names) == 3
    if remote.startswith("s3://"):
        calls = [r.getMessage() for r in caplog.records if r.getMessage().startswith("CALL:")]
        assert len(calls) < 30, calls  # not one HEAD per file
    caplog.clear()
    ArtifactStore(remote).get_dir(info.digest, tmp_path / "out")  # a fresh reader
    got = sorted((tmp_path / "out").rglob("*.json"))
    assert [p.relative_to(tmp_path / "out") for p in got] == [
        p.relative_to(folder) for p in sorted(folder.rglob("*.json"))
    ]
    assert all(
        p.read_bytes() == (folder / p.relative_to(tmp_path / "out")).read_bytes() for p in got
    )
    if remote.startswith("s3://"):
        calls = [r.getMessage() for r in caplog.records if r.getMessage().startswith("CALL:")]
        assert len(calls) < 30, calls  # the pack read in spans, not a range request per file


def test_a_remote_pack_is_read_in_spans_and_rounds_and_still_verified(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Objects far apart in a pack are separate spans; spans beyond the round size are
    separate requests; every object is still checked against its digest."""
    from shipyard.artifacts import _packed

    monkeypatch.setattr(_packed, "_SPAN_GAP", 0)
    monkeypatch.setattr(_packed, "_ROUND_BYTES", 4096)
    folder = tmp_path / "src"
    folder.mkdir()
    for i in range(40):
        (folder / f"{i:02d}.bin").write_bytes(os.urandom(100 + 37 * i))
    remote = f"memory://spans-{uuid.uuid4().hex}"
    info = ArtifactStore(remote).put_dir(folder)
    keep = {f"{i:02d}.bin" for i in range(0, 40, 3)}  # every third file: gaps between them
    for name in {p.name for p in folder.iterdir()} - keep:
        (folder / name).unlink()
    partial = ArtifactStore(remote).put_dir(folder)
    requests: list[int] = []
    reader = ArtifactStore(remote)
    original = reader._backend.read_ranges
    monkeypatch.setattr(
        reader._backend,
        "read_ranges",
        lambda pack, ranges: requests.append(len(ranges)) or original(pack, ranges),
    )
    reader.get_dir(partial.digest, tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(keep)
    assert all((tmp_path / "out" / n).read_bytes() == (folder / n).read_bytes() for n in keep)
    assert 1 < len(requests) < len(keep) and sum(requests) == len(keep)  # a span each, rounds
    assert info.digest != partial.digest

    # a flipped byte in the remote pack is refused, and no file is left half-written
    import fsspec

    fs = fsspec.filesystem("memory")
    [pack] = [k for k in fs.find(remote.removeprefix("memory://")) if k.endswith(".pack")]
    data = bytearray(fs.cat_file(pack))
    data[-5] ^= 0xFF
    fs.pipe_file(pack, bytes(data))
    with pytest.raises(ArtifactCorruptedError):
        ArtifactStore(remote).get_dir(info.digest, tmp_path / "bad")
    assert not any(p.name.endswith(".tmp") for p in (tmp_path / "bad").rglob("*"))


def test_an_interrupted_push_resumes_with_what_is_missing(
    remote: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(packs_module, "PACK_MAX_BYTES", 200 << 10)  # ~390 objects per pack
    import shipyard.artifacts._packed as packed_module

    monkeypatch.setattr(packed_module, "PACK_MAX_BYTES", 200 << 10)
    local, manifest, digests = _local_with_files(tmp_path, 1200)
    assert len(list((tmp_path / "local" / "packs").glob("*.pack"))) >= 3
    target = ArtifactStore(remote)
    installs = 0
    real = type(target._backend).install_pack

    def failing_install(self: object, *args: object, **kwargs: object) -> None:
        nonlocal installs
        installs += 1
        if installs == 2:
            raise ConnectionError("network gone")
        real(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(type(target._backend), "install_pack", failing_install)
    with pytest.raises(ConnectionError):
        transfer(local, target, digests)
    monkeypatch.setattr(type(target._backend), "install_pack", real)
    resumed = transfer(local, ArtifactStore(remote), digests)
    assert 0 < resumed.skipped < len(digests)  # the first pack arrived before the failure
    assert resumed.copied + resumed.skipped == len(digests)
    check = ArtifactStore(tmp_path / "check")
    transfer(ArtifactStore(remote), check, digests)
    check.get_dir(manifest, tmp_path / "out")
    assert len(list((tmp_path / "out").rglob("*.json"))) == 1200


def test_a_few_objects_of_a_big_pack_travel_as_ranges(tmp_path: Path) -> None:
    local, _, digests = _local_with_files(tmp_path, 400)
    remote = ArtifactStore(tmp_path / "remote")
    result = transfer(local, remote, digests[:10])
    assert result.copied == 10
    assert sorted(remote.iter_digests()) == sorted(digests[:10])
    assert all(remote.read_bytes(d) == local.read_bytes(d) for d in digests[:10])


def test_gc_on_a_remote_keeps_what_is_referenced(remote: str, tmp_path: Path) -> None:
    local, manifest, digests = _local_with_files(tmp_path, 300)
    target = ArtifactStore(remote)
    transfer(local, target, digests)
    orphan = target.put_bytes(b"an orphan on the remote").digest
    loose = target.put_bytes(os.urandom(100)).digest  # referenced, loose: packed by gc
    kept = collect(ArtifactStore(remote), [manifest, loose], older_than=0)
    assert (kept.removed, kept.loose_packed, kept.packs_after) == (1, 1, 1)
    after = ArtifactStore(remote)
    assert not after.exists(orphan)
    assert sorted(after.iter_digests()) == sorted([*digests, loose])
    after.get_dir(manifest, tmp_path / "out")
    assert len(list((tmp_path / "out").rglob("*.json"))) == 300
    # nothing changed since: a second collection removes and rewrites nothing
    again = collect(ArtifactStore(remote), [manifest, loose], older_than=0)
    assert (again.removed, again.loose_packed, again.packs_after) == (0, 0, 1)


def test_a_damaged_pack_on_the_remote_is_refused_on_pull(tmp_path: Path) -> None:
    local, _, digests = _local_with_files(tmp_path, 50)
    remote = tmp_path / "remote"
    transfer(local, ArtifactStore(remote), digests)
    # the files' pack, sent whole (the manifest travelled alone, into a pack of its own)
    pack = max((remote / "packs").glob("*.pack"), key=lambda p: p.stat().st_size)
    os.chmod(pack, 0o644)
    raw = bytearray(pack.read_bytes())
    raw[100] ^= 0xFF
    pack.write_bytes(bytes(raw))
    fresh = ArtifactStore(tmp_path / "fresh")
    with pytest.raises(ArtifactCorruptedError, match="does not match its index"):
        transfer(ArtifactStore(remote), fresh, digests)
    assert not (tmp_path / "fresh" / "packs").exists() or not list(
        (tmp_path / "fresh" / "packs").glob("pack-*")
    )


def test_manifest_digests(tmp_path: Path) -> None:
    local, manifest, digests = _local_with_files(tmp_path, 5)
    assert sorted(local.manifest_digests(manifest)) == sorted(digests[:-1])
    not_a_manifest = local.put_bytes(b'{"format": "something else"}').digest
    with pytest.raises(InvalidArgumentError, match="not a Shipyard manifest"):
        local.manifest_digests(not_a_manifest)
    bad_digest = local.put_bytes(
        b'{"files":[{"digest":"../x","path":"a","size":1}],"format":"shipyard.manifest/1"}'
    ).digest
    with pytest.raises(InvalidArgumentError, match="malformed digest"):
        local.manifest_digests(bad_digest)
