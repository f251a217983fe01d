"""The public surface of shipyard.models is sorted and documented."""

from __future__ import annotations

from pathlib import Path

import shipyard.entities.models
import shipyard.models

DOCS = Path(__file__).resolve().parents[2] / "docs" / "models.md"


def test_every_public_name_is_documented() -> None:
    reference = DOCS.read_text().split("## Python API reference", 1)[1]
    exported = [*shipyard.models.__all__, *shipyard.entities.models.__all__]
    missing = [
        name
        for name in exported
        if f"`{name}`" not in reference
        and f"`{name}(" not in reference
        and name != "MODEL_META_FORMAT"
    ]
    assert missing == []
    for name in shipyard.models.__all__:
        assert getattr(shipyard.models, name) is not None
