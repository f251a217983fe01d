"""A PythonModel whose module tests un-import, to check that loading asks before importing."""

from __future__ import annotations

from typing import Any

import numpy as np

from shipyard.models import PythonModel


class Negate(PythonModel):
    def predict(self, data: Any) -> Any:
        return -np.asarray(data)
