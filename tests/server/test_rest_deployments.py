"""Deployments through `RestBackend`: the same calls give the same entities as the store, the
server acts as the caller and checks a governed model's approvals whatever a client asks,
and `shipyard deploy` with the rollout controller works through a server."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from shipyard.config import init_workspace
from shipyard.deploy.analysis import CanarySpec
from shipyard.deploy.controller import Controller
from shipyard.deploy.service import Deployments
from shipyard.entities import (
    Deployment,
    DeploymentEvent,
    DeploymentState,
    Role,
    Route,
    RouteMode,
    RouteStats,
    Strategy,
    Target,
)
from shipyard.errors import (
    AlreadyExistsError,
    ConflictError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
)
from shipyard.registry import Registry
from shipyard.registry.tokens import issue_token
from shipyard.store import Backend
from shipyard.store.rest import RestBackend
from shipyard.tracking import open_workspace
from tests._cli import run_shipyard
from tests._served import Served

pytestmark = pytest.mark.integration

USERS = {"alice": Role.ADMIN, "bob": Role.MEMBER, "carol": Role.APPROVER, "vic": Role.VIEWER}


@dataclass
class World:
    served: Served
    local: Backend
    """The server's own store."""
    rest: dict[str, RestBackend]
    tokens: dict[str, str]


@pytest.fixture
def world(home: Path) -> Iterator[World]:
    """churn@1 (champion), churn@2 (challenger), churn@3, registered by bob; a server with
    authentication on, and a client per user."""
    init_workspace(home.parent)
    local = open_workspace(home).backend
    Registry(local, "alice").bootstrap_admin()
    for user, r in USERS.items():
        if user != "alice":
            local.set_user(user, r, actor="alice")
    bob = Registry(local, "bob")
    for n in (1, 2, 3):
        bob.register("churn", digest=f"{n:02d}" * 32, flavor="sklearn")
    bob.set_alias("churn@1", "champion")
    bob.set_alias("churn@2", "challenger")
    tokens = {user: issue_token(local, user)[1] for user in USERS}
    with Served(home, auth=True) as served:
        rest = {user: RestBackend(served.url, token=t) for user, t in tokens.items()}
        try:
            yield World(served, local, rest, tokens)
        finally:
            for client in rest.values():
                client.close()


def _event(actor: str, action: str = "note", **details: object) -> DeploymentEvent:
    return DeploymentEvent(0, "", 0, actor, action, f"{action} by hand", 0, dict(details))


def test_what_goes_through_the_server_comes_back_equal_to_the_store(world: World) -> None:
    rest, local = world.rest["bob"], world.local
    deploy = Deployments(rest, "bob")
    created = deploy.create("churn-prod", "churn@champion", reason="first")
    assert created == local.get_deployment("churn-prod") == rest.get_deployment("churn-prod")
    started = deploy.canary(
        "churn-prod", "churn@challenger", CanarySpec(steps=(10, 50), interval_s=60)
    )
    assert started.strategy is Strategy.CANARY and started.analysis["weight"] == 10
    shadowed = deploy.shadow("churn-prod", "churn@3", 25.0, reason="listen")
    assert shadowed.route("shadow") == Route(
        "shadow", "churn", 3, 25.0, RouteMode.SHADOW, "churn@3"
    )
    # a spec of any JSON shape comes back exactly, ints as ints and floats as floats
    odd = {"n": 2**62, "x": 0.1, "whole": 3.0, "nested": [{"a": None, "b": [1, "two"]}], "e": ""}
    saved = rest.save_deployment(replace(shadowed, spec=shadowed.spec | odd))
    assert saved == local.get_deployment("churn-prod") == rest.get_deployment("churn-prod")
    assert saved.revision == shadowed.revision + 1 and saved.spec["n"] == 2**62
    assert rest.list_deployments() == local.list_deployments()
    assert rest.list_deployment_events("churn-prod") == local.list_deployment_events("churn-prod")
    assert [e.action for e in rest.list_deployment_events("churn-prod", limit=2)] == [
        "canary.start", "shadow.start",
    ]  # fmt: skip
    assert rest.list_deployment_events("churn-prod", limit=0) == []
    for version in (1, 2, 3, 4):
        assert rest.deployments_of_version("churn", version) == local.deployments_of_version(
            "churn", version
        )
    assert [d for d, _ in rest.deployments_of_version("churn", 3)] == ["churn-prod"]
    assert (
        rest.deployments_of_version("no/such", 1) == [] == rest.deployments_of_version("churn", 0)
    )
    # live counts from two model servers, summed
    stats = [
        RouteStats("churn-prod", "stable", "churn", 1, requests=90, errors=1,
                   latency_counts=(5, 80, 5), predictions={"0": 40, "1": 50}),
        RouteStats("churn-prod", "canary", "churn", 2, requests=10, latency_counts=(1, 9)),
        RouteStats("churn-prod", "shadow", "churn", 3, requests=25, compared=25,
                   agreements=20, abs_difference=5.5, mirrored_dropped=2),
    ]  # fmt: skip
    rest.record_route_stats("server-a", stats)
    rest.record_route_stats("server-b", [replace(stats[0], requests=10, predictions={"2": 1})])
    summed = rest.get_route_stats("churn-prod")
    assert summed == local.get_route_stats("churn-prod")
    assert [(s.route, s.requests) for s in summed] == [
        ("canary", 10), ("shadow", 25), ("stable", 100),
    ]  # fmt: skip
    assert rest.get_route_stats("nothing-here") == [] == rest.get_route_stats("no/such")
    assert deploy.status("churn-prod").stats == summed
    # a NaN or an infinity of a shadow's differences survives the trip both ways
    rest.record_route_stats(
        "server-c", [RouteStats("d1", "shadow", "churn", 3, abs_difference=math.nan)]
    )
    rest.record_route_stats(
        "server-c", [RouteStats("d2", "shadow", "churn", 3, abs_difference=math.inf)]
    )
    [nan] = rest.get_route_stats("d1")
    [inf] = rest.get_route_stats("d2")
    assert math.isnan(nan.abs_difference) and inf.abs_difference == math.inf
    assert replace(nan, abs_difference=0.0) == replace(
        local.get_route_stats("d1")[0], abs_difference=0.0
    )
    # a deployment that follows no alias is promoted without moving one
    deploy.create("plain", "churn@1")
    deploy.canary("plain", "churn@3")
    promoted = deploy.promote("plain", reason="looks fine")
    assert promoted == local.get_deployment("plain") and promoted.alias == ""
    assert [(r.name, r.version) for r in promoted.routes] == [("stable", 3)]
    assert local.resolve_model_alias("churn", "champion") == 1


