"""The confirmation of a schedule: local time and UTC, the day named, no locale, no naive times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from writeback_console.confirmations import moment_text, schedule_confirmation

NEW_YORK = ZoneInfo("America/New_York")


def test_a_schedule_is_confirmed_in_local_time_with_utc_beside_it() -> None:
    at = datetime(2026, 12, 2, 14, 0, tzinfo=UTC)
    assert schedule_confirmation("Scheduled", at, NEW_YORK) == "Scheduled for Wed 2 Dec 09:00 (14:00 UTC)"


def test_the_utc_part_names_its_day_when_it_is_another_day() -> None:
    at = datetime(2026, 12, 2, 22, 30, tzinfo=NEW_YORK)
    assert schedule_confirmation("Rescheduled", at, NEW_YORK) == (
        "Rescheduled for Wed 2 Dec 22:30 (Thu 3 Dec 03:30 UTC)"
    )


def test_daylight_saving_time_is_that_of_the_date_not_of_today() -> None:
    summer = datetime(2027, 7, 1, 13, 0, tzinfo=UTC)
    assert schedule_confirmation("Scheduled", summer, NEW_YORK) == "Scheduled for Thu 1 Jul 09:00 (13:00 UTC)"


def test_a_computer_on_utc_says_the_time_once() -> None:
    at = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
    assert schedule_confirmation("Scheduled", at, UTC) == "Scheduled for Wed 2 Dec 09:00 UTC"
    assert (
        schedule_confirmation("Scheduled", at, timezone(timedelta(0))) == "Scheduled for Wed 2 Dec 09:00 UTC"
    )


def test_the_next_run_is_said_in_words() -> None:
    assert schedule_confirmation("Scheduled", None, NEW_YORK) == "Scheduled to go out now"


def test_a_time_without_a_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        schedule_confirmation("Scheduled", datetime(2026, 12, 2, 9, 0), NEW_YORK)


def test_day_and_month_names_do_not_follow_the_locale() -> None:
    assert moment_text(datetime(2026, 1, 4, 7, 5)) == "Sun 4 Jan 07:05"
