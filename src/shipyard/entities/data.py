"""The nouns of data versioning: datasets, their versions, profiles and quality findings.

Profiles are plain data that survive a JSON round trip (``to_dict`` / ``from_dict``), because
they are stored with each version and compared against later (quality checks, drift).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

__all__ = [
    "ColumnProfile",
    "Dataset",
    "DatasetProfile",
    "DatasetRef",
    "DatasetVersion",
    "Finding",
    "Histogram",
    "Severity",
    "strict_json",
]


def strict_json(value: Any) -> Any:
    """Strict JSON: NaN and infinities become None, containers are walked."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): strict_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strict_json(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, StrEnum):
        return value.value
    return value


@dataclass(frozen=True, slots=True)
class Dataset:
    """A named, versioned collection of data (a file, a folder or a table)."""

    dataset_id: int
    name: str
    created_at: int
    description: str = ""


@dataclass(frozen=True, slots=True)
class DatasetVersion:
    """One immutable version of a dataset, named by the digest of its content.

    ``kind`` is ``"file"`` or ``"dir"`` (the digest of a folder names its manifest);
    ``format`` is ``"csv"``, ``"parquet"`` or ``""`` when the content is not a table.
    """

    dataset: str
    version: int
    digest: str
    size: int
    file_count: int
    kind: str
    format: str
    created_at: int
    created_by: str = ""
    run_id: str | None = None
    """The run that produced this version, if it was added inside one."""
    source: str = ""
    """Where it was added from (a path or ``<dataframe>``), for people, not for lookups."""
    profile: DatasetProfile | None = None

    @property
    def ref(self) -> str:
        """``name@version``, the way users name it."""
        return f"{self.dataset}@{self.version}"


@dataclass(frozen=True, slots=True)
class Histogram:
    """Counts of values in ``len(edges) - 1`` bins; bin i is ``[edges[i], edges[i+1])``, the
    last bin closed on the right."""

    edges: tuple[float, ...]
    counts: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ColumnProfile:
    """What one column of a table holds. Statistics that do not apply are ``None``.

    ``quantile_bins`` are bins whose edges are the reference's deciles, with the reference's
    counts: a drift test (PSI, chi-square) needs only these and the current data.
    """

    name: str
    type: str
    """Arrow type, e.g. ``int64``, ``double``, ``string``, ``timestamp[us]``, ``bool``."""
    nullable: bool
    count: int
    """Non-null values."""
    null_count: int
    distinct: int | None = None
    """Distinct non-null values (approximate above ~100k rows)."""
    min: float | str | None = None
    max: float | str | None = None
    mean: float | None = None
    std: float | None = None
    quantiles: dict[str, float] | None = None
    """Keys "0.01", "0.05", "0.25", "0.5", "0.75", "0.95", "0.99"."""
    histogram: Histogram | None = None
    """Equal-width bins between min and max, for plots."""
    quantile_bins: Histogram | None = None
    top_values: tuple[tuple[str, int], ...] | None = None
    """The most frequent values with their counts, most frequent first (categories)."""
    other_count: int | None = None
    """Non-null values not in ``top_values``."""

    @property
    def null_share(self) -> float:
        total = self.count + self.null_count
        return self.null_count / total if total else 0.0

    @property
    def is_numeric(self) -> bool:
        return self.mean is not None


@dataclass(frozen=True, slots=True)
class DatasetProfile:
    """Schema and statistics of a table, computed when a version is added."""

    rows: int
    columns: tuple[ColumnProfile, ...]
    format_version: int = 1

    def column(self, name: str) -> ColumnProfile:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json_dict(self) -> dict[str, Any]:
        """:meth:`to_dict` with every NaN or infinity as ``None``: strict JSON has neither."""
        return _finite(self.to_dict())  # type: ignore[no-any-return]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DatasetProfile:
        columns = []
        for raw in data["columns"]:
            col = dict(raw)
            for key in ("histogram", "quantile_bins"):
                if col.get(key) is not None:
                    col[key] = Histogram(tuple(col[key]["edges"]), tuple(col[key]["counts"]))
            if col.get("top_values") is not None:
                col["top_values"] = tuple((str(v), int(n)) for v, n in col["top_values"])
            columns.append(ColumnProfile(**col))
        return cls(
            rows=int(data["rows"]),
            columns=tuple(columns),
            format_version=int(data.get("format_version", 1)),
        )


class Severity(StrEnum):
    """How bad a quality finding is. ``ERROR`` fails ``shipyard data check``."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Finding:
    """One result of a quality check, e.g. a column whose null share grew."""

    check: str
    """``missing_column``, ``extra_column``, ``type_changed``, ``null_share``,
    ``out_of_range``, ``unseen_categories``, ``duplicate_rows`` or ``empty``."""
    severity: Severity
    message: str
    column: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = strict_json(asdict(self))
        return data


@dataclass(frozen=True)
class DatasetRef:
    """A dataset version named in a pipeline (``churn@latest``), resolved when the run starts.

    A step given one reads a table version as a pandas DataFrame and any other version as the
    local path of a verified copy; the step's cache key follows the version it resolved to.
    """

    name: str
    version: str = "latest"

    def __str__(self) -> str:
        return f"{self.name}@{self.version}"


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
