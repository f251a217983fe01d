"""Subcommands that load on use, and parameters read without Pydantic.

``shipyard data status`` imports the ``data`` commands and nothing else, and
``shipyard --help`` lists every command from :data:`COMMANDS` without importing any: each
entry names where its command lives and the one line that the root help shows for it
(``tests/cli/test_startup.py`` checks that line against the command's own help).

Typer converts every parameter value through a Pydantic ``TypeAdapter``, and importing
Pydantic costs about as much as Typer itself: :class:`_Conversion` converts what needs no
Pydantic (unset values, flags, text, paths: all that ``data status`` takes) without it.
"""

from __future__ import annotations

import copy
import importlib
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast, get_args, get_origin

import typer
from typer._coercion import RuntimeParam, build_runtime_param  # private, as is the next
from typer._param_types import coerce_cli_path  # line: Typer is pinned in constraints.txt
from typer.core import TyperCommand, TyperGroup, _TyperParameter
from typer.models import CommandInfo, TyperInfo

from shipyard.cli._base import ShipyardGroup, _plain_help

if TYPE_CHECKING:
    from typer._click import Command, Context, HelpFormatter  # Typer's own copy of Click
    from typer._coercion import TypeDescriptor
    from typer.core import TyperOption

__all__ = ["COMMANDS", "LazyCommand", "LazyGroup", "convert_lightly", "load_command"]


@dataclass(frozen=True, slots=True)
class LazyCommand:
    """Where a subcommand lives, and what ``shipyard --help`` says about it."""

    target: str
    """``module:attribute``: a ``typer.Typer`` sub-app, or a command function."""
    summary: str
    """The first paragraph of the command's help, on one line."""


# A new command goes here (and in docs/cli.md); its module is imported only when it runs.
COMMANDS: Mapping[str, LazyCommand] = {
    "validate": LazyCommand(
        "shipyard.cli.validate:validate",
        "Evaluate a model on unseen data, write a JSON and HTML report, and apply a gate policy.",
    ),
    "lineage": LazyCommand(
        "shipyard.cli.lineage:lineage",
        "Walk the lineage graph both ways from REF: data, runs, model versions, deployments, "
        "alerts, trigger events and pipeline runs, each with its id and state.",
    ),
    "demo": LazyCommand(
        "shipyard.cli.demo:demo",
        "Data, training with tuning, validation and fairness, four-eyes approval, a model "
        "server, traffic, drift, an alert, automatic retraining, a canary, promotion — in "
        "about two minutes.",
    ),
    "serve": LazyCommand(
        "shipyard.cli.serve:serve",
        "Serve models over HTTP until stopped (Ctrl-C or SIGTERM flushes the prediction log).",
    ),
    "server": LazyCommand(
        "shipyard.cli.server:server",
        "Serve the web UI (at /) and the REST API (/api/v1, OpenAPI at /api/v1/openapi.json) "
        "over this workspace.",
    ),
    "login": LazyCommand(
        "shipyard.cli.login:login",
        "Log in to a platform server: commands in this workspace then use it.",
    ),
    "logout": LazyCommand(
        "shipyard.cli.login:logout",
        "Forget the server login of this workspace (and revoke its token on the server).",
    ),
    "predict": LazyCommand(
        "shipyard.cli.batch:predict",
        "Score a table with a model, streaming it in record batches, and log the predictions.",
    ),
    "export": LazyCommand(
        "shipyard.cli.batch:export",
        "Export a model for the edge: model.onnx, manifest.json and a parity report.",
    ),
    "init": LazyCommand(
        "shipyard.cli._root:init",
        "Create a workspace (.shipyard/) and its stores; with --ci, also a CI job.",
    ),
    "version": LazyCommand("shipyard.cli._root:version", "Print Shipyard's version."),
    "experiments": LazyCommand(
        "shipyard.cli.experiments:app", "List, rename, delete and restore experiments."
    ),
    "runs": LazyCommand("shipyard.cli.runs:app", "List, inspect, compare, end and resume runs."),
    "artifacts": LazyCommand("shipyard.cli.artifacts:app", "List and download run artifacts."),
    "data": LazyCommand("shipyard.cli.data:app", "Version, inspect, move and check datasets."),
    "models": LazyCommand(
        "shipyard.cli.models:models_app", "Registered models: versions, aliases, review."
    ),
    "users": LazyCommand("shipyard.cli.models:users_app", "Who may do what in the registry."),
    "audit": LazyCommand(
        "shipyard.cli.models:audit_app", "The registry's tamper-evident audit log."
    ),
    "monitor": LazyCommand(
        "shipyard.cli.monitor:app",
        "Drift, data quality, performance and health of data and deployments; alerts.",
    ),
    "deploy": LazyCommand(
        "shipyard.cli.deploy:app",
        "Deployments: routes, canary rollouts, shadow traffic, promotion and rollback.",
    ),
    "pipeline": LazyCommand(
        "shipyard.cli.pipeline:app",
        "Pipelines: run them (cached by content), list runs, show a run's graph, explain it.",
    ),
    "tune": LazyCommand(
        "shipyard.cli.tune:app", "Hyperparameter tuning: run a study, list studies, show one."
    ),
    "automate": LazyCommand(
        "shipyard.cli.automate:app",
        "Continuous training: triggers start a pipeline, its model is gated, approved and "
        "rolled out.",
    ),
    "token": LazyCommand("shipyard.cli.tokens:app", "API tokens for the platform server."),
    "gc": LazyCommand(
        "shipyard.cli.gc:gc",
        "Remove stored objects that no dataset version, model version, run artifact, pipeline "
        "cache entry or pointer file refers to, and repack what is kept.",
    ),
}


