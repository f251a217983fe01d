"""The code part of a step's cache key: what the step's function is, not how it is written.

A function's source is parsed and dumped without comments, blank lines, docstrings, positions
or decorators, so reformatting changes nothing while any change of behaviour does. The
functions and classes of the user's own module that it refers to count too (transitively), and
so do the module-level constants it reads; library code (numpy, scikit-learn) does not: its
version is the environment's business.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import textwrap
import types
from collections.abc import Callable
from typing import Any

__all__ = ["code_digests", "normalised_source"]

_CONSTANT_TYPES = (int, float, str, bytes, bool, type(None))


def _strip(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Module):
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                node.body = body[1:] or [ast.Pass()]
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            node.decorator_list = []
    return tree


def _tree(obj: Any) -> ast.AST | None:
    try:
        source = inspect.getsource(obj)
    except (OSError, TypeError):
        return None
    try:
        return _strip(ast.parse(textwrap.dedent(source)))
    except SyntaxError:  # a lambda inside an expression: its line alone does not parse
        return None


def normalised_source(obj: Any) -> str:
    """A stable text of what ``obj`` (a function or class) does."""
    return _normalised(obj, _tree(obj))


def _normalised(obj: Any, tree: ast.AST | None) -> str:
    if tree is not None:
        return ast.dump(tree, annotate_fields=True, include_attributes=False)
    code = getattr(obj, "__code__", None)
    if isinstance(code, types.CodeType):
        return repr((code.co_code, code.co_consts, code.co_names))
    return repr(obj)


def _names(tree: ast.AST) -> set[str]:
    return {
        node.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)
    }


def _unwrap(obj: Any) -> Any:
    inner = getattr(obj, "fn", None)  # a Step wraps its function
    return inner if callable(inner) and hasattr(inner, "__code__") else obj


def code_digests(
    fn: Callable[..., Any], memo: dict[int, tuple[str, str, ast.AST | None]] | None = None
) -> dict[str, str]:
    """Digest of ``fn`` and of each function, class and constant of its module it uses.

    Args:
        fn: the step's function (or the step).
        memo: shared between calls of one run, so a helper used by many steps is parsed once.

    Returns:
        ``{name: digest}``, sorted: qualified names in the function's module (``helper``,
        ``Scaler``, ``LIMIT``), without the module's own name, which depends on how the file was
        loaded (``__main__``, its stem, or a made-up name for a second file with that stem).
    """
    fn = _unwrap(fn)
    memo = {} if memo is None else memo
    module = getattr(fn, "__module__", None)
    found: dict[str, str] = {}
    pending: list[Any] = [fn]
    seen: set[int] = set()
    while pending:
        obj = pending.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if id(obj) not in memo:
            tree = _tree(obj)
            digest = hashlib.sha256(_normalised(obj, tree).encode()).hexdigest()
            memo[id(obj)] = (obj.__qualname__, digest, tree)
        name, digest, tree = memo[id(obj)]
        found[name] = digest
        if tree is None:
            continue
        space = getattr(obj, "__globals__", None)
        if space is None:
            source_module = inspect.getmodule(obj)
            space = vars(source_module) if source_module is not None else {}
        for used in sorted(_names(tree)):
            if used not in space:
                continue
            value = _unwrap(space[used])
            if isinstance(value, type | types.FunctionType):
                if getattr(value, "__module__", None) == module:
                    pending.append(value)
            elif _is_constant(value):
                found[used] = hashlib.sha256(repr(value).encode()).hexdigest()
    return dict(sorted(found.items()))


def _is_constant(value: Any) -> bool:
    if isinstance(value, _CONSTANT_TYPES):
        return True
    if isinstance(value, tuple | frozenset):
        return all(_is_constant(v) for v in value)
    return False
