"""Kubernetes on paper: the manifests and Dockerfile that run a deployment's model server.

Every function here returns text and writes nothing; the caller (``shipyard deploy manifest``)
decides where it goes. Each pod runs ``shipyard serve --deployment NAME``: the model server
reads the deployment's routes from the metadata store and follows them as Shipyard's rollout
controller moves them, so a canary step or a promotion needs no new manifest.

The metadata store's URL (which holds a password) never appears in the text: the pods read it
from a Kubernetes Secret the operator creates, named by :class:`ManifestOptions`.

Example:
    >>> options = ManifestOptions(secret_name="shipyard-store")
    >>> text = kubernetes_manifests(deployment, options)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from shipyard import __version__
from shipyard.entities import Deployment, RouteMode, Target
from shipyard.errors import InvalidArgumentError, ShipyardError

__all__ = [
    "DEFAULT_IMAGE",
    "TARGETS",
    "ManifestOptions",
    "dockerfile",
    "kserve_manifest",
    "kubernetes_manifests",
    "kubernetes_name",
    "manifest_files",
]

DEFAULT_IMAGE = f"shipyard-model-server:{__version__}"
"""The image :func:`dockerfile` describes, tagged with this Shipyard's version."""

TARGETS: tuple[str, ...] = ("kubernetes", "kserve")
"""What :func:`manifest_files` can write for."""

MAX_NAME_LENGTH = 63
KSERVE_MAX_NAME_LENGTH = 47
# Knative names each revision `<name>-predictor-00001`, and that must itself be a 63-character
# label: 63 - len("-predictor-00001") = 47.

USER_ID = 10001
"""The non-root user (and group) the server runs as, in the image and in the pods."""
WORKSPACE = "/var/lib/shipyard/.shipyard"
"""``SHIPYARD_HOME`` in the container: where the prediction log is written."""
STARTUP_SECONDS = 300
"""How long a pod may take to load its models before its liveness checks count."""

_LIVE_PATH = "/v2/health/live"
_READY_PATH = "/v2/health/ready"
_METRICS_PATH = "/metrics"
_ANNOTATION = "shipyard-mlops/"
_HASH_LENGTH = 6
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_EXTRA = re.compile(r"^[a-z0-9][-a-z0-9]*$")
# Inside a container the server must listen on the pod's address, not on loopback.
_ALL_INTERFACES = "0.0.0.0"  # noqa: S104


@dataclass(frozen=True, slots=True)
class ManifestOptions:
    """How the model server is packaged and sized on Kubernetes.

    Attributes:
        image: the model-server image (see :func:`dockerfile`).
        replicas: the fewest pods; the autoscaler owns the count between this and
            ``max_replicas`` (so the Deployment itself names no replica count).
        max_replicas: the most pods the autoscaler may run.
        target_cpu_percent: average CPU use, in percent of the request, that the autoscaler
            aims for (plain Kubernetes only; KServe chooses its own autoscaler).
        cpu_request / cpu_limit / memory_request / memory_limit: Kubernetes quantities
            (``500m``, ``2``, ``512Mi``, ``1Gi``); ``cpu_limit=None`` sets no CPU limit.
        port: the port the server listens on in the container (and the Service's port).
        secret_name: the Kubernetes Secret that holds the store URLs.
        store_url_key: its key holding the metadata store's SQLAlchemy URL
            (``SHIPYARD_STORE_URL``).
        artifacts_url_key: its key holding the artifact store's URL
            (``SHIPYARD_ARTIFACTS_URL``, such as ``s3://bucket/prefix``); ``None`` leaves it
            unset, for an image whose workspace already points at the artifacts.
        prediction_log_claim: a ReadWriteMany PersistentVolumeClaim mounted as the pods'
            workspace, so that the prediction log outlives the pods and monitoring can read
            it; ``None``: an ``emptyDir``, lost with the pod (plain Kubernetes only).
        base_image: the Python image the Dockerfile starts from.
        extras: the ``shipyard-mlops`` extras the Dockerfile installs.
    """

    image: str = DEFAULT_IMAGE
    replicas: int = 2
    max_replicas: int = 10
    target_cpu_percent: int = 70
    cpu_request: str = "500m"
    cpu_limit: str | None = "2"
    memory_request: str = "512Mi"
    memory_limit: str = "2Gi"
    port: int = 8080
    secret_name: str = "shipyard-store"  # noqa: S105 - the name of a Secret, not its value
    store_url_key: str = "store-url"
    artifacts_url_key: str | None = "artifacts-url"
    prediction_log_claim: str | None = None
    base_image: str = "python:3.11-slim"
    extras: tuple[str, ...] = ("serve", "sklearn", "onnx", "postgres")

    def __post_init__(self) -> None:
        _check_options(self)


