"""``@step`` and ``@pipeline``: plain Python functions whose calls make the graph.

Calling a step inside a pipeline function does not run it: it records the call and returns an
:class:`Output` placeholder, and passing that placeholder to another step is an edge of the
graph. Outside a pipeline a step is the plain function it decorates, so it can be unit-tested
as one.

Example:
    >>> import shipyard
    >>> @shipyard.step
    ... def load(n: int) -> list[int]:
    ...     return list(range(n))
    >>> @shipyard.step
    ... def total(values: list[int]) -> int:
    ...     return sum(values)
    >>> @shipyard.pipeline
    ... def numbers(n: int = 10):
    ...     return total(load(n))
    >>> [node.name for node in numbers.build().nodes]
    ['load', 'total']
"""

from __future__ import annotations

import contextvars
import functools
import graphlib
import inspect
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

from shipyard.entities import DatasetRef
from shipyard.errors import InvalidArgumentError

__all__ = [
    "Dag",
    "Node",
    "Output",
    "Pipeline",
    "Step",
    "StepOptions",
    "pipeline",
    "step",
]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,127}")


@dataclass(frozen=True)
class StepOptions:
    """How a step runs and is cached.

    Attributes:
        name: the step's name in the graph (default: the function's name).
        cache: reuse outputs stored under the same key; off for steps that read sources the
            key cannot see (or declare them in ``reads``).
        reads: what the step reads from outside: file or folder paths, or
            :func:`shipyard.data.ref` dataset versions; the key follows their content.
        outputs: names of the outputs when the step returns a tuple of several.
        retries: attempts after the first one fails.
        retry_delay: seconds before the first retry, doubled for each further one.
        timeout: seconds an attempt may take before it is stopped and fails.
        cpus: CPUs the step needs (passed to Ray).
        memory: bytes of memory the step needs (passed to Ray).
        allow_pickle: store outputs no materializer handles with pickle, and load them back.
            Off by default: a pickle runs code when loaded.
    """

    name: str | None = None
    cache: bool = True
    reads: tuple[str | DatasetRef, ...] = ()
    outputs: tuple[str, ...] = ("output",)
    retries: int = 0
    retry_delay: float = 1.0
    timeout: float | None = None
    cpus: float | None = None
    memory: int | None = None
    allow_pickle: bool = False

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise InvalidArgumentError("retries must be 0 or more")
        if self.retry_delay < 0:
            raise InvalidArgumentError("retry_delay must be 0 or more seconds")
        if self.timeout is not None and self.timeout <= 0:
            raise InvalidArgumentError("timeout must be a positive number of seconds")
        if self.cpus is not None and self.cpus <= 0:
            raise InvalidArgumentError("cpus must be positive")
        if self.memory is not None and self.memory <= 0:
            raise InvalidArgumentError("memory must be a positive number of bytes")
        if not self.outputs or len(set(self.outputs)) != len(self.outputs):
            raise InvalidArgumentError("outputs must be one or more distinct names")
        for name in self.outputs:
            _check_name("output", name)
        for item in self.reads:
            if not isinstance(item, str | Path | DatasetRef):
                raise InvalidArgumentError(
                    f"reads takes file paths and shipyard.data.ref(...) versions, not {item!r}"
                )


