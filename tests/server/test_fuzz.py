"""The OpenAPI document fuzzed with schemathesis (a bounded run, on SQLite): whatever a client
sends, the server answers without a 5xx, with the status codes, content types and bodies its
document declares, and refuses what the document forbids.

One check is left out: "schema-valid data is accepted". Much of what the server checks lies
beyond JSON Schema — a filter's grammar, a model name's characters, an uploaded object's bytes
against its digest, which of MLflow's ``run_id``/``run_uuid`` is given — and a 400 naming the
problem is the right answer to those, not a failure.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import positive_data_acceptance

from shipyard.config import init_workspace

pytestmark = pytest.mark.integration

EXAMPLES = int(os.environ.get("SHIPYARD_FUZZ_EXAMPLES", "8"))
"""Per operation: enough to try wrong types, missing fields, odd strings and unknown ids on
each of ~100 operations in about 20 s; set SHIPYARD_FUZZ_EXAMPLES for a longer hunt."""


def _fuzz(operation: Any) -> None:
    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: Any) -> None:
        case.call_and_validate(excluded_checks=[positive_data_acceptance])

    check()


def test_no_input_makes_the_server_fail_or_break_its_document(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shipyard.server import create_app

    home = init_workspace(tmp_path / "project")
    monkeypatch.setenv("SHIPYARD_USER", "alice")
    monkeypatch.delenv("SHIPYARD_STORE_URL", raising=False)
    monkeypatch.delenv("SHIPYARD_ARTIFACTS_URL", raising=False)
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", create_app(home))
    failures: dict[str, str] = {}
    operations = 0
    for found in schema.get_all_operations():
        operation = found.ok()
        operations += 1
        try:
            _fuzz(operation)
        except (Exception, BaseExceptionGroup) as exc:
            failures[operation.label] = str(exc)[:2000]
    assert operations > 80
    assert not failures, "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())
