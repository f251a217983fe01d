"""Package names that load their module on first use (PEP 562), for packages whose ``import``
should stay cheap: ``shipyard data status`` must not pay for the store, pandas or DuckDB.

Example (in a package's ``__init__.py``)::

    __getattr__, __dir__ = lazy_names(__name__, {"ArtifactStore": "store"}, __all__)
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["lazy_names"]


def lazy_names(
    package: str, homes: Mapping[str, str], names: Iterable[str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package``: a name in ``homes`` is imported from
    ``package.<its module>`` the first time it is asked for, then kept in the package.
    Submodules are left to the import system."""
    public = frozenset(names)

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{home}"), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *public})

    return __getattr__, __dir__