def kubernetes_name(name: str, *, max_length: int = MAX_NAME_LENGTH) -> str:
    """The name Kubernetes objects for ``name`` get: a DNS-1123 label that starts with a letter.

    Letters are lower-cased and every run of other characters becomes one ``-``
    (``churn_model.v2`` -> ``churn-model-v2``). A name that starts with a digit gets a
    ``shipyard-`` prefix, since a Service's name must start with a letter (RFC 1035). A name
    longer than ``max_length`` is cut and ends with 6 hex digits of its digest, so that two long
    names that share a beginning do not become one.

    Args:
        name: a deployment's name.
        max_length: the longest name allowed (63 for most objects).

    Raises:
        InvalidArgumentError: ``name`` holds no ASCII letter or digit.
    """
    label = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    if not label:
        raise InvalidArgumentError(
            f"cannot name Kubernetes objects after {name!r}: a name needs at least one ASCII "
            "letter or digit (Kubernetes names are lower-case letters, digits and '-')"
        )
    if label[0].isdigit():
        label = f"shipyard-{label}"
    if len(label) > max_length:
        digest = hashlib.sha256(name.encode()).hexdigest()[:_HASH_LENGTH]
        label = f"{label[: max_length - _HASH_LENGTH - 1].rstrip('-')}-{digest}"
    return label


def kubernetes_manifests(deployment: Deployment, options: ManifestOptions) -> str:
    """A Deployment, a Service and a HorizontalPodAutoscaler for ``deployment``, as YAML.

    Args:
        deployment: an online deployment.
        options: image, sizes and the Secret holding the store URLs.

    Returns:
        One multi-document YAML text for ``kubectl apply -f``.

    Raises:
        InvalidArgumentError: the deployment is not online, or its name gives no valid
            Kubernetes name.
    """
    _require_online(deployment)
    name = kubernetes_name(deployment.name)
    documents = [
        _deployment_object(deployment, options, name),
        _service_object(deployment, options, name),
        _autoscaler_object(deployment, options, name),
    ]
    return _header(deployment) + _dump(documents)


def kserve_manifest(deployment: Deployment, options: ManifestOptions) -> str:
    """A KServe ``InferenceService`` whose predictor runs Shipyard's model server, as YAML.

    When the deployment has a live ``canary`` route, the predictor's ``canaryTrafficPercent``
    is set to its weight (rounded to a whole percent). That field splits traffic between the
    InferenceService's previous and new *revision*; it is KServe's own canary, driven by hand
    (edit and re-apply). The split between model versions is Shipyard's: every pod runs
    ``shipyard serve --deployment`` and follows the routes Shipyard's controller moves.

    Args:
        deployment: an online deployment.
        options: image, sizes and the Secret holding the store URLs.

    Raises:
        InvalidArgumentError: the deployment is not online, or its name gives no valid
            Kubernetes name.
    """
    _require_online(deployment)
    name = kubernetes_name(deployment.name, max_length=KSERVE_MAX_NAME_LENGTH)
    predictor: dict[str, Any] = {
        "minReplicas": options.replicas,
        "maxReplicas": options.max_replicas,
    }
    canary = _canary_percent(deployment)
    if canary is not None:
        predictor["canaryTrafficPercent"] = canary
    predictor["containers"] = [_kserve_container(deployment, options)]
    service = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": _metadata(deployment, name, _kserve_annotations(options)),
        "spec": {"predictor": predictor},
    }
    return _header(deployment) + _kserve_note(canary) + _dump([service])


