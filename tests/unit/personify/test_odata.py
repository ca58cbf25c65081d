"""Unit tests for OData escaping, filter building, result unwrapping, the /Date()/ format and the JSON
forms of Int64, Int32 and Decimal values."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from writeback_console.personify import odata

# Text as it could come from an import file or a person, minus control characters (refused separately).
printable_text = st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs")))


def tokenize(text: str) -> list[tuple[str, str]]:
    """A minimal reference reader of OData filter text: strings, words, numbers and punctuation.

    It is deliberately independent of odata.py, so the property test below checks the escaping
    against a second opinion of what a server would read.
    """
    tokens: list[tuple[str, str]] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == " ":
            i += 1
        elif char == "'":
            value: list[str] = []
            j = i + 1
            while True:
                if j >= len(text):
                    raise SyntaxError("unterminated string literal")
                if text[j] == "'":
                    if j + 1 < len(text) and text[j + 1] == "'":
                        value.append("'")
                        j += 2
                        continue
                    break
                value.append(text[j])
                j += 1
            tokens.append(("string", "".join(value)))
            i = j + 1
        elif char in "(),":
            tokens.append(("punct", char))
            i += 1
        else:
            match = re.match(r"[A-Za-z_][A-Za-z0-9_]*|-?[0-9]+", text[i:])
            if match is None:
                raise SyntaxError(f"unexpected {char!r} at {i}")
            tokens.append(("word", match.group()))
            i += len(match.group())
    return tokens


@given(printable_text)
def test_no_string_can_escape_its_literal(value: str) -> None:
    assert tokenize(odata.quote_literal(value)) == [("string", value)]


@given(printable_text)
def test_an_equality_filter_is_always_three_tokens(value: str) -> None:
    assert tokenize(odata.eq("FormattedPhoneAddress", value)) == [
        ("word", "FormattedPhoneAddress"),
        ("word", "eq"),
        ("string", value),
    ]


@given(printable_text, printable_text)
def test_combined_filters_keep_their_structure(first: str, second: str) -> None:
    tokens = tokenize(odata.and_(odata.eq("A", first), odata.substringof(second, "B")))
    assert tokens == [
        ("punct", "("),
        ("word", "A"),
        ("word", "eq"),
        ("string", first),
        ("punct", ")"),
        ("word", "and"),
        ("punct", "("),
        ("word", "substringof"),
        ("punct", "("),
        ("string", second),
        ("punct", ","),
        ("word", "B"),
        ("punct", ")"),
        ("punct", ")"),
    ]


@given(printable_text)
def test_the_query_string_carries_the_filter_unchanged(value: str) -> None:
    # & = + # % in an email must not split or alter the parameter on its way through the URL.
    filter_ = odata.eq("FormattedPhoneAddress", value)
    query = odata.query_string({"$filter": filter_, "$select": "A,B"})
    assert parse_qs(query, keep_blank_values=True, strict_parsing=True) == {
        "$filter": [filter_],
        "$select": ["A,B"],
    }


def test_quotes_are_doubled() -> None:
    assert odata.quote_literal("O'Brien") == "'O''Brien'"
    assert odata.quote_literal("") == "''"
    assert odata.quote_literal("''") == "''''''"


def test_the_hostile_email_stays_one_literal() -> None:
    hostile = "x' or 1 eq 1 or 'a@b.c"
    assert odata.eq("FormattedPhoneAddress", hostile) == (
        "FormattedPhoneAddress eq 'x'' or 1 eq 1 or ''a@b.c'"
    )


@pytest.mark.parametrize("value", ["a\x00b", "line\nbreak", "tab\there", "\x7f", "c1\x85"])
def test_control_characters_are_refused(value: str) -> None:
    with pytest.raises(ValueError, match="control character"):
        odata.quote_literal(value)


def test_a_non_string_is_refused() -> None:
    with pytest.raises(TypeError):
        odata.quote_literal(5)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["", "1abc", "a b", "a-b", "A eq 'x'", "Ä", "a)"])
def test_bad_field_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="property name"):
        odata.eq(name, "x")


def test_literals_by_type() -> None:
    assert odata.eq("SubCustomerId", 0) == "SubCustomerId eq 0"
    assert odata.eq("PrimaryFlag", True) == "PrimaryFlag eq true"
    assert odata.ne("PrimaryFlag", False) == "PrimaryFlag ne false"
    assert odata.eq("LabelName", None) == "LabelName eq null"


def test_builders() -> None:
    assert odata.and_("A eq 1") == "A eq 1"
    assert odata.and_("A eq 1", "B eq 2") == "(A eq 1) and (B eq 2)"
    assert odata.or_("A eq 1", "B eq 2", "C eq 3") == "(A eq 1) or (B eq 2) or (C eq 3)"
    assert odata.substringof("[ref WB-1]", "ActivityText") == "substringof('[ref WB-1]',ActivityText)"
    assert odata.startswith("LastName", "O'B") == "startswith(LastName,'O''B')"
    with pytest.raises(ValueError):
        odata.and_()


def test_entity_key() -> None:
    key = odata.entity_key(MasterCustomerId="000000001475", SubCustomerId=0)
    assert key == "(MasterCustomerId='000000001475',SubCustomerId=0)"
    assert odata.path_segment("CustomerInfos" + key) == "CustomerInfos" + key
    assert odata.path_segment("X('a b#')") == "X('a%20b%23')"


def test_spaces_and_quotes_are_percent_encoded() -> None:
    query = odata.query_string({"$filter": "A eq 'b+c'"})
    assert query == "$filter=A%20eq%20%27b%2Bc%27"
    assert "+" not in query
    assert urlsplit("http://h/x?" + query).query == query


class TestUnwrap:
    def test_plain_list(self) -> None:
        assert odata.unwrap_results({"d": [{"A": 1}, {"A": 2}]}) == [{"A": 1}, {"A": 2}]

    def test_results_object(self) -> None:
        assert odata.unwrap_results({"d": {"results": [{"A": 1}]}}) == [{"A": 1}]

    def test_single_entity(self) -> None:
        assert odata.unwrap_results({"d": {"A": 1, "B": "x"}}) == [{"A": 1, "B": "x"}]

    def test_metadata_dropped_and_unknown_fields_kept(self) -> None:
        body = {"d": {"results": [{"__metadata": {"uri": "x", "type": "T"}, "A": 1, "Future": [1, 2]}]}}
        assert odata.unwrap_results(body) == [{"A": 1, "Future": [1, 2]}]

    def test_single_entity_with_metadata(self) -> None:
        assert odata.unwrap_results({"d": {"__metadata": {}, "A": 1}}) == [{"A": 1}]

    def test_empty(self) -> None:
        assert odata.unwrap_results({"d": []}) == []
        assert odata.unwrap_results({"d": {"results": []}}) == []

    @pytest.mark.parametrize(
        "body",
        [None, [], {}, {"value": []}, {"d": None}, {"d": "text"}, {"d": [1, 2]}, {"d": {"results": ["x"]}}],
    )
    def test_wrong_shapes_raise(self, body: object) -> None:
        with pytest.raises(odata.UnexpectedShape):
            odata.unwrap_results(body)


class TestDates:
    def test_plain(self) -> None:
        assert odata.parse_date("/Date(1700000000000)/") == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)

    @pytest.mark.parametrize("offset", ["+0000", "-0500", "+0530"])
    def test_offset_does_not_move_the_instant(self, offset: str) -> None:
        parsed = odata.parse_date(f"/Date(1700000000000{offset})/")
        assert parsed == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
        assert parsed.tzinfo is UTC

    def test_negative_and_milliseconds(self) -> None:
        assert odata.parse_date("/Date(-1)/") == datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)
        assert odata.parse_date("/Date(1700000000123)/").microsecond == 123000

    @pytest.mark.parametrize(
        "text",
        [
            "",
            "2023-11-14",
            "/Date()/",
            "/Date(abc)/",
            "Date(1)",
            "/Date(1+00)/",
            "/Date(1+2500)/",
            "/Date(99999999999999999)/",
        ],
    )
    def test_garbage_raises_value_error(self, text: str) -> None:
        with pytest.raises(ValueError):
            odata.parse_date(text)

    def test_optional(self) -> None:
        assert odata.parse_optional_date(None) is None
        assert odata.parse_optional_date("nonsense") is None
        assert odata.parse_optional_date(5) is None
        assert odata.parse_optional_date("/Date(0)/") == datetime(1970, 1, 1, tzinfo=UTC)

    def test_format(self) -> None:
        assert odata.format_date(datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)) == "/Date(1700000000000)/"
        eastern = timezone(timedelta(hours=-5))
        assert (
            odata.format_date(datetime(2023, 11, 14, 17, 13, 20, tzinfo=eastern)) == "/Date(1700000000000)/"
        )

    def test_format_refuses_naive(self) -> None:
        with pytest.raises(ValueError, match="naive"):
            odata.format_date(datetime(2023, 1, 1))

    @given(
        st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC))
    )
    def test_round_trip_to_the_millisecond(self, moment: datetime) -> None:
        expected = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
        assert odata.parse_date(odata.format_date(moment)) == expected


class TestPrimitiveValues:
    """Int64 and Decimal come as strings in OData v2's JSON format (WCF) and as numbers at some sites."""

    @given(st.integers(min_value=-(2**63), max_value=2**63 - 1))
    def test_an_int64_reads_the_same_in_either_form(self, number: int) -> None:
        assert odata.read_int64(str(number), "ActivityId") == odata.read_int64(number, "ActivityId") == number

    @pytest.mark.parametrize(
        "value",
        [
            "12a",
            "",
            " 12",
            "12 ",
            "1.5",
            "1e3",
            "0x1f",
            "12L",
            "²",
            "１２",
            1.5,
            True,
            None,
            [],
            {},
            "9" * 21,
        ],
    )
    def test_anything_else_is_refused_naming_the_property(self, value: object) -> None:
        with pytest.raises(odata.BadValue, match=r"^ActivityId is .*not an Edm\.Int64"):
            odata.read_int64(value, "ActivityId")

    def test_the_message_quotes_the_value(self) -> None:
        with pytest.raises(
            odata.BadValue, match=r"ActivityId is '12a', not an Edm\.Int64 \(a whole number\)"
        ):
            odata.read_int64("12a", "ActivityId")
        with pytest.raises(odata.BadValue, match=r"ActivityId is true, not"):
            odata.read_int64(True, "ActivityId")

    @pytest.mark.parametrize("value", [2**63, "-9223372036854775809"])
    def test_past_the_range_of_an_int64_is_refused(self, value: object) -> None:
        with pytest.raises(odata.BadValue, match=r"out of the range of an Edm\.Int64"):
            odata.read_int64(value, "CusCommunicationId")

    def test_an_int32_is_a_number_or_its_string(self) -> None:
        assert odata.read_int32(0, "SubCustomerId") == odata.read_int32("0", "SubCustomerId") == 0
        assert odata.read_int32(-(2**31), "SubCustomerId") == -(2**31)
        for bad in (2**31, "x", None, False, 0.5):
            with pytest.raises(odata.BadValue, match=r"^SubCustomerId is"):
                odata.read_int32(bad, "SubCustomerId")

    @pytest.mark.parametrize(
        ("value", "expected"),
        [("12.50", "12.50"), ("-0.01", "-0.01"), ("7", "7"), (12.5, "12.5"), (3, "3"), ("0.1", "0.1")],
    )
    def test_a_decimal_is_read_exactly_from_either_form(self, value: object, expected: str) -> None:
        assert odata.read_decimal(value, "Amount") == Decimal(expected)
        assert str(odata.read_decimal(value, "Amount")) == expected

    @pytest.mark.parametrize(
        "value", ["12,50", "1.", ".5", "NaN", "Infinity", "1e5", float("inf"), None, True, ""]
    )
    def test_a_decimal_that_is_no_number_is_refused(self, value: object) -> None:
        with pytest.raises(odata.BadValue, match=r"^Amount is .*not an Edm\.Decimal"):
            odata.read_decimal(value, "Amount")
