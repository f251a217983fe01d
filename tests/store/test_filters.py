"""The run-search filter grammar: what parses, and where errors point."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shipyard.errors import FilterSyntaxError
from shipyard.store.filters import (
    And,
    Comparison,
    Field,
    Not,
    Or,
    OrderBy,
    parse_filter,
    parse_order_by,
)


def test_empty_filter_is_no_filter() -> None:
    assert parse_filter("") is None
    assert parse_filter("   ") is None


def test_mlflow_style_conjunction() -> None:
    tree = parse_filter("metrics.auc > 0.9 and params.model = 'rf'")
    assert tree == And(
        Comparison(Field("metrics", "auc"), ">", 0.9),
        Comparison(Field("params", "model"), "=", "rf"),
    )


def test_precedence_and_parentheses() -> None:
    tree = parse_filter("tags.a = 'x' or tags.b = 'y' and not metrics.m < 1")
    assert tree == Or(
        Comparison(Field("tags", "a"), "=", "x"),
        And(
            Comparison(Field("tags", "b"), "=", "y"),
            Not(Comparison(Field("metrics", "m"), "<", 1.0)),
        ),
    )
    grouped = parse_filter("(tags.a = 'x' or tags.b = 'y') and metrics.m >= -2e-3")
    assert isinstance(grouped, And)
    assert grouped.right == Comparison(Field("metrics", "m"), ">=", -0.002)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("metrics.`val loss` < 0.3", Comparison(Field("metrics", "val loss"), "<", 0.3)),
        ('params."my param" = "a\'b"', Comparison(Field("params", "my param"), "=", "a'b")),
        (
            "params.model IN ('rf', 'gbm')",
            Comparison(Field("params", "model"), "in", ("rf", "gbm")),
        ),
        ("params.model not in ('rf')", Comparison(Field("params", "model"), "not in", ("rf",))),
        ("metrics.auc is not null", Comparison(Field("metrics", "auc"), "is not null", None)),
        ("tags.team ILIKE 'co%'", Comparison(Field("tags", "team"), "ilike", "co%")),
        ("attributes.status = 'FAILED'", Comparison(Field("attributes", "status"), "=", "FAILED")),
        ("run.run_name = 'x'", Comparison(Field("attributes", "name"), "=", "x")),
        ("attr.start_time > 5", Comparison(Field("attributes", "start_time"), ">", 5.0)),
        ("metrics.val.loss == 1", Comparison(Field("metrics", "val.loss"), "=", 1.0)),
        ("params.lr = 0.01", Comparison(Field("params", "lr"), "=", "0.01")),
        ("metrics.x < inf", Comparison(Field("metrics", "x"), "<", float("inf"))),
        ("metrics.x > -Infinity", Comparison(Field("metrics", "x"), ">", float("-inf"))),
        ('params."a""b" = 1', Comparison(Field("params", 'a"b'), "=", "1")),
        (r"params.p like '50\%'", Comparison(Field("params", "p"), "like", r"50\%")),
        (r"params.p = 'it\'s'", Comparison(Field("params", "p"), "=", "it's")),
        ("params.and = 'or'", Comparison(Field("params", "and"), "=", "or")),
        ("params.a <> 'b'", Comparison(Field("params", "a"), "!=", "b")),
    ],
)
def test_forms(text: str, expected: Comparison) -> None:
    assert parse_filter(text) == expected


@pytest.mark.parametrize(
    ("text", "bad_token", "message"),
    [
        ("metrics.auc > 'high'", "'high'", "expected a number"),
        ("params.model > 'rf'", ">", "params are strings"),
        ("metric.auc > 0.9 and", "", "expected a field"),
        ("metrics.auc >> 0.9", "> 0.9", "expected a number"),
        ("foo.bar = 1", "foo.bar", "unknown entity 'foo'"),
        ("attributes.colour = 'red'", "attributes.colour", "unknown attribute 'colour'"),
        ("metrics.auc > 0.9 params.x = 'a'", "params.x", "join conditions with AND or OR"),
        ("(metrics.auc > 1", "", "expected ')'"),
        ("metrics.auc like 'x'", "like", "LIKE compares strings"),
        ("params.model in 'rf'", "'rf'", "expected '('"),
        ("params.a = 'x' and ; drop table runs", "; drop", "unexpected character ';'"),
        ("metrics = 1", "=", "expected a key"),
    ],
)
def test_errors_point_at_the_bad_token(text: str, bad_token: str, message: str) -> None:
    with pytest.raises(FilterSyntaxError) as caught:
        parse_filter(text)
    err = caught.value
    assert message in str(err)
    assert text[err.position :].startswith(bad_token)
    caret_line = str(err).splitlines()[-1]
    assert caret_line.index("^") - 2 == err.position


def test_order_by() -> None:
    assert parse_order_by("metrics.auc DESC") == OrderBy(Field("metrics", "auc"), True)
    assert parse_order_by("params.model asc") == OrderBy(Field("params", "model"), False)
    assert parse_order_by("attributes.start_time") == OrderBy(Field("attributes", "start_time"))
    with pytest.raises(FilterSyntaxError, match="ASC or DESC"):
        parse_order_by("metrics.auc sideways")


@given(st.text(max_size=60))
def test_arbitrary_text_parses_or_fails_cleanly(text: str) -> None:
    try:
        parse_filter(text)
    except FilterSyntaxError as err:
        assert 0 <= err.position <= len(text)
