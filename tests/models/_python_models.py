"""PythonModel subclasses that tests save and load: they must live in an importable module."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from shipyard.models import PythonModel


class Threshold(PythonModel):
    """Predicts 1 where ``score`` is above a cut read from ``artifacts/cut.json``."""

    def load_context(self, path: Path) -> None:
        self.cut = float(json.loads((path / "cut.json").read_text())["cut"])

    def predict(self, data: Any) -> Any:
        return (data["score"].to_numpy() > self.cut).astype(np.int64)


class Doubler(PythonModel):
    """No artifacts: doubles a tensor."""

    def predict(self, data: Any) -> Any:
        return np.asarray(data) * 2


class FromPickle(PythonModel):
    """Reads its state from a pickle, which loading must allow explicitly."""

    def load_context(self, path: Path) -> None:
        self.offset = pickle.loads((path / "state.pkl").read_bytes())["offset"]  # noqa: S301

    def predict(self, data: Any) -> Any:
        return np.asarray(data) + self.offset


class Zeros(PythonModel):
    """Takes a table of any columns and predicts 0 for each row."""

    def predict(self, data: Any) -> Any:
        return np.zeros(len(data))
