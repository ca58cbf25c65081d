"""OData v2 ``$filter`` expressions: a tokenizer, a recursive-descent parser and a compiler to SQLite SQL.

The simulator must answer a malformed or unsupported filter the way WCF Data Services does, with a 400
that says where the problem is, and must never let a literal escape into the SQL text: every value a
filter carries ends up as a bound parameter.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

#: Longer filters are refused outright: nothing the console sends comes near, and it bounds the work a
#: hostile request can cause.
MAX_FILTER_LENGTH = 8192
#: Parentheses and ``not`` nest by recursion; the limit keeps Python's stack and SQLite's expression
#: depth (1000) far away.
MAX_NESTING = 50
#: and/or/comparison operators in one filter; SQLite nests a chain of ``OR`` as deep as it is long.
MAX_OPERATORS = 400

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1


class FilterError(ValueError):
    """A filter that cannot be parsed or does not fit the entity; the message is fit for a 400 answer."""

    def __init__(self, message: str, position: int | None = None) -> None:
        self.position = position
        text = message if position is None else f"{message} at position {position}."
        super().__init__(text)


class EdmType(enum.StrEnum):
    """The OData primitive types the simulated entities use."""

    STRING = "Edm.String"
    INT32 = "Edm.Int32"
    INT64 = "Edm.Int64"
    BOOLEAN = "Edm.Boolean"
    DATETIME = "Edm.DateTime"
    #: The type of the ``null`` literal, compatible with every other type in eq/ne.
    NULL = "null"


_INTEGER_TYPES = frozenset({EdmType.INT32, EdmType.INT64})


# ---------------------------------------------------------------------------------------------- tokens


class TokenKind(enum.Enum):
    NAME = "name"
    STRING = "string"
    INTEGER = "integer"
    DATETIME = "datetime"
    LPAREN = "("
    RPAREN = ")"
    COMMA = ","
    END = "end"


@dataclass(frozen=True, slots=True)
class Token:
    kind: TokenKind
    #: The decoded value: the text of a name or string literal, an int, a datetime; None for punctuation.
    value: str | int | datetime | None
    position: int


_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DIGITS = "0123456789"
_INT_RE = re.compile(r"-?[0-9]+")
_WHITESPACE = frozenset(" \t\r\n")
_PUNCTUATION = {"(": TokenKind.LPAREN, ")": TokenKind.RPAREN, ",": TokenKind.COMMA}
#: Typed literals of OData v2 that the simulated entities have no use for; named so the error says so.
_UNSUPPORTED_TYPED_LITERALS = frozenset({"guid", "datetimeoffset", "time", "binary", "X"})


def _read_string(text: str, start: int) -> tuple[str, int]:
    """The value of the quoted literal whose opening quote is at ``start``, and the index after it."""
    parts: list[str] = []
    i = start + 1
    while True:
        quote = text.find("'", i)
        if quote < 0:
            raise FilterError("Unterminated string literal", start)
        parts.append(text[i:quote])
        # A doubled quote is one quote inside the literal; a single one closes it.
        if text.startswith("'", quote + 1):
            parts.append("'")
            i = quote + 2
            continue
        return "".join(parts), quote + 1


def _parse_datetime(raw: str, position: int) -> datetime:
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise FilterError(f"Unrecognized 'Edm.DateTime' literal 'datetime'{raw}''", position) from None
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def tokenize(text: str) -> list[Token]:
    """The tokens of a filter, ending with an END token; raises FilterError on anything unknown."""
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in _WHITESPACE:
            i += 1
        elif ch == "'":
            value, i_next = _read_string(text, i)
            tokens.append(Token(TokenKind.STRING, value, i))
            i = i_next
        elif ch in _PUNCTUATION:
            tokens.append(Token(_PUNCTUATION[ch], None, i))
            i += 1
        # ASCII digits only: "²" is a digit to str.isdigit, but no number to int().
        elif ch in _DIGITS or (ch == "-" and i + 1 < n and text[i + 1] in _DIGITS):
            match = _INT_RE.match(text, i)
            assert match is not None  # the branch condition guarantees at least one digit
            end = match.end()
            if text[end : end + 1] == "L":  # OData's Int64 suffix
                end += 1
            elif end < n and (text[end].isalnum() or text[end] in "._"):
                raise FilterError("Only integer numeric literals are supported", i)
            number = int(match.group())
            if not _INT64_MIN <= number <= _INT64_MAX:
                raise FilterError("Integer literal out of range", i)
            tokens.append(Token(TokenKind.INTEGER, number, i))
            i = end
        else:
            match = _NAME_RE.match(text, i)
            if match is None:
                shown = ch if ch.isprintable() else f"U+{ord(ch):04X}"
                raise FilterError(f"Syntax error: unexpected character '{shown}'", i)
            name = match.group()
            end = match.end()
            if text.startswith("'", end):
                if name == "datetime":
                    raw, i_next = _read_string(text, end)
                    tokens.append(Token(TokenKind.DATETIME, _parse_datetime(raw, i), i))
                    i = i_next
                    continue
                if name in _UNSUPPORTED_TYPED_LITERALS:
                    raise FilterError(f"Literals of type '{name}' are not supported", i)
                raise FilterError(f"Syntax error: unknown literal prefix '{name}'", i)
            tokens.append(Token(TokenKind.NAME, name, i))
            i = end
    tokens.append(Token(TokenKind.END, None, n))
    return tokens


# ------------------------------------------------------------------------------------------------- AST


@dataclass(frozen=True, slots=True)
class Literal:
    value: str | int | bool | datetime | None
    type: EdmType
    position: int


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    position: int


@dataclass(frozen=True, slots=True)
class Not:
    operand: Node
    position: int


@dataclass(frozen=True, slots=True)
class Binary:
    """A logical (and, or) or comparison (eq, ne, lt, le, gt, ge) operator."""

    operator: str
    left: Node
    right: Node
    position: int


@dataclass(frozen=True, slots=True)
class Call:
    function: str
    args: tuple[Node, ...]
    position: int


Node = Literal | Field | Not | Binary | Call

_COMPARISONS = frozenset({"eq", "ne", "lt", "le", "gt", "ge"})
#: Operators OData v2 defines that the service is not documented to accept; named so the error says so.
_UNSUPPORTED_OPERATORS = frozenset({"add", "sub", "mul", "div", "mod", "isof", "cast", "any", "all"})
#: Names that are syntax, never a property or function.
_KEYWORDS = _COMPARISONS | {"and", "or", "not", "true", "false", "null"} | _UNSUPPORTED_OPERATORS


class _Parser:
    """Precedence as in WCF Data Services, loosest first: or, and, comparisons, not, primary."""

    def __init__(self, tokens: Sequence[Token]) -> None:
        self._tokens = tokens
        self._index = 0
        self._depth = 0
        self._operators = 0

    def _peek(self) -> Token:
        return self._tokens[self._index]

    def _advance(self) -> Token:
        token = self._tokens[self._index]
        if token.kind is not TokenKind.END:
            self._index += 1
        return token

    def _at_keyword(self, *words: str) -> bool:
        token = self._peek()
        return token.kind is TokenKind.NAME and token.value in words

    def _count_operator(self, position: int) -> None:
        self._operators += 1
        if self._operators > MAX_OPERATORS:
            raise FilterError(f"Filter has more than {MAX_OPERATORS} operators", position)

    def parse(self) -> Node:
        node = self._or()
        token = self._peek()
        if token.kind is not TokenKind.END:
            if token.kind is TokenKind.NAME and token.value in _UNSUPPORTED_OPERATORS:
                raise FilterError(f"Operator '{token.value}' is not supported", token.position)
            raise FilterError("Syntax error", token.position)
        return node

    def _or(self) -> Node:
        node = self._and()
        while self._at_keyword("or"):
            token = self._advance()
            self._count_operator(token.position)
            node = Binary("or", node, self._and(), token.position)
        return node

    def _and(self) -> Node:
        node = self._comparison()
        while self._at_keyword("and"):
            token = self._advance()
            self._count_operator(token.position)
            node = Binary("and", node, self._comparison(), token.position)
        return node

    def _comparison(self) -> Node:
        node = self._unary()
        while self._at_keyword(*_COMPARISONS):
            token = self._advance()
            self._count_operator(token.position)
            assert isinstance(token.value, str)
            node = Binary(token.value, node, self._unary(), token.position)
        return node

    def _unary(self) -> Node:
        if self._at_keyword("not"):
            token = self._advance()
            with self._nested(token.position):
                return Not(self._unary(), token.position)
        return self._primary()

    def _nested(self, position: int) -> _Nesting:
        return _Nesting(self, position)

    def _primary(self) -> Node:
        token = self._advance()
        kind = token.kind
        if kind is TokenKind.LPAREN:
            with self._nested(token.position):
                node = self._or()
            self._expect(TokenKind.RPAREN, "')' expected")
            return node
        if kind is TokenKind.STRING:
            assert isinstance(token.value, str)
            return Literal(token.value, EdmType.STRING, token.position)
        if kind is TokenKind.INTEGER:
            assert isinstance(token.value, int)
            is_int32 = _INT32_MIN <= token.value <= _INT32_MAX
            return Literal(token.value, EdmType.INT32 if is_int32 else EdmType.INT64, token.position)
        if kind is TokenKind.DATETIME:
            assert isinstance(token.value, datetime)
            return Literal(token.value, EdmType.DATETIME, token.position)
        if kind is TokenKind.NAME:
            assert isinstance(token.value, str)
            return self._name(token.value, token.position)
        # Only END, ')' and ',' are left: each stands where an operand should be.
        raise FilterError("Expression expected", token.position)

    def _name(self, name: str, position: int) -> Node:
        if name == "true":
            return Literal(True, EdmType.BOOLEAN, position)
        if name == "false":
            return Literal(False, EdmType.BOOLEAN, position)
        if name == "null":
            return Literal(None, EdmType.NULL, position)
        if name in _UNSUPPORTED_OPERATORS:
            raise FilterError(f"Operator '{name}' is not supported", position)
        if name in _KEYWORDS:
            raise FilterError("Expression expected", position)
        if self._peek().kind is not TokenKind.LPAREN:
            return Field(name, position)
        self._advance()
        args: list[Node] = []
        with self._nested(position):
            if self._peek().kind is not TokenKind.RPAREN:
                args.append(self._or())
                while self._peek().kind is TokenKind.COMMA:
                    self._advance()
                    args.append(self._or())
        self._expect(TokenKind.RPAREN, "')' or ',' expected")
        return Call(name, tuple(args), position)

    def _expect(self, kind: TokenKind, message: str) -> None:
        token = self._advance()
        if token.kind is not kind:
            raise FilterError(message, token.position)


class _Nesting:
    """Counts nesting depth while a parenthesised or negated sub-expression is being parsed."""

    def __init__(self, parser: _Parser, position: int) -> None:
        self._parser = parser
        self._position = position

    def __enter__(self) -> None:
        self._parser._depth += 1
        if self._parser._depth > MAX_NESTING:
            raise FilterError(f"Filter nests deeper than {MAX_NESTING} levels", self._position)

    def __exit__(self, *exc: object) -> None:
        self._parser._depth -= 1


def parse_filter(text: str) -> Node:
    """The syntax tree of a ``$filter`` value; raises FilterError if it is malformed."""
    if len(text) > MAX_FILTER_LENGTH:
        raise FilterError(f"Filter longer than {MAX_FILTER_LENGTH} characters")
    if not text.strip():
        raise FilterError("Expression expected", 0)
    return _Parser(tokenize(text)).parse()


def string_literals(node: Node) -> Iterator[str]:
    """Every string literal in the tree, e.g. to notice which email a lookup is for."""
    if isinstance(node, Literal):
        if isinstance(node.value, str):
            yield node.value
    elif isinstance(node, Not):
        yield from string_literals(node.operand)
    elif isinstance(node, Binary):
        yield from string_literals(node.left)
        yield from string_literals(node.right)
    elif isinstance(node, Call):
        for arg in node.args:
            yield from string_literals(arg)


# -------------------------------------------------------------------------------------------- compiler


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """How one property of an entity is stored: its column and its OData type."""

    column: str
    type: EdmType


#: Stored form of Edm.DateTime values: ISO 8601 in UTC with milliseconds, which sorts as text.
DATETIME_STORAGE_FORMAT = "%Y-%m-%dT%H:%M:%S.%f"


def datetime_to_storage(value: datetime) -> str:
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.strftime(DATETIME_STORAGE_FORMAT)[:-3]


_SQL_COMPARISON = {"eq": "=", "ne": "<>", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}
#: Functions: OData name → (argument types, result type). SQLite's NOCASE stands in for the
#: case-insensitive collation Personify's SQL Server database uses.
_FUNCTIONS: dict[str, tuple[tuple[EdmType, ...], EdmType]] = {
    "startswith": ((EdmType.STRING, EdmType.STRING), EdmType.BOOLEAN),
    "endswith": ((EdmType.STRING, EdmType.STRING), EdmType.BOOLEAN),
    "substringof": ((EdmType.STRING, EdmType.STRING), EdmType.BOOLEAN),
    "tolower": ((EdmType.STRING,), EdmType.STRING),
    "toupper": ((EdmType.STRING,), EdmType.STRING),
    "length": ((EdmType.STRING,), EdmType.INT32),
}


def _compatible(left: EdmType, right: EdmType) -> bool:
    if left is EdmType.NULL or right is EdmType.NULL:
        return True
    return left is right or (left in _INTEGER_TYPES and right in _INTEGER_TYPES)


class _Compiler:
    def __init__(self, fields: Mapping[str, FieldSpec], type_name: str) -> None:
        self._fields = fields
        self._type_name = type_name
        self.params: list[object] = []

    def _param(self, value: object) -> str:
        # Numbered placeholders, because some functions use an argument twice in the SQL text.
        self.params.append(value)
        return f"?{len(self.params)}"

    def condition(self, node: Node) -> str:
        """SQL that is true where the (Boolean) node is true."""
        sql, edm_type = self.expression(node)
        if edm_type is not EdmType.BOOLEAN:
            raise FilterError(f"Expression of type '{EdmType.BOOLEAN}' expected", _position(node))
        return sql

    def expression(self, node: Node) -> tuple[str, EdmType]:
        if isinstance(node, Literal):
            return self._literal(node)
        if isinstance(node, Field):
            return self._field(node)
        if isinstance(node, Not):
            return f"(NOT {self.condition(node.operand)})", EdmType.BOOLEAN
        if isinstance(node, Binary):
            if node.operator in ("and", "or"):
                left, right = self.condition(node.left), self.condition(node.right)
                return f"({left} {node.operator.upper()} {right})", EdmType.BOOLEAN
            return self._comparison(node)
        return self._call(node)

    def _literal(self, node: Literal) -> tuple[str, EdmType]:
        value = node.value
        if node.type is EdmType.NULL:
            return "NULL", node.type
        if isinstance(value, datetime):
            return self._param(datetime_to_storage(value)), node.type
        if isinstance(value, bool):
            return self._param(1 if value else 0), node.type
        return self._param(value), node.type

    def _field(self, node: Field) -> tuple[str, EdmType]:
        spec = self._fields.get(node.name)
        if spec is None:
            raise FilterError(f"No property '{node.name}' exists in type '{self._type_name}'", node.position)
        if spec.type is EdmType.BOOLEAN:
            # Personify keeps flags as 'Y'/'N'; as an expression a flag is the SQL truth value of that.
            return f"({spec.column} = {self._param('Y')})", EdmType.BOOLEAN
        return spec.column, spec.type

    def _comparison(self, node: Binary) -> tuple[str, EdmType]:
        left_sql, left_type = self.expression(node.left)
        right_sql, right_type = self.expression(node.right)
        op = node.operator
        if not _compatible(left_type, right_type):
            raise FilterError(
                f"Operator '{op}' incompatible with operand types '{left_type}' and '{right_type}'",
                node.position,
            )
        if EdmType.NULL in (left_type, right_type):
            if op not in ("eq", "ne"):
                raise FilterError(f"Operator '{op}' cannot be applied to null", node.position)
            other = right_sql if left_type is EdmType.NULL else left_sql
            return f"({other} IS {'' if op == 'eq' else 'NOT '}NULL)", EdmType.BOOLEAN
        if left_type is EdmType.BOOLEAN and op not in ("eq", "ne"):
            raise FilterError(f"Operator '{op}' cannot be applied to '{EdmType.BOOLEAN}'", node.position)
        return f"({left_sql} {_SQL_COMPARISON[op]} {right_sql})", EdmType.BOOLEAN

    def _call(self, node: Call) -> tuple[str, EdmType]:
        signature = _FUNCTIONS.get(node.function)
        if signature is None:
            raise FilterError(f"Unknown function '{node.function}'", node.position)
        arg_types, result = signature
        if len(node.args) != len(arg_types):
            raise FilterError(
                f"Function '{node.function}' takes {len(arg_types)} argument(s), not {len(node.args)}",
                node.position,
            )
        args: list[str] = []
        for arg, wanted in zip(node.args, arg_types, strict=True):
            sql, got = self.expression(arg)
            if got is not wanted and got is not EdmType.NULL:
                raise FilterError(
                    f"Function '{node.function}' expects '{wanted}', not '{got}'", _position(arg)
                )
            args.append(sql)
        name = node.function
        if name == "startswith":
            text, prefix = args
            return f"(substr({text}, 1, length({prefix})) = {prefix} COLLATE NOCASE)", result
        if name == "endswith":
            # A start before the string's beginning yields the whole, shorter string, which then
            # cannot equal the longer suffix; so no separate length check is needed.
            text, suffix = args
            return (
                f"(substr({text}, length({text}) - length({suffix}) + 1) = {suffix} COLLATE NOCASE)",
                result,
            )
        if name == "substringof":
            needle, haystack = args
            return f"(instr(lower({haystack}), lower({needle})) > 0)", result
        if name == "tolower":
            return f"lower({args[0]})", result
        if name == "toupper":
            return f"upper({args[0]})", result
        return f"length({args[0]})", result


def _position(node: Node) -> int:
    return node.position


def compile_filter(node: Node, fields: Mapping[str, FieldSpec], type_name: str) -> tuple[str, list[object]]:
    """A parameterised SQL condition equivalent to the filter, and its parameters.

    The condition uses numbered placeholders (``?1``, ``?2``…) and so must be the only parameterised
    part of its statement.

    ``fields`` maps the entity's property names to their columns; ``type_name`` names the entity type
    in error messages. Raises FilterError for unknown properties and functions or mismatched types.
    """
    compiler = _Compiler(fields, type_name)
    sql = compiler.condition(node)
    return sql, compiler.params
