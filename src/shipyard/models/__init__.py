"""Model packaging: save a model with its flavor, signature and requirements; load it safely.

Example:
    >>> from shipyard.models import load_model, save_model
    >>> save_model(clf, "out/clf", input_example=X.head())  # doctest: +SKIP
    >>> model = load_model("out/clf")  # doctest: +SKIP
    >>> model.predict(X_new)  # doctest: +SKIP

Importing this package loads neither scikit-learn, skops, numpy nor pandas; each flavor imports
its library when it first saves or loads. ``docs/models.md`` describes formats and safety.
"""

from shipyard.errors import InputMismatchError, UntrustedModelError
from shipyard.models.card import ModelCard, model_card
from shipyard.models.flavors import Flavor, Predictor, flavor_for, get_flavor, list_flavors
from shipyard.models.logged import load, log_model
from shipyard.models.package import (
    META_FILE,
    LoadedModel,
    load_input_example,
    load_model,
    read_meta,
    save_model,
)
from shipyard.models.python_flavor import PythonModel
from shipyard.models.scan import is_pickle_file, scan_pickles
from shipyard.models.signature import enforce_signature, infer_signature

__all__ = [
    "META_FILE",
    "Flavor",
    "InputMismatchError",
    "LoadedModel",
    "ModelCard",
    "Predictor",
    "PythonModel",
    "UntrustedModelError",
    "enforce_signature",
    "flavor_for",
    "get_flavor",
    "infer_signature",
    "is_pickle_file",
    "list_flavors",
    "load",
    "load_input_example",
    "load_model",
    "log_model",
    "model_card",
    "read_meta",
    "save_model",
    "scan_pickles",
]