def load_command(name: str, entry: LazyCommand) -> Command:
    """Import ``entry.target`` and build its command as ``app.add_typer`` or ``app.command``
    on the root app would have; a sub-app's own commands are built when looked up."""
    module, _, attribute = entry.target.partition(":")
    found = getattr(importlib.import_module(module), attribute)
    holder = typer.Typer()
    if not isinstance(found, typer.Typer):
        holder.command(name)(found)
        return typer.main.get_group(holder).commands[name]
    shell = copy.copy(found)  # the sub-app without its commands: those come from _Subcommands
    shell.registered_commands, shell.registered_groups = [], []
    holder.add_typer(shell, name=name)
    group = cast(TyperGroup, typer.main.get_group(holder).commands[name])
    group.commands = _Subcommands(found, holder)
    return group


class _Subcommands(MutableMapping[str, "Command"]):
    """The commands of a Typer sub-app, each built by Typer when first looked up: building
    one evaluates its signature, and ``data status`` need not pay for every ``data`` command."""

    def __init__(self, app: typer.Typer, holder: typer.Typer) -> None:
        self._infos: dict[str, CommandInfo | TyperInfo] = {}
        for info in app.registered_commands:
            callback = getattr(info.callback, "__name__", "")
            self._infos[info.name or typer.main.get_command_name(callback)] = info
        for group in app.registered_groups:
            if not isinstance(group.name, str):  # Typer would merge its commands into ours
                raise TypeError("add a sub-app to a Shipyard command group with a name")
            self._infos[group.name] = group
        self._holder = holder
        self._built: dict[str, Command] = {}
        self.prepare: Callable[[Command], None] | None = None
        """Applied to each command once built (by the root group that handed this one out)."""

    def __getitem__(self, name: str) -> Command:
        if name not in self._built:
            info, holder = self._infos[name], self._holder
            if isinstance(info, CommandInfo):
                built = typer.main.get_command_from_info(
                    info,
                    pretty_exceptions_short=holder.pretty_exceptions_short,
                    rich_markup_mode=holder.rich_markup_mode,
                )
            else:
                built = typer.main.get_group_from_info(
                    info,
                    pretty_exceptions_short=holder.pretty_exceptions_short,
                    suggest_commands=holder.suggest_commands,
                    rich_markup_mode=holder.rich_markup_mode,
                )
            if self.prepare is not None:
                self.prepare(built)
            self._built[name] = built
        return self._built[name]

    def __setitem__(self, name: str, command: Command) -> None:
        self._built[name] = command
        self._infos.setdefault(name, CommandInfo(name=name))

    def __delitem__(self, name: str) -> None:
        del self._infos[name]
        self._built.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        return iter(self._infos)

    def __len__(self) -> int:
        return len(self._infos)

    def __contains__(self, name: object) -> bool:
        return name in self._infos


