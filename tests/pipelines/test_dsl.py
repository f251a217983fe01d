"""Graphs from plain calls: names, arguments, parameters and the errors a user meets first."""

from __future__ import annotations

import pytest

import shipyard
from shipyard.entities import DatasetRef
from shipyard.errors import InvalidArgumentError
from shipyard.pipelines import Dag, Node, Output


@shipyard.step
def load(n: int) -> list[int]:
    return list(range(n))


@shipyard.step(outputs=("train", "test"))
def split(values: list[int], ratio: float = 0.5) -> tuple[list[int], list[int]]:
    cut = int(len(values) * ratio)
    return values[:cut], values[cut:]


@shipyard.step
def total(values: list[int]) -> int:
    return sum(values)


@shipyard.pipeline
def flow(n: int = 10, ratio: float = 0.5, verbose: bool = False):
    train, test = split(load(n), ratio=ratio)
    return total(train), total(test)


def test_calls_make_the_graph_with_parameters_and_defaults() -> None:
    dag = flow.build(n=4)
    assert [node.name for node in dag.nodes] == ["load", "split", "total", "total_2"]
    assert dag.params == {"n": 4, "ratio": 0.5, "verbose": False}
    by_name = {node.name: node for node in dag.nodes}
    assert by_name["load"].arguments == {"n": 4}
    assert by_name["split"].arguments == {"values": Output("load"), "ratio": 0.5}
    assert by_name["total"].arguments == {"values": Output("split", "train")}
    assert by_name["total_2"].arguments == {"values": Output("split", "test")}
    assert by_name["total_2"].upstream == ("split",)
    assert dag.downstream("load") == ["split", "total", "total_2"]
    assert dag.outputs == (Output("total"), Output("total_2"))


def test_a_step_outside_a_pipeline_is_the_plain_function() -> None:
    assert load(3) == [0, 1, 2]
    assert split([1, 2, 3, 4]) == ([1, 2], [3, 4])


def test_string_parameters_from_the_command_line_are_converted() -> None:
    assert flow.resolve_params({"n": "7", "ratio": "0.25", "verbose": "true"}) == {
        "n": 7,
        "ratio": 0.25,
        "verbose": True,
    }


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"epochs": 3}, "has no parameter 'epochs'; its parameters: n, ratio, verbose"),
        ({"n": "ten"}, "parameter 'n' of pipeline 'flow' must be an integer, not 'ten'"),
        ({"verbose": "maybe"}, "must be true or false"),
    ],
)
def test_bad_parameters_are_named(params: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message.replace("(", r"\(")):
        flow.build(**params)


def test_a_required_parameter_must_be_given() -> None:
    @shipyard.pipeline
    def needs(path: str):
        return load(3)

    with pytest.raises(InvalidArgumentError, match=r"needs parameter 'path' \(--param path=...\)"):
        needs.build()


def test_literal_arguments_must_be_json_values() -> None:
    @shipyard.pipeline
    def bad():
        return total(object())

    with pytest.raises(
        InvalidArgumentError, match="argument 'values': a object value cannot be a literal"
    ):
        bad.build()


def test_using_an_output_as_a_value_in_the_pipeline_function_is_explained() -> None:
    @shipyard.pipeline
    def branching():
        values = load(3)
        if values:
            return total(values)
        return None

    with pytest.raises(
        InvalidArgumentError, match="has no value while the pipeline is being built"
    ):
        branching.build()


def test_a_tuple_of_outputs_must_be_unpacked() -> None:
    @shipyard.pipeline
    def unpacked():
        return total(split(load(4)))

    with pytest.raises(InvalidArgumentError, match="unpack it"):
        unpacked.build()


def test_a_pipeline_that_calls_no_step_is_refused() -> None:
    @shipyard.pipeline
    def empty():
        return None

    with pytest.raises(InvalidArgumentError, match="calls no step"):
        empty.build()


def test_a_cycle_in_a_graph_is_named() -> None:
    dag = Dag("loop", {})
    dag.nodes = [
        Node("a", total, {"values": Output("b")}, 0),
        Node("b", total, {"values": Output("a")}, 1),
    ]
    with pytest.raises(InvalidArgumentError, match=r"has a cycle: (a -> b -> a|b -> a -> b)"):
        dag.check()


def test_an_output_of_another_pipeline_is_refused() -> None:
    dag = Dag("one", {})
    dag.nodes = [Node("a", total, {"values": Output("elsewhere")}, 0)]
    with pytest.raises(InvalidArgumentError, match="not a step of pipeline 'one'"):
        dag.check()


def test_step_options_are_checked() -> None:
    with pytest.raises(InvalidArgumentError, match="retries"):
        shipyard.step(retries=-1)
    with pytest.raises(InvalidArgumentError, match="timeout"):
        shipyard.step(timeout=0)
    with pytest.raises(InvalidArgumentError, match="distinct"):
        shipyard.step(outputs=("a", "a"))
    with pytest.raises(InvalidArgumentError, match="reads takes"):
        shipyard.step(reads=[3])  # type: ignore[list-item]


def test_dataset_refs_name_a_version() -> None:
    assert shipyard.data.ref("churn") == DatasetRef("churn", "latest")
    assert str(shipyard.data.ref("churn@3")) == "churn@3"
    with pytest.raises(InvalidArgumentError):
        shipyard.data.ref("bad name")
