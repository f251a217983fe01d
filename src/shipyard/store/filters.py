"""Parse run-search filters and order-by clauses into a small syntax tree.

The grammar is MLflow's, widened with ``or``, ``not`` and parentheses::

    metrics.auc > 0.9 and params.model = 'rf'
    (tags.team = 'core' or tags.team = 'ml') and not attributes.status = 'FAILED'
    params.model in ('rf', 'gbm') and metrics.`val loss` is not null

Each comparison names an *entity* (``metrics``, ``params``, ``tags`` or ``attributes``) and a
key. Metrics compare with numbers; params and tags are strings (``=``, ``!=``, ``like``,
``ilike``, ``in``); attributes are run columns. The tree is compiled to SQL by the store, never
evaluated in Python. Any error points at the offending token.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from shipyard.errors import FilterSyntaxError

__all__ = [
    "ATTRIBUTES",
    "And",
    "Comparison",
    "Expression",
    "Field",
    "Not",
    "Or",
    "OrderBy",
    "parse_filter",
    "parse_order_by",
]

Entity = Literal["metrics", "params", "tags", "attributes"]

_ENTITY_ALIASES: dict[str, Entity] = {
    "metric": "metrics",
    "metrics": "metrics",
    "param": "params",
    "params": "params",
    "parameter": "params",
    "parameters": "params",
    "tag": "tags",
    "tags": "tags",
    "attribute": "attributes",
    "attributes": "attributes",
    "attr": "attributes",
    "run": "attributes",
}

ATTRIBUTES: dict[str, Literal["string", "number"]] = {
    "run_id": "string",
    "name": "string",
    "status": "string",
    "user": "string",
    "parent_run_id": "string",
    "experiment_id": "number",
    "start_time": "number",
    "end_time": "number",
}
_ATTRIBUTE_ALIASES = {"run_name": "name", "id": "run_id", "user_id": "user"}

_NUMBER_OPS = {"=", "!=", "<", "<=", ">", ">="}
_STRING_OPS = {"=", "!=", "like", "ilike"}


@dataclass(frozen=True, slots=True)
class Field:
    """``entity.key``, e.g. ``metrics.auc``."""

    entity: Entity
    key: str


@dataclass(frozen=True, slots=True)
class Comparison:
    """``field op value``. ``op`` is one of ``= != < <= > >= like ilike in not in is null
    is not null``; ``value`` is a float, a string, a tuple of either, or None."""

    field: Field
    op: str
    value: float | str | tuple[float | str, ...] | None


@dataclass(frozen=True, slots=True)
class And:
    left: Expression
    right: Expression


@dataclass(frozen=True, slots=True)
class Or:
    left: Expression
    right: Expression


@dataclass(frozen=True, slots=True)
class Not:
    operand: Expression


Expression = Comparison | And | Or | Not


@dataclass(frozen=True, slots=True)
class OrderBy:
    field: Field
    descending: bool = False


_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<number>[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)(?![\w.])
               |[-+]?(?i:inf(?:inity)?)\b)
  | (?P<string>'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.|"")*")
  | (?P<backquoted>`[^`]*`)
  | (?P<op><=|>=|!=|<>|==|=|<|>)
  | (?P<punct>[(),])
  | (?P<word>[A-Za-z_][\w\-/:]*(?:\.[\w\-/:]+)*)
  | (?P<dot>\.)
    """,
    re.VERBOSE,
)


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str
    text: str
    pos: int


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise FilterSyntaxError(f"unexpected character {text[pos]!r}", text, pos)
        kind = match.lastgroup or ""
        if kind != "ws":
            tokens.append(_Token(kind, match.group(), pos))
        pos = match.end()
    tokens.append(_Token("end", "", len(text)))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.i = 0

    @property
    def tok(self) -> _Token:
        return self.tokens[self.i]

    def error(self, message: str, token: _Token | None = None) -> FilterSyntaxError:
        return FilterSyntaxError(message, self.text, (token or self.tok).pos)

    def keyword(self, *words: str) -> bool:
        tok = self.tok
        if tok.kind == "word" and tok.text.lower() in words:
            self.i += 1
            return True
        return False

    def punct(self, char: str) -> bool:
        if self.tok.kind == "punct" and self.tok.text == char:
            self.i += 1
            return True
        return False

    # expression := and_expr ("or" and_expr)*
    def expression(self) -> Expression:
        node = self.and_expr()
        while self.keyword("or"):
            node = Or(node, self.and_expr())
        return node

    def and_expr(self) -> Expression:
        node = self.not_expr()
        while self.keyword("and"):
            node = And(node, self.not_expr())
        return node

    def not_expr(self) -> Expression:
        if self.keyword("not"):
            return Not(self.not_expr())
        if self.punct("("):
            node = self.expression()
            if not self.punct(")"):
                raise self.error("expected ')'")
            return node
        return self.comparison()

    def field(self) -> Field:
        tok = self.tok
        if tok.kind != "word":
            raise self.error(
                "expected a field such as metrics.auc, params.model, tags.team or attributes.status"
            )
        self.i += 1
        head, _, rest = tok.text.partition(".")
        entity = _ENTITY_ALIASES.get(head.lower())
        if entity is None:
            raise self.error(
                f"unknown entity {head!r}: use metrics, params, tags or attributes", tok
            )
        if not rest:
            nxt = self.tok
            if nxt.kind == "dot":
                self.i += 1
                nxt = self.tok
            if nxt.kind not in ("backquoted", "string"):
                raise self.error(f"expected a key after {head!r}, e.g. {head}.auc", nxt)
            self.i += 1
            rest = _unquote(nxt.text) if nxt.kind == "string" else nxt.text[1:-1]
        key = rest
        if entity == "attributes":
            key = _ATTRIBUTE_ALIASES.get(key.lower(), key.lower())
            if key not in ATTRIBUTES:
                raise self.error(
                    f"unknown attribute {rest!r}: use one of {', '.join(sorted(ATTRIBUTES))}",
                    tok,
                )
        if not key:
            raise self.error("empty key", tok)
        return Field(entity, key)

    def comparison(self) -> Comparison:
        field = self.field()
        kind = _kind_of(field)
        op_tok = self.tok
        if self.keyword("is"):
            negate = self.keyword("not")
            if not self.keyword("null"):
                raise self.error("expected NULL after IS")
            return Comparison(field, "is not null" if negate else "is null", None)
        if self.keyword("not"):
            if not self.keyword("in"):
                raise self.error("expected IN after NOT")
            return Comparison(field, "not in", self.value_list(kind))
        if self.keyword("in"):
            return Comparison(field, "in", self.value_list(kind))
        if self.keyword("like", "ilike"):
            op = op_tok.text.lower()
            if kind == "number":
                raise self.error(f"{op.upper()} compares strings; {_describe(field)}", op_tok)
            return Comparison(field, op, self.string_value())
        if op_tok.kind != "op":
            raise self.error("expected a comparison operator (=, !=, <, <=, >, >=, LIKE, IN)")
        self.i += 1
        op = {"==": "=", "<>": "!="}.get(op_tok.text, op_tok.text)
        allowed = _NUMBER_OPS if kind == "number" else _STRING_OPS
        if op not in allowed:
            raise self.error(
                f"{op!r} cannot compare {field.entity}.{field.key}: {_describe(field)}", op_tok
            )
        return Comparison(field, op, self.value(kind))

    def value(self, kind: str) -> float | str:
        tok = self.tok
        if kind == "number":
            if tok.kind == "number":
                self.i += 1
                return float(tok.text)
            raise self.error(f"expected a number, got {tok.text or 'the end'!r}")
        return self.string_value(allow_number=True)

    def string_value(self, *, allow_number: bool = False) -> str:
        tok = self.tok
        if tok.kind == "string":
            self.i += 1
            return _unquote(tok.text)
        if allow_number and tok.kind == "number":
            self.i += 1
            return tok.text
        raise self.error(f"expected a quoted string, e.g. 'rf', got {tok.text or 'the end'!r}")

    def value_list(self, kind: str) -> tuple[float | str, ...]:
        if not self.punct("("):
            raise self.error("expected '(' to start a list of values")
        values = [self.value(kind)]
        while self.punct(","):
            values.append(self.value(kind))
        if not self.punct(")"):
            raise self.error("expected ',' or ')' in the list of values")
        return tuple(values)


