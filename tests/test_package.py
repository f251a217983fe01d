"""The package as a whole: its public surface and what a bare import costs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import shipyard

ROOT = Path(__file__).resolve().parents[1]

PUBLIC = {
    "ActiveRun",
    "Experiment",
    "Metric",
    "Run",
    "RunStatus",
    "ShipyardError",
    "__version__",
    "active_run",
    "end_run",
    "flush",
    "get_metric_history",
    "get_run",
    "list_experiments",
    "log_artifact",
    "log_artifacts",
    "log_metric",
    "log_metrics",
    "log_param",
    "log_params",
    "log_text",
    "open_workspace",
    "pipeline",
    "search_runs",
    "set_tag",
    "set_tags",
    "start_run",
    "step",
    "tune",
}

# Heavy or optional: none of these may load on `import shipyard`.
FORBIDDEN_ON_IMPORT = {
    "onnx",
    "xgboost",
    "lightgbm",
    "skops",
    "scipy",
    "fairlearn",
    "matplotlib",
    "sqlalchemy",
    "alembic",
    "fastapi",
    "starlette",
    "sklearn",
    "ray",
    "optuna",
    "pandas",
    "numpy",
    "pyarrow",
    "duckdb",
    "onnxruntime",
    "torch",
    "fsspec",
    "typer",
    "rich",
    "psycopg",
}


def _isort_key(name: str) -> tuple[int, str]:
    """The order ruff's RUF022 keeps: CONSTANTS, then Classes, then functions."""
    if name.isupper():
        return (0, name)
    return (1 if name[:1].isupper() else 2, name)


def test_public_names_are_exactly_what_we_mean() -> None:
    assert set(shipyard.__all__) == PUBLIC
    assert shipyard.__all__ == sorted(shipyard.__all__, key=_isort_key)
    for name in shipyard.__all__:
        assert getattr(shipyard, name) is not None


def test_every_subpackage_declares_a_sorted_all() -> None:
    import importlib

    for name in (
        "entities",
        "errors",
        "config",
        "store",
        "artifacts",
        "tracking",
        "data",
        "registry",
        "models",
        "validation",
        "monitoring",
        "pipelines",
        "tuning",
    ):
        module = importlib.import_module(f"shipyard.{name}")
        exported = module.__all__
        assert exported == sorted(exported, key=_isort_key), name
        for item in exported:
            assert hasattr(module, item), f"shipyard.{name}.{item}"


def test_bare_import_loads_nothing_heavy() -> None:
    """`import shipyard` (and `shipyard.data`) leave SQLAlchemy, pandas, DuckDB ... unloaded."""
    code = (
        "import json, sys; import shipyard, shipyard.data, shipyard.models, shipyard.registry, "
        "shipyard.validation, shipyard.monitoring, shipyard.pipelines, shipyard.tuning; "
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"},
    )
    loaded = set(json.loads(result.stdout))
    assert "shipyard" in loaded
    assert loaded & FORBIDDEN_ON_IMPORT == set()
