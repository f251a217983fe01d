"""The SQL metadata store, run against a SQLite file and a PostgreSQL schema."""

from __future__ import annotations

import math

import pytest
import sqlalchemy as sa

from shipyard.entities import ArtifactRecord, Metric, RunStatus
from shipyard.errors import (
    AlreadyExistsError,
    FilterSyntaxError,
    InvalidArgumentError,
    NotFoundError,
    ParamConflictError,
)
from shipyard.store import Backend
from shipyard.store.sql import SqlBackend

pytestmark = pytest.mark.integration


def _run(backend: SqlBackend, experiment: str = "churn", **kwargs: object) -> str:
    exp = backend.get_or_create_experiment(experiment)
    return backend.create_run(
        exp.experiment_id, name=str(kwargs.get("name", "r")), user="alice", start_time=1000
    ).run_id


def test_satisfies_the_backend_protocol(backend: SqlBackend) -> None:
    assert isinstance(backend, Backend)


def test_password_never_shown(tmp_path: object) -> None:
    url = "postgresql+psycopg://bob:s3cret@127.0.0.1:1/nope"
    from shipyard.config import redact_url

    assert "s3cret" not in redact_url(url)
    assert redact_url(url) == "postgresql+psycopg://bob:***@127.0.0.1:1/nope"


def test_experiments(backend: SqlBackend) -> None:
    created = backend.create_experiment("churn", description="who leaves")
    assert created.name == "churn"
    assert backend.get_experiment(created.experiment_id) == created
    assert backend.get_experiment_by_name("churn") == created
    assert backend.get_or_create_experiment("churn") == created
    with pytest.raises(AlreadyExistsError, match="'churn' already exists"):
        backend.create_experiment("churn")
    other = backend.get_or_create_experiment("fraud")
    assert [e.name for e in backend.list_experiments()] == ["churn", "fraud"]
    assert other.experiment_id != created.experiment_id
    assert backend.get_experiment_by_name("nope") is None
    with pytest.raises(NotFoundError):
        backend.get_experiment(9999)


def test_run_lifecycle_and_children(backend: SqlBackend) -> None:
    exp = backend.create_experiment("churn")
    parent = backend.create_run(
        exp.experiment_id, name="sweep", user="alice", start_time=1_000, tags={"team": "ml"}
    )
    child = backend.create_run(
        exp.experiment_id,
        name="trial",
        user="alice",
        start_time=1_500,
        parent_run_id=parent.run_id,
    )
    backend.end_run(child.run_id, RunStatus.FAILED, 4_000)
    stored = backend.get_run(child.run_id)
    assert stored.status is RunStatus.FAILED
    assert stored.parent_run_id == parent.run_id
    assert stored.duration_ms == 2_500
    assert backend.get_run(parent.run_id).tags == {"team": "ml"}
    assert backend.get_run(parent.run_id).duration_ms is None
    with pytest.raises(NotFoundError):
        backend.create_run(
            exp.experiment_id, name="x", user="a", start_time=1, parent_run_id="f" * 32
        )
    with pytest.raises(NotFoundError):
        backend.create_run(424242, name="x", user="a", start_time=1)
    with pytest.raises(NotFoundError):
        backend.get_run("0" * 32)
    with pytest.raises(NotFoundError):
        backend.end_run("0" * 32, RunStatus.FINISHED, 1)


def test_resolve_run_id(backend: SqlBackend) -> None:
    run_id = _run(backend)
    assert backend.resolve_run_id(run_id[:6]) == run_id
    assert backend.resolve_run_id(run_id.upper()) == run_id
    with pytest.raises(InvalidArgumentError, match="first 4"):
        backend.resolve_run_id("ab")
    with pytest.raises(InvalidArgumentError):
        backend.resolve_run_id("zzzz'; --")
    with pytest.raises(NotFoundError):
        backend.resolve_run_id("ffff" if not run_id.startswith("ffff") else "0000")


