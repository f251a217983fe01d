"""Find what pickles would import, without unpickling them.

Loading a pickle runs whatever callables it names. This module reads the opcode stream with
:func:`pickletools.genops` (which only parses) and reports every global the stream names
(``GLOBAL``, ``STACK_GLOBAL``, ``INST``), rated by how much harm importing and calling it can do.
"""

from __future__ import annotations

import os
import pickletools
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from shipyard.entities.data import Severity
from shipyard.entities.models import PickleFinding, PickleImport

__all__ = [
    "PICKLE_SUFFIXES",
    "is_pickle_file",
    "scan_pickle_bytes",
    "scan_pickles",
]

PICKLE_SUFFIXES = frozenset({".pkl", ".pickle", ".joblib", ".pck", ".dill"})

# Protocol 2+ streams open with PROTO (0x80) and the protocol number; 0 and 1 have no header,
# so they are recognised by suffix only.
_MAX_PROTOCOL = 5

# Whole modules whose callables can run commands, touch the file system or network, import or
# evaluate code, or unpickle more data.
_DANGEROUS_MODULES = frozenset(
    {
        "_pickle",
        "_posixsubprocess",
        "asyncio",
        "bdb",
        "code",
        "codeop",
        "commands",
        "ctypes",
        "dill",
        "ftplib",
        "http",
        "httplib",
        "importlib",
        "marshal",
        "multiprocessing",
        "nt",
        "os",
        "pdb",
        "pickle",
        "platform",
        "posix",
        "pty",
        "requests",
        "runpy",
        "shelve",
        "shutil",
        "signal",
        "socket",
        "subprocess",
        "sys",
        "telnetlib",
        "tempfile",
        "urllib",
        "urllib2",
        "webbrowser",
        "zipimport",
    }
)

_DANGEROUS_BUILTINS = frozenset(
    {
        "__import__",
        "breakpoint",
        "compile",
        "delattr",
        "eval",
        "exec",
        "execfile",
        "getattr",
        "globals",
        "input",
        "locals",
        "open",
        "setattr",
        "vars",
    }
)

# Gadgets that reach arbitrary attributes or call arbitrary callables.
_DANGEROUS_NAMES = frozenset(
    {
        "functools.partial",
        "functools.reduce",
        "operator.attrgetter",
        "operator.methodcaller",
        "types.CodeType",
        "types.FunctionType",
        "numpy.load",
        "numpy.lib.npyio.load",
        "numpy.fromfile",
        "numpy.testing._private.utils.runstring",
        "torch.load",
        "torch.serialization.load",
    }
)

_HARMLESS_BUILTINS = frozenset(
    {
        "bool",
        "bytearray",
        "bytes",
        "complex",
        "dict",
        "float",
        "frozenset",
        "int",
        "list",
        "object",
        "range",
        "set",
        "slice",
        "str",
        "tuple",
    }
)

# Importing these names and calling them rebuilds data; nothing else.
_HARMLESS_PREFIXES = (
    "collections.",
    "datetime.",
    "decimal.Decimal",
    "numpy.",
    "pandas.",
    "scipy.",
    "sklearn.",
    "_codecs.encode",
    "copy_reg._reconstructor",
    "copyreg._reconstructor",
    "copyreg.__newobj__",
    "joblib.numpy_pickle.NumpyArrayWrapper",
    "uuid.UUID",
    "pathlib.",
)


def rate_import(module: str, name: str) -> PickleImport:
    """Rate one global a pickle names."""
    top = module.split(".", 1)[0]
    qualified = f"{module}.{name}"
    if top in ("builtins", "__builtin__"):
        if name in _DANGEROUS_BUILTINS:
            return PickleImport(module, name, Severity.ERROR, "evaluates code or reaches anything")
        if name in _HARMLESS_BUILTINS:
            return PickleImport(module, name, Severity.INFO)
        return PickleImport(module, name, Severity.WARNING, "builtin not known to be harmless")
    if top in _DANGEROUS_MODULES:
        return PickleImport(module, name, Severity.ERROR, f"{top} can run commands or load code")
    if qualified in _DANGEROUS_NAMES:
        return PickleImport(module, name, Severity.ERROR, "can call or load arbitrary objects")
    if qualified.startswith(_HARMLESS_PREFIXES):
        return PickleImport(module, name, Severity.INFO)
    return PickleImport(module, name, Severity.WARNING, "not known to be harmless")


