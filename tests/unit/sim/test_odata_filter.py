"""The simulator's $filter parser and its compiler to parameterised SQLite SQL."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from writeback_console.sim.odata_filter import (
    MAX_FILTER_LENGTH,
    MAX_NESTING,
    MAX_OPERATORS,
    Binary,
    EdmType,
    Field,
    FieldSpec,
    FilterError,
    Literal,
    TokenKind,
    compile_filter,
    parse_filter,
    string_literals,
    tokenize,
)

FIELDS = {
    "Email": FieldSpec("EMAIL", EdmType.STRING),
    "Name": FieldSpec("NAME", EdmType.STRING),
    "Sub": FieldSpec("SUB", EdmType.INT32),
    "Primary": FieldSpec("PRIMARY_FLAG", EdmType.BOOLEAN),
    "When": FieldSpec("WHEN_AT", EdmType.DATETIME),
}
ROWS = [
    # EMAIL, NAME, SUB, PRIMARY_FLAG, WHEN_AT
    ("ann@example.org", "Ann", 0, "Y", "2026-01-01T10:00:00.000"),
    ("o'brien@example.org", "Pat O'Brien", 1, "N", "2026-06-01T00:00:00.000"),
    ("bob@example.com", None, 2, "N", None),
]


def quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@pytest.fixture(scope="module")
def db() -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(":memory:")
    conn.execute(
        "CREATE TABLE T (EMAIL TEXT COLLATE NOCASE, NAME TEXT COLLATE NOCASE, SUB INTEGER, "
        "PRIMARY_FLAG TEXT, WHEN_AT TEXT)"
    )
    conn.executemany("INSERT INTO T VALUES (?, ?, ?, ?, ?)", ROWS)
    yield conn
    conn.close()


def matching(db: sqlite3.Connection, text: str) -> list[int]:
    """The SUB values of the rows the filter selects."""
    sql, params = compile_filter(parse_filter(text), FIELDS, "Test.Entity")
    return [r[0] for r in db.execute(f"SELECT SUB FROM T WHERE {sql} ORDER BY SUB", params)]


VALID = [
    ("Email eq 'ann@example.org'", [0]),
    ("Email eq 'ANN@EXAMPLE.ORG'", [0]),  # SQL Server's collation is case-insensitive
    ("Email ne 'ann@example.org'", [1, 2]),
    ("Email eq 'o''brien@example.org'", [1]),
    ("Sub lt 1", [0]),
    ("Sub le 1", [0, 1]),
    ("Sub gt 1", [2]),
    ("Sub ge 1", [1, 2]),
    ("Sub eq 2L", [2]),
    ("Sub gt -1", [0, 1, 2]),
    ("Sub eq 0 or Sub eq 2", [0, 2]),
    ("Sub ge 0 and Sub le 1 and Primary", [0]),
    ("not Primary", [1, 2]),
    ("not (Sub eq 0)", [1, 2]),
    ("Primary eq true", [0]),
    ("Primary eq false", [1, 2]),
    ("Primary ne true", [1, 2]),
    ("true", [0, 1, 2]),
    ("Name eq null", [2]),
    ("Name ne null", [0, 1]),
    ("null eq Name", [2]),
    ("startswith(Email, 'ann')", [0]),
    ("startswith(Email,'ANN@')", [0]),
    ("startswith(Email, '')", [0, 1, 2]),
    ("endswith(Email, '.com')", [2]),
    ("substringof('brien', Email)", [1]),
    ("substringof('BRIEN', Name)", [1]),
    ("substringof('%', Email)", []),  # LIKE wildcards mean nothing here
    ("substringof('_', Email)", []),
    ("tolower(Name) eq 'ann'", [0]),
    ("toupper(Name) eq 'ANN'", [0]),
    ("length(Name) eq 3", [0]),
    ("When ge datetime'2026-03-01T00:00:00'", [1]),
    ("When lt datetime'2026-03-01T00:00'", [0]),
    ("When eq datetime'2026-01-01T10:00:00.000'", [0]),
    ("When eq null", [2]),
    ("(Sub eq 0 or Sub eq 1) and Primary eq false", [1]),
    ("Sub eq 0 or Sub eq 1 and Primary eq false", [0, 1]),  # and binds tighter than or
    ("((((Sub eq 1))))", [1]),
    ("  Sub   eq\t1  ", [1]),
    ("Email eq 'x'' or 1 eq 1 or ''a@b.c'", []),
]


@pytest.mark.parametrize(("text", "expected"), VALID, ids=[v[0] for v in VALID])
def test_valid_filters_select_the_right_rows(db: sqlite3.Connection, text: str, expected: list[int]) -> None:
    assert matching(db, text) == expected


INVALID = [
    ("", "Expression expected"),
    ("   ", "Expression expected"),
    ("Email eq", "Expression expected at position 8"),
    ("Email 'x'", "Syntax error at position 6"),
    ("eq 'x'", "Expression expected at position 0"),
    ("Email eq 'x' and", "Expression expected"),
    ("(Email eq 'x'", "')' expected at position 13"),
    ("Email eq 'x')", "Syntax error at position 12"),
    ("Email eq 'x", "Unterminated string literal at position 9"),
    ("Email eq 'it''s", "Unterminated string literal"),
    ("Nope eq 'x'", "No property 'Nope' exists in type 'Test.Entity' at position 0"),
    ("email eq 'x'", "No property 'email'"),  # property names are case-sensitive
    ("Email EQ 'x'", "Syntax error"),  # so are operators
    ("Email eq 1", "incompatible with operand types 'Edm.String' and 'Edm.Int32'"),
    ("Sub eq 'x'", "incompatible"),
    ("Primary eq 1", "incompatible"),
    ("When eq '2026-01-01'", "incompatible"),
    ("Primary gt false", "cannot be applied"),
    ("Name gt null", "cannot be applied to null"),
    ("Email", "Expression of type 'Edm.Boolean' expected"),
    ("Sub eq 1 and Email", "Expression of type 'Edm.Boolean' expected"),
    ("not Email", "Expression of type 'Edm.Boolean' expected"),
    ("Sub add 1 eq 2", "Operator 'add' is not supported"),
    ("Sub mul 2", "Operator 'mul' is not supported"),
    ("frobnicate(Email)", "Unknown function 'frobnicate'"),
    ("startswith(Email)", "takes 2 argument(s), not 1"),
    ("startswith(Email, 1)", "expects 'Edm.String', not 'Edm.Int32'"),
    ("startswith(Email, 'a'", "')' or ',' expected"),
    ("Sub eq 1.5", "Only integer numeric literals"),
    ("Sub eq 1e3", "Only integer numeric literals"),
    ("Sub eq 99999999999999999999", "out of range"),
    ("Email eq guid'0000'", "Literals of type 'guid' are not supported"),
    ("Email eq foo'x'", "unknown literal prefix 'foo'"),
    ("When eq datetime'yesterday'", "Unrecognized 'Edm.DateTime' literal"),
    ('Email eq "x"', "unexpected character '\"'"),
    ("Email eq 'x' ; drop table T", "unexpected character ';'"),
    ("Customer/Email eq 'x'", "unexpected character '/'"),
    ("-Sub eq 1", "unexpected character '-'"),
    ("Sub eq 1 Sub eq 2", "Syntax error"),
    ("()", "Expression expected"),
    ("Email eq ,", "Expression expected at position 9"),
    ("(" * (MAX_NESTING + 1) + "true" + ")" * (MAX_NESTING + 1), "nests deeper"),
    ("not " * (MAX_NESTING + 1) + "true", "nests deeper"),
    (" or ".join(["true"] * (MAX_OPERATORS + 2)), "more than"),
    ("Email eq '" + "x" * MAX_FILTER_LENGTH + "'", "longer than"),
]


@pytest.mark.parametrize(("text", "message"), INVALID, ids=[v[0][:40] for v in INVALID])
def test_invalid_filters_are_refused_with_a_position(text: str, message: str) -> None:
    with pytest.raises(FilterError) as info:
        compile_filter(parse_filter(text), FIELDS, "Test.Entity")
    assert message in str(info.value)


def test_values_never_reach_the_sql_text() -> None:
    sql, params = compile_filter(
        parse_filter("Email eq 'a''b' and Sub eq 7 and When ge datetime'2026-01-01T00:00:00'"),
        FIELDS,
        "Test.Entity",
    )
    assert "a'b" not in sql and "7" not in sql.replace("?", "") and "2026" not in sql
    assert params == ["a'b", 7, "2026-01-01T00:00:00.000"]


def test_a_parameter_used_twice_is_bound_once() -> None:
    # startswith uses its prefix twice; numbered placeholders keep the parameter list in step.
    sql, params = compile_filter(parse_filter("startswith(Name, 'Pat') and Sub eq 1"), FIELDS, "T")
    assert params == ["Pat", 1]
    assert sql.count("?1") == 2 and sql.count("?2") == 1


def test_timezone_in_a_datetime_literal_is_converted_to_utc() -> None:
    _, params = compile_filter(parse_filter("When eq datetime'2026-01-01T12:00:00+02:00'"), FIELDS, "T")
    assert params == ["2026-01-01T10:00:00.000"]


def test_tokens_carry_positions_and_values() -> None:
    tokens = tokenize("startswith(Email,'o''b') and Sub eq -3")
    assert [(t.kind, t.value, t.position) for t in tokens] == [
        (TokenKind.NAME, "startswith", 0),
        (TokenKind.LPAREN, None, 10),
        (TokenKind.NAME, "Email", 11),
        (TokenKind.COMMA, None, 16),
        (TokenKind.STRING, "o'b", 17),
        (TokenKind.RPAREN, None, 23),
        (TokenKind.NAME, "and", 25),
        (TokenKind.NAME, "Sub", 29),
        (TokenKind.NAME, "eq", 33),
        (TokenKind.INTEGER, -3, 36),
        (TokenKind.END, None, 38),
    ]
    (datetime_token, _) = tokenize("datetime'2026-05-04T03:02:01'")
    assert datetime_token.value == datetime(2026, 5, 4, 3, 2, 1)


def test_string_literals_are_listed() -> None:
    tree = parse_filter("Email eq 'a' or (startswith(Name, 'b') and Sub eq 1)")
    assert list(string_literals(tree)) == ["a", "b"]


@given(st.text())
def test_any_string_quoted_with_doubled_quotes_is_one_literal(text: str) -> None:
    tokens = tokenize(quote(text))
    assert [(t.kind, t.value) for t in tokens] == [(TokenKind.STRING, text), (TokenKind.END, None)]
    tree = parse_filter(f"Email eq {quote(text)}")
    assert tree == Binary("eq", Field("Email", 0), Literal(text, EdmType.STRING, 9), 6)
    sql, params = compile_filter(tree, FIELDS, "T")
    assert (sql, params) == ("(EMAIL = ?1)", [text])


@given(st.text(alphabet=st.sampled_from("'() ,=eqnotandor1xX\"-"), max_size=40))
def test_hostile_text_in_a_literal_matches_only_itself(text: str) -> None:
    conn = sqlite3.connect(":memory:")
    conn.execute(
        "CREATE TABLE T (EMAIL TEXT COLLATE NOCASE, NAME TEXT, SUB INTEGER, PRIMARY_FLAG TEXT, WHEN_AT TEXT)"
    )
    conn.executemany("INSERT INTO T VALUES (?, ?, ?, ?, ?)", [*ROWS, (text, None, 9, "N", None)])
    assert matching(conn, f"Email eq {quote(text)}") == [
        sub for email, _, sub, _, _ in [*ROWS, (text, None, 9, "N", None)] if email.lower() == text.lower()
    ]


@given(st.text(max_size=60))
def test_arbitrary_text_either_compiles_or_raises_filter_error(text: str) -> None:
    # Anything else (an IndexError, a RecursionError…) would be a 500 from the simulator.
    with contextlib.suppress(FilterError):
        compile_filter(parse_filter(text), FIELDS, "T")
