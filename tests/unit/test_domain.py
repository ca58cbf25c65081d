"""The status rules (docs/architecture.md) as plain functions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from writeback_console import domain
from writeback_console.domain import (
    FINAL_STATUSES,
    QueueState,
    Status,
    after_discard,
    after_failure,
    after_manual_retry,
    discard_decision,
    discard_reason_problem,
    is_eligible,
    mailing_activity_error,
    mailing_activity_outcome,
    manual_retry_decision,
    new_ref,
    retries_exhausted,
)

RUN = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
INTERVAL = timedelta(minutes=10)


def state(status: Status, attempts: int = 0, **kw: object) -> QueueState:
    return QueueState(status, attempts, kw.pop("max_attempts", 3), **kw)  # type: ignore[arg-type]


def test_new_is_eligible_at_once() -> None:
    assert is_eligible(state(Status.NEW), RUN)


def test_scheduled_is_eligible_only_once_its_time_has_passed() -> None:
    assert not is_eligible(state(Status.SCHEDULED, scheduled_for=RUN + timedelta(seconds=1)), RUN)
    assert is_eligible(state(Status.SCHEDULED, scheduled_for=RUN), RUN)


def test_error_failed_in_this_run_is_not_eligible_until_a_later_run() -> None:
    failed = after_failure(state(Status.PROCESSING, 1), RUN + timedelta(seconds=4), INTERVAL)
    assert not is_eligible(failed, RUN)
    assert is_eligible(failed, RUN + timedelta(seconds=4) + INTERVAL)


def test_an_automatic_retry_is_due_one_dispatcher_interval_after_the_failure() -> None:
    """Whatever starts a run (Run now, Send now, another dispatcher): not before the interval has passed."""
    failed_at = RUN + timedelta(seconds=4)
    failed = after_failure(state(Status.PROCESSING, 1), failed_at, INTERVAL)
    assert failed.next_attempt_at == failed_at + INTERVAL
    for early in (timedelta(seconds=5), timedelta(minutes=3), INTERVAL - timedelta(seconds=1)):
        assert not is_eligible(failed, failed_at + early)
    assert is_eligible(failed, failed_at + INTERVAL)
    with pytest.raises(ValueError, match="retry_after"):
        after_failure(state(Status.PROCESSING, 1), failed_at, timedelta(0))


def test_a_write_that_may_have_arrived_waits_before_it_is_looked_for_and_sent_again() -> None:
    settle = timedelta(minutes=2)
    doubt = RUN - timedelta(minutes=1)
    for status in (Status.NEW, Status.ERROR):
        uncertain = state(status, 1, uncertain_since=doubt, next_attempt_at=RUN - timedelta(minutes=1))
        assert not is_eligible(uncertain, RUN, settle)
        assert is_eligible(uncertain, RUN + timedelta(minutes=1, seconds=1), settle)
        # Without a wait (back-to-back runs in tests) it is due as before.
        assert is_eligible(uncertain, RUN, timedelta(0))


def test_error_with_attempts_used_up_is_never_eligible() -> None:
    exhausted = state(Status.ERROR, 3, next_attempt_at=RUN - timedelta(hours=1))
    assert retries_exhausted(exhausted)
    assert not is_eligible(exhausted, RUN + timedelta(days=365))


@pytest.mark.parametrize("status", sorted(FINAL_STATUSES | {Status.PROCESSING}))
def test_processing_and_final_rows_are_never_eligible(status: Status) -> None:
    assert not is_eligible(state(status, 1), RUN)


def test_three_attempts_one_plus_two_automatic() -> None:
    s = state(Status.NEW)
    runs = 0
    for n in range(10):
        at = RUN + timedelta(minutes=10 * n)
        if not is_eligible(s, at):
            continue
        runs += 1
        s = after_failure(
            QueueState(Status.PROCESSING, s.attempts + 1, s.max_attempts), at + timedelta(seconds=1), INTERVAL
        )
    assert runs == 3 and s.attempts == 3 and retries_exhausted(s)


def test_manual_retry_only_after_automatic_retries_are_used_up() -> None:
    assert manual_retry_decision(state(Status.ERROR, 1)).reason == "2 automatic retries are still to come"
    assert manual_retry_decision(state(Status.ERROR, 2)).reason == "1 automatic retry is still to come"
    assert manual_retry_decision(state(Status.ERROR, 3)).allowed
    assert not manual_retry_decision(state(Status.SENT, 1)).allowed


def test_manual_retry_grants_exactly_one_more_attempt() -> None:
    retried = after_manual_retry(state(Status.ERROR, 3, next_attempt_at=RUN))
    assert (retried.status, retried.attempts, retried.max_attempts) == (Status.NEW, 3, 4)
    assert is_eligible(retried, RUN)
    with pytest.raises(ValueError, match="automatic"):
        after_manual_retry(state(Status.ERROR, 2))


def test_mailing_activity_outcome() -> None:
    assert mailing_activity_outcome(0, 0) is Status.NO_REMOTE_RECIPIENTS
    assert mailing_activity_outcome(40_000, 40_000) is Status.SENT
    assert mailing_activity_outcome(40_000, 39_688) is Status.ERROR
    assert mailing_activity_error(40_000, 39_688) == "312 of 40,000 recipients failed"


def test_references_are_wb_and_crockford_characters() -> None:
    refs = {new_ref() for _ in range(2000)}
    assert len(refs) == 2000
    assert all(r.startswith("WB-") and len(r) == 13 and not set(r[3:]) & set("ILOU") for r in refs)


def test_only_error_rows_can_be_discarded() -> None:
    assert discard_decision(state(Status.ERROR, 1)).allowed
    assert discard_decision(state(Status.ERROR, 3)).allowed
    for status in set(Status) - {Status.ERROR}:
        decision = discard_decision(state(status, 1))
        assert not decision.allowed and decision.reason
    assert "sending it right now" in discard_decision(state(Status.PROCESSING, 1)).reason


def test_discarded_row_is_never_eligible() -> None:
    discarded = after_discard(state(Status.ERROR, 1, next_attempt_at=RUN - timedelta(hours=1)))
    assert discarded.status is Status.DISCARDED and discarded.attempts == 1
    assert not is_eligible(discarded, RUN + timedelta(days=365))


def test_manual_retry_of_discarded_row_gives_one_attempt() -> None:
    discarded = after_discard(state(Status.ERROR, 1))
    assert manual_retry_decision(discarded).allowed
    retried = after_manual_retry(discarded)
    assert (retried.status, retried.attempts, retried.max_attempts) == (Status.NEW, 1, 2)
    assert is_eligible(retried, RUN)


@pytest.mark.parametrize(
    ("reason", "problem"),
    [
        ("", "a reason is required"),
        ("  ", "a reason is required"),
        ("x" * 501, "501 characters"),
        ("bad\x07bell", "control characters"),
        ("member merged into 000123", None),
    ],
)
def test_a_discard_needs_a_reason_in_plain_words(reason: str, problem: str | None) -> None:
    found = discard_reason_problem(reason)
    assert (found is None) if problem is None else (found is not None and problem in found)


# --- retention ---


@pytest.mark.parametrize(
    ("text", "days"), [("180d", 180), ("180", 180), ("26w", 182), ("6m", 180), ("1y", 365), (" 7D ", 7)]
)
def test_a_retention_age_is_days_weeks_thirty_day_months_or_years(text: str, days: int) -> None:
    assert domain.parse_retention_age(text) == days


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("6d", "shorter than the 7 days"),
        ("0d", "shorter than the 7 days"),
        ("3h", "unknown unit 'h'"),
        ("-5d", "is not an age"),
        ("", "is not an age"),
        ("11y", "more than the 3,650 days"),
    ],
)
def test_a_retention_age_under_seven_days_or_in_another_unit_is_refused_naming_why(
    text: str, problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        domain.parse_retention_age(text)


def test_retention_never_deletes_work_not_done_nor_peoples_decisions() -> None:
    assert set(domain.PRUNABLE_STATUSES) == {Status.SENT, Status.NO_REMOTE_RECIPIENTS}
