"""Content-addressed artifact store: files and folders stored once, under their BLAKE3 digest.

Start with :class:`ArtifactStore`; ``docs/artifacts.md`` describes the layout and guarantees.
Each name loads its module on first use, so that ``shipyard data status`` (digests and
manifests only) does not import the store, its packs and its backends.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shipyard._lazy import lazy_names

if TYPE_CHECKING:
    from shipyard.artifacts.digest import DIGEST_ALGORITHM, hash_bytes, hash_file, is_digest
    from shipyard.artifacts.listing import list_files
    from shipyard.artifacts.manifest import (
        MANIFEST_FORMAT,
        Manifest,
        ManifestEntry,
        canonical_bytes,
    )
    from shipyard.artifacts.paths import resolve_inside, safe_relative_path
    from shipyard.artifacts.store import ArtifactStore, ObjectInfo

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

_HOMES = {
    **dict.fromkeys(("DIGEST_ALGORITHM", "hash_bytes", "hash_file", "is_digest"), "digest"),
    **dict.fromkeys(
        ("MANIFEST_FORMAT", "Manifest", "ManifestEntry", "canonical_bytes"), "manifest"
    ),
    **dict.fromkeys(("resolve_inside", "safe_relative_path"), "paths"),
    "list_files": "listing",
    **dict.fromkeys(("ArtifactStore", "ObjectInfo"), "store"),
}


__getattr__, __dir__ = lazy_names(__name__, _HOMES, __all__)