def dockerfile(options: ManifestOptions) -> str:
    """A Dockerfile for the model-server image: a slim Python base, a non-root user.

    The image installs this version of ``shipyard-mlops`` (with ``options.extras``) from the
    package index and starts ``shipyard serve`` on ``0.0.0.0``; give it ``--deployment NAME``
    (``docker run IMAGE --deployment churn``).
    """
    requirement = f"shipyard-mlops[{','.join(options.extras)}]=={__version__}"
    health = (
        "import urllib.request; "
        f"urllib.request.urlopen('http://127.0.0.1:{options.port}{_READY_PATH}', timeout=4)"
    )
    entrypoint = ["shipyard", "serve", "--host", _ALL_INTERFACES, "--port", str(options.port)]
    return "\n".join(
        [
            f"# The Shipyard model server, {__version__}. Generated by Shipyard.",
            f"FROM {options.base_image}",
            "",
            "ENV PYTHONDONTWRITEBYTECODE=1 \\",
            "    PYTHONUNBUFFERED=1 \\",
            "    PIP_NO_CACHE_DIR=1 \\",
            "    PIP_DISABLE_PIP_VERSION_CHECK=1 \\",
            f"    SHIPYARD_HOME={WORKSPACE}",
            "",
            f"RUN groupadd --system --gid {USER_ID} shipyard \\",
            f" && useradd --system --uid {USER_ID} --gid shipyard \\",
            "      --home-dir /var/lib/shipyard --no-create-home shipyard \\",
            f" && mkdir -p {WORKSPACE} \\",
            f" && chown -R {USER_ID}:{USER_ID} /var/lib/shipyard",
            "",
            f"RUN pip install '{requirement}'",
            "",
            f"USER {USER_ID}:{USER_ID}",
            "WORKDIR /var/lib/shipyard",
            f"EXPOSE {options.port}",
            "HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \\",
            f"  CMD {json.dumps(['python', '-c', health])}",
            f"ENTRYPOINT {json.dumps(entrypoint)}",
            "",
        ]
    )


def manifest_files(
    deployment: Deployment,
    options: ManifestOptions,
    *,
    target: str,
) -> dict[str, str]:
    """The files ``shipyard deploy manifest --out DIR`` writes: file name -> text.

    Args:
        deployment: an online deployment.
        options: as for :func:`kubernetes_manifests`.
        target: ``kubernetes`` (Deployment, Service, HorizontalPodAutoscaler) or ``kserve``
            (an InferenceService); a ``Dockerfile`` comes with either.

    Raises:
        InvalidArgumentError: an unknown target, or as for :func:`kubernetes_manifests`.
    """
    if target == "kubernetes":
        name = kubernetes_name(deployment.name)
        manifest = {f"{name}.yaml": kubernetes_manifests(deployment, options)}
    elif target == "kserve":
        name = kubernetes_name(deployment.name, max_length=KSERVE_MAX_NAME_LENGTH)
        manifest = {f"{name}.kserve.yaml": kserve_manifest(deployment, options)}
    else:
        raise InvalidArgumentError(f"unknown target {target!r}: choose one of {', '.join(TARGETS)}")
    return {**manifest, "Dockerfile": dockerfile(options)}


def _check_options(options: ManifestOptions) -> None:
    if options.replicas < 1 or options.max_replicas < options.replicas:
        raise InvalidArgumentError(
            f"replicas must be at least 1 and max_replicas at least replicas, not "
            f"{options.replicas} and {options.max_replicas}"
        )
    if not 1 <= options.target_cpu_percent <= 100:
        raise InvalidArgumentError(
            f"target_cpu_percent must lie between 1 and 100, not {options.target_cpu_percent}"
        )
    if not 1 <= options.port <= 65535:
        raise InvalidArgumentError(f"port must lie between 1 and 65535, not {options.port}")
    quantities = {
        "cpu_request": options.cpu_request,
        "cpu_limit": options.cpu_limit,
        "memory_request": options.memory_request,
        "memory_limit": options.memory_limit,
    }
    for option, quantity in quantities.items():
        if quantity is not None and not _QUANTITY.match(quantity):
            raise InvalidArgumentError(
                f"{option} {quantity!r} is not a Kubernetes quantity (such as 500m, 2, 512Mi)"
            )
    _check_secret(options)
    _check_image(options)


def _check_image(options: ManifestOptions) -> None:
    for option, image in (("image", options.image), ("base_image", options.base_image)):
        if not image or any(c.isspace() for c in image):
            raise InvalidArgumentError(f"{option} {image!r} is not an image reference")
    for extra in options.extras:
        if not _EXTRA.match(extra):
            raise InvalidArgumentError(f"{extra!r} is not the name of a package extra")


