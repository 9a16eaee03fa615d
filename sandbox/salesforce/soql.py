"""The subset of SOQL the connectors use, parsed and evaluated the way Salesforce does.

Supported: ``SELECT f1, f2, Rel.Field | COUNT() FROM Obj [WHERE ...] [ORDER BY f [ASC|DESC]
[NULLS FIRST|LAST], ...] [LIMIT n] [OFFSET n]``; conditions with ``= != <> < <= > >= LIKE``,
``[NOT] IN (...)``, ``AND``/``OR``/``NOT`` and parentheses. Like Salesforce: keywords and field
names are case-insensitive, text comparisons are case-insensitive, mixing AND and OR without
parentheses is an error, and a literal must match its field's type (a quoted datetime is
refused). Errors carry Salesforce's codes and its ``ERROR at Row:1:Column:N`` message form.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sandbox.salesforce.schema import OBJECTS, Field, SObject
from sandbox.timeutil import parse_iso

KEYWORDS = {
    "SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "IN", "LIKE", "ORDER", "BY", "ASC", "DESC",
    "NULLS", "FIRST", "LAST", "LIMIT", "OFFSET", "NULL", "TRUE", "FALSE", "COUNT",
}
TEXT_TYPES = {"string", "email", "phone", "url", "textarea", "picklist", "combobox",
              "multipicklist", "id", "reference"}
NUMBER_TYPES = {"int", "double", "currency", "percent"}

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<string>'(?:[^'\\]|\\.)*')
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?(?:Z|[+-]\d{2}:?\d{2}))
  | (?P<date>\d{4}-\d{2}-\d{2})
  | (?P<number>-?\d+(?:\.\d+)?)
  | (?P<op>!=|<>|<=|>=|=|<|>)
  | (?P<punct>[(),])
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
    """,
    re.VERBOSE,
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", '"': '"', "'": "'",
            "\\": "\\", "_": "\\_", "%": "\\%"}


