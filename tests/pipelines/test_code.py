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
    assert set(found) == {"fn", "helper", "Scaler", "LIMIT", "ITEMS"}


def test_formatting_comments_and_docstrings_do_not(tmp_path: Path) -> None:
    reformatted = BASE.replace('    """Docstring."""\n', "    # why: a comment\n\n").replace(
        "return x + LIMIT", "return (x\n            + LIMIT)  # add"
    )
    assert _digests(tmp_path, reformatted) == _digests(tmp_path, BASE)


def test_any_change_of_behaviour_does(tmp_path: Path) -> None:
    base = _digests(tmp_path, BASE)
    for old, new, changed in [
        ("return x + LIMIT", "return x - LIMIT", "helper"),
        ("return x * 2", "return x * 3", "Scaler"),
        ("LIMIT = 3", "LIMIT = 4", "LIMIT"),
        ('ITEMS = ("a", "b")', 'ITEMS = ("a",)', "ITEMS"),
        ("+ len(ITEMS)", "- len(ITEMS)", "fn"),
    ]:
        after = _digests(tmp_path, BASE.replace(old, new))
        differs = {k for k in base if base[k] != after.get(k)}
        assert differs == {changed}, (old, differs)


def test_unused_functions_do_not(tmp_path: Path) -> None:
    changed = BASE.replace("return 42", "return 43")
    assert _digests(tmp_path, changed) == _digests(tmp_path, BASE)


def test_the_module_name_the_file_was_loaded_under_does_not(tmp_path: Path) -> None:
    """`python flow.py` (``__main__``), `shipyard pipeline run flow.py`, and a second
    `flow.py` in another folder (a made-up module name) must share the cache."""
    import importlib.util
    import sys

    first, second = tmp_path / "a" / "flow.py", tmp_path / "b" / "flow.py"
    found = []
    for path, name in [(first, "flow"), (second, "shipyard_pipeline_flow_123"), (first, "x")]:
        path.parent.mkdir(exist_ok=True)
        path.write_text(textwrap.dedent(BASE))
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
            found.append(code_digests(module.fn))
        finally:
            del sys.modules[name]
    assert found[0] == found[1] == found[2]
    assert set(found[0]) == {"fn", "helper", "Scaler", "LIMIT", "ITEMS"}
