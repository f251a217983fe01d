"""An artifact store on each backend: a local folder and fsspec's ``memory://``."""

from __future__ import annotations

import os
import stat
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import fsspec
import pytest

from shipyard.artifacts import ArtifactStore


@dataclass
class StoreCase:
    """A store plus raw access to its bytes, to inspect and damage it behind its back."""

    kind: str
    store: ArtifactStore
    local_root: Path | None = None
    memory_root: str | None = None

    @property
    def root(self) -> str:
        """The store's root as a POSIX path (local) or memory key."""
        if self.local_root is not None:
            return self.local_root.as_posix()
        assert self.memory_root is not None
        return self.memory_root

    def object_keys(self) -> list[str]:
        """Every file under ``objects/``, however it got there."""
        return [key for key in self._all_files() if key.startswith(f"{self.root}/objects/")]

    def temp_keys(self) -> list[str]:
        """Every file under ``tmp/`` (writes in progress or abandoned)."""
        return [key for key in self._all_files() if key.startswith(f"{self.root}/tmp/")]

    def object_key(self, digest: str) -> str:
        """Where the layout says the object lives."""
        return f"{self.root}/objects/{digest[:2]}/{digest[2:]}"

    def read_raw(self, digest: str) -> bytes:
        key = self.object_key(digest)
        if self.local_root is not None:
            return Path(key).read_bytes()
        return bytes(fsspec.filesystem("memory").cat_file(key))

    def write_raw(self, digest: str, data: bytes) -> None:
        key = self.object_key(digest)
        if self.local_root is not None:
            os.chmod(key, stat.S_IRUSR | stat.S_IWUSR)
            Path(key).write_bytes(data)
        else:
            fsspec.filesystem("memory").pipe_file(key, data)

    def pack_keys(self) -> list[str]:
        """Every file under ``packs/`` (packs and their indexes)."""
        return [key for key in self._all_files() if key.startswith(f"{self.root}/packs/")]

    def flip_byte(self, digest: str, offset: int = 0) -> None:
        """Damage one byte of the object, in its own file or inside the pack holding it."""
        packed = self.store._packed.locate(digest) if self.store._packed is not None else None
        if packed is None or self._exists(self.object_key(digest)):
            data = bytearray(self.read_raw(digest))
            data[offset] ^= 0xFF
            self.write_raw(digest, bytes(data))
            return
        key = f"{self.root}/packs/pack-{packed[0]}.pack"
        raw = bytearray(self._read_key(key))
        raw[packed[1] + offset] ^= 0xFF
        self._write_key(key, bytes(raw))

    def _exists(self, key: str) -> bool:
        if self.local_root is not None:
            return Path(key).exists()
        return bool(fsspec.filesystem("memory").exists(key))

    def _read_key(self, key: str) -> bytes:
        if self.local_root is not None:
            return Path(key).read_bytes()
        return bytes(fsspec.filesystem("memory").cat_file(key))

    def _write_key(self, key: str, data: bytes) -> None:
        if self.local_root is not None:
            os.chmod(key, stat.S_IRUSR | stat.S_IWUSR)
            Path(key).write_bytes(data)
        else:
            fsspec.filesystem("memory").pipe_file(key, data)

    def _all_files(self) -> list[str]:
        if self.local_root is not None:
            if not self.local_root.exists():
                return []
            return sorted(
                path.as_posix() for path in self.local_root.rglob("*") if not path.is_dir()
            )
        fs = fsspec.filesystem("memory")
        return sorted(fs.find(self.root)) if fs.exists(self.root) else []


@pytest.fixture
def memory_case() -> Iterator[StoreCase]:
    """A fresh, empty store under a unique ``memory://`` prefix, deleted afterwards."""
    name = f"shipyard-test-{uuid.uuid4().hex}"
    yield StoreCase("memory", ArtifactStore(f"memory://{name}/store"), memory_root=f"/{name}/store")
    fs = fsspec.filesystem("memory")
    if fs.exists(f"/{name}"):
        fs.rm(f"/{name}", recursive=True)


@pytest.fixture
def local_case(tmp_path: Path) -> StoreCase:
    """A fresh, empty store in a local folder (created on the first write)."""
    root = tmp_path / "store"
    return StoreCase("local", ArtifactStore(root), local_root=root)


@pytest.fixture(params=["local", "memory"])
def case(request: pytest.FixtureRequest) -> StoreCase:
    """A fresh, empty store on each backend."""
    fixture = request.getfixturevalue(f"{request.param}_case")
    assert isinstance(fixture, StoreCase)
    return fixture


@pytest.fixture
def store(case: StoreCase) -> ArtifactStore:
    """The store of :func:`case`."""
    return case.store
