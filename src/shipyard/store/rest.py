"""``RestBackend``: the client's :class:`~shipyard.store.Backend` over a Shipyard server.

Selected by ``SHIPYARD_SERVER=http://host:5000`` (with ``SHIPYARD_TOKEN`` when the server
runs ``--auth``): the Python API and the CLI then log to the server instead of opening the
database. The server decides who the caller is (from the token) and checks every rule; the
client's own checks are only early warnings.

It carries the whole protocol a client needs: experiments, runs, params, tags, metrics (the
write-ahead journal's segments, applied at most once by the server as by the SQL store),
liveness, artifact records, search and the registry here; datasets, deployments, monitoring,
pipelines (with tuning and automation) and access (tokens, passwords) in the ``rest_*``
mixins beside it. What only the server may do with its own store (a password's hash, logged
models' internals) is not carried, and says so.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn

from shipyard.entities import (
    ArtifactRecord,
    AuditEntry,
    Experiment,
    JournalSegment,
    Metric,
    ModelVersion,
    RegisteredModel,
    ReviewState,
    Role,
    Run,
    RunOwner,
    RunStatus,
    User,
)
from shipyard.errors import (
    AlreadyExistsError,
    AuthenticationError,
    ConflictError,
    FilterSyntaxError,
    InvalidArgumentError,
    NotFoundError,
    ParamConflictError,
    PermissionDeniedError,
    ShipyardError,
    StoreError,
)
from shipyard.store.rest_access import AccessClient
from shipyard.store.rest_data import DatasetClient
from shipyard.store.rest_deploy import DeploymentClient
from shipyard.store.rest_monitoring import MonitoringClient
from shipyard.store.rest_pipelines import PipelineClient
from shipyard.store.wire import float_from_json, json_float

__all__ = ["RestBackend"]

_ERRORS: dict[str, type[ShipyardError]] = {
    "not_found": NotFoundError,
    "already_exists": AlreadyExistsError,
    "conflict": ConflictError,
    "permission_denied": PermissionDeniedError,
    "unauthenticated": AuthenticationError,
    "invalid_argument": InvalidArgumentError,
    "invalid_request": InvalidArgumentError,
    "param_conflict": ParamConflictError,
}
_PAGE = 1000
_HISTORY_PAGE = 20_000


def _run(data: Mapping[str, Any]) -> Run:
    return Run(
        run_id=data["run_id"],
        experiment_id=data["experiment_id"],
        name=data["name"],
        status=RunStatus(data["status"]),
        start_time=data["start_time"],
        end_time=data.get("end_time"),
        parent_run_id=data.get("parent_run_id"),
        user=data.get("user", ""),
        params=dict(data.get("params", {})),
        metrics={k: float_from_json(v) for k, v in data.get("metrics", {}).items()},
        tags=dict(data.get("tags", {})),
        owner=None if data.get("owner") is None else RunOwner(**data["owner"]),
        heartbeat=data.get("heartbeat"),
        deleted_at=data.get("deleted_at"),
    )


def _experiment(data: Mapping[str, Any]) -> Experiment:
    return Experiment(
        experiment_id=data["experiment_id"],
        name=data["name"],
        created_at=data["created_at"],
        description=data.get("description", ""),
        deleted_at=data.get("deleted_at"),
    )


def _owner(owner: RunOwner | None) -> dict[str, Any] | None:
    if owner is None:
        return None
    return {"host": owner.host, "pid": owner.pid, "process_start": owner.process_start}


def _model(data: Mapping[str, Any]) -> RegisteredModel:
    return RegisteredModel(
        name=data["name"],
        created_at=data["created_at"],
        created_by=data["created_by"],
        description=data.get("description", ""),
        governed=data.get("governed", False),
        aliases={k: int(v) for k, v in data.get("aliases", {}).items()},
        tags=dict(data.get("tags", {})),
    )


def _version(data: Mapping[str, Any]) -> ModelVersion:
    return ModelVersion(
        model=data["model"],
        version=data["version"],
        digest=data["digest"],
        flavor=data["flavor"],
        created_at=data["created_at"],
        created_by=data["created_by"],
        run_id=data.get("run_id"),
        source=data.get("source", ""),
        description=data.get("description", ""),
        review=ReviewState(data.get("review", "none")),
        tags=dict(data.get("tags", {})),
        aliases=tuple(data.get("aliases", ())),
    )


_REVIEW_ACTIONS = {
    ReviewState.REQUESTED: "request-review",
    ReviewState.APPROVED: "approve",
    ReviewState.REJECTED: "reject",
}


class RestBackend(AccessClient, DatasetClient, DeploymentClient, MonitoringClient, PipelineClient):
    """The store behind a Shipyard server.

    Args:
        url: the server, e.g. ``http://127.0.0.1:5000``.
        token: an API token (``shipyard token create``) for a server with ``--auth``.
        timeout: seconds to wait for each answer.
        transport: an httpx transport (tests pass one that calls an app in-process).

    Raises:
        StoreError: the server does not answer ``/health``.
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        timeout: float = 60.0,
        transport: Any = None,
    ) -> None:
        import httpx

        self._base = url.rstrip("/")
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(
            base_url=self._base, headers=headers, timeout=timeout, transport=transport
        )
        try:
            self._call("GET", "/health")
        except BaseException:
            self._http.close()
            raise

    @property
    def url(self) -> str:
        return self._base

    def close(self) -> None:
        self._http.close()

    def _call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Any:
        import httpx

        wait: Any = httpx.USE_CLIENT_DEFAULT if timeout is None else timeout
        try:
            response = self._http.request(method, path, json=json, params=params, timeout=wait)
        except httpx.TransportError as exc:
            raise StoreError(f"cannot reach the Shipyard server at {self._base}: {exc}") from None
        if response.status_code >= 300:  # a redirect is no answer: the path was wrong
            _raise(response)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def _api(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._call(method, f"/api/v1{path}", **kwargs)

    def __getattr__(self, name: str) -> Callable[..., NoReturn]:
        if name.startswith("_"):
            raise AttributeError(name)

        def unavailable(*args: Any, **kwargs: Any) -> NoReturn:
            raise StoreError(
                f"{name} is not available through a Shipyard server: unset "
                "SHIPYARD_SERVER and open the store directly for it"
            )

        return unavailable

    # experiments -------------------------------------------------------------------------

    def create_experiment(self, name: str, description: str = "") -> Experiment:
        body = {"name": name, "description": description}
        return _experiment(self._api("POST", "/experiments", json=body))

    def get_experiment(self, experiment_id: int) -> Experiment:
        return _experiment(self._api("GET", f"/experiments/{experiment_id}"))

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        found = self._api("GET", "/experiments", params={"name": name})["items"]
        return _experiment(found[0]) if found else None

    def get_or_create_experiment(self, name: str) -> Experiment:
        found = self.get_experiment_by_name(name)
        if found is not None:
            return found
        try:
            return self.create_experiment(name)
        except AlreadyExistsError:  # another client made it meanwhile
            again = self.get_experiment_by_name(name)
            if again is None:  # pragma: no cover - deleted between the two calls
                raise
            return again

    def list_experiments(self) -> list[Experiment]:
        return [_experiment(e) for e in self._pages("/experiments")]

    def _pages(self, path: str, **params: Any) -> list[Any]:
        items: list[Any] = []
        token = None
        while True:
            query = {**params, "limit": _PAGE, **({"page_token": token} if token else {})}
            page = self._api("GET", path, params=query)
            items.extend(page["items"])
            token = page.get("next_page_token")
            if not token:
                return items

    # runs --------------------------------------------------------------------------------

    def create_run(
        self,
        experiment_id: int,
        *,
        name: str,
        user: str,
        start_time: int,
        parent_run_id: str | None = None,
        tags: Mapping[str, str] | None = None,
        owner: RunOwner | None = None,
    ) -> Run:
        # ``user`` is the server's to decide: the caller its token names.
        body = {
            "experiment_id": experiment_id,
            "name": name,
            "start_time": start_time,
            "parent_run_id": parent_run_id,
            "tags": dict(tags or {}),
            "owner": _owner(owner),
        }
        return _run(self._api("POST", "/runs", json=body))

    def end_run(
        self, run_id: str, status: RunStatus, end_time: int, *, only_active: bool = False
    ) -> None:
        body = {"status": status.value, "end_time": end_time, "only_active": only_active}
        self._api("POST", f"/runs/{run_id}/end", json=body)

    def reopen_run(
        self, run_id: str, *, owner: RunOwner | None = None, now: int | None = None
    ) -> Run:
        return _run(self._api("POST", f"/runs/{run_id}/reopen", json=_owner(owner)))

    def log_journal(self, segments: Sequence[JournalSegment]) -> int:
        if not segments:
            return 0
        body = {
            "segments": [
                {
                    "journal_id": s.journal_id,
                    "run_id": s.run_id,
                    "segment": s.segment,
                    "metrics": [(k, json_float(v), step, ts) for k, v, step, ts in s.metrics],
                }
                for s in segments
            ]
        }
        return int(self._api("POST", "/journal", json=body)["new"])

    def applied_segment(self, journal_id: str) -> int:
        return int(self._api("GET", f"/journal/{journal_id}")["segment"])

    def heartbeat(self, run_ids: Sequence[str], owner: RunOwner, now: int) -> int:
        body = {"run_ids": list(run_ids), "owner": _owner(owner), "now": now}
        return int(self._api("POST", "/heartbeat", json=body)["runs"])

    def watched_runs(self) -> list[tuple[str, RunOwner, int]]:
        return [
            (w["run_id"], RunOwner(**w["owner"]), int(w["heartbeat"]))
            for w in self._api("GET", "/watched-runs")
        ]

    def mark_run_crashed(self, run_id: str, *, heartbeat: int | None, now: int) -> int | None:
        body = {"heartbeat": heartbeat, "now": now}
        end = self._api("POST", f"/runs/{run_id}/crashed", json=body)["end_time"]
        return None if end is None else int(end)

    def latest_metrics(self, run_ids: Sequence[str]) -> dict[str, list[Metric]]:
        found: dict[str, list[Metric]] = {}
        ids = list(run_ids)
        for start in range(0, len(ids), 10_000):
            page = self._api(
                "POST", "/runs/latest-metrics", json={"run_ids": ids[start : start + 10_000]}
            )
            for run_id, metrics in page.items():
                found[run_id] = [
                    Metric(m["key"], float_from_json(m["value"]), m["step"], m["timestamp"], run_id)
                    for m in metrics
                ]
        return found

    def set_run_deleted(self, run_id: str, deleted: bool) -> None:
        if deleted:
            self._api("DELETE", f"/runs/{run_id}")
        else:
            self._api("POST", f"/runs/{run_id}/restore")

    def set_experiment_deleted(self, experiment_id: int, deleted: bool) -> None:
        if deleted:
            self._api("DELETE", f"/experiments/{experiment_id}")
        else:
            self._api("POST", f"/experiments/{experiment_id}/restore")

    def rename_experiment(self, experiment_id: int, name: str) -> None:
        self._api("PATCH", f"/experiments/{experiment_id}", json={"name": name})

    def delete_tag(self, run_id: str, key: str) -> None:
        self._api("DELETE", f"/runs/{run_id}/tags/{key}")

    def latest_steps(self, run_id: str) -> dict[str, int]:
        return {k: int(v) for k, v in self._api("GET", f"/runs/{run_id}/latest-steps").items()}

    def get_run(self, run_id: str) -> Run:
        return _run(self._api("GET", f"/runs/{run_id}"))

    def resolve_run_id(self, prefix: str) -> str:
        return str(self._api("GET", f"/runs/{prefix}")["run_id"])

    def log_params(self, run_id: str, params: Mapping[str, str]) -> None:
        if params:
            self._api("POST", f"/runs/{run_id}/params", json={"params": dict(params)})

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        if tags:
            self._api("POST", f"/runs/{run_id}/tags", json={"tags": dict(tags)})

    def log_metrics(self, metrics: Sequence[Metric]) -> None:
        by_run: dict[str, list[dict[str, Any]]] = {}
        for m in metrics:
            by_run.setdefault(m.run_id, []).append(
                {
                    "key": m.key,
                    "value": json_float(m.value),
                    "step": m.step,
                    "timestamp": m.timestamp,
                }
            )
        for run_id, batch in by_run.items():
            for start in range(0, len(batch), _PAGE):
                chunk = batch[start : start + _PAGE]
                self._api("POST", f"/runs/{run_id}/metrics", json={"metrics": chunk})

    def get_metric_history(
        self, run_id: str, key: str, *, offset: int = 0, limit: int | None = None
    ) -> list[Metric]:
        found: list[Metric] = []
        token = f"o{offset}" if offset else None
        while limit is None or len(found) < limit:
            want = _HISTORY_PAGE if limit is None else min(_HISTORY_PAGE, limit - len(found))
            query = {"limit": want, **({"page_token": token} if token else {})}
            page = self._api("GET", f"/runs/{run_id}/metrics/{key}", params=query)
            found.extend(
                Metric(m["key"], float_from_json(m["value"]), m["step"], m["timestamp"], run_id)
                for m in page["items"]
            )
            token = page.get("next_page_token")
            if not token:
                break
        return found

    def log_artifacts(self, run_id: str, records: Sequence[ArtifactRecord]) -> None:
        if records:
            body = {
                "artifacts": [
                    {
                        "path": r.path,
                        "digest": r.digest,
                        "size": r.size,
                        "is_dir": r.is_dir,
                        "file_count": r.file_count,
                    }
                    for r in records
                ]
            }
            self._api("POST", f"/runs/{run_id}/artifacts", json=body)

    def list_artifacts(self, run_id: str) -> list[ArtifactRecord]:
        return [
            ArtifactRecord(a["path"], a["digest"], a["size"], a["is_dir"], a["file_count"])
            for a in self._api("GET", f"/runs/{run_id}/artifacts")
        ]

    # registry: the server applies the rules again, as the token's user ---------------------

    @staticmethod
    def _name(value: str) -> str:
        """``value`` as one segment of a URL path: a user named ``eve#x`` or ``bob/../eve`` is
        not ``eve``, and one named ``.`` is not the list of users."""
        from urllib.parse import quote

        segment = quote(value, safe="")
        return segment.replace(".", "%2E") if segment in (".", "..") else segment

    def create_registered_model(
        self, name: str, *, actor: str, description: str = ""
    ) -> RegisteredModel:
        body = {"name": name, "description": description}
        return _model(self._api("POST", "/models", json=body))

    def get_registered_model(self, name: str) -> RegisteredModel:
        return _model(self._api("GET", f"/models/{self._name(name)}"))

    def list_registered_models(self) -> list[RegisteredModel]:
        return [_model(m) for m in self._api("GET", "/models")]

    def set_model_governed(self, name: str, governed: bool, *, actor: str) -> None:
        self._api("PUT", f"/models/{self._name(name)}/governed", json={"governed": governed})

    def create_model_version(
        self,
        name: str,
        *,
        digest: str,
        flavor: str,
        actor: str,
        run_id: str | None = None,
        source: str = "",
        description: str = "",
    ) -> ModelVersion:
        body = {
            "digest": digest,
            "flavor": flavor,
            "run_id": run_id,
            "source": source,
            "description": description,
        }
        return _version(self._api("POST", f"/models/{self._name(name)}/versions", json=body))

    def get_model_version(self, name: str, version: int) -> ModelVersion:
        return _version(self._api("GET", f"/models/{self._name(name)}/versions/{version}"))

    def list_model_versions(self, name: str) -> list[ModelVersion]:
        return [_version(v) for v in self._pages(f"/models/{self._name(name)}/versions")]

    def latest_model_version(self, name: str) -> int:
        return int(self._api("GET", f"/models/{self._name(name)}/versions/latest")["version"])

    def resolve_model_alias(self, name: str, alias: str) -> int:
        path = f"/models/{self._name(name)}/versions/{self._name(alias)}"
        return int(self._api("GET", path)["version"])

    def set_review_state(
        self,
        name: str,
        version: int,
        state: ReviewState,
        *,
        actor: str,
        comment: str = "",
        expected: ReviewState | None = None,
    ) -> None:
        action = _REVIEW_ACTIONS.get(state)
        if action is None:
            raise InvalidArgumentError(f"a review cannot be set to {state.value} over a server")
        path = f"/models/{self._name(name)}/versions/{version}/{action}"
        self._api("POST", path, json={"comment": comment})

    def set_model_alias(
        self,
        name: str,
        alias: str,
        version: int,
        *,
        actor: str,
        require_approved: bool = False,
    ) -> None:
        path = f"/models/{self._name(name)}/aliases/{self._name(alias)}"
        self._api("PUT", path, json={"version": str(version)})

    def delete_model_alias(self, name: str, alias: str, *, actor: str) -> None:
        self._api("DELETE", f"/models/{self._name(name)}/aliases/{self._name(alias)}")

    def set_user(self, name: str, role: Role, *, actor: str) -> None:
        self._api("PUT", f"/users/{self._name(name)}", json={"role": role.value})

    def get_user(self, name: str) -> User | None:
        try:
            found = self._api("GET", f"/users/{self._name(name)}")
        except NotFoundError:
            return None
        return User(found["name"], Role(found["role"]), found["created_at"])

    def list_users(self) -> list[User]:
        return [
            User(u["name"], Role(u["role"]), u["created_at"]) for u in self._api("GET", "/users")
        ]

    def verify_audit(self) -> list[str]:
        return [str(p) for p in self._api("GET", "/audit/verify")["problems"]]

    def set_model_tag(self, name: str, version: int, key: str, value: str, *, actor: str) -> None:
        where = f"/models/{self._name(name)}" + (f"/versions/{version}" if version else "")
        self._api("PUT", f"{where}/tags/{self._name(key)}", json={"value": value})

    def model_versions_of_runs(self, run_ids: Sequence[str]) -> list[tuple[str, int, str]]:
        if not run_ids:
            return []
        found = self._api("POST", "/models/versions/of-runs", json={"run_ids": list(run_ids)})
        return [(v["model"], int(v["version"]), v["run_id"]) for v in found]

    def list_audit(
        self, *, limit: int = 100, target: str | None = None, before: int | None = None
    ) -> list[AuditEntry]:
        params: dict[str, Any] = {"limit": limit}
        if target is not None:
            params["target"] = target
        if before is not None:
            params["before"] = before
        return [
            AuditEntry(
                seq=e["seq"],
                at=e["at"],
                actor=e["actor"],
                action=e["action"],
                target=e["target"],
                details=e["details"],
                prev_hash=e.get("prev_hash", ""),
                hash=e["hash"],
            )
            for e in self._api("GET", "/audit", params=params)
        ]

    def search_runs(
        self,
        experiment_ids: Sequence[int],
        filter_string: str = "",
        order_by: Sequence[str] = (),
        max_results: int = 1000,
        offset: int = 0,
        lifecycle: str = "active",
    ) -> list[Run]:
        runs: list[Run] = []
        while len(runs) < max_results:
            want = min(_PAGE, max_results - len(runs))
            body = {
                "experiment_ids": list(experiment_ids),
                "filter": filter_string,
                "order_by": list(order_by),
                "max_results": want,
                "offset": offset + len(runs),
                "lifecycle": lifecycle,
            }
            page = self._api("POST", "/runs/search", json=body)
            runs.extend(_run(r) for r in page["items"])
            if not page.get("next_page_token"):
                break
        return runs


def _raise(response: Any) -> NoReturn:
    try:
        body = response.json()
        code, message = str(body.get("code", "")), str(body.get("message", ""))
    except ValueError:
        body, code, message = {}, "", response.text[:300]
    if code == "filter_syntax":
        first = message.split("\n", 1)[0]
        raise FilterSyntaxError(first, str(body.get("text", "")), int(body.get("position", 0)))
    kind = _ERRORS.get(code)
    if kind is None:
        raise StoreError(f"the Shipyard server answered {response.status_code}: {message}")
    raise kind(message)
