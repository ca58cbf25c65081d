"""Summary: the one line a cycle ends with, in the words the log, the command line and the console show."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import FrozenInstanceError
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from writeback_console.dispatch.summary import (
    CycleSummary,
    DispatchOptions,
    ProblemKind,
    clock_text,
)

START = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def summary(seconds: float = 1.5, **values: Any) -> CycleSummary:
    return CycleSummary(START, START + timedelta(seconds=seconds), **values)


def test_a_quiet_cycle_reports_its_three_counts_and_how_long_it_took() -> None:
    assert summary(2.34, claimed=3, sent=2, failed=1).describe() == "claimed 3, sent 2, failed 1 in 2.3 s"


def test_large_counts_have_thousands_separators() -> None:
    text = summary(claimed=12_345, sent=1_125, failed=1_000, released=2_000).describe()
    assert text.startswith("claimed 12,345, sent 1,125, failed 1,000, put back 2,000")


def test_the_other_counts_appear_only_when_there_is_something_to_say_and_in_a_fixed_order() -> None:
    text = summary(
        claimed=9, sent=2, no_remote_recipients=1, released=3, recovered=2, auto_scheduled=4
    ).describe()
    assert text == (
        "claimed 9, sent 2, failed 0, no remote recipients 1, put back 3, "
        "recovered from a stopped dispatcher 2, mailing activity scheduled 4 in 1.5 s"
    )
    assert summary(claimed=9, recovered=2).describe() == (
        "claimed 9, sent 0, failed 0, recovered from a stopped dispatcher 2 in 1.5 s"
    )


@pytest.mark.parametrize(
    ("problem", "reason"),
    [
        (
            ProblemKind.AUTH,
            "credentials rejected by Personify360 since 10:02; one probe per run until they change",
        ),
        (ProblemKind.UNREACHABLE, "Personify360 cannot be reached (connection refused); no attempt was used"),
        (ProblemKind.OUTAGE, "Personify360 unavailable (503); no attempt was used; next try after 10:15"),
        (ProblemKind.DATABASE, "the queue database could not be used (disk I/O error); nothing was sent"),
    ],
)
def test_a_cycle_that_stopped_for_a_problem_leads_with_why_before_its_counts(
    problem: ProblemKind, reason: str
) -> None:
    text = summary(claimed=4, released=4, problem=problem, stopped_reason=reason).describe()
    assert text == f"stopped early: {reason}; claimed 4, sent 0, failed 0, put back 4 in 1.5 s"


def test_switched_off_writebacks_say_so_and_nothing_else() -> None:
    off = summary(claimed=5, sent=1, disabled=True, stopped_reason="asked to stop", problem=ProblemKind.AUTH)
    assert off.describe() == "writebacks are switched off: nothing was sent"


def test_the_duration_is_from_start_to_finish_across_minutes() -> None:
    assert summary(125.04).seconds == pytest.approx(125.04)
    assert summary(125.04).describe().endswith(" in 125.0 s")


def test_problem_kinds_read_as_the_words_they_are_stored_and_logged_as() -> None:
    for kind in ProblemKind:
        assert ProblemKind(str(kind)) is kind
        assert f"{kind}" == kind.name.lower()


@pytest.fixture
def berlin() -> Iterator[None]:
    saved = os.environ.get("TZ")
    os.environ["TZ"] = "Europe/Berlin"
    time.tzset()
    yield
    if saved is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = saved
    time.tzset()


@pytest.mark.usefixtures("berlin")
def test_times_in_reasons_are_on_the_local_clock_in_hours_and_minutes() -> None:
    assert clock_text(datetime(2026, 11, 20, 9, 5, 59, tzinfo=UTC)) == "10:05"
    assert clock_text(datetime(2026, 7, 20, 23, 30, tzinfo=UTC)) == "01:30"


def test_each_dispatcher_is_named_after_its_host_and_process() -> None:
    options = DispatchOptions()
    assert options.dispatcher.endswith(f":{os.getpid()}")
    with pytest.raises(FrozenInstanceError):
        options.concurrency = 99  # type: ignore[misc]
