"""The model registry: versions, aliases, governance with four-eyes review, an audit trail.

Example:
    >>> workspace = shipyard.open_workspace()                      # doctest: +SKIP
    >>> registry = Registry(workspace.backend, workspace.settings.user)  # doctest: +SKIP
    >>> registry.set_alias("churn@3", "champion")                  # doctest: +SKIP
"""

from shipyard.registry.service import CHAMPION, Registry, parse_model_ref, validate_model_name

__all__ = ["CHAMPION", "Registry", "parse_model_ref", "validate_model_name"]