def _check_secret(options: ManifestOptions) -> None:
    if len(options.secret_name) > 253 or not _SUBDOMAIN.match(options.secret_name):
        raise InvalidArgumentError(
            f"secret_name {options.secret_name!r} is not a Kubernetes Secret name "
            "(lower-case letters, digits, '-' and '.')"
        )
    for key in (options.store_url_key, options.artifacts_url_key):
        if key is not None and not _SECRET_KEY.match(key):
            raise InvalidArgumentError(
                f"Secret key {key!r} may hold only letters, digits, '-', '_' and '.'"
            )
    claim = options.prediction_log_claim
    if claim is not None and not _SUBDOMAIN.match(claim):
        raise InvalidArgumentError(
            f"prediction_log_claim {claim!r} is not a PersistentVolumeClaim name"
        )


def _require_online(deployment: Deployment) -> None:
    if deployment.target is not Target.ONLINE:
        raise InvalidArgumentError(
            f"deployment {deployment.name!r} is a {deployment.target.value} deployment; only "
            "online deployments run a model server on Kubernetes"
        )


def _canary_percent(deployment: Deployment) -> int | None:
    route = deployment.route("canary")
    if route is None or route.mode is not RouteMode.LIVE:
        return None
    return min(100, max(0, round(route.weight)))


def _labels(name: str) -> dict[str, str]:
    # A label value allows fewer characters than a version may hold (``1.0+local``).
    version = re.sub(r"[^A-Za-z0-9_.-]", "_", __version__)[:MAX_NAME_LENGTH]
    return {**_selector(name), "app.kubernetes.io/version": version}


def _selector(name: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "shipyard-model-server",
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/component": "model-server",
        "app.kubernetes.io/managed-by": "shipyard",
    }


def _metadata(
    deployment: Deployment, name: str, annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "name": name,
        "labels": _labels(name),
        "annotations": {
            f"{_ANNOTATION}deployment": deployment.name,
            f"{_ANNOTATION}model": deployment.model,
            **(annotations or {}),
        },
    }


def _command(deployment: Deployment, options: ManifestOptions) -> dict[str, list[str]]:
    return {
        "command": ["shipyard", "serve"],
        "args": [
            "--deployment",
            deployment.name,
            "--host",
            _ALL_INTERFACES,
            "--port",
            str(options.port),
        ],
    }


def _env(options: ManifestOptions) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [
        {"name": "SHIPYARD_HOME", "value": WORKSPACE},
        _secret_env("SHIPYARD_STORE_URL", options.secret_name, options.store_url_key),
    ]
    if options.artifacts_url_key is not None:
        env.append(
            _secret_env("SHIPYARD_ARTIFACTS_URL", options.secret_name, options.artifacts_url_key)
        )
    return env


