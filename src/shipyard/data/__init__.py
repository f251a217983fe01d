"""Data versioning: datasets named by their content digest, profiles and quality checks.

Example:
    >>> from shipyard import data
    >>> result = data.add("churn.csv", name="churn")     # doctest: +SKIP
    >>> result.version.ref                                # doctest: +SKIP
    'churn@1'
    >>> frame = data.load("churn@latest")                 # doctest: +SKIP

Arrows: ``data`` uses ``tracking`` (workspaces, the active run), never the other way round.
Each name loads its module on first use: ``status`` reads pointer files and the stat cache
without importing the metadata store, and DuckDB and pyarrow load only when a table is
profiled or read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shipyard._lazy import lazy_names

if TYPE_CHECKING:
    from shipyard.data.pointer import Pointer
    from shipyard.data.refs import DatasetRef, parse_ref, ref
    from shipyard.data.remote import Transfer, pull, push
    from shipyard.data.tracked import PathState, TrackedPath, checkout, status
    from shipyard.data.version_diff import DatasetDiff, diff
    from shipyard.data.version_lineage import Lineage, lineage
    from shipyard.data.versions import AddResult, add, get, load, resolve
    from shipyard.entities import DatasetProfile, Finding

__all__ = [
    "AddResult",
    "DatasetDiff",
    "DatasetRef",
    "Lineage",
    "PathState",
    "Pointer",
    "TrackedPath",
    "Transfer",
    "add",
    "check",
    "checkout",
    "diff",
    "get",
    "lineage",
    "load",
    "parse_ref",
    "profile",
    "pull",
    "push",
    "ref",
    "resolve",
    "status",
]

_HOMES = {
    **dict.fromkeys(("DatasetDiff", "diff"), "version_diff"),
    **dict.fromkeys(("Lineage", "lineage"), "version_lineage"),
    "Pointer": "pointer",
    **dict.fromkeys(("DatasetRef", "parse_ref", "ref"), "refs"),
    **dict.fromkeys(("Transfer", "pull", "push"), "remote"),
    **dict.fromkeys(("PathState", "TrackedPath", "checkout", "status"), "tracked"),
    **dict.fromkeys(("AddResult", "add", "get", "load", "resolve"), "versions"),
}
"""The module of ``shipyard.data`` each name is defined in."""


__getattr__, __dir__ = lazy_names(__name__, _HOMES, __all__)


def profile(source: Any) -> DatasetProfile:
    """Schema and statistics of a table (a path, a DataFrame or an Arrow table)."""
    from shipyard.data.profiling import profile_table

    return profile_table(source)


def check(source: Any, against: str, *, home: Any = None) -> list[Finding]:
    """Quality findings for ``source`` compared with the profile of version ``against``."""
    from shipyard.data.checks import check_table
    from shipyard.data.versions import resolve
    from shipyard.errors import InvalidArgumentError

    reference = resolve(against, home=home)
    if reference.profile is None:
        raise InvalidArgumentError(
            f"{reference.ref} has no profile (it is not a table); check against a table version"
        )
    return check_table(source, reference.profile)
