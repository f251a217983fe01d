"""A/B tests: the report's error rates by simulation, sticky assignment, and a whole test on a
served deployment with labels sent to /feedback."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

import shipyard
from shipyard.deploy.ab import AbSpec, VariantCounts, ab_report, parse_variant, sticky_point
from shipyard.deploy.service import Deployments
from shipyard.entities import DeploymentState
from shipyard.errors import InvalidArgumentError
from tests._cli import run_shipyard
from tests.deploy._models import register
from tests.deploy.test_rollout_server import workspace  # noqa: F401 - a fixture
from tests.serving.conftest import serve

SPEC = AbSpec(alpha=0.05, min_samples=2000)


def _simulate(rng: np.random.Generator, rates: tuple[float, float], n: int = 2000) -> str | None:
    counts = []
    for name, rate in zip("ab", rates, strict=True):
        correct = int(rng.binomial(n, rate))
        counts.append(VariantCounts(name, 50, 2 * n + int(rng.integers(-60, 60)), n, correct))
    return ab_report(counts, SPEC).winner


def test_a_planted_difference_finds_the_right_winner() -> None:
    rng = np.random.default_rng(1)
    winners = [_simulate(rng, (0.80, 0.84)) for _ in range(200)]
    right = winners.count("b") / len(winners)
    print(
        f"planted +4 points: b named winner in {right:.3f} of 200 tests, a in {winners.count('a')}"
    )
    assert right >= 0.9 and winners.count("a") == 0


def test_with_no_difference_false_winners_come_up_near_alpha() -> None:
    rng = np.random.default_rng(2)
    winners = [_simulate(rng, (0.8, 0.8)) for _ in range(1000)]
    false_rate = sum(w is not None for w in winners) / len(winners)
    print(f"no difference: a false winner in {false_rate:.3f} of 1000 tests (alpha 0.05)")
    assert 0.025 <= false_rate <= 0.075


def test_a_broken_split_is_flagged_and_blocks_a_conclusion() -> None:
    counts = [
        VariantCounts("a", 50, 5400, 2500, 2000),  # 54 / 46 instead of 50 / 50
        VariantCounts("b", 50, 4600, 2500, 2200),
    ]
    report = ab_report(counts, SPEC)
    assert report.srm and report.srm_p_value is not None and report.srm_p_value < 0.001
    assert report.winner is None and not report.ready
    assert "sample-ratio mismatch" in report.verdict
    fine = ab_report([VariantCounts("a", 50, 4650, 2500, 2000), counts[1]], SPEC)
    assert not fine.srm and fine.winner == "b"


def test_assignment_is_sticky_and_follows_the_weights() -> None:
    points = [sticky_point("churn-prod", f"user-{i}") for i in range(20000)]
    assert points[:50] == [sticky_point("churn-prod", f"user-{i}") for i in range(50)]
    below = sum(p < 30 for p in points) / len(points)
    assert 0.28 < below < 0.32  # a 30 % variant gets about 30 % of the users
    assert sticky_point("other", "user-1") != sticky_point("churn-prod", "user-1")


def test_bad_variants_are_refused() -> None:
    assert parse_variant("a=churn@3:50") == ("a", "churn@3", 50.0)
    for bad in ("a=churn@3", "churn@3:50", "a=churn@3:x", "a=:50", "a=churn@3:-5"):
        with pytest.raises(InvalidArgumentError, match="invalid --variant"):
            parse_variant(bad)
    with pytest.raises(InvalidArgumentError, match="sticky-key"):
        AbSpec(sticky_key="cookie:id")


@pytest.mark.integration
def test_an_ab_test_on_a_served_deployment_is_concluded_with_its_winner(
    workspace: Path,  # noqa: F811
) -> None:
    register(workspace, "score", cut=0.5)  # right: the label is score > 0.5
    register(workspace, "score", cut=0.7)  # wrong for scores between 0.5 and 0.7
    backend = shipyard.open_workspace().backend
    deploy = Deployments(backend, "alice")
    deploy.create("score-prod", "score@1")
    refused = run_shipyard(
        "deploy", "ab", "score-prod", "--variant", "a=score@1:50", "--variant", "b=score@2:40"
    )
    assert refused.returncode == 2 and "add up to 90" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert deploy.get("score-prod").state is DeploymentState.STABLE
    started = run_shipyard(
        "deploy", "ab", "score-prod", "--variant", "a=score@1:50", "--variant", "b=score@2:50",
        "--sticky-key", "header:x-user-id", "--metric", "accuracy", "--min-samples", "100",
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    client = serve(refs=[], deployment="score-prod", trusted_code=True, log_flush_seconds=0.05)
    rng = np.random.default_rng(4)
    seen: dict[str, set[str]] = {}
    try:
        for i in range(600):
            user = f"user-{i % 300}"
            score = float(rng.random())
            answer = client.post(
                "/v2/models/score/infer",
                json={"inputs": [{"name": "score", "shape": [1], "datatype": "FP64",
                                  "data": [score]}]},
                headers={"x-user-id": user},
            )  # fmt: skip
            assert answer.status_code == 200
            seen.setdefault(user, set()).add(answer.json()["model_version"])
            feedback = client.post(
                "/feedback",
                json={"request_id": answer.headers["x-request-id"], "label": int(score > 0.5)},
            )
            assert feedback.status_code == 200
        missing = client.post(  # no sticky key: served at random, never a 500
            "/v2/models/score/infer",
            json={"inputs": [{"name": "score", "shape": [1], "datatype": "FP64", "data": [0.4]}]},
        )
        assert missing.status_code == 200
        time.sleep(0.3)
        assert client.server.routes is not None
        client.server.routes.flush()
    finally:
        client.close()
    assert all(len(versions) == 1 for versions in seen.values())  # one user, one variant
    status = run_shipyard("deploy", "ab-report", "score-prod", "--json")
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    by_name = {v["name"]: v for v in report["variants"]}
    assert by_name["a"]["metric"] == 1.0 and by_name["b"]["metric"] < 0.9
    assert report["winner"] == "a" and not report["srm"]
    concluded = run_shipyard("deploy", "conclude", "score-prod")
    assert concluded.returncode == 0, concluded.stderr
    after = deploy.get("score-prod")
    assert after.state is DeploymentState.CONCLUDED
    assert [(r.name, r.version, r.weight) for r in after.routes] == [("stable", 1, 100.0)]
    assert deploy.history("score-prod")[-1].details["report"]["winner"] == "a"


def _sticky_test(rng: np.random.Generator, users: int = 2000) -> tuple[str | None, float | None]:
    """Users of very different activity (a few send most requests) and accuracy, split 50/50
    by key, with no difference between the variants: (winner, sample-ratio p-value)."""
    counts = []
    n_a = int(rng.binomial(2 * users, 0.5))
    for name, n_users in (("a", n_a), ("b", 2 * users - n_a)):
        rows = np.minimum(rng.pareto(1.2, n_users) * 3 + 1, 2000).astype(int)
        skill = rng.beta(8, 2, n_users)  # each user's own accuracy
        right = rng.binomial(rows, skill)
        total, correct = int(rows.sum()), int(right.sum())
        values = tuple((right / rows).tolist())
        counts.append(VariantCounts(name, 50, total, total, correct, n_users, values))
    report = ab_report(counts, AbSpec(sticky_key="header:x-user-id", min_samples=100))
    return report.winner, report.srm_p_value


def test_a_sticky_test_counts_users_not_rows() -> None:
    """Heavy users make rows dependent: counted by unit, false winners stay near alpha and the
    split is not flagged; counted by row (the naive way), both would be far off."""
    rng = np.random.default_rng(6)
    results = [_sticky_test(rng) for _ in range(400)]
    false_rate = sum(w is not None for w, _ in results) / len(results)
    flagged = sum(p is not None and p < 0.001 for _, p in results) / len(results)
    print(f"sticky, no difference: false winner {false_rate:.3f}, split flagged {flagged:.3f}")
    assert false_rate <= 0.08
    assert flagged <= 0.01
