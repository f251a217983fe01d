"""The code part of the key: what a function does, not how it is written."""

from __future__ import annotations

import textwrap
from pathlib import Path
from types import ModuleType

from shipyard.pipelines.code import code_digests

BASE = '''
import json

LIMIT = 3
ITEMS = ("a", "b")


def helper(x):
    return x + LIMIT


class Scaler:
    def scale(self, x):
        return x * 2


def unrelated():
    return 42


def fn(x):
    """Docstring."""
    return Scaler().scale(helper(x)) + len(ITEMS) + len(json.dumps(x))
'''


def _digests(tmp_path: Path, source: str) -> dict[str, str]:
    module = ModuleType("codemod")
    path = tmp_path / f"codemod_{abs(hash(source))}.py"
    path.write_text(textwrap.dedent(source))
    module.__file__ = str(path)
    exec(compile(path.read_text(), str(path), "exec"), module.__dict__)  # noqa: S102
    fn = module.__dict__["fn"]
    fn.__module__ = "codemod"
    for name in ("helper", "Scaler", "unrelated"):
        module.__dict__[name].__module__ = "codemod"
    import sys

    sys.modules["codemod"] = module
    try:
        return code_digests(fn)
    finally:
        del sys.modules["codemod"]


def test_the_function_its_helpers_classes_and_constants_count(tmp_path: Path) -> None:
    found = _digests(tmp_path, BASE)
    assert set(found) == {
        "codemod.fn",
        "codemod.helper",
        "codemod.Scaler",
        "codemod.LIMIT",
        "codemod.ITEMS",
    }


def test_formatting_comments_and_docstrings_do_not(tmp_path: Path) -> None:
    reformatted = BASE.replace('    """Docstring."""\n', "    # why: a comment\n\n").replace(
        "return x + LIMIT", "return (x\n            + LIMIT)  # add"
    )
    assert _digests(tmp_path, reformatted) == _digests(tmp_path, BASE)


def test_any_change_of_behaviour_does(tmp_path: Path) -> None:
    base = _digests(tmp_path, BASE)
    for old, new, changed in [
        ("return x + LIMIT", "return x - LIMIT", "codemod.helper"),
        ("return x * 2", "return x * 3", "codemod.Scaler"),
        ("LIMIT = 3", "LIMIT = 4", "codemod.LIMIT"),
        ('ITEMS = ("a", "b")', 'ITEMS = ("a",)', "codemod.ITEMS"),
        ("+ len(ITEMS)", "- len(ITEMS)", "codemod.fn"),
    ]:
        after = _digests(tmp_path, BASE.replace(old, new))
        differs = {k for k in base if base[k] != after.get(k)}
        assert differs == {changed}, (old, differs)


def test_unused_functions_do_not(tmp_path: Path) -> None:
    changed = BASE.replace("return 42", "return 43")
    assert _digests(tmp_path, changed) == _digests(tmp_path, BASE)
