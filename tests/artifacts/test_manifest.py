from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shipyard.artifacts import MANIFEST_FORMAT, Manifest, ManifestEntry, hash_bytes
from shipyard.errors import InvalidArgumentError, UnsafePathError
from tests.strategies import manifests

D1 = hash_bytes(b"one")
D2 = hash_bytes(b"two")


def _raw(files: list[dict[str, object]]) -> bytes:
    document = {"format": MANIFEST_FORMAT, "files": files}
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def test_to_bytes_is_canonical_json() -> None:
    manifest = Manifest((ManifestEntry("b/c.txt", D2, 3), ManifestEntry("a", D1, 0)))
    assert manifest.to_bytes() == (
        b'{"files":[{"digest":"' + D1.encode() + b'","path":"a","size":0},'
        b'{"digest":"' + D2.encode() + b'","path":"b/c.txt","size":3}],'
        b'"format":"shipyard.manifest/1"}'
    )


def test_entries_are_sorted_and_counted() -> None:
    manifest = Manifest((ManifestEntry("z", D1, 5), ManifestEntry("a/b", D2, 7)))
    assert [entry.path for entry in manifest.entries] == ["a/b", "z"]
    assert manifest.file_count == 2
    assert manifest.total_size == 12


def test_empty_manifest_is_allowed() -> None:
    manifest = Manifest()
    assert manifest.file_count == 0
    assert manifest.total_size == 0
    assert Manifest.from_bytes(manifest.to_bytes()) == manifest


@given(manifests)
def test_round_trip(manifest: Manifest) -> None:
    assert Manifest.from_bytes(manifest.to_bytes()) == manifest


@given(manifests, st.data())
def test_entry_order_does_not_change_the_bytes(manifest: Manifest, data: st.DataObject) -> None:
    shuffled = data.draw(st.permutations(manifest.entries))
    assert Manifest(tuple(shuffled)).to_bytes() == manifest.to_bytes()


@pytest.mark.parametrize(
    "path", ["../x", "../../evil", "/etc/passwd", "a/../../b", "C:\\x", "a\\b"]
)
def test_tampered_paths_are_unsafe(path: str) -> None:
    with pytest.raises(UnsafePathError, match="unsafe artifact path"):
        Manifest.from_bytes(_raw([{"digest": D1, "path": path, "size": 1}]))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not json", "invalid JSON"),
        (b"\xff\xfe", "invalid JSON"),
        (b"[]", "format"),
        (b'{"format":"other/1","files":[]}', "format"),
        (b'{"files":[],"format":"shipyard.manifest/1","x":1}', "exactly the keys"),
        (b'{"files":{},"format":"shipyard.manifest/1"}', "exactly the keys"),
        (_raw([{"digest": "abc", "path": "a", "size": 1}]), "malformed digest"),
        (_raw([{"digest": D1.upper(), "path": "a", "size": 1}]), "malformed digest"),
        (_raw([{"digest": D1, "path": "a", "size": -1}]), "invalid size"),
        (_raw([{"digest": D1, "path": "a", "size": 1.5}]), "invalid size"),
        (_raw([{"digest": D1, "path": "a", "size": True}]), "invalid size"),
        (_raw([{"digest": D1, "path": "a", "size": "1"}]), "invalid size"),
        (_raw([{"digest": D1, "path": 1, "size": 1}]), "non-string"),
        (_raw([{"digest": D1, "path": "a"}]), "exactly 'path'"),
        (_raw([{"digest": D1, "path": "a//b", "size": 1}]), "normal form"),
        (_raw([{"digest": D1, "path": "a", "size": 1}] * 2), "twice"),
        (
            _raw(
                [{"digest": D1, "path": "a", "size": 1}, {"digest": D1, "path": "a/b", "size": 1}]
            ),
            "as a file and as the folder",
        ),
        (
            _raw([{"digest": D1, "path": "b", "size": 1}, {"digest": D1, "path": "a", "size": 1}]),
            "canonical",
        ),
        (b" " + _raw([]), "canonical"),
    ],
)
def test_malformed_manifests_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        Manifest.from_bytes(data)


def test_entries_validate_on_construction() -> None:
    with pytest.raises(UnsafePathError):
        ManifestEntry("../x", D1, 1)
    with pytest.raises(InvalidArgumentError):
        ManifestEntry("./x", D1, 1)
    with pytest.raises(InvalidArgumentError):
        Manifest(("a",))  # type: ignore[arg-type]
