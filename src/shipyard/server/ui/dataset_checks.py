"""A dataset version's quality checks against an earlier version, run when asked for.

Check results are not stored with a version, and a check reads the data (one DuckDB pass plus
one for duplicates), so the version page links here instead of checking on every view. The
checks are the project's own (:func:`shipyard.data.checks.check_table`): the version's table
against the reference version's stored profile, as ``shipyard data check`` does.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path as FilePath
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse

from shipyard.entities import DatasetVersion, Severity
from shipyard.errors import InvalidArgumentError, NotFoundError
from shipyard.server.auth import Identity
from shipyard.server.ui.pages import page_identity, render
from shipyard.store import Backend

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
_Caller = Annotated[Identity, Depends(page_identity)]

TABLE_FORMATS = ("parquet", "csv")
MEMORY_LIMIT = "512MB"
"""DuckDB's memory for one check on the server; beyond it, it spills to disk."""


def _version(backend: Backend, name: str, ref: str) -> DatasetVersion:
    try:
        found: DatasetVersion = backend.get_dataset_version(name, ref)
    except InvalidArgumentError as exc:
        raise NotFoundError(f"dataset {name!r} has no version {ref!r} ({exc})") from None
    return found


@router.get("/datasets/{name}/{version}/checks", response_class=HTMLResponse)
def checks_page(
    request: Request,
    caller: _Caller,
    name: Annotated[str, Path(max_length=128)],
    version: Annotated[str, Path(max_length=70)],
    against: Annotated[str, Query(max_length=70)] = "",
) -> HTMLResponse:
    from shipyard.data.checks import check_table, has_errors

    backend = request.app.state.workspace.backend
    found = _version(backend, name, version)
    if not against and found.version == 1:
        raise InvalidArgumentError(
            f"{found.ref} is the first version: choose one to check against (?against=N)"
        )
    reference = _version(backend, name, against or str(found.version - 1))
    if reference.version == found.version:
        raise InvalidArgumentError(f"both name version {found.version}: choose another")
    if found.kind != "file" or found.format not in TABLE_FORMATS:
        raise InvalidArgumentError(
            f"{found.ref} is not one CSV or Parquet file; check it with `shipyard data check`"
        )
    if reference.profile is None:
        raise InvalidArgumentError(
            f"{reference.ref} has no stored profile to check against (only tables have one)"
        )
    objects = request.app.state.workspace.artifacts
    with tempfile.TemporaryDirectory(prefix="check-") as folder:
        # the object has no suffix; the checks read the format from the file name
        table = FilePath(folder) / f"table.{found.format}"
        local = objects.local_path(found.digest)
        if local is not None:
            os.symlink(local, table)
        else:
            objects.get_file(found.digest, table)
        findings = check_table(table, reference.profile, memory_limit=MEMORY_LIMIT)
    counts = {s: sum(1 for f in findings if f.severity is s) for s in Severity}
    return render(
        request,
        "dataset_checks.html",
        title=f"Checks of {found.ref} against v{reference.version}",
        v=found,
        reference=reference,
        findings=findings,
        counts=counts,
        failed=has_errors(findings),
    )
