"""BLAKE3 digests: the names of objects in the artifact store.

A digest is the 64-character lowercase hex form of a 256-bit BLAKE3 hash.
"""

from __future__ import annotations

import os
import re

from blake3 import blake3

__all__ = ["DIGEST_ALGORITHM", "hash_bytes", "hash_file", "is_digest"]

DIGEST_ALGORITHM = "blake3"

# Below this size, mapping the file and starting worker threads cost more than they save.
_PARALLEL_THRESHOLD = 1 << 20

_DIGEST_RE = re.compile(r"[0-9a-f]{64}")


def hash_bytes(data: bytes | bytearray | memoryview) -> str:
    """Return the BLAKE3 digest of ``data`` as 64 lowercase hex characters."""
    threads = blake3.AUTO if len(data) >= _PARALLEL_THRESHOLD else 1
    return blake3(data, max_threads=threads).hexdigest()


def hash_file(path: str | os.PathLike[str]) -> str:
    """Return the BLAKE3 digest of the file at ``path``.

    Files of 1 MiB and more are memory-mapped and hashed on all cores; smaller files are read
    in one call.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        IsADirectoryError: if ``path`` is a directory.
    """
    with open(path, "rb") as file:
        size = os.fstat(file.fileno()).st_size
        if size < _PARALLEL_THRESHOLD:
            return blake3(file.read()).hexdigest()
    hasher = blake3(max_threads=blake3.AUTO)
    hasher.update_mmap(path)
    return hasher.hexdigest()


def is_digest(text: str) -> bool:
    """Return whether ``text`` is a well-formed digest: exactly 64 lowercase hex characters."""
    return isinstance(text, str) and _DIGEST_RE.fullmatch(text) is not None
