"""What every command shares: the root group that turns every error into one line and an exit
code and shows help in Click's plain layout, the workspace option, and output helpers (Rich
tables that fit a pipe, or ``--json``)."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NoReturn

import typer
from rich.console import Console, ConsoleDimensions, ConsoleRenderable, RenderHook
from rich.markup import escape
from typer._click import _textwrap  # Typer's own copy of Click
from typer._click.exceptions import BadParameter, NoArgsIsHelpError, UsageError
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from shipyard.errors import FilterSyntaxError, ShipyardError

if TYPE_CHECKING:
    from rich.table import Table
    from typer._click import Command, Context, HelpFormatter

    from shipyard.tracking import Workspace

__all__ = [
    "PIPE_WIDTH",
    "ShipyardGroup",
    "console",
    "err_console",
    "format_duration",
    "format_size",
    "format_time",
    "home_from",
    "print_json",
    "progress_bar",
    "workspace_from",
]

PIPE_WIDTH = 80
"""Columns that output not going to a terminal is laid out in (``COLUMNS`` overrides it)."""

_NARROWEST_CELL = 8  # an 8-character run id, "FINISHED", a date's year and month: kept whole


def _reader_left() -> NoReturn:
    """Whoever read stdout has gone (``shipyard … | head``): the rest of the output goes
    nowhere and the command ends quietly with exit code 0, as the Python docs advise for
    SIGPIPE (a traceback or an exit code 1 would blame the user for reading enough)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a file (a test's capture): nothing to do
        pass
    raise SystemExit(0)


def _flush_stdout() -> None:
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        try:
            _reader_left()
        except SystemExit:  # flushed on the way out: the exit code already chosen stands
            pass


class _PipeFriendlyConsole(Console):
    """Rich's console, except that output that is not going to a terminal is
    :data:`PIPE_WIDTH` columns wide (Rich would take the width of the terminal that stdin or
    stderr is attached to), its tables keep every row on one line, and a reader that leaves
    early ends the command quietly."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.push_render_hook(_OneLineRows(self))

    @property
    def size(self) -> ConsoleDimensions:
        measured = super().size
        if self._width is None and "COLUMNS" not in os.environ and not self.is_terminal:
            return ConsoleDimensions(PIPE_WIDTH, measured.height)
        return measured

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self._width, self._height = new_size

    def print(self, *objects: Any, soft_wrap: bool | None = None, **options: Any) -> None:
        if soft_wrap is None and not self.is_terminal:
            soft_wrap = True  # a line of text stays one line for grep; tables still fit
        super().print(*objects, soft_wrap=soft_wrap, **options)

    def on_broken_pipe(self) -> None:
        self.quiet = True
        _reader_left()


class _OneLineRows(RenderHook):
    """Tables printed to a pipe keep one line per row: see :func:`_fit_table`."""

    def __init__(self, console: Console) -> None:
        self._console = console

    def process_renderables(self, renderables: list[ConsoleRenderable]) -> list[ConsoleRenderable]:
        if not self._console.is_terminal and "rich.table" in sys.modules:  # else no Table yet
            from rich.table import Table

            for renderable in renderables:
                if isinstance(renderable, Table):
                    _fit_table(renderable, self._console, self._console.width)
        return renderables


def _fit_table(table: Table, console: Console, width: int) -> None:
    """Lay ``table`` out within ``width`` columns with one line per row, for a pipe.

    The table loses its box and its edge padding, and no cell wraps. Every column keeps at
    least its first :data:`_NARROWEST_CELL` characters (ids, states, numbers stay whole); the
    widest columns are cut to a common width, their long values ending in "…"; columns that
    find no room even so are left off from the right (``--json`` has everything). A ``grep``
    or ``awk`` downstream sees one line per row. A table with a column that folds long values
    (a list of fields and their text, such as ``models why``) is left as it is: its values are
    the point, so they wrap instead of being cut.
    """
    from rich.measure import Measurement

    if any(column.overflow == "fold" for column in table.columns):
        return  # a field list (`models why`) asked for whole values: they wrap, never cut
    table.box = None
    table.pad_edge = False
    _, right, _, left = table.padding
    padding = left + right
    width += padding  # no padding before the first column or after the last
    natural = []
    for column in table.columns:
        cells = [column.header, *column.cells] if table.show_header else list(column.cells)
        widest = max(
            (Measurement.get(console, console.options, cell).maximum for cell in cells),
            default=0,
        )
        natural.append(widest if column.width is None else min(widest, column.width))
        column.no_wrap = True
        column.overflow = "ellipsis"
    shown = len(natural)
    while shown > 1 and sum(min(n, _NARROWEST_CELL) + padding for n in natural[:shown]) > width:
        shown -= 1
    del table.columns[shown:]
    cap = _common_cap(natural[:shown], width - shown * padding)
    if cap is None:
        return
    for column, wanted in zip(table.columns, natural, strict=False):
        if wanted > cap:
            column.max_width = cap
            if column.width is not None:
                column.width = cap


def _common_cap(widths: Sequence[int], budget: int) -> int | None:
    """The largest width that the widest of ``widths`` can be cut to so that they add up to at
    most ``budget`` (never below :data:`_NARROWEST_CELL`); None when they fit as they are."""
    if sum(widths) <= budget:
        return None
    ordered = sorted(widths)
    spent = 0
    for index, width in enumerate(ordered):
        sharing = len(ordered) - index  # the columns at least this wide share what is left
        if spent + width * sharing > budget:
            return max((budget - spent) // sharing, _NARROWEST_CELL)
        spent += width
    return None  # pragma: no cover - unreachable: the widths did not fit as they are


console = _PipeFriendlyConsole(highlight=False, soft_wrap=False)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


# --- Help in the user's words -------------------------------------------------------------
#
# Typer's Rich help shows `<bool>` beside every flag, `<list[str]>`, `{path}` for a required
# argument and cuts option help with "…" in an 80-column terminal. Shipyard shows Click's plain
# layout instead (`--name TEXT`, `PATH`, `[PATH]`, `[a|b]`, text wrapped, never cut): the
# root group switches every command it hands out to it, so no command module has to care.

_TYPE_WORDS = {
    "str": "TEXT",
    "int": "INTEGER",
    "float": "FLOAT",
    "bool": "BOOLEAN",
    "datetime": "DATETIME",
    "path": "PATH",
    "Path": "PATH",
    "file": "FILE",
    "directory": "DIRECTORY",
    "UUID": "UUID",
}


class _WholeWords(_textwrap.TextWrapper):
    """Click's help wrapper, except that a line never ends inside a hyphenated word:
    "shipyard-" then "mlops[...]" on the next line is no package anyone can install."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.break_on_hyphens = False


_textwrap.TextWrapper = _WholeWords  # type: ignore[misc]  # what Click's wrap_text uses


def _value_word(label: str | None) -> str | None:
    """Typer's type label (``<int range>``, ``<list[str]>``, ``<a|b>``) as Click writes a
    value: ``INTEGER``, ``TEXT`` (a repeatable option takes one value each time), ``[a|b]``."""
    if not label:
        return label
    word = label.removeprefix("<").removesuffix(">")
    if word.startswith("list[") and word.endswith("]"):
        word = word[len("list[") : -1]
    word = word.removesuffix(" range")
    if "|" in word:
        return f"[{word}]"
    return _TYPE_WORDS.get(word, word.upper())


class _PlainOption(TyperOption):
    """An option shown as Click shows it: ``--name TEXT``, ``--kind [a|b]``, a flag alone."""

    def display_type_rich(self, ctx: Context) -> str | None:
        if self.metavar is not None:
            return self.metavar
        if self.is_flag or self.count:
            return None
        return _value_word(self.display_type(ctx))


class _PlainArgument(TyperArgument):
    """An argument shown as Click shows it: ``PATH`` when required, ``[PATH]`` when not,
    ``REF...`` when it takes several; its choices as ``[a|b]``."""

    @property
    def display_name_raw(self) -> str:
        return self.metavar or (self.name or "").upper()

    def display_type_rich(self, ctx: Context) -> str | None:
        word = _value_word(self.display_type(ctx))
        return word if word and word.startswith("[") else None

    def _usage_display_name(self) -> str:
        name = self.display_name_raw if self.required else f"[{self.display_name_raw}]"
        return f"{name}..." if self.nargs != 1 else name


def _first_paragraph(text: str) -> str:
    return " ".join(text.split("\n\n", 1)[0].split())


def _plain_help(command: Command) -> None:
    """Switch ``command`` and every command under it to Click's plain help."""
    if isinstance(command, TyperCommand | TyperGroup):
        command.rich_markup_mode = None
    if command.help and not command.short_help:
        command.short_help = _first_paragraph(command.help)  # listed whole, not cut at 45
    for param in command.params:
        if type(param) is TyperOption:
            param.__class__ = _PlainOption
        elif type(param) is TyperArgument:
            param.__class__ = _PlainArgument
    subcommands = getattr(command, "commands", None)
    if isinstance(subcommands, dict):  # a lazy mapping would load every module: not walked
        for subcommand in subcommands.values():
            _plain_help(subcommand)


# --- Errors: one line, one exit code -------------------------------------------------------


def _one_line(exc: ShipyardError) -> str:
    if isinstance(exc, FilterSyntaxError):
        message = str(exc).split("\n", 1)[0]
        return f"{message} (at character {exc.position + 1} of {exc.text!r})"
    return "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())


_EXPECTED = {
    "int_parsing": "is not a whole number",
    "int_from_float": "is not a whole number",
    "float_parsing": "is not a number",
    "bool_parsing": "is not true or false",
    "datetime_parsing": "is not a date or time (e.g. 2026-12-01 or 2026-12-01T09:30:00)",
    "datetime_from_date_parsing": "is not a date or time (e.g. 2026-12-01 or 2026-12-01T09:30:00)",
    "date_parsing": "is not a date (e.g. 2026-12-01)",
    "date_from_datetime_parsing": "is not a date (e.g. 2026-12-01)",
}
"""What a value failed to be, by Pydantic's error type (Typer converts values with Pydantic)."""


def _name_the_value(exc: UsageError) -> None:
    """Put the value the user typed into a conversion error: ``'abc' is not a whole number``
    instead of Pydantic's ``Input should be a valid integer, unable to parse …``."""
    errors = getattr(exc.__cause__, "errors", None)
    if not isinstance(exc, BadParameter) or not callable(errors):
        return
    try:
        first = errors()[0]
        value, kind = first["input"], first["type"]
    except (IndexError, KeyError, TypeError):
        return
    if kind in _EXPECTED and isinstance(value, str | int | float):
        exc.message = f"{value!r} {_EXPECTED[kind]}"


def _usage_message(exc: UsageError) -> str:
    _name_the_value(exc)
    message = " ".join(exc.format_message().split()).rstrip(".")
    message = message.replace(". Did you mean", "; did you mean").replace("Value error, ", "")
    where = exc.ctx.command_path if exc.ctx is not None else "shipyard"
    return f"{message[:1].lower()}{message[1:]} (see: {where} --help)"


def _fail(message: str, code: int) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {escape(message)}")
    raise typer.Exit(code=code)


@contextmanager
def _errors_as_one_line() -> Iterator[None]:
    """Every error becomes ``error: …`` on one stderr line and its exit code (docs/cli.md)."""
    try:
        yield
    except NoArgsIsHelpError as exc:  # `shipyard data`: the user asked what is there
        try:
            typer.echo(exc.format_message())
        except BrokenPipeError:
            _reader_left()
        raise typer.Exit(code=0) from exc
    except UsageError as exc:
        _fail(_usage_message(exc), 2)
    except typer.TyperException as exc:  # Click's other errors (a file it could not open)
        _fail(" ".join(exc.format_message().split()), exc.exit_code)
    except typer.Abort:
        _fail("aborted", 1)
    except ShipyardError as exc:
        _fail(_one_line(exc), exc.exit_code)
    except BrokenPipeError:
        _reader_left()
    except OSError as exc:  # a folder that cannot be written, a full disk, ...
        _fail(str(exc), 1)


class ShipyardGroup(TyperGroup):
    """The root command group.

    Every error under it (a :class:`ShipyardError`, a usage error, a failed write) is printed
    as one ``error: …`` line with its documented exit code; every command it hands out shows
    Click's plain help; a reader that stops reading early (``| head``) ends it quietly.
    """

    def __init__(self, **attrs: Any) -> None:
        attrs["rich_markup_mode"] = None
        super().__init__(**attrs)
        _plain_help(self)

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            return super().main(
                args,
                prog_name or self.name or "shipyard",  # not "-c" or "__main__.py"
                complete_var,
                standalone_mode,
                windows_expand_args,
                **extra,
            )
        finally:
            _flush_stdout()  # here, not at exit: a closed pipe must not print a traceback

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: Context | None = None,
        **extra: Any,
    ) -> Context:
        with _errors_as_one_line():
            return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: Context) -> Any:
        with _errors_as_one_line():
            return super().invoke(ctx)

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            _plain_help(command)
        return command

    def format_commands(self, ctx: Context, formatter: HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.short_help or _first_paragraph(command.help or "")))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def home_from(ctx: typer.Context) -> Any:
    """The ``--home`` given to the root command (None: ``SHIPYARD_HOME`` or the nearest
    ``.shipyard`` decides)."""
    return (ctx.find_root().obj or {}).get("home")


def workspace_from(ctx: typer.Context) -> Workspace:
    """The workspace chosen by ``--home`` / ``SHIPYARD_HOME`` / the nearest ``.shipyard``."""
    from shipyard.tracking import open_workspace  # not at import: `data status` needs no store

    return open_workspace(home_from(ctx))


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def progress_bar(*columns: Any) -> Any:
    """A transient Rich progress bar on stderr, shown only when stderr is a terminal: stdout
    keeps nothing but the command's output (no blank line where a bar was)."""
    from rich.progress import Progress

    return Progress(
        *columns, console=err_console, transient=True, disable=not err_console.is_terminal
    )


def print_json(data: Any) -> None:
    """Strict JSON on stdout; NaN and infinities become the strings "nan", "inf", "-inf"."""
    sys.stdout.write(json.dumps(_jsonable(data), indent=2, sort_keys=False) + "\n")


def format_time(ms: int | None) -> str:
    if ms is None:
        return "-"
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def format_size(n: int) -> str:
    """Bytes as ``512 B``, ``4.0 KB``, ``1.2 GB`` (binary units)."""
    value = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def format_duration(ms: int | None) -> str:
    if ms is None:
        return "running"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
