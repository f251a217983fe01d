"""The serving package's public names, and that importing it stays light."""

from __future__ import annotations

import subprocess
import sys

import shipyard.serving


def test_public_names() -> None:
    assert shipyard.serving.__all__ == sorted(shipyard.serving.__all__)
    assert set(shipyard.serving.__all__) == {
        "ModelHolder",
        "ModelServer",
        "PredictionLog",
        "ServeSettings",
        "ServedModel",
        "create_app",
        "create_app_from_env",
        "run_server",
    }


def test_import_loads_no_web_framework_nor_pandas() -> None:
    code = (
        "import sys, shipyard.serving; "
        "print(sorted(m for m in ('starlette', 'uvicorn', 'pandas', 'prometheus_client', "
        "'shipyard.cli', 'shipyard.server') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
