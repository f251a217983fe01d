"""Compile a parsed run filter (see :mod:`shipyard.store.filters`) into SQL."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from shipyard.store.filters import (
    And,
    Comparison,
    Expression,
    Not,
    Or,
    OrderBy,
    parse_filter,
    parse_order_by,
)
from shipyard.store.sql.schema import latest_metrics, params, runs, tags

__all__ = ["compile_filter", "order_runs"]

_KEYED = {"metrics": latest_metrics, "params": params, "tags": tags}


def _apply(column: Any, op: str, value: Any) -> sa.ColumnElement[bool]:
    if op == "=":
        return column == value  # type: ignore[no-any-return]
    if op == "!=":
        return column != value  # type: ignore[no-any-return]
    if op == "<":
        return column < value  # type: ignore[no-any-return]
    if op == "<=":
        return column <= value  # type: ignore[no-any-return]
    if op == ">":
        return column > value  # type: ignore[no-any-return]
    if op == ">=":
        return column >= value  # type: ignore[no-any-return]
    # Backslash escapes % and _ on both stores (SQLite has no default escape character).
    if op == "like":
        return column.like(value, escape="\\")  # type: ignore[no-any-return]
    if op == "ilike":
        return column.ilike(value, escape="\\")  # type: ignore[no-any-return]
    if op == "in":
        return column.in_(value)  # type: ignore[no-any-return]
    if op == "not in":
        return column.not_in(value)  # type: ignore[no-any-return]
    if op == "is null":
        return column.is_(None)  # type: ignore[no-any-return]
    if op == "is not null":
        return column.is_not(None)  # type: ignore[no-any-return]
    raise AssertionError(f"unknown operator {op}")  # the parser only yields the ones above


def _comparison(node: Comparison) -> sa.ColumnElement[bool]:
    field = node.field
    if field.entity == "attributes":
        return _apply(runs.c[field.key], node.op, node.value)
    table = _KEYED[field.entity]
    correlated = sa.and_(table.c.run_id == runs.c.run_id, table.c.key == field.key)
    # IS [NOT] NULL asks whether the run logged this key at all (a NaN metric was logged).
    if node.op == "is null":
        return ~sa.exists().where(correlated)
    if node.op == "is not null":
        return sa.exists().where(correlated)
    return sa.exists().where(correlated, _apply(table.c.value, node.op, node.value))


def _compile(node: Expression) -> sa.ColumnElement[bool]:
    if isinstance(node, Comparison):
        return _comparison(node)
    if isinstance(node, And):
        return sa.and_(_compile(node.left), _compile(node.right))
    if isinstance(node, Or):
        return sa.or_(_compile(node.left), _compile(node.right))
    if isinstance(node, Not):
        return sa.not_(_compile(node.operand))
    raise AssertionError(f"unknown node {node!r}")


def compile_filter(text: str) -> sa.ColumnElement[bool] | None:
    """A WHERE clause over ``runs`` for the filter ``text`` (None for an empty filter)."""
    tree = parse_filter(text)
    return None if tree is None else _compile(tree)


def _term(column: sa.ColumnElement[Any], order: OrderBy) -> sa.ColumnElement[Any]:
    return (column.desc() if order.descending else column.asc()).nulls_last()


_TIEBREAK = (runs.c.start_time.desc(), runs.c.run_id.asc())


def order_runs(query: sa.Select[Any], clauses: Sequence[str]) -> sa.Select[Any]:
    """``query`` (a select over ``runs``) in the order of the user's clauses (missing values
    last), then newest first; each params/metrics/tags key is LEFT OUTER JOINed on its
    table's primary key (one row per run at most).

    A scalar subquery in ORDER BY is run once per run before the sort: over 100,000 runs
    PostgreSQL probes the key's index 100,000 times and, the plan costing that much, spends
    a quarter second compiling it (JIT). The join reads the key's rows once and hashes them
    (a page of 100,000 runs sorted by a metric: 0.58 s to 0.10 s through the server, see
    ``bench/ui_runs.py``); SQLite probes the key per run either way (0.33 s to 0.30 s).
    A run without the key, or with a NaN metric (NULL), sorts last as before.
    """
    source: sa.FromClause = runs
    terms: list[sa.ColumnElement[Any]] = []
    for number, order in enumerate(map(parse_order_by, clauses)):
        field = order.field
        if field.entity == "attributes":
            terms.append(_term(runs.c[field.key], order))
            continue
        table = _KEYED[field.entity].alias(f"order_{number}")
        source = source.outerjoin(
            table, sa.and_(table.c.run_id == runs.c.run_id, table.c.key == field.key)
        )
        terms.append(_term(table.c.value, order))
    terms.extend(_TIEBREAK)
    return query.select_from(source).order_by(*terms)
