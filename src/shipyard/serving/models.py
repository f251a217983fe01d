"""The models a server answers for: loaded from the registry, swapped when their alias moves.

A :class:`ModelHolder` follows one reference (``churn@champion``). Its :attr:`current` is one
immutable :class:`ServedModel`; a request reads it once and uses that object to the end, so a swap
(one attribute assignment) never mixes two versions inside a request and drops none.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shipyard.errors import InvalidArgumentError
from shipyard.serving.inputs import InputPlan

if TYPE_CHECKING:
    from shipyard.entities import ModelVersion
    from shipyard.models import LoadedModel
    from shipyard.tracking import Workspace

__all__ = ["ModelHolder", "ServedModel", "load_served", "registry_loader"]

log = logging.getLogger(__name__)

Resolver = Callable[[str], "ModelVersion"]
Loader = Callable[["ModelVersion"], "LoadedModel"]


@dataclass(frozen=True)
class ServedModel:
    """One loaded model version."""

    name: str
    version: str
    model: LoadedModel
    digest: str = ""
    load_seconds: float = 0.0
    plan: InputPlan = field(init=False, repr=False, compare=False)
    classes: tuple[Any, ...] | None = field(init=False, repr=False, compare=False)
    """The class labels in ``predict_proba`` column order (classifiers only)."""

    def __post_init__(self) -> None:
        classes: Any = getattr(self.model.model, "classes_", None)
        # frozen: these are derived once from the model, never changed
        object.__setattr__(self, "plan", InputPlan.of(self.model.signature))
        object.__setattr__(
            self, "classes", tuple(classes.tolist()) if hasattr(classes, "tolist") else None
        )

    def call(self, method: str, data: Any) -> Any:
        """``predict`` or ``predict_proba`` on input already checked by :attr:`plan`.

        Raises:
            InvalidArgumentError: the model itself rejected the input (missing values, say).
        """
        prepared = self.plan.model_input(data)
        try:
            return getattr(self.model.model, method)(prepared)
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            raise InvalidArgumentError(
                f"the model rejected the input: {type(exc).__name__}: {exc}"
            ) from exc


def load_served(
    version: ModelVersion,
    load: Loader,
    on_load: Callable[[ServedModel], None] | None = None,
) -> ServedModel:
    """Load ``version`` and time it."""
    started = time.perf_counter()
    model = load(version)
    served = ServedModel(
        name=version.model,
        version=str(version.version),
        model=model,
        digest=version.digest,
        load_seconds=time.perf_counter() - started,
    )
    if on_load is not None:
        on_load(served)
    return served


def registry_loader(
    workspace: Workspace, *, trusted_pickle: bool = False, trusted_code: bool = False
) -> tuple[Resolver, Loader]:
    """Resolve references through ``workspace``'s registry and load verified model folders."""
    from shipyard.models import load_model
    from shipyard.models.logged import model_path
    from shipyard.registry import Registry

    registry = Registry(workspace.backend, workspace.settings.user)

    def load(version: ModelVersion) -> LoadedModel:
        return load_model(
            model_path(version, workspace),
            trusted_pickle=trusted_pickle,
            trusted_code=trusted_code,
        )

    return registry.resolve, load


class ModelHolder:
    """The model a reference points at now.

    Args:
        ref: ``name@alias``, ``name@3``, ``name@latest`` or ``name``.
        resolve: a reference to its :class:`ModelVersion` (the registry's ``resolve``).
        load: a version to its loaded model.
        on_load: called with each newly loaded model (the server records load time).
    """

    def __init__(
        self,
        ref: str,
        resolve: Resolver,
        load: Loader,
        on_load: Callable[[ServedModel], None] | None = None,
    ) -> None:
        self.ref = ref
        self._resolve = resolve
        self._load = load
        self._on_load = on_load
        self._lock = threading.Lock()
        self.current = self._load_version(resolve(ref))

    @property
    def name(self) -> str:
        return self.current.name

    def _load_version(self, version: ModelVersion) -> ServedModel:
        return load_served(version, self._load, self._on_load)

    def refresh(self) -> bool:
        """Resolve the reference again; load and switch to a new version if it moved.

        Returns whether the served model changed. A version that fails to load is logged and
        the current one kept.
        """
        with self._lock:  # one refresh at a time; requests never wait on this lock
            version = self._resolve(self.ref)
            if version.digest == self.current.digest and str(version.version) == (
                self.current.version
            ):
                return False
            try:
                served = self._load_version(version)
            except Exception:
                log.exception("could not load %s; still serving %s", version.ref, self.current)
                return False
            self.current = served
            log.info("now serving %s@%s for %s", served.name, served.version, self.ref)
            return True
