"""Which artifact-store objects the metadata store refers to: the roots of garbage collection.

Digests are read from the columns that hold one (dataset, model and logged-model files, run
artifacts, step logs) and found by pattern in the JSON and text columns that can carry one
(step outputs and the step cache, automation gate reports, deployment details, run and model
tags, params). Erring on the side of keeping: anything there that looks like a digest is a root.
The audit log, tokens and users are not read: they record history and secrets, not data.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

import sqlalchemy as sa

from shipyard.store.sql.engine import read
from shipyard.store.sql.schema import (
    artifacts,
    automation_events,
    automation_log,
    dataset_versions,
    deployment_events,
    deployments,
    logged_model_files,
    model_tags,
    model_versions,
    params,
    step_cache,
    step_runs,
    tags,
)

__all__ = ["ReferenceMethods"]

_DIGEST = re.compile(r"(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])")

_DIGEST_COLUMNS = (
    artifacts.c.digest,
    model_versions.c.digest,
    logged_model_files.c.digest,
    step_runs.c.logs_digest,
)
_TEXT_COLUMNS = (
    step_runs.c.outputs,
    step_cache.c.outputs,
    automation_events.c.gate,
    automation_events.c.rollout,
    automation_events.c.details,
    automation_log.c.details,
    deployments.c.spec,
    deployment_events.c.details,
    tags.c.value,
    model_tags.c.value,
    params.c.value,
)


class ReferenceMethods:
    """Needs ``self._engine``."""

    _engine: sa.Engine

    def referenced_digests(
        self, *, keep_last: int | None = None, since_ms: int | None = None
    ) -> set[str]:
        """Every digest the metadata refers to.

        Args:
            keep_last: count only the newest ``keep_last`` versions of each dataset (and any
                version created at or after ``since_ms``); None counts every version.
            since_ms: with ``keep_last``, versions this recent are kept whatever their rank.
        """
        found: set[str] = set()
        with read(self._engine) as conn:
            for column in _DIGEST_COLUMNS:
                query = sa.select(column).where(column.is_not(None)).distinct()
                found.update(str(value) for (value,) in conn.execute(query))
            for column in _TEXT_COLUMNS:
                text: Any = sa.cast(column, sa.Text)
                query = sa.select(text).where(sa.func.length(text) >= 64)
                for (value,) in conn.execute(query):
                    found.update(_DIGEST.findall(str(value)))
            rows = conn.execute(
                sa.select(
                    dataset_versions.c.dataset_id,
                    dataset_versions.c.version,
                    dataset_versions.c.digest,
                    dataset_versions.c.created_at,
                )
            ).all()
        by_dataset: dict[int, list[tuple[int, str, int]]] = defaultdict(list)
        for dataset_id, version, digest, created_at in rows:
            by_dataset[dataset_id].append((version, digest, created_at))
        for versions in by_dataset.values():
            versions.sort(reverse=True)
            for rank, (_, digest, created_at) in enumerate(versions):
                recent = since_ms is not None and created_at >= since_ms
                if keep_last is None or rank < keep_last or recent:
                    found.add(digest)
        return {d for d in found if _DIGEST.fullmatch(d)}