def test_the_server_decides_who_acts_and_what_must_be_approved(world: World) -> None:
    rest, local = world.rest["bob"], world.local
    alice, carol = Registry(local, "alice"), Registry(local, "carol")
    Registry(local, "bob").request_review("churn@1")
    carol.approve("churn@1")
    alice.set_governed("churn")
    # a client naming someone else is ignored: bob created it, bob acted
    routes = (Route("stable", "churn", 1, 100.0, ref="churn@champion"),)
    forged = Deployment(
        "churn-prod", "churn", Target.ONLINE, Strategy.SINGLE, DeploymentState.STABLE,
        routes, 0, 0, "mallory", 0, alias="champion",
    )  # fmt: skip
    created = rest.save_deployment(
        forged, event=_event("mallory", "create"), require_approved=[("churn", 1)]
    )
    assert created.created_by == "bob"
    [event] = rest.list_deployment_events("churn-prod")
    assert (event.actor, event.action, event.revision) == ("bob", "create", 1)
    assert [(a.actor, a.action) for a in local.list_audit(target="deployment:churn-prod")] == [
        ("bob", "deploy.create")
    ]
    # an unapproved version of a governed model gets no live traffic, listed or not
    canary = (
        replace(routes[0], weight=80.0),
        Route("baseline", "churn", 1, 10.0),
        Route("canary", "churn", 2, 10.0),
    )
    sneaky = replace(created, routes=canary, state=DeploymentState.PROGRESSING)
    with pytest.raises(PermissionDeniedError, match=r"churn@2 is not approved"):
        rest.save_deployment(sneaky)
    with pytest.raises(PermissionDeniedError, match=r"churn@2 is not approved"):
        Deployments(rest, "bob").canary("churn-prod", "churn@2")
    # a shadow may be unapproved, but turning it live is checked, as is moving the alias
    shadow = rest.save_deployment(
        replace(created, routes=(*routes, Route("shadow", "churn", 2, 50.0, RouteMode.SHADOW)))
    )
    live = replace(shadow.routes[1], mode=RouteMode.LIVE, weight=0.0)
    with pytest.raises(PermissionDeniedError, match=r"churn@2 is not approved"):
        rest.save_deployment(replace(shadow, routes=(shadow.routes[0], live)))
    with pytest.raises(PermissionDeniedError, match=r"churn@2 is not approved"):
        rest.save_deployment(shadow, event=_event("bob", "promote"), move_alias_to=2)
    assert local.resolve_model_alias("churn", "champion") == 1
    assert rest.get_deployment("churn-prod") == shadow  # none of it was written
    with pytest.raises(NotFoundError, match="churn"):  # a shadow must exist
        rest.save_deployment(
            replace(shadow, routes=(*routes, replace(shadow.routes[1], version=9)))
        )
    # compare-and-set, names, and what an event may not say
    with pytest.raises(ConflictError, match="changed while"):
        rest.save_deployment(created)
    with pytest.raises(ConflictError, match="changed while"):  # a revision from the future
        rest.save_deployment(replace(shadow, revision=shadow.revision + 1))
    with pytest.raises(AlreadyExistsError, match="already exists"):
        rest.save_deployment(forged)
    with pytest.raises(NotFoundError, match="no deployment named 'nope'"):
        rest.get_deployment("nope")
    for odd in ("no/such", "..", "a b", ""):
        with pytest.raises(NotFoundError, match="no deployment named"):
            rest.get_deployment(odd)
        with pytest.raises(NotFoundError, match="no deployment named"):
            rest.list_deployment_events(odd)
    with pytest.raises(NotFoundError):
        rest.save_deployment(replace(forged, name="other", model="nope"))
    with pytest.raises(InvalidArgumentError, match="audit entry records"):
        rest.save_deployment(shadow, event=_event("bob", routes=[]))
    with pytest.raises(InvalidArgumentError):
        rest.save_deployment(replace(forged, name="bad name"))
    # roles: a viewer reads, a member changes
    viewer = world.rest["vic"]
    assert viewer.get_deployment("churn-prod") == rest.get_deployment("churn-prod")
    assert viewer.get_route_stats("churn-prod") == []
    with pytest.raises(PermissionDeniedError, match="needs the member role"):
        viewer.save_deployment(shadow)
    with pytest.raises(PermissionDeniedError, match="needs the member role"):
        viewer.record_route_stats("s", [RouteStats("churn-prod", "stable", "churn", 1)])
    with pytest.raises(PermissionDeniedError, match="needs the member role"):
        viewer.acquire_lease("deployment:churn-prod", "v", 1000)
    assert local.verify_audit() == []