def test_params_are_fixed_once_logged(backend: SqlBackend) -> None:
    run_id = _run(backend)
    backend.log_params(run_id, {"model": "rf", "trees": "100"})
    backend.log_params(run_id, {"model": "rf"})  # same value again: fine
    with pytest.raises(ParamConflictError, match=r"'model' .* already 'rf'.* 'gbm'"):
        backend.log_params(run_id, {"depth": "3", "model": "gbm"})
    # the whole call was rejected: 'depth' was not written either
    assert backend.get_run(run_id).params == {"model": "rf", "trees": "100"}
    with pytest.raises(NotFoundError):
        backend.log_params("0" * 32, {"a": "b"})


def test_tags_can_be_overwritten(backend: SqlBackend) -> None:
    run_id = _run(backend)
    backend.set_tags(run_id, {"stage": "dev", "owner": "alice"})
    backend.set_tags(run_id, {"stage": "prod"})
    assert backend.get_run(run_id).tags == {"owner": "alice", "stage": "prod"}


def test_metric_history_latest_and_special_values(backend: SqlBackend) -> None:
    run_id = _run(backend)
    backend.log_metrics(
        [Metric("loss", 1.0 / (s + 1), s, 10_000 + s, run_id) for s in range(5)]
        + [
            Metric("weird", math.nan, 0, 1, run_id),
            Metric("big", math.inf, 0, 1, run_id),
            Metric("small", -math.inf, 0, 1, run_id),
        ]
    )
    # an older step logged later must not replace the latest value
    backend.log_metrics([Metric("loss", 99.0, 2, 20_000, run_id)])
    # the same step logged later does
    backend.log_metrics([Metric("loss", 0.1, 4, 30_000, run_id)])
    history = backend.get_metric_history(run_id, "loss")
    assert [m.step for m in history] == [0, 1, 2, 2, 3, 4, 4]
    run = backend.get_run(run_id)
    assert run.metrics["loss"] == 0.1
    assert math.isnan(run.metrics["weird"])
    assert run.metrics["big"] == math.inf
    assert run.metrics["small"] == -math.inf
    assert math.isnan(backend.get_metric_history(run_id, "weird")[0].value)


def test_metrics_for_unknown_run_write_nothing(backend: SqlBackend) -> None:
    run_id = _run(backend)
    with pytest.raises(NotFoundError):
        backend.log_metrics([Metric("a", 1.0, 0, 1, run_id), Metric("a", 1.0, 0, 1, "f" * 32)])
    assert backend.get_metric_history(run_id, "a") == []


def test_artifact_records(backend: SqlBackend) -> None:
    run_id = _run(backend)
    first = ArtifactRecord("plots/roc.png", "a" * 64, 10)
    backend.log_artifacts(run_id, [first, ArtifactRecord("data", "b" * 64, 30, True, 3)])
    backend.log_artifacts(run_id, [ArtifactRecord("plots/roc.png", "c" * 64, 12)])
    listed = backend.list_artifacts(run_id)
    assert [(a.path, a.digest[0], a.is_dir) for a in listed] == [
        ("data", "b", True),
        ("plots/roc.png", "c", False),
    ]


@pytest.fixture
def searchable(backend: SqlBackend) -> tuple[SqlBackend, dict[str, str], int]:
    exp = backend.create_experiment("search")
    other = backend.create_experiment("other")
    ids: dict[str, str] = {}
    specs = [
        ("rf-1", "rf", 0.95, "core", 1),
        ("rf-2", "rf", 0.85, "ml", 2),
        ("gbm-1", "gbm", 0.91, "core", 3),
        ("gbm-2", "gbm", math.nan, "ml", 4),
        ("lin", "linear", None, None, 5),
    ]
    for name, model, auc, team, start in specs:
        run = backend.create_run(exp.experiment_id, name=name, user="alice", start_time=start)
        ids[name] = run.run_id
        backend.log_params(run.run_id, {"model": model})
        if auc is not None:
            backend.log_metrics([Metric("auc", auc, 0, start, run.run_id)])
        if team is not None:
            backend.set_tags(run.run_id, {"team": team})
    backend.end_run(ids["gbm-1"], RunStatus.FAILED, 10)
    stray = backend.create_run(other.experiment_id, name="elsewhere", user="bob", start_time=9)
    backend.log_params(stray.run_id, {"model": "rf"})
    backend.log_metrics([Metric("auc", 0.99, 0, 9, stray.run_id)])
    return backend, ids, exp.experiment_id


