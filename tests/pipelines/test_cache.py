"""The step cache decides: exactly the steps whose key changed re-run, and explain says why."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import shipyard
from shipyard.pipelines import explain
from tests.pipelines._files import edit, run, write

pytestmark = pytest.mark.integration

DIAMOND = '''
import shipyard

OFFSET = 1


def scale(x):
    return x * 3


@shipyard.step
def load(n: int) -> list:
    return list(range(n))


@shipyard.step
def left(values: list) -> int:
    """Sum them."""
    return sum(values) + OFFSET


@shipyard.step
def left_more(total: int) -> int:
    return total * 2


@shipyard.step
def right(values: list, k: int = 3) -> int:
    return scale(max(values)) * k


@shipyard.step
def right_more(x: int) -> int:
    return x + 1


@shipyard.step
def join(a: int, b: int) -> dict:
    return {"a": a, "b": b}


@shipyard.pipeline
def diamond(n: int = 5, k: int = 3):
    values = load(n)
    return join(left_more(left(values)), right_more(right(values, k=k)))
'''

ALL = {"load", "left", "left_more", "right", "right_more", "join"}


@pytest.fixture
def flow(tmp_path: Path, home: Path) -> Path:
    path = write(tmp_path, DIAMOND)
    first = run(path, "diamond")
    assert set(first.executed) == ALL
    assert first.output("join") == {"a": (10 + 1) * 2, "b": 4 * 3 * 3 + 1}
    return path


def _reran(path: Path, **params: object) -> set[str]:
    result = run(path, "diamond", **params)
    assert set(result.executed) | set(result.cached) == ALL
    return set(result.executed)


def test_a_rerun_with_nothing_changed_runs_no_step(flow: Path) -> None:
    result = run(flow, "diamond")
    assert result.executed == []
    assert set(result.cached) == ALL
    assert result.output("join") == {"a": 22, "b": 37}


def test_comments_blank_lines_and_docstrings_do_not_count(flow: Path) -> None:
    edit(flow, '    """Sum them."""\n', "    # a comment\n\n    '''Another docstring.'''\n")
    edit(flow, "return total * 2", "return total * 2  # twice")
    assert _reran(flow) == set()


def test_changed_code_reruns_the_step_and_its_downstream_only(flow: Path) -> None:
    edit(flow, "return sum(values) + OFFSET", "return sum(values) + OFFSET + 1")
    assert _reran(flow) == {"left", "left_more", "join"}


def test_a_changed_helper_of_the_users_module_counts_as_code(flow: Path, home: Path) -> None:
    edit(flow, "return x * 3", "return x * 4")
    result = run(flow, "diamond")
    assert set(result.executed) == {"right", "right_more", "join"}
    reasons = {e.step: e.reasons for e in explain(shipyard.open_workspace().backend, result.run_id)}
    assert reasons["right"] == ["code of scale changed"]
    assert reasons["right_more"][0].startswith("input 'x' changed")
    assert "the output of step 'right' changed" in reasons["right_more"][0]
    assert reasons["load"][0].startswith("nothing in its key changed")


def test_a_changed_module_constant_counts_as_code(flow: Path) -> None:
    edit(flow, "OFFSET = 1", "OFFSET = 2")
    assert _reran(flow) == {"left", "left_more", "join"}


def test_a_changed_parameter_reruns_its_subtree(flow: Path, home: Path) -> None:
    result = run(flow, "diamond", k=4)
    assert set(result.executed) == {"right", "right_more", "join"}
    reasons = {e.step: e.reasons for e in explain(shipyard.open_workspace().backend, result.run_id)}
    assert reasons["right"] == ["parameter 'k' changed: 3 -> 4"]


def test_a_change_that_gives_the_same_output_stops_there(flow: Path) -> None:
    # left's output is the same for n=5 whether OFFSET is added once or via +0: downstream of
    # an unchanged output is reused (keys follow content, not the mere fact of a re-run).
    edit(flow, "return sum(values) + OFFSET", "return sum(values) + OFFSET + 0")
    assert _reran(flow) == {"left"}


def test_a_new_dataset_version_reruns_the_steps_that_read_it(tmp_path: Path, home: Path) -> None:
    table = tmp_path / "scores.csv"
    pd.DataFrame({"x": [1, 2, 3]}).to_csv(table, index=False)
    shipyard.data.add(table, "scores")
    path = write(
        tmp_path,
        """
        import shipyard

        @shipyard.step
        def read(frame) -> int:
            return int(frame["x"].sum())

        @shipyard.step
        def constant() -> int:
            return 7

        @shipyard.step
        def add(a: int, b: int) -> int:
            return a + b

        @shipyard.pipeline
        def scored():
            return add(read(shipyard.data.ref("scores@latest")), constant())
        """,
    )
    assert run(path, "scored").output("add") == 13
    pd.DataFrame({"x": [10, 20]}).to_csv(table, index=False)
    shipyard.data.add(table, "scores")
    result = run(path, "scored")
    assert set(result.executed) == {"read", "add"}
    assert result.cached == ["constant"]
    assert result.output("add") == 37
    edges = shipyard.open_workspace().backend.pipeline_lineage(run_id=result.run_id)
    assert [(e.kind, e.ref, e.direction) for e in edges] == [
        ("dataset_version", "scores@2", "read")
    ]


def test_declared_reads_put_outside_files_in_the_key(tmp_path: Path, home: Path) -> None:
    source = tmp_path / "raw.txt"
    source.write_text("3\n")
    path = write(
        tmp_path,
        f"""
        import shipyard

        @shipyard.step(reads=[{str(source)!r}])
        def ingest() -> int:
            with open({str(source)!r}) as file:
                return int(file.read())

        @shipyard.step(cache=False)
        def clock() -> int:
            return 1

        @shipyard.step
        def show(value: int, tick: int) -> str:
            return f"value={{value}}"

        @shipyard.pipeline
        def outside():
            return show(ingest(), clock())
        """,
    )
    assert run(path, "outside").output("show") == "value=3"
    again = run(path, "outside")
    assert set(again.executed) == {"clock"}  # never cached; its output did not change
    source.write_text("4\n")
    result = run(path, "outside")
    assert set(result.executed) == {"ingest", "clock", "show"}
    assert result.output("show") == "value=4"
    reasons = {e.step: e.reasons for e in explain(shipyard.open_workspace().backend, result.run_id)}
    assert reasons["ingest"][0].startswith(f"read {str(source)!r} changed")
    assert reasons["clock"][0].startswith("caching is off for this step")


def test_outputs_deleted_from_the_store_are_recomputed(flow: Path, home: Path) -> None:
    ws = shipyard.open_workspace()
    step = run(flow, "diamond").step("left_more")
    location = ws.artifacts.local_path(step.outputs[0].digest)
    assert location is not None
    location.chmod(0o644)
    location.unlink()
    assert _reran(flow) == {"left_more"}