def _check_name(what: str, name: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidArgumentError(
            f"invalid {what} name {name!r}: use letters, digits, '_', '.' or '-', "
            "starting with a letter or '_'"
        )
    return name


@dataclass(frozen=True)
class Output:
    """A step's output while the graph is being built: pass it to another step."""

    node: str
    name: str = "output"

    def __bool__(self) -> bool:
        raise InvalidArgumentError(
            f"the output of step {self.node!r} has no value while the pipeline is being built: "
            "pass it to another step instead of using it in the pipeline function"
        )

    def __repr__(self) -> str:
        return f"Output({self.node}.{self.name})"


class _Outputs(tuple[Output, ...]):
    """Several outputs of one step; unpack them (``X, y = split(df)``)."""


@dataclass
class Node:
    """One call of a step in a pipeline."""

    name: str
    step: Step
    arguments: dict[str, Any]
    """Argument name -> a JSON value, an :class:`Output` or a :class:`DatasetRef`."""
    position: int

    @property
    def upstream(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for value in self.arguments.values():
            if isinstance(value, Output):
                seen[value.node] = None
        return tuple(seen)

    @property
    def function(self) -> str:
        fn = self.step.fn
        return f"{fn.__module__}.{fn.__qualname__}"


@dataclass
class Dag:
    """The graph a pipeline function made: its nodes in call order (a topological order)."""

    pipeline: str
    params: dict[str, Any]
    nodes: list[Node] = field(default_factory=list)
    outputs: tuple[Output, ...] = ()

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise InvalidArgumentError(f"pipeline {self.pipeline!r} has no step {name!r}")

    def downstream(self, name: str) -> list[str]:
        """The steps that depend on ``name``, directly or not."""
        found: list[str] = []
        frontier = {name}
        for node in self.nodes:
            if frontier.intersection(node.upstream):
                found.append(node.name)
                frontier.add(node.name)
        return found

    def check(self) -> None:
        """Raise if an edge names an unknown step or the graph has a cycle."""
        names = {node.name for node in self.nodes}
        sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
        for node in self.nodes:
            for up in node.upstream:
                if up not in names:
                    raise InvalidArgumentError(
                        f"step {node.name!r} takes an output of {up!r}, which is not a step of "
                        f"pipeline {self.pipeline!r} (an output of another pipeline?)"
                    )
            sorter.add(node.name, *node.upstream)
        try:
            sorter.prepare()
        except graphlib.CycleError as exc:
            cycle = " -> ".join(exc.args[1])
            raise InvalidArgumentError(f"pipeline {self.pipeline!r} has a cycle: {cycle}") from None


class _Builder:
    def __init__(self, dag: Dag) -> None:
        self.dag = dag
        self.counts: dict[str, int] = {}

    def add(self, step: Step, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Output | _Outputs:
        base = step.name
        self.counts[base] = self.counts.get(base, 0) + 1
        name = base if self.counts[base] == 1 else f"{base}_{self.counts[base]}"
        try:
            bound = step.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise InvalidArgumentError(f"step {name!r}: {exc}") from None
        bound.apply_defaults()
        arguments: dict[str, Any] = {}
        for arg, value in bound.arguments.items():
            arguments[arg] = _argument(name, arg, value)
        self.dag.nodes.append(Node(name, step, arguments, len(self.dag.nodes)))
        outputs = tuple(Output(name, out) for out in step.options.outputs)
        return outputs[0] if len(outputs) == 1 else _Outputs(outputs)


def _argument(step: str, arg: str, value: Any) -> Any:
    if isinstance(value, Output | DatasetRef):
        return value
    if isinstance(value, tuple) and value and all(isinstance(v, Output) for v in value):
        raise InvalidArgumentError(
            f"step {step!r}, argument {arg!r}: a step with several outputs gives a tuple; "
            "unpack it (a, b = other_step(...)) and pass one output"
        )
    try:
        json.dumps(value, allow_nan=True, sort_keys=True)
    except (TypeError, ValueError):
        raise InvalidArgumentError(
            f"step {step!r}, argument {arg!r}: a {type(value).__name__} value cannot be a literal "
            "argument; literals must be JSON values (numbers, strings, booleans, None, lists, "
            "dicts) — pass data as the output of another step"
        ) from None
    return value


_building: contextvars.ContextVar[_Builder | None] = contextvars.ContextVar(
    "shipyard_pipeline_builder", default=None
)


class Step:
    """A function decorated with :func:`step`."""

    def __init__(self, fn: Callable[..., Any], options: StepOptions) -> None:
        if not callable(fn) or not hasattr(fn, "__code__"):
            raise InvalidArgumentError(f"@step decorates a function, not {fn!r}")
        self.fn = fn
        self.options = options
        self.name = _check_name("step", options.name or fn.__name__)
        self.signature = inspect.signature(fn)
        functools.update_wrapper(self, fn)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        builder = _building.get()
        if builder is None:
            return self.fn(*args, **kwargs)
        return builder.add(self, args, kwargs)

    def __repr__(self) -> str:
        return f"<step {self.name}>"


@overload
def step(fn: Callable[..., Any], /) -> Step: ...
@overload
def step(
    *,
    name: str | None = None,
    cache: bool = True,
    reads: Sequence[str | Path | DatasetRef] = (),
    outputs: Sequence[str] = ("output",),
    retries: int = 0,
    retry_delay: float = 1.0,
    timeout: float | None = None,
    cpus: float | None = None,
    memory: int | None = None,
    allow_pickle: bool = False,
) -> Callable[[Callable[..., Any]], Step]: ...


def step(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    cache: bool = True,
    reads: Sequence[str | Path | DatasetRef] = (),
    outputs: Sequence[str] = ("output",),
    retries: int = 0,
    retry_delay: float = 1.0,
    timeout: float | None = None,
    cpus: float | None = None,
    memory: int | None = None,
    allow_pickle: bool = False,
) -> Step | Callable[[Callable[..., Any]], Step]:
    """Make a function a pipeline step (see :class:`StepOptions` for the options).

    Example:
        >>> @step(retries=2, timeout=600, reads=["data/raw.csv"])  # doctest: +SKIP
        ... def ingest() -> "pd.DataFrame": ...
    """
    options = StepOptions(
        name=name,
        cache=cache,
        reads=tuple(str(r) if isinstance(r, Path) else r for r in reads),
        outputs=tuple(outputs),
        retries=retries,
        retry_delay=retry_delay,
        timeout=timeout,
        cpus=cpus,
        memory=memory,
        allow_pickle=allow_pickle,
    )
    if fn is not None:
        return Step(fn, options)
    return lambda f: Step(f, options)


class Pipeline:
    """A function decorated with :func:`pipeline`: calling it builds and runs the graph."""

    def __init__(self, fn: Callable[..., Any], name: str | None = None) -> None:
        self.fn = fn
        self.name = _check_name("pipeline", name or fn.__name__)
        self.signature = inspect.signature(fn)
        for param in self.signature.parameters.values():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise InvalidArgumentError(
                    f"pipeline {self.name!r}: parameters must be named (no *args/**kwargs)"
                )
        functools.update_wrapper(self, fn)

    @property
    def parameters(self) -> dict[str, Any]:
        """Parameter name -> default (``inspect.Parameter.empty`` when required)."""
        return {p.name: p.default for p in self.signature.parameters.values()}

    def resolve_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Check ``params`` against the declared parameters and fill in the defaults.

        Strings (from ``--param k=v``) are converted to the parameter's annotated or default
        type.

        Raises:
            InvalidArgumentError: an undeclared or missing parameter, or a value that does not
                convert.
        """
        declared = self.parameters
        unknown = sorted(set(params) - set(declared))
        if unknown:
            known = ", ".join(declared) or "none"
            raise InvalidArgumentError(
                f"pipeline {self.name!r} has no parameter {unknown[0]!r}; its parameters: {known}"
            )
        resolved: dict[str, Any] = {}
        for pname, default in declared.items():
            if pname in params:
                resolved[pname] = _convert(self, pname, params[pname])
            elif default is inspect.Parameter.empty:
                raise InvalidArgumentError(
                    f"pipeline {self.name!r} needs parameter {pname!r} (--param {pname}=...)"
                )
            else:
                resolved[pname] = default
        return resolved

    def build(self, **params: Any) -> Dag:
        """Call the pipeline function with its steps recording, not running."""
        resolved = self.resolve_params(params)
        dag = Dag(self.name, resolved)
        token = _building.set(_Builder(dag))
        try:
            returned = self.fn(**resolved)
        finally:
            _building.reset(token)
        dag.outputs = tuple(_returned_outputs(self.name, returned))
        if not dag.nodes:
            raise InvalidArgumentError(f"pipeline {self.name!r} calls no step")
        dag.check()
        return dag

    def run(self, *, executor: Any = "inprocess", home: Any = None, **params: Any) -> Any:
        """Build and run the pipeline; see :func:`shipyard.pipelines.run_pipeline`."""
        from shipyard.pipelines.runner import run_pipeline

        return run_pipeline(self, params, executor=executor, home=home)

    def __call__(self, **params: Any) -> Any:
        return self.run(**params)

    def __repr__(self) -> str:
        return f"<pipeline {self.name}>"


def _returned_outputs(name: str, returned: Any) -> Iterator[Output]:
    if returned is None:
        return
    items = returned if isinstance(returned, tuple | list) else (returned,)
    for item in items:
        if not isinstance(item, Output):
            raise InvalidArgumentError(
                f"pipeline {name!r} returned a {type(item).__name__}; a pipeline function "
                "returns step outputs (or nothing)"
            )
        yield item


_KIND_WORDS: dict[Any, str] = {
    int: "an integer",
    float: "a number",
    bool: "true or false",
    str: "a string",
}


def _convert(pipe: Pipeline, name: str, value: Any) -> Any:
    if not isinstance(value, str):
        return value
    param = pipe.signature.parameters[name]
    kind = param.annotation
    if isinstance(kind, str):
        kind = {"int": int, "float": float, "bool": bool, "str": str}.get(kind, None)
    if kind in (None, inspect.Parameter.empty) and param.default is not inspect.Parameter.empty:
        kind = type(param.default) if param.default is not None else None
    try:
        if kind is bool:
            lowered = value.strip().lower()
            if lowered in ("true", "1", "yes", "on"):
                return True
            if lowered in ("false", "0", "no", "off"):
                return False
            raise ValueError(value)
        if kind is int:
            return int(value)
        if kind is float:
            return float(value)
        if kind is str:
            return value
        return json.loads(value)
    except ValueError:
        if kind in (None, inspect.Parameter.empty):
            return value
        raise InvalidArgumentError(
            f"parameter {name!r} of pipeline {pipe.name!r} must be "
            f"{_KIND_WORDS.get(kind, kind.__name__)}, not {value!r}"
        ) from None


@overload
def pipeline(fn: Callable[..., Any], /) -> Pipeline: ...
@overload
def pipeline(*, name: str | None = None) -> Callable[[Callable[..., Any]], Pipeline]: ...


def pipeline(
    fn: Callable[..., Any] | None = None, /, *, name: str | None = None
) -> Pipeline | Callable[[Callable[..., Any]], Pipeline]:
    """Make a function a pipeline: its parameters are the pipeline's, its step calls the graph."""
    if fn is not None:
        return Pipeline(fn, name)
    return lambda f: Pipeline(f, name)
