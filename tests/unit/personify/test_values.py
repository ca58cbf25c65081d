"""Values: what the Personify360 client accepts as settings, and how its answers read to a person."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import pytest

from writeback_console.personify.values import (
    Activity,
    CodeCheck,
    Constituent,
    PersonifySettings,
    check_operator,
)

ROOT = "https://pds.example.org/PersonifyDataServices/PersonifyData.svc"


def refusal(**values: Any) -> str:
    with pytest.raises(ValueError) as info:
        PersonifySettings(**{"service_root_url": ROOT, "user": "svc", "password": "p", **values})
    return str(info.value)


@pytest.mark.parametrize("deadline", [0.99, 3600.5, 0, True, "60", math.nan])
def test_the_request_deadline_must_be_a_number_of_seconds_from_1_to_3600(deadline: Any) -> None:
    assert (
        refusal(request_deadline=deadline) == "request_deadline: must be a number of seconds from 1 to 3600"
    )


@pytest.mark.parametrize("deadline", [1, 1.5, 3600])
def test_a_request_deadline_at_either_end_of_the_range_is_accepted(deadline: float) -> None:
    assert PersonifySettings(ROOT, "svc", "p", request_deadline=deadline).request_deadline == deadline


@pytest.mark.parametrize(
    ("name", "value"),
    [("connect_timeout", True), ("connect_timeout", "5"), ("read_timeout", math.nan), ("read_timeout", 0.0)],
)
def test_a_timeout_must_be_a_positive_number_not_a_flag_text_or_nan(name: str, value: Any) -> None:
    assert refusal(**{name: value}) == f"{name}: must be a positive number of seconds"


@pytest.mark.parametrize("size", [0, 257, 16.0])
def test_the_pool_size_is_a_whole_number_from_1_to_256(size: Any) -> None:
    assert refusal(pool_size=size) == "pool_size: must be a whole number from 1 to 256"
    assert PersonifySettings(ROOT, "svc", "p", pool_size=256).pool_size == 256


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (f"{ROOT}#top", "service_root_url: must not contain a query (?…) or fragment (#…)"),
        (
            "https://pds.example.org:99999/x.svc",
            "service_root_url: the port is not a number between 0 and 65535",
        ),
        ("https://svc@pds.example.org/x.svc", "service_root_url: must not contain a user name or password"),
    ],
)
def test_each_wrong_service_root_is_refused_with_its_own_reason(url: str, message: str) -> None:
    assert refusal(service_root_url=url) == message


def test_the_service_root_is_used_without_trailing_slashes() -> None:
    assert PersonifySettings(f"{ROOT}//", "svc", "p").root == ROOT


@pytest.mark.parametrize(
    ("operator", "problem", "advice"),
    [
        ("X" * 51, "a name of 51 characters", "use at most 50"),
        ("   ", "an empty or blank name", "use plain ASCII letters, digits and punctuation"),
        (None, "an empty or blank name", "use plain ASCII letters, digits and punctuation"),
        ("INFORMZ\x7f", "'\\x7f' (U+007F)", "use plain ASCII letters, digits and punctuation"),
    ],
)
def test_an_operator_that_cannot_be_sent_is_refused_saying_what_to_do(
    operator: object, problem: str, advice: str
) -> None:
    with pytest.raises(ValueError) as info:
        check_operator(operator)
    assert str(info.value) == f"operator: {problem} cannot be sent in the AddModOper header: {advice}"


def constituent(**names: str | None) -> Constituent:
    values: dict[str, Any] = {"label_name": None, "first_name": None, "last_name": None, **names}
    return Constituent("000000001475", 0, record_type="I", primary=True, email="ann@example.org", **values)


@pytest.mark.parametrize(
    ("names", "shown"),
    [
        ({"label_name": "Dr Ann Lee", "first_name": "Ann", "last_name": "Lee"}, "Dr Ann Lee"),
        ({"label_name": "", "first_name": "Ann", "last_name": "Lee"}, "Ann Lee"),
        ({"last_name": "Lee"}, "Lee"),
        ({"first_name": "Ann", "last_name": ""}, "Ann"),
        ({}, "000000001475-0"),
    ],
)
def test_a_constituent_is_shown_by_label_then_by_name_then_by_customer_id(
    names: dict[str, str | None], shown: str
) -> None:
    assert constituent(**names).display_name == shown


@pytest.mark.parametrize(
    "problem",
    [
        {"missing_codes": ("A",)},
        {"contact_tracking_codes": ("A",)},
        {"inactive_codes": ("A",)},
        {"missing_subcodes": (("A", "S"),)},
        {"inactive_subcodes": (("A", "S"),)},
    ],
)
def test_any_one_problem_makes_the_code_check_fail(problem: dict[str, Any]) -> None:
    check = CodeCheck(**problem)
    assert not check.ok
    assert check.describe().endswith(
        "Run sql/personify360/informz_activity_codes.sql or change the activity mapping."
    )


def test_every_problem_is_listed_on_its_own_line_in_a_fixed_order() -> None:
    check = CodeCheck(
        missing_codes=("INFORMZ_GONE", "INFORMZ_OLD"),
        contact_tracking_codes=("INFORMZ_UNSUB",),
        inactive_codes=("INFORMZ_MAILING",),
        missing_subcodes=(("INFORMZ_MAILING", "OPEN"), ("INFORMZ_IPM", "OPTIN")),
        inactive_subcodes=(("INFORMZ_MAILING", "SENT"),),
    )
    assert check.describe().splitlines() == [
        "Missing activity codes: INFORMZ_GONE, INFORMZ_OLD.",
        "Inactive activity codes: INFORMZ_MAILING.",
        "Contact-tracking codes (Option 1 = Y, hidden from System Activities): INFORMZ_UNSUB.",
        "Missing subcodes: INFORMZ_MAILING/OPEN, INFORMZ_IPM/OPTIN.",
        "Inactive subcodes: INFORMZ_MAILING/SENT.",
        "Run sql/personify360/informz_activity_codes.sql or change the activity mapping.",
    ]


def test_when_subcodes_could_not_be_read_the_check_says_only_the_codes_were_checked() -> None:
    assert CodeCheck(subcodes_checked=False).describe().splitlines() == [
        "All activity codes are set up in Personify360.",
        "Subcodes could not be checked: the service does not offer them.",
    ]
    assert CodeCheck(missing_codes=("A",), subcodes_checked=False).describe().splitlines() == [
        "Missing activity codes: A.",
        "Subcodes could not be checked: the service does not offer them.",
        "Run sql/personify360/informz_activity_codes.sql or change the activity mapping.",
    ]


def test_activities_compare_by_what_crm360_shows_not_by_every_raw_field() -> None:
    shown: dict[str, Any] = {
        "activity_id": 11,
        "master_customer_id": "000000001475",
        "sub_customer_id": 0,
        "code": "INFORMZ_UNSUB",
        "subcode": None,
        "date": datetime(2026, 11, 20, 10, 0, tzinfo=UTC),
        "text": "Unsubscribed [ref WB-ABCDEF]",
        "subsystem": "CUS",
        "add_operator": "INFORMZ",
    }
    first = Activity(**shown, raw={"ActivityText": "Unsubscribed", "__next": 1})
    again = Activity(**shown, raw={"ActivityText": "Unsubscribed"})
    assert first == again and hash(first) == hash(again)
    assert first != Activity(**{**shown, "text": "Unsubscribed [ref WB-OTHER1]"}, raw={})
