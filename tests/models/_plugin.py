"""A third-party flavor, as a plugin package would ship it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class Scale:
    """A model from a library Shipyard does not know."""

    def __init__(self, factor: float) -> None:
        self.factor = factor

    def predict(self, data: Any) -> Any:
        return [x * self.factor for x in data]


class ScaleFlavor:
    name = "scale"

    def can_save(self, model: object) -> bool:
        return isinstance(model, Scale)

    def save(self, model: object, path: Path) -> dict[str, Any]:
        assert isinstance(model, Scale)
        (path / "scale.json").write_text(json.dumps({"factor": model.factor}))
        return {"file": "scale.json"}

    def requirements(self, model: object) -> list[str]:
        return []

    def load(self, path: Path, options: dict[str, Any], *, trusted_code: bool) -> Scale:
        return Scale(json.loads((path / options["file"]).read_text())["factor"])


class ImpostorFlavor(ScaleFlavor):
    name = "sklearn"
