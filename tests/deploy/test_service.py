"""Deployments as data: create, canary, promote, rollback, pause, resume; governance; events,
audit and lineage in the same transaction; leases. On SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace

import pytest

from shipyard.deploy.analysis import CanarySpec, Decision
from shipyard.deploy.controller import Controller
from shipyard.deploy.service import Deployments
from shipyard.entities import DeploymentState, RouteStats, Strategy
from shipyard.errors import (
    AlreadyExistsError,
    ConflictError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
)
from shipyard.registry import Registry
from shipyard.store.sql import SqlBackend

pytestmark = pytest.mark.integration


@pytest.fixture
def churn(backend: SqlBackend) -> Registry:
    """churn@1 (champion) and churn@2 (challenger), registered by bob; alice is admin."""
    alice = Registry(backend, "alice")
    alice.bootstrap_admin()
    alice.set_user("carol", "approver")
    bob = Registry(backend, "bob")
    for n in (1, 2):
        bob.register("churn", digest=f"{n:02d}" * 32, flavor="sklearn")
    bob.set_alias("churn@1", "champion")
    bob.set_alias("churn@2", "challenger")
    return bob


def test_create_records_an_event_an_audit_entry_and_lineage(
    backend: SqlBackend, churn: Registry
) -> None:
    deploy = Deployments(backend, "bob")
    created = deploy.create("churn-prod", "churn@champion")
    assert created.revision == 1
    assert created.alias == "champion"
    assert [(r.name, r.version, r.weight, r.mode.value) for r in created.routes] == [
        ("stable", 1, 100.0, "live")
    ]
    assert created.state is DeploymentState.STABLE
    [event] = deploy.history("churn-prod")
    assert (event.action, event.actor, event.revision) == ("create", "bob", 1)
    audit = backend.list_audit(target="deployment:churn-prod")
    assert [a.action for a in audit] == ["deploy.create"]
    assert backend.deployments_of_version("churn", 1)[0][0] == "churn-prod"
    assert backend.verify_audit() == []
    with pytest.raises(AlreadyExistsError, match="already exists"):
        deploy.create("churn-prod", "churn@2")
    with pytest.raises(NotFoundError, match="no deployment named 'nope'"):
        deploy.get("nope")
    with pytest.raises(InvalidArgumentError, match="invalid deployment name"):
        deploy.create("bad name", "churn@1")


def test_a_canary_runs_to_promotion_and_moves_the_alias(
    backend: SqlBackend, churn: Registry
) -> None:
    deploy = Deployments(backend, "bob")
    deploy.create("churn-prod", "churn@champion")
    started = deploy.canary("churn-prod", "churn@challenger", CanarySpec(steps=(10, 50)))
    assert started.state is DeploymentState.PROGRESSING
    assert started.strategy is Strategy.CANARY
    # the canary is compared with a baseline of its size running the stable version
    assert [(r.name, r.version, r.weight) for r in started.routes] == [
        ("stable", 1, 80.0), ("baseline", 1, 10.0), ("canary", 2, 10.0),
    ]  # fmt: skip
    assert backend.deployments_of_version("churn", 2)[0][0] == "churn-prod"
    with pytest.raises(InvalidArgumentError, match="already has a canary in progress"):
        deploy.canary("churn-prod", "churn@2")
    promoted = deploy.promote("churn-prod", reason="looks good")
    assert promoted.state is DeploymentState.PROMOTED
    assert [(r.name, r.version, r.weight) for r in promoted.routes] == [("stable", 2, 100.0)]
    assert churn.resolve("churn@champion").version == 2
    actions = [e.action for e in deploy.history("churn-prod")]
    assert actions == ["create", "canary.start", "promote"]
    # undo a promotion: back to the version it replaced, alias included
    back = deploy.rollback("churn-prod")
    assert [(r.version, r.weight) for r in back.routes] == [(1, 100.0)]
    assert churn.resolve("churn@champion").version == 1
    with pytest.raises(InvalidArgumentError, match="was rolled back"):
        deploy.promote("churn-prod")


def test_rollback_pause_resume_and_bad_requests_change_nothing(
    backend: SqlBackend, churn: Registry
) -> None:
    deploy = Deployments(backend, "bob")
    deploy.create("churn-prod", "churn@1")
    with pytest.raises(InvalidArgumentError, match="already the stable version"):
        deploy.canary("churn-prod", "churn@1")
    with pytest.raises(InvalidArgumentError, match="nothing to promote"):
        deploy.promote("churn-prod")
    with pytest.raises(InvalidArgumentError, match="no rollout to pause"):
        deploy.pause("churn-prod")
    with pytest.raises(InvalidArgumentError, match="canary steps must rise"):
        deploy.canary("churn-prod", "churn@2", CanarySpec(steps=(50, 10)))
    before = deploy.get("churn-prod")
    assert before.revision == 1  # nothing above changed it
    deploy.canary("churn-prod", "churn@2")
    paused = deploy.pause("churn-prod", reason="on-call looking")
    assert paused.state is DeploymentState.PAUSED
    resumed = deploy.resume("churn-prod")
    assert resumed.state is DeploymentState.PROGRESSING
    rolled = deploy.rollback("churn-prod", reason="by hand")
    assert rolled.state is DeploymentState.ROLLED_BACK
    assert [(r.name, r.version, r.weight) for r in rolled.routes] == [("stable", 1, 100.0)]
    assert [e.action for e in deploy.history("churn-prod")][-4:] == [
        "canary.start", "pause", "resume", "rollback",
    ]  # fmt: skip


def test_a_stale_write_is_refused_as_a_conflict(backend: SqlBackend, churn: Registry) -> None:
    deploy = Deployments(backend, "bob")
    first = deploy.create("churn-prod", "churn@1")
    backend.save_deployment(replace(first, analysis={"note": 1}))
    with pytest.raises(ConflictError, match="changed while"):
        backend.save_deployment(replace(first, analysis={"note": 2}))
    assert deploy.get("churn-prod").analysis == {"note": 1}


def test_a_governed_model_needs_an_approved_version_for_live_traffic(
    backend: SqlBackend, churn: Registry
) -> None:
    alice, carol = Registry(backend, "alice"), Registry(backend, "carol")
    churn.request_review("churn@1")
    carol.approve("churn@1")
    alice.set_governed("churn")
    deploy = Deployments(backend, "bob")
    deploy.create("churn-prod", "churn@champion")
    with pytest.raises(PermissionDeniedError, match=r"churn@2 is not approved \(none\)"):
        deploy.canary("churn-prod", "churn@challenger")
    assert deploy.get("churn-prod").state is DeploymentState.STABLE
    churn.request_review("churn@2")
    carol.approve("churn@2")
    assert deploy.canary("churn-prod", "churn@2").state is DeploymentState.PROGRESSING


def test_route_stats_add_up_over_servers(backend: SqlBackend, churn: Registry) -> None:
    stats = RouteStats(
        "d", "stable", "churn", 1, requests=10, errors=1, latency_counts=(1, 2, 3),
        predictions={"0": 4, "1": 5},
    )  # fmt: skip
    backend.record_route_stats("server-a", [stats])
    backend.record_route_stats("server-b", [replace(stats, requests=5, predictions={"1": 1})])
    backend.record_route_stats("server-a", [replace(stats, requests=12)])  # replaces a's
    [total] = backend.get_route_stats("d")
    assert (total.requests, total.errors) == (17, 2)
    assert total.latency_counts == (2, 4, 6)
    assert total.predictions == {"0": 4, "1": 6}


def test_one_controller_holds_a_deployment_at_a_time(backend: SqlBackend) -> None:
    assert backend.acquire_lease("deployment:x", "a", 60_000)
    assert not backend.acquire_lease("deployment:x", "b", 60_000)
    assert backend.acquire_lease("deployment:x", "a", 60_000)  # renewal
    backend.release_lease("deployment:x", "a")
    assert backend.acquire_lease("deployment:x", "b", 1)  # a lapsed lease is taken over
    import time

    time.sleep(0.01)
    assert backend.acquire_lease("deployment:x", "c", 60_000)


def test_the_controller_rolls_back_a_failing_canary_with_its_numbers(
    backend: SqlBackend, churn: Registry
) -> None:
    deploy = Deployments(backend, "bob")
    deploy.create("churn-prod", "churn@1")
    deploy.canary("churn-prod", "churn@2", CanarySpec(steps=(20, 100), interval_s=1))
    seen: list[Decision] = []
    controller = Controller(backend, on_decision=lambda d, decision: seen.append(decision))
    backend.record_route_stats(
        "s1",
        [
            RouteStats("churn-prod", "stable", "churn", 1, requests=600, errors=2),
            RouteStats("churn-prod", "baseline", "churn", 1, requests=200, errors=1),
            RouteStats("churn-prod", "canary", "churn", 2, requests=200, errors=40),
        ],
    )
    decided = controller.tick()
    assert decided["churn-prod"].action == "rollback"
    assert decided["churn-prod"].rule == "errors"
    after = deploy.get("churn-prod")
    assert after.state is DeploymentState.ROLLED_BACK
    last = deploy.history("churn-prod")[-1]
    assert last.action == "rollback"
    assert last.actor == "shipyard-controller"
    assert last.details["rule"] == "errors"
    assert last.details["numbers"]["rules"]["errors"]["canary_errors"] == 40
    assert "canary failed 40 of 200" in last.reason
    assert controller.tick() == {}  # nothing in progress any more


def test_two_controllers_never_act_on_one_deployment_at_once(
    backend: SqlBackend, churn: Registry
) -> None:
    deploy = Deployments(backend, "bob")
    deploy.create("churn-prod", "churn@1")
    deploy.canary("churn-prod", "churn@2", CanarySpec(steps=(20, 100), interval_s=3600))
    first, second = Controller(backend), Controller(backend)
    assert first.look("churn-prod") is not None  # takes the lease
    assert second.look("churn-prod") is None  # held by the first
    assert first.look("churn-prod") is not None  # renews it
    backend.release_lease("deployment:churn-prod", first.holder)  # the first one stops
    assert second.look("churn-prod") is not None


def test_a_promotion_that_loses_a_race_does_not_move_the_alias(
    backend: SqlBackend, churn: Registry
) -> None:
    deploy = Deployments(backend, "bob")
    deploy.create("churn-prod", "churn@champion")
    stale = deploy.canary("churn-prod", "churn@2", CanarySpec(steps=(10, 100)))
    deploy.rollback("churn-prod", reason="a person was faster")
    decision = Decision("promote", "step 1 passed", {}, dict(stale.analysis))
    with pytest.raises(ConflictError):
        deploy.apply(stale, decision)
    assert churn.resolve("churn@champion").version == 1
    assert deploy.get("churn-prod").state is DeploymentState.ROLLED_BACK


def test_an_ab_test_rolls_back_to_what_it_replaced_and_counts_by_version(
    backend: SqlBackend, churn: Registry
) -> None:
    from shipyard.deploy.ab import AbSpec

    Registry(backend, "bob").register("churn", digest="03" * 32, flavor="sklearn")
    deploy = Deployments(backend, "bob")
    deploy.create("churn-prod", "churn@1")
    deploy.ab("churn-prod", [("a", "churn@1", 50), ("b", "churn@2", 50)], AbSpec())
    backend.record_route_stats(
        "s", [RouteStats("churn-prod", "a", "churn", 1, requests=5000),
              RouteStats("churn-prod", "b", "churn", 2, requests=5000)],
    )  # fmt: skip
    with pytest.raises(InvalidArgumentError, match="deploy conclude"):
        deploy.promote("churn-prod")
    ended = deploy.rollback("churn-prod")
    assert [(r.name, r.version, r.weight) for r in ended.routes] == [("stable", 1, 100.0)]
    # a second test reusing the names a and b for other versions starts from zero
    deploy.ab("churn-prod", [("a", "churn@2", 50), ("b", "churn@3", 50)], AbSpec())
    backend.record_route_stats(
        "t", [RouteStats("churn-prod", "a", "churn", 2, requests=40),
              RouteStats("churn-prod", "b", "churn", 3, requests=60)],
    )  # fmt: skip
    report = deploy.ab_report("churn-prod")
    assert {v.name: v.requests for v in report.variants} == {"a": 40, "b": 60}
