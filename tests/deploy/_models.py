"""A model whose failures and speed a test chooses: it must live in an importable module."""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path
from typing import Any

import numpy as np

from shipyard.models import PythonModel

PLANTED_FAILURES_ENV = "SHIPYARD_TEST_PLANTED_FAILURES"


class Behaved(PythonModel):
    """Predicts ``score > cut``; sleeps ``delay_ms`` a call and fails ``fail_rate`` of calls,
    as ``artifacts/behaviour.json`` says."""

    def load_context(self, path: Path) -> None:
        behaviour = json.loads((path / "behaviour.json").read_text())
        self.cut = float(behaviour.get("cut", 0.5))
        self.delay = float(behaviour.get("delay_ms", 0.0)) / 1000
        self.fail_rate = float(behaviour.get("fail_rate", 0.0))
        self.random = random.Random()  # noqa: S311

    def predict(self, data: Any) -> Any:
        if self.delay:
            time.sleep(self.delay)
        # Failures are planted only where the test asks for them (its model server), never
        # while the model is saved (save_model calls predict on the input example).
        armed = os.environ.get(PLANTED_FAILURES_ENV) == "1"
        if armed and self.fail_rate and self.random.random() < self.fail_rate:
            raise RuntimeError("planted failure")
        return (data["score"].to_numpy() > self.cut).astype(np.int64)


def register(
    home: Path, version_of: str, *, cut: float = 0.5, delay_ms: float = 0.0, fail_rate: float = 0.0
) -> Any:
    """Log one version of model ``version_of`` with the given behaviour."""
    import pandas as pd

    import shipyard

    folder = home.parent / f"behaviour-{cut}-{delay_ms}-{fail_rate}"
    folder.mkdir(exist_ok=True)
    (folder / "behaviour.json").write_text(
        json.dumps({"cut": cut, "delay_ms": delay_ms, "fail_rate": fail_rate})
    )
    example = pd.DataFrame({"score": [0.1, 0.9]})
    with shipyard.start_run(experiment="deploy", log_code=False) as run:
        return run.log_model(Behaved(), version_of, input_example=example, artifacts=folder)
