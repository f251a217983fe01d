"""The names ``shipyard.artifacts`` exports are exactly the ones meant to be public."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import shipyard.artifacts

PUBLIC = {
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
}

MODULES = ["digest", "manifest", "paths", "store"]


def test_package_exports_exactly_the_public_names() -> None:
    assert set(shipyard.artifacts.__all__) == PUBLIC
    assert len(shipyard.artifacts.__all__) == len(PUBLIC)
    for name in PUBLIC:
        assert getattr(shipyard.artifacts, name) is not None


@pytest.mark.parametrize("module", MODULES)
def test_every_module_name_is_exported_from_the_package(module: str) -> None:
    names = importlib.import_module(f"shipyard.artifacts.{module}").__all__
    assert set(names) <= PUBLIC


def test_public_callables_have_docstrings() -> None:
    for name in PUBLIC:
        value = getattr(shipyard.artifacts, name)
        if callable(value):
            assert value.__doc__, name


def test_import_does_not_load_fsspec() -> None:
    code = "import sys, shipyard.artifacts; print('fsspec' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
