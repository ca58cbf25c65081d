"""Error messages grouped by reason, on the messages the dispatcher, the client and the simulator produce."""

from __future__ import annotations

import pytest

from writeback_console.demo.people import failures_for
from writeback_console.domain import Kind
from writeback_console.error_groups import (
    NO_MESSAGE,
    error_reason,
    group_by_reason,
    is_validation_refusal,
    repeated_refusal_warning,
    same_refusal_every_time,
    trend_text,
)
from writeback_console.store.listing import error_like_pattern


@pytest.mark.parametrize(
    ("messages", "reason"),
    [
        (
            ["Customer 000000218382-0 does not exist.", "Customer 000000281713-0 does not exist."],
            "Customer … does not exist.",
        ),
        (
            [
                "no Personify360 constituent has the email kenneth.spencer@example.com",
                "no Personify360 constituent has the email o'brien+news@alumni.example.edu",
            ],
            "no Personify360 constituent has the email …",
        ),
        (
            [
                "2 Personify360 constituents share the email cynthia.j.arnold@example.com and none is "
                "primary: 000000778026-0 Cynthia Arnold, 000000999489-0 Donald Arnold",
                "3 Personify360 constituents share the email s@x.org and none is primary: 000000000001-0 A B",
            ],
            "… Personify360 constituents share the email … and none is primary: …",
        ),
        (
            [
                "1 of 1,073 recipients failed (first: Customer 000000613937-0 does not exist.)",
                "312 of 40,000 recipients failed (first: Customer 000000000017-0 does not exist.)",
            ],
            "… of … recipients failed (first: Customer … does not exist.)",
        ),
        (
            ["Activity Code 'INFORMZ_UNSUB' is inactive.", "Activity Code 'INFORMZ_IPM' is inactive."],
            "Activity Code … is inactive.",
        ),
        (
            [
                "Validation issues: Activity code INFORMZ_UNSUB is not active for subsystem CUS.",
                "Validation issues: Activity code INFORMZ_MAILING is not active for subsystem CUS.",
            ],
            "Validation issues: Activity code … is not active for subsystem CUS.",
        ),
        (
            [
                "writeback WB-APAP4093XY failed at 2026-12-01T10:00:00Z",
                "writeback WB-7K2M9QX4BD failed at 2026-11-30",
            ],
            "writeback … failed at …",
        ),
    ],
)
def test_messages_that_differ_only_in_what_varies_are_one_reason(messages: list[str], reason: str) -> None:
    assert {error_reason(m) for m in messages} == {reason}


def test_different_causes_stay_apart_and_the_http_status_is_kept() -> None:
    reasons = {
        error_reason(m)
        for m in (
            "HTTP 500 from Personify360",
            "HTTP 503 from Personify360",
            "no answer from Personify360 within 30 s (read timeout)",
            "Customer 000000218382-0 does not exist.",
        )
    }
    assert len(reasons) == 4 and "HTTP 503 from Personify360" in reasons
    assert "Personify360" in error_reason("no answer from Personify360 within 30 s (read timeout)")


def test_the_demo_s_failures_for_many_people_make_a_handful_of_reasons() -> None:
    messages = {
        f.message
        for n in range(40)
        for kind in Kind
        for f in failures_for(kind, f"person{n}@example.org", f"{n * 7919:012d}", recipients=n + 1)
    }
    assert len(messages) > 100
    assert len({error_reason(m) for m in messages}) <= 12


def test_an_empty_message_and_a_long_one_have_a_reason_of_their_own() -> None:
    assert error_reason(None) == error_reason("  ") == NO_MESSAGE
    assert len(error_reason("word " * 200)) <= 160


def test_a_reason_as_an_error_text_filter_matches_every_message_it_came_from() -> None:
    pattern = error_like_pattern(error_reason("Customer 000000218382-0 does not exist."))
    assert pattern == "%customer % does not exist.%"
    assert error_like_pattern("100%_done") == "%100\\%\\_done%"


def test_validation_refusals_are_told_from_timeouts() -> None:
    assert is_validation_refusal("Validation issues: Customer 000000218382-0 does not exist.")
    assert is_validation_refusal("no Personify360 constituent has the email a@b.org")
    assert not is_validation_refusal("no answer from Personify360 within 30 s (read timeout)")
    assert not is_validation_refusal("HTTP 500")


def test_same_refusal_every_time_needs_every_attempt_to_be_the_same_refusal() -> None:
    refused = ["Customer 000000000001-0 does not exist."] * 3
    assert same_refusal_every_time(refused) == "Customer … does not exist."
    assert same_refusal_every_time(refused[:1]) is None
    assert same_refusal_every_time([*refused[:2], "no answer from Personify360 within 30 s"]) is None
    assert same_refusal_every_time(["HTTP 500", "HTTP 500"]) is None


def test_a_group_refused_the_same_way_every_time_gets_a_warning() -> None:
    refused = ["Validation issues: Customer 000000000001-0 does not exist."] * 3
    assert repeated_refusal_warning([(3, refused)]) == (
        "Failed 3 of 3 times with the same validation refusal: fix the cause first"
    )
    other = ["Validation issues: Customer 000000000002-0 does not exist."] * 3
    assert repeated_refusal_warning([(3, refused), (3, other)]) == (
        "Each failed every time (6 of 6 attempts) with the same validation refusal: fix the cause first"
    )
    timeouts = ["no answer from Personify360 within 30 s (read timeout)"] * 3
    assert repeated_refusal_warning([(3, refused), (3, timeouts)]) == (
        "1 of 2 failed every time with the same validation refusal: fix the cause first"
    )


def test_no_warning_for_timeouts_a_single_attempt_or_a_success_in_between() -> None:
    timeouts = ["no answer from Personify360 within 30 s (read timeout)"] * 3
    assert repeated_refusal_warning([(3, timeouts)]) is None
    assert repeated_refusal_warning([(1, ["Customer 000000000001-0 does not exist."])]) is None
    # Four counted attempts, three refused: one went otherwise (an interruption that counted, say).
    assert repeated_refusal_warning([(4, ["Customer 000000000001-0 does not exist."] * 3)]) is None
    assert repeated_refusal_warning([]) is None


def test_groups_add_up_their_messages_and_say_the_trend() -> None:
    groups = group_by_reason(
        [
            ("Customer 000000000001-0 does not exist.", 3, 2, 0),
            ("Customer 000000000002-0 does not exist.", 1, 0, 1),
            ("no answer from Personify360 within 30 s (read timeout)", 2, 0, 2),
            (None, 1, 0, 0),
        ]
    )
    assert [(g.reason, g.rows, g.last_day, g.day_before, g.messages) for g in groups] == [
        ("Customer … does not exist.", 4, 2, 1, 2),
        ("no answer from Personify360 within … s (read timeout)", 2, 0, 2, 1),
        (NO_MESSAGE, 1, 0, 0, 1),
    ]
    assert groups[0].example == "Customer 000000000001-0 does not exist."
    assert [trend_text(g) for g in groups] == ["▲ 1", "▼ 2", "="]
