"""Bad input changes nothing; odd but valid input works the same on both stores."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import shipyard
from shipyard.config import load_settings, redact_url
from shipyard.entities import RunStatus
from shipyard.errors import InvalidArgumentError, WorkspaceNotFoundError
from shipyard.store import open_backend

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tags": {"bad key!": 1}}, "invalid tag name"),
        ({"name": "x" * 300}, "invalid run name"),
        ({"experiment": " "}, "invalid experiment name"),
        ({"tags": {"t": "nul\x00"}}, "NUL character"),
    ],
)
def test_bad_start_run_arguments_create_no_run(home: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        shipyard.start_run(**{"experiment": "e", **kwargs})
    assert shipyard.active_run() is None
    assert shipyard.search_runs(output="runs") == []


@pytest.mark.parametrize(
    ("step", "timestamp", "message"),
    [(2**70, None, "does not fit in 64 bits"), (1, "yesterday", "must be an integer")],
)
def test_bad_step_or_timestamp_is_refused_before_it_can_block_a_flush(
    home: Path, step: int, timestamp: object, message: str
) -> None:
    with shipyard.start_run(experiment="e") as run:
        with pytest.raises(InvalidArgumentError, match=message):
            run.log_metric("bad", 1.0, step=step, timestamp=timestamp)  # type: ignore[arg-type]
        run.log_metric("good", 2.0)
    assert shipyard.get_run(run.run_id).metrics == {"good": 2.0}


def test_keys_with_a_trailing_newline_are_refused(home: Path) -> None:
    with shipyard.start_run(experiment="e") as run, pytest.raises(InvalidArgumentError):
        run.log_metric("loss\n", 1.0)


def test_long_params_work_on_both_stores(home: Path) -> None:
    value = "v" * 6000
    with shipyard.start_run(experiment="e") as run:
        run.log_param("long", value)
        with pytest.raises(InvalidArgumentError, match="NUL"):
            run.log_param("nul", "a\x00b")
    assert shipyard.get_run(run.run_id).params == {"long": value}


def test_like_means_the_same_on_both_stores(home: Path) -> None:
    for model in ("rf_v1", "RF", "rfxv1"):
        with shipyard.start_run(experiment="e", log_code=False) as run:
            run.log_param("model", model)

    def names(filter_: str) -> list[str]:
        frame = shipyard.search_runs("e", filter=filter_, order_by=["params.model"])
        return list(frame["params.model"]) if not frame.empty else []

    assert names("params.model like 'rf%'") == ["rf_v1", "rfxv1"]
    assert names("params.model ilike 'rf%'") == ["RF", "rf_v1", "rfxv1"]
    assert names(r"params.model like 'rf\_%'") == ["rf_v1"]


def test_nan_metric_counts_as_logged(home: Path) -> None:
    with shipyard.start_run(experiment="e") as run:
        run.log_metric("loss", math.nan)
    assert len(shipyard.search_runs("e", filter="metrics.loss is not null")) == 1
    assert len(shipyard.search_runs("e", filter="metrics.loss is null")) == 0
    assert len(shipyard.search_runs("e", filter="metrics.loss > -inf")) == 0


def test_resumed_run_is_running_again_and_continues_its_steps(home: Path) -> None:
    with shipyard.start_run(experiment="e") as run:
        for value in (3.0, 4.0):
            run.log_metric("loss", value)
    with shipyard.start_run(run_id=run.run_id) as again:
        assert shipyard.get_run(run.run_id).end_time is None
        again.log_metric("loss", 1.0)
    history = shipyard.get_metric_history(run.run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(0, 3.0), (1, 4.0), (2, 1.0)]
    stored = shipyard.get_run(run.run_id)
    assert stored.metrics["loss"] == 1.0 and stored.status is RunStatus.FINISHED


def test_forked_child_uses_its_own_connections_and_leaves_the_parents_run_alone(
    tmp_path: Path, store_url: str
) -> None:
    script = textwrap.dedent("""
        import os, sys
        import shipyard
        run = shipyard.start_run(experiment="fork", log_code=False)
        run.log_param("who", "parent")
        run.log_metric("m", 1.0)
        run.flush()
        pid = os.fork()
        if pid == 0:
            child = shipyard.open_workspace().backend
            child.set_tags(run.run_id, {"child": "was here"})
            sys.exit(0)  # a normal exit: atexit handlers run in the child
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert shipyard.get_run(run.run_id).status.value == "RUNNING"
        run.log_metric("m", 2.0)
        run.end()
        print(run.run_id)
    """)
    env = dict(
        os.environ,
        SHIPYARD_HOME=str(tmp_path / ".shipyard"),
        SHIPYARD_STORE_URL=store_url,
        PYTHONPATH=str(ROOT / "src"),
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    backend = open_backend(store_url)
    try:
        stored = backend.get_run(result.stdout.strip())
    finally:
        backend.close()
    assert stored.status is RunStatus.FINISHED
    assert stored.tags["child"] == "was here"
    assert stored.metrics == {"m": 2.0}


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql+psycopg://u:pa/ss@host/db", "postgresql+psycopg://u:***@host/db"),
        ("postgresql://u:p@ss#x@host/db", "postgresql://u:***@host/db"),
        (
            "postgresql://host/db?sslmode=require&password=abc",
            "postgresql://host/db?sslmode=require&password=***",
        ),
        ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
    ],
)
def test_passwords_are_redacted(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_home_pointing_at_a_project_folder_means_its_dot_shipyard(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    with pytest.raises(WorkspaceNotFoundError):
        load_settings(project, env={})
    assert list(project.iterdir()) == []  # nothing scattered into the project
    settings = load_settings(project, create=True, env={})
    assert settings.home == project / ".shipyard"


@pytest.mark.parametrize("value", ["inf", "nan", "-1", "soon"])
def test_flush_interval_must_be_a_positive_number(tmp_path: Path, value: str) -> None:
    with pytest.raises(InvalidArgumentError, match="SHIPYARD_METRIC_FLUSH_INTERVAL"):
        load_settings(tmp_path, create=True, env={"SHIPYARD_METRIC_FLUSH_INTERVAL": value})
