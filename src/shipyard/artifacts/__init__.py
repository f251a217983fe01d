"""Content-addressed artifact store: files and folders stored once, under their BLAKE3 digest.

Start with :class:`ArtifactStore`; ``docs/artifacts.md`` describes the layout and guarantees.
"""

from __future__ import annotations

from shipyard.artifacts.digest import DIGEST_ALGORITHM, hash_bytes, hash_file, is_digest
from shipyard.artifacts.manifest import MANIFEST_FORMAT, Manifest, ManifestEntry, canonical_bytes
from shipyard.artifacts.paths import resolve_inside, safe_relative_path
from shipyard.artifacts.store import ArtifactStore, ObjectInfo, list_files

__all__ = [
    "DIGEST_ALGORITHM",
    "MANIFEST_FORMAT",
    "ArtifactStore",
    "Manifest",
    "ManifestEntry",
    "ObjectInfo",
    "canonical_bytes",
    "hash_bytes",
    "hash_file",
    "is_digest",
    "list_files",
    "resolve_inside",
    "safe_relative_path",
]
