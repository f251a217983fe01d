"""Data versioning: datasets named by their content digest, profiles and quality checks.

Example:
    >>> from shipyard import data
    >>> result = data.add("churn.csv", name="churn")     # doctest: +SKIP
    >>> result.version.ref                                # doctest: +SKIP
    'churn@1'
    >>> frame = data.load("churn@latest")                 # doctest: +SKIP

Arrows: ``data`` uses ``tracking`` (workspaces, the active run), never the other way round.
DuckDB and pyarrow load when a table is profiled or read, not on import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shipyard.data.diff import DatasetDiff, diff
from shipyard.data.lineage import Lineage, lineage
from shipyard.data.pointer import Pointer
from shipyard.data.refs import DatasetRef, parse_ref, ref
from shipyard.data.remote import Transfer, pull, push
from shipyard.data.tracked import PathState, TrackedPath, checkout, status
from shipyard.data.versions import AddResult, add, get, load, resolve

if TYPE_CHECKING:
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


def profile(source: Any) -> DatasetProfile:
    """Schema and statistics of a table (a path, a DataFrame or an Arrow table)."""
    from shipyard.data.profiling import profile_table

    return profile_table(source)


def check(source: Any, against: str, *, home: Any = None) -> list[Finding]:
    """Quality findings for ``source`` compared with the profile of version ``against``."""
    from shipyard.data.checks import check_table
    from shipyard.errors import InvalidArgumentError

    reference = resolve(against, home=home)
    if reference.profile is None:
        raise InvalidArgumentError(
            f"{reference.ref} has no profile (it is not a table); check against a table version"
        )
    return check_table(source, reference.profile)
