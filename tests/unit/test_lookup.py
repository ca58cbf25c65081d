"""Support's look-up: what counts as an address to look up, and the reference an activity carries."""

from __future__ import annotations

import pytest

from writeback_console import intake, lookup


@pytest.mark.parametrize(
    "text", ["not an email@", "anthony.garcia57479", "@example.org", "ann@example", "a@b@c.org", "x" * 300]
)
def test_the_lookup_refuses_exactly_what_intake_refuses(text: str) -> None:
    with pytest.raises(intake.InputError):
        intake.validate_email(text)
    with pytest.raises(lookup.NotAnEmail, match="type a whole address"):
        lookup.check_email(text)


@pytest.mark.parametrize("text", ["ann@example.org", "  O'Brien@Example.ORG ", "a+tag@mail.example.co.uk"])
def test_an_address_intake_accepts_is_looked_up_without_its_spaces(text: str) -> None:
    assert lookup.check_email(text) == intake.validate_email(text.strip())


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("ann\x1b[2J@example.org", "a control character (U+001B)"),
        ("ann\u200b@example.org", "an invisible character (U+200B)"),
        ("ann\udcff@example.org", "a byte that is not UTF-8 text"),
    ],
)
def test_an_address_with_a_character_that_cannot_be_typed_is_refused_saying_which(
    text: str, problem: str
) -> None:
    with pytest.raises(lookup.NotAnEmail, match="type a whole address") as info:
        lookup.check_email(text)
    assert problem in str(info.value)
    # The message itself prints anywhere: the character is shown escaped.
    str(info.value).encode("ascii")


def test_an_empty_search_asks_for_an_address() -> None:
    with pytest.raises(lookup.NotAnEmail, match=r"^Type an email address to look up\.$"):
        lookup.check_email("   ")


@pytest.mark.parametrize(
    ("text", "ref"),
    [
        ('Resubscribed in Informz account "Main" [ref WB-7K2M9QX4BD]', "WB-7K2M9QX4BD"),
        ("Mailing News: opened [ref wb-abcdefghjk12]", "WB-ABCDEFGHJK12"),
        ("quoted [ref WB-AAAA] then the real one [ref WB-BBBB]", "WB-BBBB"),
        ("typed by hand in CRM360", None),
        ("[ref WB-] is no reference", None),
    ],
)
def test_the_ref_an_activity_ends_with(text: str, ref: str | None) -> None:
    assert lookup.ref_in(text) == ref