def _kind_of(field: Field) -> str:
    if field.entity == "metrics":
        return "number"
    if field.entity == "attributes":
        return ATTRIBUTES[field.key]
    return "string"


def _describe(field: Field) -> str:
    if field.entity == "metrics":
        return "metrics are numbers (use =, !=, <, <=, >, >=, IN)"
    if field.entity in ("params", "tags"):
        return f"{field.entity} are strings (use =, !=, LIKE, ILIKE, IN)"
    return f"attribute {field.key} is a {ATTRIBUTES[field.key]}"


def _unquote(text: str) -> str:
    """Strip the quotes; a doubled quote or a backslash-escaped quote stands for the quote.

    Other backslashes are kept, so that ``'50\\%'`` reaches LIKE as an escaped ``%``.
    """
    quote = text[0]
    return text[1:-1].replace(quote * 2, quote).replace("\\" + quote, quote)


def parse_filter(text: str) -> Expression | None:
    """Parse a filter string; an empty string means no filter.

    Raises:
        FilterSyntaxError: the message shows the filter with a caret under the bad token.
    """
    if not text.strip():
        return None
    parser = _Parser(text)
    node = parser.expression()
    if parser.tok.kind != "end":
        raise parser.error(f"unexpected {parser.tok.text!r}; join conditions with AND or OR")
    return node


def parse_order_by(clause: str) -> OrderBy:
    """Parse one order-by clause such as ``metrics.auc DESC`` or ``attributes.start_time``."""
    parser = _Parser(clause)
    field = parser.field()
    descending = False
    if parser.keyword("desc"):
        descending = True
    else:
        parser.keyword("asc")
    if parser.tok.kind != "end":
        raise parser.error("expected ASC or DESC at the end of an order-by clause")
    return OrderBy(field, descending)