@pytest.mark.parametrize(
    ("filter_string", "order_by", "expected"),
    [
        ("metrics.auc > 0.9 and params.model = 'rf'", [], ["rf-1"]),
        ("metrics.auc > 0.8", ["metrics.auc DESC"], ["rf-1", "gbm-1", "rf-2"]),
        ("", ["metrics.auc ASC"], ["rf-2", "gbm-1", "rf-1", "lin", "gbm-2"]),
        ("params.model in ('gbm', 'linear')", [], ["lin", "gbm-2", "gbm-1"]),
        ("params.model != 'rf'", [], ["lin", "gbm-2", "gbm-1"]),
        ("tags.team = 'core' or metrics.auc < 0.9", [], ["gbm-1", "rf-2", "rf-1"]),
        ("not tags.team = 'core'", [], ["lin", "gbm-2", "rf-2"]),
        ("metrics.auc is null", [], ["lin"]),
        ("tags.team is null", [], ["lin"]),
        ("params.model like 'g%'", ["attributes.name"], ["gbm-1", "gbm-2"]),
        ("tags.team ilike 'CO%'", [], ["gbm-1", "rf-1"]),
        ("attributes.status = 'FAILED'", [], ["gbm-1"]),
        ("attributes.start_time >= 4", [], ["lin", "gbm-2"]),
        ("run.name = 'rf-2'", [], ["rf-2"]),
        (
            "params.`model` = 'rf' and (metrics.auc > 0.9 or metrics.auc < 0.86)",
            [],
            ["rf-2", "rf-1"],
        ),
    ],
)
def test_search(
    searchable: tuple[SqlBackend, dict[str, str], int],
    filter_string: str,
    order_by: list[str],
    expected: list[str],
) -> None:
    backend, _, exp_id = searchable
    found = backend.search_runs([exp_id], filter_string, order_by)
    assert [r.name for r in found] == expected


def test_search_pages_and_all_experiments(
    searchable: tuple[SqlBackend, dict[str, str], int],
) -> None:
    backend, _, exp_id = searchable
    everything = backend.search_runs([], "params.model = 'rf'", ["metrics.auc DESC"])
    assert [r.name for r in everything] == ["elsewhere", "rf-1", "rf-2"]
    page = backend.search_runs([exp_id], "", ["attributes.start_time"], max_results=2, offset=2)
    assert [r.name for r in page] == ["gbm-1", "gbm-2"]
    assert page[0].params == {"model": "gbm"}
    assert page[0].metrics == {"auc": 0.91}
    with pytest.raises(InvalidArgumentError):
        backend.search_runs([exp_id], max_results=0)


def test_search_rejects_bad_filters_before_touching_the_database(
    searchable: tuple[SqlBackend, dict[str, str], int],
) -> None:
    backend, _, exp_id = searchable
    with pytest.raises(FilterSyntaxError, match="expected a number"):
        backend.search_runs([exp_id], "metrics.auc > 'x'")
    with pytest.raises(FilterSyntaxError):
        backend.search_runs([exp_id], "", ["metrics.auc; DROP TABLE runs"])
    assert len(backend.search_runs([exp_id])) == 5


def test_search_is_compiled_to_sql(searchable: tuple[SqlBackend, dict[str, str], int]) -> None:
    """The filter is a WHERE clause: SQL sees it, and no row outside the answer is loaded."""
    backend, _, exp_id = searchable
    statements: list[str] = []

    def capture(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement)

    sa.event.listen(backend.engine, "before_cursor_execute", capture)
    try:
        backend.search_runs([exp_id], "metrics.auc > 0.9 and params.model = 'rf'")
    finally:
        sa.event.remove(backend.engine, "before_cursor_execute", capture)
    main = next(s for s in statements if "FROM runs" in s and "EXISTS" in s)
    assert "latest_metrics" in main and "params" in main
