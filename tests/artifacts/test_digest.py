from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from blake3 import blake3
from hypothesis import given, settings
from hypothesis import strategies as st

import shipyard.artifacts.digest as digest_module
from shipyard.artifacts import DIGEST_ALGORITHM, hash_bytes, hash_file, is_digest

# BLAKE3 of the empty input, from the official test vectors.
EMPTY_DIGEST = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
MIB = 1 << 20


def test_algorithm_is_blake3() -> None:
    assert DIGEST_ALGORITHM == "blake3"


def test_hash_bytes_of_empty_input_is_the_official_vector() -> None:
    assert hash_bytes(b"") == EMPTY_DIGEST


def test_empty_file_hashes_like_empty_bytes(tmp_path: Path) -> None:
    path = tmp_path / "empty"
    path.write_bytes(b"")
    assert hash_file(path) == EMPTY_DIGEST


@given(st.binary(max_size=4096))
@settings(deadline=None)
def test_hash_file_equals_hash_bytes(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "data.bin"
        path.write_bytes(data)
        assert hash_file(path) == hash_bytes(data)
        assert hash_file(str(path)) == hash_bytes(data)


@pytest.mark.parametrize("size", [MIB - 1, MIB, MIB + 1, 5 * MIB + 17])
def test_hash_file_equals_hash_bytes_around_the_mmap_threshold(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    assert hash_file(path) == hash_bytes(data)


def test_one_changed_byte_changes_the_digest(tmp_path: Path) -> None:
    data = bytearray(os.urandom(2 * MIB))
    before = hash_bytes(bytes(data))
    data[MIB + 5] ^= 1
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    assert hash_file(path) != before


def test_hash_file_of_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        hash_file(tmp_path / "missing")


@given(st.binary(max_size=256))
def test_every_digest_is_a_digest(data: bytes) -> None:
    digest = hash_bytes(data)
    assert is_digest(digest)
    assert len(digest) == 64


@pytest.mark.parametrize(
    "text",
    [
        "",
        EMPTY_DIGEST.upper(),
        EMPTY_DIGEST[:-1],
        EMPTY_DIGEST + "0",
        EMPTY_DIGEST[:-1] + "g",
        " " + EMPTY_DIGEST[1:],
        EMPTY_DIGEST[:-1] + "\n",
        "../" + EMPTY_DIGEST[3:],
    ],
)
def test_is_digest_refuses_malformed_text(text: str) -> None:
    assert not is_digest(text)


def test_is_digest_refuses_non_strings() -> None:
    assert not is_digest(EMPTY_DIGEST.encode())  # type: ignore[arg-type]


def test_big_files_are_memory_mapped_on_all_cores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, object]] = []

    class Spy:
        AUTO = blake3.AUTO

        def __init__(self, data: bytes = b"", *, max_threads: int = 1) -> None:
            calls.append(("new", max_threads))
            self._hasher = blake3(data, max_threads=max_threads)

        def update_mmap(self, path: str) -> None:
            calls.append(("mmap", path))
            self._hasher.update_mmap(path)

        def hexdigest(self) -> str:
            return str(self._hasher.hexdigest())

    small, big = tmp_path / "small", tmp_path / "big"
    small.write_bytes(b"s" * (MIB - 1))
    big.write_bytes(b"b" * MIB)
    expected = hash_bytes(b"b" * MIB)
    monkeypatch.setattr(digest_module, "blake3", Spy)
    hash_file(small)
    assert calls == [("new", 1)]
    calls.clear()
    assert hash_file(big) == expected
    assert calls == [("new", blake3.AUTO), ("mmap", big)]
