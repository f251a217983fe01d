"""The real-time model server: OIP v2, MLflow scoring and KServe v1 on one port.

Example:
    >>> from shipyard.serving import ServeSettings, create_app, run_server
    >>> app = create_app(ServeSettings(refs=["churn@champion"]))  # doctest: +SKIP
    >>> run_server(ServeSettings(refs=["churn@champion"]), port=8080, workers=2)  # doctest: +SKIP

Importing this package loads neither Starlette nor pandas; :func:`create_app` does.
It never imports the platform server or the CLI. ``docs/serving.md`` describes the endpoints.
"""

from shipyard.serving.app import ModelServer, ServeSettings, create_app, create_app_from_env
from shipyard.serving.models import ModelHolder, ServedModel
from shipyard.serving.predlog import PredictionLog
from shipyard.serving.runner import run_server

__all__ = [
    "ModelHolder",
    "ModelServer",
    "PredictionLog",
    "ServeSettings",
    "ServedModel",
    "create_app",
    "create_app_from_env",
    "run_server",
]
