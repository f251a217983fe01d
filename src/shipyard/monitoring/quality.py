"""Data quality of live inputs: the checks of ``shipyard data check`` on one window's traffic.

The checks themselves are :func:`shipyard.data.checks.check_table`; this module only decides
what the reference covers. A training table usually holds the target and columns the model
never sees, which live traffic cannot have: the reference is cut down to the model's inputs.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING

from shipyard.entities.data import DatasetProfile, Finding

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["check_inputs", "input_profile"]


def input_profile(reference: DatasetProfile, inputs: Collection[str]) -> DatasetProfile:
    """The reference profile restricted to ``inputs`` (the columns the model is sent)."""
    wanted = set(inputs)
    return DatasetProfile(
        rows=reference.rows,
        columns=tuple(c for c in reference.columns if c.name in wanted),
        format_version=reference.format_version,
    )


def check_inputs(
    inputs: pa.Table,
    reference: DatasetProfile,
    *,
    expected: Collection[str] | None = None,
    null_share_tolerance: float = 0.05,
    duplicate_rows: bool = False,
    memory_limit: str = "2GB",
) -> tuple[Finding, ...]:
    """Quality findings for one window's inputs against the reference profile.

    Args:
        inputs: the window's input columns (failed requests left out), e.g. from
            :func:`shipyard.monitoring.logs.input_table`.
        reference: the profile of the reference dataset version (or of a table).
        expected: the columns the model takes; the reference's other columns (the target,
            ids) are not checked. Default: the columns of ``inputs``, so that only columns
            the reference lacks are reported, never ones the traffic lacks.
        null_share_tolerance: see :func:`shipyard.data.checks.check_table`.
        duplicate_rows: count repeated rows (off: the same input sent twice is normal traffic).
        memory_limit: DuckDB's memory limit.

    Returns:
        Schema findings (missing, extra, retyped columns), then null shares, out-of-range
        values and unseen categories; an empty window gives the ``empty`` error.
    """
    from shipyard.data.checks import check_table

    columns = expected if expected is not None else inputs.column_names
    findings = check_table(
        inputs,
        input_profile(reference, columns),
        null_share_tolerance=null_share_tolerance,
        duplicate_rows=duplicate_rows,
        memory_limit=memory_limit,
    )
    return tuple(findings)