class SoqlError(Exception):
    """A query Salesforce would refuse; ``code`` is its errorCode."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    column: int
    value: Any = None

    @property
    def upper(self) -> str:
        return self.text.upper()


def _unescape(body: str, column: int, query: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            nxt = body[i + 1] if i + 1 < len(body) else ""
            if nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", body[i + 2:i + 6]):
                out.append(chr(int(body[i + 2:i + 6], 16)))
                i += 6
                continue
            if nxt not in _ESCAPES:
                raise _malformed(query, column + i, f"Invalid string literal '{body}'. "
                                 "Illegal character sequence '\\" + nxt + "' in string literal.")
            out.append(_ESCAPES[nxt])
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def _error_text(query: str, column: int, message: str) -> str:
    return f"\n{query}\n{' ' * (column - 1)}^\nERROR at Row:1:Column:{column}\n{message}"


def _malformed(query: str, column: int, message: str) -> SoqlError:
    return SoqlError("MALFORMED_QUERY", _error_text(query, column, message))


def tokenize(query: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(query):
        match = _TOKEN.match(query, pos)
        if match is None:
            raise _malformed(query, pos + 1, f"line 1:{pos} no viable alternative at character "
                             f"'{query[pos]}'")
        kind = match.lastgroup or ""
        text = match.group()
        column = pos + 1
        pos = match.end()
        if kind == "ws":
            continue
        value: Any = None
        if kind == "string":
            value = _unescape(text[1:-1], column + 1, query)
        elif kind == "number":
            value = float(text) if "." in text else int(text)
        elif kind == "datetime":
            value = parse_iso(text)
        elif kind == "date":
            value = dt.date.fromisoformat(text)
        elif kind == "ident" and text.upper() in KEYWORDS:
            kind = "kw"
        tokens.append(Token(kind, text, column, value))
    tokens.append(Token("eof", "", len(query) + 1))
    return tokens


@dataclass
class OrderKey:
    field: Field
    descending: bool
    nulls_last: bool


@dataclass
class Query:
    """A parsed query; ``matches`` is a compiled predicate over a stored record."""

    sobject: SObject
    fields: list[str]
    count_only: bool
    matches: Callable[[dict[str, Any]], bool]
    order: list[OrderKey] = field(default_factory=list)
    limit: int | None = None
    offset: int = 0
    mentions_is_deleted: bool = False


Predicate = Callable[[dict[str, Any]], bool]


class _Parser:
    def __init__(self, query: str, deleted: frozenset[str] = frozenset()) -> None:
        self.query = query
        self.deleted = deleted  # "Object.Field" of custom fields deleted from the org
        self.tokens = tokenize(query)
        self.pos = 0
        self.sobject: SObject | None = None
        self.mentions_is_deleted = False

    # -- token helpers -------------------------------------------------------------------
    @property
    def tok(self) -> Token:
        return self.tokens[self.pos]

    def advance(self) -> Token:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def unexpected(self) -> SoqlError:
        token = self.tok
        text = token.text or "<EOF>"
        return _malformed(self.query, token.column, f"unexpected token: '{text}'")

    def expect_kw(self, word: str) -> Token:
        if self.tok.kind == "kw" and self.tok.upper == word:
            return self.advance()
        raise self.unexpected()

    def at_kw(self, *words: str) -> bool:
        return self.tok.kind == "kw" and self.tok.upper in words

    # -- grammar -------------------------------------------------------------------------
    def parse(self) -> Query:
        self.expect_kw("SELECT")
        count_only = False
        select: list[Token] = []
        if self.at_kw("COUNT"):
            self.advance()
            if self.advance().text != "(" or self.advance().text != ")":
                raise _malformed(self.query, self.tokens[self.pos - 1].column,
                                 "unexpected token: COUNT")
            count_only = True
        else:
            select.append(self.field_token())
            while self.tok.text == ",":
                self.advance()
                select.append(self.field_token())
        self.expect_kw("FROM")
        obj_token = self.advance()
        if obj_token.kind != "ident":
            raise _malformed(self.query, obj_token.column,
                             f"unexpected token: '{obj_token.text or '<EOF>'}'")
        sobject = next((o for o in OBJECTS.values() if o.name.lower() == obj_token.text.lower()),
                       None)
        if sobject is None:
            raise SoqlError("INVALID_TYPE", _error_text(
                self.query, obj_token.column,
                f"sObject type '{obj_token.text}' is not supported. If you are attempting to use "
                "a custom object, be sure to append the '__c' after the entity name. Please "
                "reference your WSDL or the describe call for the appropriate names."))
        self.sobject = sobject
        fields = [self.resolve_select(token) for token in select]
        predicate: Predicate = _always
        if self.at_kw("WHERE"):
            self.advance()
            predicate = self.expression()
        order: list[OrderKey] = []
        if self.at_kw("ORDER"):
            self.advance()
            self.expect_kw("BY")
            order.append(self.order_key())
            while self.tok.text == ",":
                self.advance()
                order.append(self.order_key())
        limit = None
        offset = 0
        if self.at_kw("LIMIT"):
            self.advance()
            limit = self.integer()
        if self.at_kw("OFFSET"):
            self.advance()
            offset = self.integer()
        if self.tok.kind != "eof":
            raise self.unexpected()
        return Query(sobject, fields, count_only, predicate, order, limit, offset,
                     self.mentions_is_deleted)

    def integer(self) -> int:
        token = self.advance()
        if token.kind != "number" or not isinstance(token.value, int) or token.value < 0:
            raise _malformed(self.query, token.column,
                             f"unexpected token: '{token.text or '<EOF>'}'")
        return token.value

    def field_token(self) -> Token:
        token = self.advance()
        if token.kind != "ident":
            raise _malformed(self.query, token.column,
                             f"unexpected token: '{token.text or '<EOF>'}'")
        return token

    def no_such_column(self, token: Token) -> SoqlError:
        assert self.sobject is not None
        return SoqlError("INVALID_FIELD", _error_text(
            self.query, token.column,
            f"No such column '{token.text}' on entity '{self.sobject.name}'. If you are "
            "attempting to use a custom field, be sure to append the '__c' after the custom "
            "field name. Please reference your WSDL or the describe call for the appropriate "
            "names."))

    def resolve_select(self, token: Token) -> str:
        assert self.sobject is not None
        if "." in token.text:
            rel, _, target = token.text.partition(".")
            ref = self.sobject.field_ci(rel + "Id")
            if (ref is None or ref.type != "reference" or not ref.reference_to
                    or "." in target):
                raise SoqlError("INVALID_FIELD", _error_text(
                    self.query, token.column,
                    f"Didn't understand relationship '{rel}' in field path. If you are "
                    "attempting to use a custom relationship, be sure to append the '__r' after "
                    "the custom relationship name. Please reference your WSDL or the describe "
                    "call for the appropriate names."))
            # A polymorphic reference (Owner: Group or User) offers the fields all its
            # targets share, as Salesforce's Name entity does.
            targets = [OBJECTS[name] for name in ref.reference_to]
            other = targets[-1]
            target_field = other.field_ci(target)
            if target_field is None or any(t.field_ci(target) is None for t in targets):
                raise SoqlError("INVALID_FIELD", _error_text(
                    self.query, token.column,
                    f"No such column '{target}' on entity '{other.name}'. If you are attempting "
                    "to use a custom field, be sure to append the '__c' after the custom field "
                    "name. Please reference your WSDL or the describe call for the appropriate "
                    "names."))
            return f"{ref.name[:-2]}.{target_field.name}"
        return self.own_field(token).name

    def own_field(self, token: Token) -> Field:
        """A field of the queried object; a deleted one is no longer a column."""
        assert self.sobject is not None
        found = self.sobject.field_ci(token.text)
        if found is None or f"{self.sobject.name}.{found.name}" in self.deleted:
            raise self.no_such_column(token)
        return found

    def where_field(self) -> tuple[Field, Token]:
        assert self.sobject is not None
        token = self.field_token()
        found = self.own_field(token)
        if found.type == "textarea":
            raise SoqlError("INVALID_FIELD", _error_text(
                self.query, token.column,
                f"field '{found.name}' can not be filtered in a query call"))
        if found.name == "IsDeleted":
            self.mentions_is_deleted = True
        return found, token

    def order_key(self) -> OrderKey:
        found, _token = self.where_field()
        descending = False
        if self.at_kw("ASC", "DESC"):
            descending = self.advance().upper == "DESC"
        nulls_last = descending
        if self.at_kw("NULLS"):
            self.advance()
            if not self.at_kw("FIRST", "LAST"):
                raise self.unexpected()
            nulls_last = self.advance().upper == "LAST"
        return OrderKey(found, descending, nulls_last)

    def expression(self) -> Predicate:
        first = self.factor()
        if not self.at_kw("AND", "OR"):
            return first
        joiner = self.tok.upper
        parts = [first]
        while self.at_kw("AND", "OR"):
            if self.tok.upper != joiner:
                raise self.unexpected()
            self.advance()
            parts.append(self.factor())
        if joiner == "AND":
            return lambda rec: all(p(rec) for p in parts)
        return lambda rec: any(p(rec) for p in parts)

    def factor(self) -> Predicate:
        if self.at_kw("NOT"):
            self.advance()
            inner = self.factor()
            return lambda rec: not inner(rec)
        if self.tok.text == "(":
            self.advance()
            inner = self.expression()
            if self.tok.text != ")":
                raise self.unexpected()
            self.advance()
            return inner
        return self.comparison()

    def comparison(self) -> Predicate:
        fld, _ = self.where_field()
        negate = False
        if self.at_kw("NOT"):
            self.advance()
            negate = True
            if not self.at_kw("IN"):
                raise self.unexpected()
        if self.at_kw("IN"):
            self.advance()
            if self.tok.text != "(":
                raise self.unexpected()
            self.advance()
            values = [self.literal(fld)]
            while self.tok.text == ",":
                self.advance()
                values.append(self.literal(fld))
            if self.tok.text != ")":
                raise self.unexpected()
            self.advance()
            keys = {_key(fld, v) for v in values}
            name = fld.name
            if negate:
                return lambda rec: _key(fld, rec.get(name)) not in keys
            return lambda rec: _key(fld, rec.get(name)) in keys
        if self.at_kw("LIKE"):
            self.advance()
            pattern_token = self.tok
            pattern = self.literal(fld)
            if not isinstance(pattern, str):
                raise _malformed(self.query, pattern_token.column, "LIKE needs a string")
            regex = _like_regex(pattern)
            name = fld.name
            return lambda rec: isinstance(rec.get(name), str) and bool(regex.match(rec[name]))
        if self.tok.kind != "op":
            raise self.unexpected()
        op = self.advance().text
        value = self.literal(fld)
        return _compare(fld, op, value)

    def literal(self, fld: Field) -> Any:
        token = self.advance()
        kind = token.kind
        if kind == "kw" and token.upper == "NULL":
            return None
        expected = _expected_kind(fld)
        if kind == "kw" and token.upper in ("TRUE", "FALSE"):
            if expected != "boolean":
                raise self.type_error(token, fld)
            return token.upper == "TRUE"
        if kind == "string":
            if expected == "datetime" or expected == "date":
                raise SoqlError("INVALID_FIELD", _error_text(
                    self.query, token.column,
                    f"value of filter criterion for field '{fld.name}' must be of type "
                    f"{'dateTime' if expected == 'datetime' else 'date'} and should not be "
                    "enclosed in quotes"))
            if expected != "text":
                raise self.type_error(token, fld)
            return token.value
        if kind == "number" and expected == "number":
            return token.value
        if kind == "datetime" and expected == "datetime":
            return token.value
        if kind == "date" and expected == "date":
            return token.value
        if kind in ("number", "datetime", "date"):
            raise self.type_error(token, fld)
        raise _malformed(self.query, token.column,
                         f"unexpected token: '{token.text or '<EOF>'}'")

    def type_error(self, token: Token, fld: Field) -> SoqlError:
        names = {"text": "string", "number": "double", "boolean": "boolean",
                 "datetime": "dateTime", "date": "date"}
        return SoqlError("INVALID_FIELD", _error_text(
            self.query, token.column,
            f"value of filter criterion for field '{fld.name}' must be of type "
            f"{names[_expected_kind(fld)]}"))


def _always(_record: dict[str, Any]) -> bool:
    return True


def _expected_kind(fld: Field) -> str:
    if fld.type in TEXT_TYPES:
        return "text"
    if fld.type in NUMBER_TYPES:
        return "number"
    return fld.type


def _key(fld: Field, value: Any) -> Any:
    """The comparison key of a value: text case-insensitively, ids on their first 15 chars."""
    if value is None:
        return None
    if fld.type in ("id", "reference") and isinstance(value, str):
        return value[:15]
    if isinstance(value, str):
        return value.casefold()
    return value


def _compare(fld: Field, op: str, value: Any) -> Predicate:
    name = fld.name
    target = _key(fld, value)
    if op in ("=",):
        return lambda rec: _key(fld, rec.get(name)) == target
    if op in ("!=", "<>"):
        return lambda rec: _key(fld, rec.get(name)) != target
    if target is None:
        return lambda rec: False

    def ordered(rec: dict[str, Any]) -> bool:
        current = _key(fld, rec.get(name))
        if current is None:
            return False
        if op == "<":
            return bool(current < target)
        if op == "<=":
            return bool(current <= target)
        if op == ">":
            return bool(current > target)
        return bool(current >= target)

    return ordered


def _like_regex(pattern: str) -> re.Pattern[str]:
    out = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern) and pattern[i + 1] in "%_":
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
        i += 1
    return re.compile("^" + "".join(out) + "$", re.IGNORECASE | re.DOTALL)


def parse(query: str, deleted: frozenset[str] = frozenset()) -> Query:
    """Parse one SOQL statement, raising ``SoqlError`` as Salesforce would (``deleted``: the
    org's deleted custom fields, as ``Object.Field``)."""
    if not query.strip():
        raise SoqlError("MALFORMED_QUERY", "SOQL statement cannot be empty")
    return _Parser(query.strip(), deleted).parse()


def _sort_key(fld: Field) -> Callable[[dict[str, Any]], Any]:
    def key(record: dict[str, Any]) -> Any:
        return _key(fld, record[fld.name])

    return key


def sort_records(records: list[dict[str, Any]], order: list[OrderKey]) -> list[dict[str, Any]]:
    """Stable multi-key sort with Salesforce's null placement."""
    result = list(records)
    for key in reversed(order):
        fld = key.field
        present = [r for r in result if r.get(fld.name) is not None]
        missing = [r for r in result if r.get(fld.name) is None]
        present.sort(key=_sort_key(fld), reverse=key.descending)
        result = present + missing if key.nulls_last else missing + present
    return result
