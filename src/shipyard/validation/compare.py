"""Candidate against champion on the same rows, with a paired bootstrap confidence interval.

Each resample draws row positions with replacement; both models are scored on the *same*
positions and the difference (candidate minus champion) is kept. The percentile interval of
those differences is the confidence interval. "Better" means the whole interval lies on the
better side of 0, so a difference that resampling noise could explain is "no difference".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shipyard.entities.validation import ChampionComparison
from shipyard.validation.metrics import higher_is_better, resampled_scores

if TYPE_CHECKING:
    import numpy as np

__all__ = ["CONFIDENCE", "RESAMPLES", "paired_bootstrap"]

RESAMPLES = 1000
CONFIDENCE = 0.95
_CELLS_PER_CHUNK = 4_000_000
"""Resamples are drawn in chunks so that memory stays bounded on large tables."""


def paired_bootstrap(
    metric: str,
    y: np.ndarray[Any, Any],
    candidate: tuple[np.ndarray[Any, Any], np.ndarray[Any, Any] | None],
    champion: tuple[np.ndarray[Any, Any], np.ndarray[Any, Any] | None],
    classes: np.ndarray[Any, Any] | None,
    *,
    seed: int,
    against: str,
    candidate_value: float,
    champion_value: float,
    champion_metrics: dict[str, float],
    resamples: int = RESAMPLES,
    confidence: float = CONFIDENCE,
) -> ChampionComparison:
    """Compare two models' ``metric`` on the rows of ``y``.

    Args:
        candidate: the candidate's predictions and probabilities (or None).
        champion: the same for the champion.
        candidate_value: the metric on all rows (the point estimate) for the candidate.
        champion_value: the same for the champion.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    n = len(y)
    chunk = max(1, _CELLS_PER_CHUNK // max(n, 1))
    differences = []
    for start in range(0, resamples, chunk):
        indices = rng.integers(0, n, size=(min(chunk, resamples - start), n))
        ours = resampled_scores(metric, y, candidate[0], candidate[1], classes, indices)
        theirs = resampled_scores(metric, y, champion[0], champion[1], classes, indices)
        differences.append(ours - theirs)
    diffs = np.concatenate(differences)
    diffs = diffs[~np.isnan(diffs)]
    tail = (1 - confidence) / 2 * 100
    if len(diffs):
        low, high = (float(v) for v in np.percentile(diffs, [tail, 100 - tail]))
    else:
        low = high = float("nan")
    up = higher_is_better(metric)
    if low > 0:
        verdict = "better" if up else "worse"
    elif high < 0:
        verdict = "worse" if up else "better"
    else:
        verdict = "no difference"
    return ChampionComparison(
        against=against,
        metric=metric,
        higher_is_better=up,
        candidate=candidate_value,
        champion=champion_value,
        difference=candidate_value - champion_value,
        ci_low=low,
        ci_high=high,
        confidence=confidence,
        resamples=len(diffs),
        verdict=verdict,
        champion_metrics=champion_metrics,
    )