def _globals_in(data: bytes | IO[bytes]) -> Iterator[tuple[str, str]]:
    """Yield ``(module, name)`` for each global the stream names, in order.

    ``STACK_GLOBAL`` takes its operands from the stack; we follow only the strings pushed and
    memoised, which is how every pickler writes them. Operands we cannot follow are reported
    as ``?`` so that they are never taken for harmless.

    Raises:
        ValueError: when the stream is malformed or ends early (after yielding what was read).
    """
    memo: dict[int, object] = {}
    stack: list[object] = []
    for opcode, arg, _pos in pickletools.genops(data):
        name = opcode.name
        if name in ("GLOBAL", "INST"):
            module, _, attr = str(arg).partition(" ")
            yield module, attr
            stack.append(None)
        elif name == "STACK_GLOBAL":
            top = stack.pop() if stack else None
            below = stack.pop() if stack else None
            yield (
                below if isinstance(below, str) else "?",
                top if isinstance(top, str) else "?",
            )
            stack.append(None)
        elif name in ("SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE"):
            stack.append(arg)
        elif name in ("MEMOIZE",):
            memo[len(memo)] = stack[-1] if stack else None
        elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
            memo[int(str(arg))] = stack[-1] if stack else None
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            stack.append(memo.get(int(str(arg))))
        elif name == "STOP":
            return
        else:
            # Only the last two pushed strings matter for STACK_GLOBAL; anything else is a
            # value we do not follow.
            stack.append(None)
        if len(stack) > 64:
            del stack[:-64]


def scan_pickle_bytes(data: bytes | IO[bytes], path: str = "<bytes>") -> PickleFinding:
    """Scan one pickle stream, in memory or an open binary file (see :func:`scan_pickles`)."""
    imports: list[PickleImport] = []
    seen: set[tuple[str, str]] = set()
    error: str | None = None
    try:
        for module, name in _globals_in(data):
            if (module, name) not in seen:
                seen.add((module, name))
                imports.append(rate_import(module, name))
    except (ValueError, IndexError, KeyError, UnicodeDecodeError) as exc:
        error = f"could not read the whole pickle stream: {exc}"
    return PickleFinding(path=path, imports=tuple(imports), error=error)


def is_pickle_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` looks like a pickle: by its suffix or its protocol 2+ header."""
    path = Path(path)
    if path.suffix.lower() in PICKLE_SUFFIXES:
        return True
    try:
        with path.open("rb") as file:
            head = file.read(2)
    except OSError:
        return False
    return len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= _MAX_PROTOCOL


def scan_pickles(path: str | os.PathLike[str]) -> list[PickleFinding]:
    """Scan a file, or every file under a folder, for pickles and what they would import.

    Nothing is unpickled: the opcode stream is only parsed. A file counts as a pickle when its
    suffix is one of :data:`PICKLE_SUFFIXES` or when it opens with a pickle protocol 2+ header.

    Args:
        path: a file or a folder (walked recursively, symlinks not followed).

    Returns:
        One finding per pickle-like file, sorted by path (relative to ``path`` for a folder);
        empty when there is none.

    Example:
        >>> for finding in scan_pickles("model/"):  # doctest: +SKIP
        ...     for imp in finding.unsafe:
        ...         print(finding.path, imp.qualified_name, imp.severity)
    """
    root = Path(path)
    if root.is_file():
        files = [(root, root.name)]
    else:
        files = [
            (Path(dirpath) / fname, (Path(dirpath) / fname).relative_to(root).as_posix())
            for dirpath, _dirs, fnames in os.walk(root)
            for fname in fnames
        ]
    findings = []
    for file, rel in sorted(files, key=lambda item: item[1]):
        if file.is_symlink():
            continue
        if is_pickle_file(file):
            with file.open("rb") as stream:
                findings.append(scan_pickle_bytes(stream, rel))
        elif zipfile.is_zipfile(file):
            findings.extend(_scan_zip(file, rel))
    return findings


def _scan_zip(file: Path, rel: str) -> list[PickleFinding]:
    """Pickles inside a zip archive (``torch.save`` files, ``.npz``, TorchScript) as
    ``archive.zip!member`` findings; members are read, never extracted to disk."""
    found = []
    try:
        with zipfile.ZipFile(file) as archive:
            for member in archive.infolist():
                if member.is_dir():
                    continue
                with archive.open(member) as stream:
                    head = stream.read(2)
                named = Path(member.filename).suffix.lower() in PICKLE_SUFFIXES
                header = len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= _MAX_PROTOCOL
                if named or header:
                    with archive.open(member) as stream:
                        data = stream.read()
                    found.append(scan_pickle_bytes(data, f"{rel}!{member.filename}"))
    except (zipfile.BadZipFile, OSError) as exc:
        found.append(PickleFinding(path=rel, imports=(), error=f"unreadable zip archive: {exc}"))
    return found
