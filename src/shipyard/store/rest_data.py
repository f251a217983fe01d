"""Datasets through a Shipyard server: the part of :class:`~shipyard.store.rest.RestBackend`
that records and reads dataset versions (``/api/v1/datasets``). The bytes travel separately,
through the artifact store (``/api/v1/objects``), before a version names them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from shipyard.entities import Dataset, DatasetProfile, DatasetVersion

__all__ = ["DatasetClient"]

_GC_TIMEOUT = 3600.0
"""Seconds to wait for a server's garbage collection."""


def _version(data: Mapping[str, Any]) -> DatasetVersion:
    profile = data.get("profile")
    return DatasetVersion(
        dataset=data["dataset"],
        version=int(data["version"]),
        digest=data["digest"],
        size=int(data["size"]),
        file_count=int(data["file_count"]),
        kind=data["kind"],
        format=data["format"],
        created_at=int(data["created_at"]),
        created_by=data.get("created_by", ""),
        run_id=data.get("run_id"),
        source=data.get("source", ""),
        profile=None if profile is None else DatasetProfile.from_dict(profile),
    )


class DatasetClient:
    """Dataset methods of the ``Backend`` protocol over HTTP (mixed into ``RestBackend``)."""

    def _api(self, method: str, path: str, **kwargs: Any) -> Any:  # pragma: no cover
        raise NotImplementedError  # RestBackend's

    def add_dataset_version(
        self,
        name: str,
        *,
        digest: str,
        size: int,
        file_count: int,
        kind: str,
        format: str,
        created_at: int,
        created_by: str,
        source: str = "",
        profile: DatasetProfile | None = None,
        run_id: str | None = None,
    ) -> tuple[DatasetVersion, bool]:
        # The server decides when and by whom (``created_at``, ``created_by``).
        body = {
            "digest": digest,
            "size": size,
            "file_count": file_count,
            "kind": kind,
            "format": format,
            "source": source,
            "run_id": run_id,
            "profile": None if profile is None else profile.to_json_dict(),
        }
        added = self._api("POST", f"/datasets/{name}/versions", json=body)
        return _version(added["version"]), bool(added["created"])

    def get_dataset_version(self, name: str, ref: str = "latest") -> DatasetVersion:
        return _version(self._api("GET", f"/datasets/{name}/versions/{ref.strip() or 'latest'}"))

    def list_datasets(self) -> list[Dataset]:
        return [
            Dataset(0, d["name"], int(d["created_at"]), d.get("description", ""))
            for d in self._api("GET", "/datasets")
        ]

    def list_dataset_versions(
        self, name: str, *, with_profiles: bool = False
    ) -> list[DatasetVersion]:
        params = {"with_profiles": "true" if with_profiles else "false"}
        return [_version(v) for v in self._api("GET", f"/datasets/{name}/versions", params=params)]

    def referenced_digests(
        self, *, keep_last: int | None = None, since_ms: int | None = None
    ) -> set[str]:
        params = {
            k: v for k, v in (("keep_last", keep_last), ("since_ms", since_ms)) if v is not None
        }
        return set(self._api("GET", "/gc/roots", params=params)["digests"])

    def collect_garbage_on_server(
        self,
        *,
        keep: Sequence[str],
        keep_last: int | None,
        older_than: float,
        dry_run: bool,
        repack: bool,
    ) -> dict[str, Any]:
        """``shipyard gc`` run by the server in its own store (admins only); ``keep``: digests
        that the caller's pointer files name, kept as well. Returns the report's fields
        (:class:`~shipyard.artifacts.gc.GcReport`)."""
        body = {
            "keep": list(keep),
            "keep_last": keep_last,
            "older_than_s": older_than,
            "dry_run": dry_run,
            "repack": repack,
        }
        # a large store takes a while to walk and repack: wait for it, not the usual minute
        report: dict[str, Any] = self._api("POST", "/gc", json=body, timeout=_GC_TIMEOUT)
        return report

    def record_dataset_use(self, run_id: str, name: str, version: int, role: str) -> None:
        body = {"dataset": name, "version": version, "role": role}
        self._api("POST", f"/runs/{run_id}/datasets", json=body)

    def dataset_users(self, name: str, version: int) -> list[tuple[str, str]]:
        found = self._api("GET", f"/datasets/{name}/versions/{version}/runs")
        return [(u["run_id"], u["role"]) for u in found]

    def run_dataset_versions(
        self, run_ids: Sequence[str], role: str
    ) -> list[tuple[str, DatasetVersion]]:
        if not run_ids:
            return []
        found = self._api("POST", "/runs/datasets", json={"run_ids": list(run_ids), "role": role})
        return [(r["run_id"], _version(r["version"])) for r in found]