def _secret_env(variable: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": variable, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def _resources(options: ManifestOptions) -> dict[str, dict[str, str]]:
    limits = {"memory": options.memory_limit}
    if options.cpu_limit is not None:
        limits = {"cpu": options.cpu_limit, **limits}
    return {
        "requests": {"cpu": options.cpu_request, "memory": options.memory_request},
        "limits": limits,
    }


def _probe(path: str, port: int | str, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": port},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def _container_security() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": USER_ID,
        "runAsGroup": USER_ID,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _container(deployment: Deployment, options: ManifestOptions) -> dict[str, Any]:
    return {
        "name": "model-server",
        "image": options.image,
        "imagePullPolicy": "IfNotPresent",
        **_command(deployment, options),
        "ports": [{"name": "http", "containerPort": options.port, "protocol": "TCP"}],
        "env": _env(options),
        "resources": _resources(options),
        "startupProbe": _probe(_LIVE_PATH, "http", 5, STARTUP_SECONDS // 5),
        "readinessProbe": _probe(_READY_PATH, "http", 5, 3),
        "livenessProbe": _probe(_LIVE_PATH, "http", 10, 3),
        # Endpoints are removed asynchronously: keep answering for a moment after SIGTERM.
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", "5"]}}},
        "securityContext": {**_container_security(), "readOnlyRootFilesystem": True},
        "volumeMounts": [
            {"name": "workspace", "mountPath": WORKSPACE},
            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 - the pod's own emptyDir
        ],
    }


def _volumes(options: ManifestOptions) -> list[dict[str, Any]]:
    workspace: dict[str, Any] = {"name": "workspace", "emptyDir": {}}
    if options.prediction_log_claim is not None:
        workspace = {
            "name": "workspace",
            "persistentVolumeClaim": {"claimName": options.prediction_log_claim},
        }
    return [workspace, {"name": "tmp", "emptyDir": {}}]


def _pod_spec(deployment: Deployment, options: ManifestOptions) -> dict[str, Any]:
    return {
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": USER_ID,
            "runAsGroup": USER_ID,
            "fsGroup": USER_ID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "terminationGracePeriodSeconds": 30,
        "containers": [_container(deployment, options)],
        "volumes": _volumes(options),
    }


def _scrape_annotations(options: ManifestOptions) -> dict[str, str]:
    return {
        "prometheus.io/scrape": "true",
        "prometheus.io/path": _METRICS_PATH,
        "prometheus.io/port": str(options.port),
    }


def _deployment_object(
    deployment: Deployment, options: ManifestOptions, name: str
) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(deployment, name),
        "spec": {
            "selector": {"matchLabels": _selector(name)},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "template": {
                "metadata": {"labels": _labels(name), "annotations": _scrape_annotations(options)},
                "spec": _pod_spec(deployment, options),
            },
        },
    }


def _service_object(deployment: Deployment, options: ManifestOptions, name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(deployment, name),
        "spec": {
            "type": "ClusterIP",
            "selector": _selector(name),
            "ports": [
                {"name": "http", "port": options.port, "targetPort": "http", "protocol": "TCP"}
            ],
        },
    }


def _autoscaler_object(
    deployment: Deployment, options: ManifestOptions, name: str
) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _metadata(deployment, name),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": options.replicas,
            "maxReplicas": options.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {
                            "type": "Utilization",
                            "averageUtilization": options.target_cpu_percent,
                        },
                    },
                }
            ],
        },
    }


def _kserve_container(deployment: Deployment, options: ManifestOptions) -> dict[str, Any]:
    # Knative (KServe's serverless mode) takes less of a PodSpec, and volumes only behind
    # feature flags: one unnamed port, probes on it, no startup probe, hook or volumes (the
    # image's own workspace is used).
    liveness = _probe(_LIVE_PATH, options.port, 10, 3)
    liveness["initialDelaySeconds"] = STARTUP_SECONDS
    return {
        "name": "kserve-container",
        "image": options.image,
        "imagePullPolicy": "IfNotPresent",
        **_command(deployment, options),
        "ports": [{"containerPort": options.port, "protocol": "TCP"}],
        "env": _env(options),
        "resources": _resources(options),
        "readinessProbe": _probe(_READY_PATH, options.port, 5, 3),
        "livenessProbe": liveness,
        "securityContext": _container_security(),
    }


def _kserve_annotations(options: ManifestOptions) -> dict[str, str]:
    return {
        "serving.kserve.io/enable-prometheus-scraping": "true",
        "prometheus.kserve.io/port": str(options.port),
        "prometheus.kserve.io/path": _METRICS_PATH,
    }


def _kserve_note(canary: int | None) -> str:
    if canary is None:
        return ""
    return (
        f"# canaryTrafficPercent {canary}: KServe sends {canary}% of requests to this revision\n"
        "# of the InferenceService and the rest to the previous one. That canary is driven by\n"
        "# hand (edit, re-apply). Which model version answers is Shipyard's: every pod runs\n"
        "# `shipyard serve --deployment` and follows the routes Shipyard's controller moves.\n"
    )


def _header(deployment: Deployment) -> str:
    return (
        f"# Generated by Shipyard {__version__} for deployment {deployment.name!r} "
        f"(revision {deployment.revision}).\n"
        "# Regenerate it with `shipyard deploy manifest` rather than editing it.\n"
    )


def _dump(documents: list[dict[str, Any]]) -> str:
    try:
        import yaml
    except ModuleNotFoundError as exc:  # pragma: no cover - depends on the environment
        raise ShipyardError(
            "writing Kubernetes manifests needs PyYAML: pip install pyyaml"
        ) from exc
    return yaml.safe_dump_all(documents, sort_keys=False, explicit_start=True, allow_unicode=True)
