"""Intake: what a writeback from outside must be, and the exact words for what is wrong with it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from writeback_console.domain import Kind
from writeback_console.intake import (
    DEFAULT_ACCOUNT,
    MAX_LINE_BYTES,
    InputError,
    LineError,
    WritebackInput,
    odd_character,
    parse_line,
    validate_email,
    validate_writeback,
)

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def problem(raw: dict[str, Any]) -> str:
    with pytest.raises(InputError) as info:
        validate_writeback(raw, now=NOW)
    return str(info.value)


def test_an_unsubscribe_needs_only_kind_and_email_and_gets_the_defaults() -> None:
    item = validate_writeback({"kind": "unsubscribe", "email": " Ann@Example.org "}, now=NOW)
    assert item == WritebackInput(
        kind=Kind.UNSUBSCRIBE, account=DEFAULT_ACCOUNT, occurred_at=NOW, email="Ann@Example.org"
    )


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"email": "a@b.org"}, "kind: is required"),
        ({"kind": "unsub", "email": "a@b.org"}, "kind: unknown kind 'unsub'; one of unsubscribe"),
        ({"kind": "unsubscribe"}, "email: is required"),
        ({"kind": "unsubscribe", "email": "   "}, "email: is empty"),
        ({"kind": "unsubscribe", "email": 5}, "email: must be text, not a number"),
        ({"kind": "unsubscribe", "email": "a@b.org", "colour": "red"}, "colour: unknown field"),
        ({"kind": "interests", "email": "a@b.org", "opted_in": True}, "interest: is required"),
        ({"kind": "interests", "email": "a@b.org", "interest": "News"}, "opted_in: is required"),
        ({"kind": "interests", "email": "a@b.org", "interest": "N", "opted_in": 1}, "opted_in: must be true"),
        ({"kind": "resubscribe", "email": "a@b.org", "reason": "x"}, "reason: is only used by unsubscribe"),
        ({"kind": "mailing_activity"}, "mailing_id: is required for mailing_activity"),
        ({"kind": "unsubscribe", "email": "a@b.org", "mailing_id": 3}, "mailing_id: is only used by mailing"),
        ({"kind": "unsubscribe", "email": "a@b.org", "sub_customer_id": 0}, "sub_customer_id: given without"),
        (
            {"kind": "unsubscribe", "email": "a@b.org", "master_customer_id": "0001;"},
            "master_customer_id: '0001;'",
        ),
        (
            {"kind": "unsubscribe", "email": "a@b.org", "occurred_at": "2026-11-20"},
            "occurred_at: '2026-11-20' has no",
        ),
        (
            {"kind": "unsubscribe", "email": "a@b.org", "occurred_at": "2026-11-25T00:00Z"},
            "occurred_at: 2026",
        ),
        ({"kind": "unsubscribe", "email": "a@b.org", "ref": "WB-IIII"}, "ref: 'WB-IIII' is not WB- followed"),
    ],
)
def test_each_mistake_names_its_field_and_what_is_wrong(raw: dict[str, Any], message: str) -> None:
    assert problem(raw).startswith(message)


def test_a_day_of_clock_skew_is_allowed_but_not_more() -> None:
    tomorrow = (NOW + timedelta(hours=23)).isoformat()
    assert validate_writeback({"kind": "unsubscribe", "email": "a@b.org", "occurred_at": tomorrow}, now=NOW)
    assert "is in the future" in problem(
        {"kind": "unsubscribe", "email": "a@b.org", "occurred_at": (NOW + timedelta(days=2)).isoformat()}
    )


def test_a_reference_is_read_in_any_case() -> None:
    item = validate_writeback({"kind": "unsubscribe", "email": "a@b.org", "ref": "wb-7k2m9qx4bd"}, now=NOW)
    assert item.ref == "WB-7K2M9QX4BD"


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("a\x7fb", "a control character (U+007F)"),
        ("a\x85b", "a control character (U+0085)"),
        ("a\ud800b", "an unpaired surrogate (U+D800)"),
        ("a\u2028b", "a line separator (U+2028)"),
        ("a\ufdd0b", "a noncharacter (U+FDD0)"),
        ("a\u202eb", "an invisible formatting character (U+202E)"),
    ],
)
def test_characters_that_break_the_layers_behind_personify360_are_named(value: str, words: str) -> None:
    assert odd_character(value) == words
    assert problem({"kind": "unsubscribe", "email": f"{value}@example.org"}) == f"email: contains {words}"


def test_prose_may_hold_tabs_and_line_breaks_but_addresses_may_not() -> None:
    assert odd_character("line one\nline two\tend", free_text=True) is None
    assert odd_character("line one\nline two") == "a control character (U+000A)"
    item = validate_writeback({"kind": "unsubscribe", "email": "a@b.org", "reason": "too\nmany"}, now=NOW)
    assert item.payload["reason"] == "too\nmany"


@pytest.mark.parametrize(
    ("address", "words"),
    [
        ("no-at-sign", "is not an email address (no local part, @ and domain)"),
        ("@example.org", "is not an email address (no local part, @ and domain)"),
        ("a b@example.org", "is not an email address"),
        ("ann@localhost", "does not have a valid domain"),
        ("ann@-bad.example.org", "does not have a valid domain"),
        ("x" * 65 + "@example.org", "the part before @ is longer than 64 characters"),
    ],
)
def test_an_address_must_look_like_one(address: str, words: str) -> None:
    with pytest.raises(InputError) as info:
        validate_email(address)
    assert info.value.field == "email"
    assert words in info.value.problem


@given(st.emails())
def test_every_well_formed_address_passes(address: str) -> None:
    assert validate_email(address) == address


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b'{"kind": "unsubscribe"', "line 7: line: invalid JSON: Expecting ',' delimiter"),
        (b"[1, 2]", "line 7: line: must be a JSON object, not a list"),
        (b'{"kind": "unsubscribe", "email": "a\xff@b.org"}', "line 7: line: is not UTF-8 (byte 36)"),
        (b'{"kind": "unsubscribe", "email": "a\x00@b.org"}', "line 7: line: contains a NUL byte"),
        (
            b'{"kind": "unsubscribe", "email": "a\\u007f@b.org"}',
            "line 7: email: contains a control character",
        ),
        (b"x" * (MAX_LINE_BYTES + 1), f"line 7: line: is {MAX_LINE_BYTES + 1:,} bytes long"),
    ],
)
def test_a_bad_line_says_which_line_and_what(line: bytes, message: str) -> None:
    result = parse_line(line, 7, now=NOW)
    assert isinstance(result, LineError)
    assert str(result).startswith(message)


def test_a_good_line_becomes_a_writeback() -> None:
    line = json.dumps({"kind": "interests", "email": "a@b.org", "interest": "News", "opted_in": False})
    result = parse_line(line.encode(), 1, now=NOW)
    assert isinstance(result, WritebackInput)
    assert result.payload == {"interest": "News", "opted_in": False}