@dataclass(frozen=True)
class _Conversion(RuntimeParam):
    """Typer's conversion of one parameter's value, minus the Pydantic import where Pydantic
    adds nothing.

    Typer builds a Pydantic ``TypeAdapter`` for every parameter it reads, even one left at
    ``None`` or a flag already ``True``. Here ``None`` and flags pass as they are, text stays
    text and a path goes through Typer's own path checks (``exists=``, ``dir_okay=`` ...);
    any other value (a number, a choice, a date) gets Typer's adapter, built when first
    needed.
    """

    text_or_path: bool = False

    def _coerce_value(self, value: Any, param: _TyperParameter, ctx: Context) -> Any:
        annotation: Any = self.annotation
        if self.text_or_path:
            if get_origin(annotation) is list:
                (kind,) = get_args(annotation)
                items = value if isinstance(value, list | tuple) else [value]
                return [self._text_or_path(kind, item, param, ctx) for item in items]
            return self._text_or_path(annotation, value, param, ctx)
        if self.annotation is bool and isinstance(value, bool):
            return value
        param._runtime_param = build_runtime_param(param.type_descriptor)
        return param._runtime_param._coerce_value(value, param=param, ctx=ctx)

    def _text_or_path(self, kind: Any, value: Any, param: _TyperParameter, ctx: Context) -> Any:
        if kind is str:
            return str(value)
        path = value if isinstance(value, Path) else Path(value)
        return coerce_cli_path(path, self.parameter_info, path_type=Path, param=param, ctx=ctx)


def _is_text_or_path(descriptor: TypeDescriptor) -> bool:
    info = descriptor.parameter_info
    if info.parser is not None or descriptor.is_file:
        return False
    annotation: Any = descriptor.annotation
    if get_origin(annotation) is list:
        (annotation,) = get_args(annotation)
    return annotation is str or (annotation is Path and info.path_type is None)


def _convert_lightly(param: object) -> None:
    if isinstance(param, _TyperParameter) and param._runtime_param is None:
        descriptor = param.type_descriptor
        param._runtime_param = _Conversion(
            descriptor.parameter_info, descriptor.annotation, _is_text_or_path(descriptor)
        )


def convert_lightly(command: Command, ctx: Context) -> None:
    """Give the parameters of ``command`` and of every command under it a
    :class:`_Conversion`, their ``--help`` option (made now, as Typer would make it under
    ``ctx``) included."""
    if "help_option_names" not in (command.context_settings or {}):
        _convert_lightly(command.get_help_option(ctx))
    for param in command.params:
        _convert_lightly(param)
    subcommands = getattr(command, "commands", None)
    if isinstance(subcommands, dict):  # built by Typer (a lazy table is left alone)
        for subcommand in subcommands.values():
            convert_lightly(subcommand, ctx)


class _Commands(MutableMapping[str, "Command"]):
    """A group's commands: those already built, and the rest of :data:`COMMANDS` built on
    first lookup (so that listing names and suggesting a misspelt one import nothing)."""

    def __init__(self, built: MutableMapping[str, Command]) -> None:
        self._built = built

    def __getitem__(self, name: str) -> Command:
        if name not in self._built:
            self._built[name] = load_command(name, COMMANDS[name])  # KeyError: no such command
        return self._built[name]

    def __setitem__(self, name: str, command: Command) -> None:
        self._built[name] = command

    def __delitem__(self, name: str) -> None:
        del self._built[name]

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys([*COMMANDS, *self._built]))

    def __len__(self) -> int:
        return len({*COMMANDS, *self._built})

    def __contains__(self, name: object) -> bool:
        return name in COMMANDS or name in self._built

    def summary(self, name: str) -> Command | None:
        """A stand-in that carries only what the root help shows (name and one line)."""
        if name in self._built or name not in COMMANDS:
            return self._built.get(name)
        return TyperCommand(name=name, help=COMMANDS[name].summary)


class LazyGroup(ShipyardGroup):
    """The root group: :class:`ShipyardGroup` whose subcommands are built on first use."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.commands = _Commands(self.commands)
        self._listing = False
        self._converted: set[str] = set()
        for param in self.params:
            _convert_lightly(param)

    def list_commands(self, ctx: Context) -> list[str]:
        return list(self.commands)  # the names alone (Typer's would build every command)

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        commands = self.commands
        if self._listing and isinstance(commands, _Commands):
            return commands.summary(cmd_name)
        command = super().get_command(ctx, cmd_name)
        if command is not None and cmd_name not in self._converted:
            convert_lightly(command, ctx)
            subcommands = getattr(command, "commands", None)
            if isinstance(subcommands, _Subcommands):

                def prepare(built: Command) -> None:
                    _plain_help(built)  # what ShipyardGroup does to the commands it hands out
                    convert_lightly(built, ctx)

                subcommands.prepare = prepare
            self._converted.add(cmd_name)
        return command

    def get_help_option(self, ctx: Context) -> TyperOption | None:
        option = super().get_help_option(ctx)
        _convert_lightly(option)
        return option

    def format_help(self, ctx: Context, formatter: HelpFormatter) -> None:
        self._listing = True  # the command list needs each command's one line, not its module
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False