def test_one_controller_holds_a_lease_through_the_server(world: World) -> None:
    bob, carol = world.rest["bob"], world.rest["carol"]
    assert bob.acquire_lease("deployment:x", "a", 60_000)
    assert not carol.acquire_lease("deployment:x", "b", 60_000)
    assert not world.local.acquire_lease("deployment:x", "b", 60_000)  # the same lease
    assert bob.acquire_lease("deployment:x", "a", 60_000)  # renewal
    carol.release_lease("deployment:x", "b")  # not hers: nothing happens
    assert not carol.acquire_lease("deployment:x", "b", 60_000)
    bob.release_lease("deployment:x", "a")
    assert carol.acquire_lease("deployment:x", "b", 0)  # taken, and lapsed at once
    assert bob.acquire_lease("deployment:x", "c", 60_000)


def test_deploy_commands_and_the_controller_work_through_a_server(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    laptop = tmp_path / "laptop" / ".shipyard"
    init_workspace(laptop.parent)
    for name in ("SHIPYARD_STORE_URL", "SHIPYARD_ARTIFACTS_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SHIPYARD_HOME", str(laptop))
    monkeypatch.setenv("SHIPYARD_SERVER", world.served.url)
    monkeypatch.setenv("SHIPYARD_TOKEN", world.tokens["bob"])
    monkeypatch.setenv("SHIPYARD_USER", "mallory")  # the server decides: the token's user
    made = run_shipyard("deploy", "create", "churn-prod", "--model", "churn@champion", "--json")
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["created_by"] == "bob"
    started = run_shipyard(
        "deploy", "canary", "churn-prod", "--model", "churn@challenger", "--steps", "20,100",
        "--interval", "1s", "--no-latency-rule", "--no-prediction-rule", "-m", "try 2",
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    # a model server counts through the server; the controller there decides and promotes
    model_server = open_workspace(laptop).backend
    assert isinstance(model_server, RestBackend)
    model_server.record_route_stats(
        "model-server-1",
        [
            RouteStats("churn-prod", "stable", "churn", 1, requests=600, errors=1),
            RouteStats("churn-prod", "baseline", "churn", 1, requests=200),
            RouteStats("churn-prod", "canary", "churn", 2, requests=200),
        ],
    )
    controller = Controller(model_server, look_seconds=0.1)
    after = world.local.get_deployment("churn-prod").analysis["step_started"] + 5_000
    decision = controller.look("churn-prod", now_ms=after)
    assert decision is not None and decision.action == "promote", decision
    promoted = world.local.get_deployment("churn-prod")
    assert promoted.state is DeploymentState.PROMOTED
    assert [(r.name, r.version, r.weight) for r in promoted.routes] == [("stable", 2, 100.0)]
    assert world.local.resolve_model_alias("churn", "champion") == 2  # in the same write
    model_server.release_lease("deployment:churn-prod", controller.holder)
    shown = run_shipyard("deploy", "history", "churn-prod", "--json")
    assert shown.returncode == 0, shown.stderr
    history = [(e["actor"], e["action"]) for e in json.loads(shown.stdout)]
    assert history == [("bob", "create"), ("bob", "canary.start"), ("bob", "promote")]
    assert json.loads(shown.stdout)[1]["reason"] == "try 2"
