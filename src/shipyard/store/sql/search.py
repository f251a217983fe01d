"""Compile a parsed run filter (see :mod:`shipyard.store.filters`) into SQL."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from shipyard.store.filters import (
    And,
    Comparison,
    Expression,
    Field,
    Not,
    Or,
    OrderBy,
    parse_filter,
    parse_order_by,
)
from shipyard.store.sql.schema import latest_metrics, params, runs, tags

__all__ = ["compile_filter", "compile_order_by"]

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


def _order_column(field: Field) -> sa.ColumnElement[Any]:
    if field.entity == "attributes":
        return runs.c[field.key]
    table = _KEYED[field.entity]
    return (
        sa.select(table.c.value)
        .where(table.c.run_id == runs.c.run_id, table.c.key == field.key)
        .scalar_subquery()
    )


def compile_order_by(clauses: Sequence[str]) -> list[sa.ColumnElement[Any]]:
    """ORDER BY terms: the user's clauses (missing values last), then newest first."""
    terms: list[sa.ColumnElement[Any]] = []
    for clause in clauses:
        order: OrderBy = parse_order_by(clause)
        column = _order_column(order.field)
        terms.append((column.desc() if order.descending else column.asc()).nulls_last())
    terms.extend([runs.c.start_time.desc(), runs.c.run_id.asc()])
    return terms
